//! Domain rules: identifiers, divisions, the access-log chain, record validation, the rules engine and the working-day calendar (whose data files are the only I/O here).

pub mod cadre;
pub mod calendar;
pub mod chain;
pub mod division;
pub mod filter;
pub mod ids;
pub mod records;
pub mod rules;

use crate::error::FieldViolation;

/// Checks a free-text field (notes, reasons, reply text): present when
/// `required`, at most `max` characters, and no NUL. PostgreSQL cannot store
/// U+0000 in text while SQLite can, so refusing it on input keeps both
/// backends' answers the same. Line breaks are fine here; single-line labels
/// (names, titles) refuse every control character instead.
pub fn free_text(field: &str, v: &str, max: usize, required: bool) -> Option<FieldViolation> {
    let missing = required && v.trim().is_empty();
    if !missing && v.chars().count() <= max && !v.contains('\0') {
        return None;
    }
    let why = if required {
        format!("required, at most {max} characters, no NUL")
    } else {
        format!("at most {max} characters, no NUL")
    };
    Some(FieldViolation::new(field, why))
}

/// Parses an ISO date `YYYY-MM-DD` (the only date form on the wire).
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if s.len() != 10 {
        return None;
    }
    time::Date::parse(s, &fmt).ok()
}

#[cfg(test)]
mod tests {
    use super::free_text;

    #[test]
    fn free_text_limits_length_presence_and_nul() {
        assert!(
            free_text("f", "经查属实\n二行", 7, true).is_none(),
            "line breaks are fine"
        );
        assert!(free_text("f", "", 6, false).is_none());
        assert!(
            free_text("f", "一二三四五六七", 6, false).is_some(),
            "7 characters"
        );
        assert!(free_text("f", "  ", 6, true).is_some(), "blank is missing");
        let v = free_text("reason", "数据\0错误", 500, true).expect("NUL refused");
        assert_eq!(v.field, "reason");
    }
}
