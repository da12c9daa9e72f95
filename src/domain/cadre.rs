//! Validation of a cadre as submitted: id number, dates, gender, division, and every post.

use crate::domain::{DATE_RULE, division, ids, label, parse_date};
use crate::error::FieldViolation;
use crate::proto;

/// Fields an update mask may name.
pub const UPDATABLE: [&str; 5] = [
    "display_name",
    "gender",
    "birth_date",
    "managing_division",
    "posts",
];

/// Checks a cadre for create or update and returns one violation per bad
/// field, paths rooted at `prefix` (e.g. `cadre`). An empty birth date is
/// allowed here: the service fills it from the id number.
pub fn validate(c: &proto::Cadre, prefix: &str) -> Vec<FieldViolation> {
    let mut v = Vec::new();
    let f = |name: &str| format!("{prefix}.{name}");
    v.extend(label(&f("display_name"), c.display_name.trim(), 64, true));
    // The birth date inside the number obeys the one date rule like any other.
    let id_ok = ids::is_valid_id_number(&c.id_number)
        && ids::birth_date_of(&c.id_number).is_some_and(|d| parse_date(&d).is_some());
    if !id_ok {
        v.push(FieldViolation::new(
            f("id_number"),
            "not a valid 18-character 公民身份号码 (GB 11643 check digit or birth date wrong)",
        ));
    }
    let gender = proto::Gender::try_from(c.gender).unwrap_or(proto::Gender::Unspecified);
    if gender == proto::Gender::Unspecified {
        v.push(FieldViolation::new(
            f("gender"),
            "required: GENDER_MALE or GENDER_FEMALE",
        ));
    } else if id_ok {
        // GB 11643: the 17th digit is odd for men, even for women.
        let odd = (c.id_number.as_bytes()[16] - b'0') % 2 == 1;
        if odd != (gender == proto::Gender::Male) {
            v.push(FieldViolation::new(
                f("gender"),
                "does not agree with the id number's sequence code",
            ));
        }
    }
    if !c.birth_date.is_empty() {
        match parse_date(&c.birth_date) {
            None => v.push(FieldViolation::new(f("birth_date"), DATE_RULE)),
            Some(_)
                if id_ok
                    && ids::birth_date_of(&c.id_number).as_deref()
                        != Some(c.birth_date.as_str()) =>
            {
                v.push(FieldViolation::new(
                    f("birth_date"),
                    "does not agree with the id number",
                ))
            }
            Some(_) => {}
        }
    }
    if !division::is_valid(&c.managing_division) {
        v.push(FieldViolation::new(
            f("managing_division"),
            "must be a 6-digit GB/T 2260 code",
        ));
    }
    for (i, p) in c.posts.iter().enumerate() {
        validate_post(p, &format!("{prefix}.posts[{i}]"), &mut v);
    }
    v
}

fn validate_post(p: &proto::Post, prefix: &str, v: &mut Vec<FieldViolation>) {
    let f = |name: &str| format!("{prefix}.{name}");
    v.extend(label(&f("unit_name"), &p.unit_name, 128, true));
    if !ids::is_valid_credit_code(&p.unit_credit_code) {
        v.push(FieldViolation::new(
            f("unit_credit_code"),
            "not a valid 18-character 统一社会信用代码 (GB 32100 check character wrong)",
        ));
    }
    v.extend(label(&f("title"), &p.title, 64, true));
    v.extend(label(&f("rank"), &p.rank, 32, false));
    let start = parse_date(&p.start_date);
    if start.is_none() {
        v.push(FieldViolation::new(f("start_date"), DATE_RULE));
    }
    if !p.end_date.is_empty() {
        match (parse_date(&p.end_date), start) {
            (None, _) => v.push(FieldViolation::new(
                f("end_date"),
                "must be empty or a date YYYY-MM-DD between 1900-01-01 and 2099-12-31",
            )),
            (Some(e), Some(s)) if e < s => v.push(FieldViolation::new(
                f("end_date"),
                "must not be before start_date",
            )),
            _ => {}
        }
    }
}
