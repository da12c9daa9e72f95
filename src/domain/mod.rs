//! Domain rules: identifiers, divisions, the access-log chain, record validation, the rules engine and the working-day calendar (whose data files are the only I/O here).

pub mod agency;
pub mod cadre;
pub mod calendar;
pub mod chain;
pub mod clock;
pub mod division;
pub mod filter;
pub mod holidays;
pub mod ids;
pub mod readiness;
pub mod records;
pub mod rules;
pub mod states;
pub mod unit_heads;

use crate::error::FieldViolation;

/// The first and last dates any request may carry (DESIGN §4): outside them a
/// date is a typo (`0024`, `2925`) that would sort and compute periods wrongly.
pub const MIN_DATE: &str = "1900-01-01";
pub const MAX_DATE: &str = "2099-12-31";

/// What a text field may contain besides printable characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// A single-line label (name, title, unit, number): no control character at all.
    Line,
    /// Long text (notes, reasons, summaries): line breaks and tabs allowed.
    Long,
}

/// The request fields that are long free text, by full protobuf name
/// (`package.Message.field`): only these may keep `\n` and `\t`; every other
/// string field of every request is one line (DESIGN §4). Written once here
/// for the wire's generic check (`grpc::text`); a unit test there fails when
/// a name no longer exists in the descriptors.
pub const LONG_TEXT_FIELDS: &[&str] = &[
    "cadrex.v1.Clue.conclusion",
    "cadrex.v1.PersonalMattersCheck.handling",
    "cadrex.v1.AuditFinding.characterisation",
    "cadrex.v1.Petition.summary",
    "cadrex.v1.CreateOpinionRequestRequest.note",
    "cadrex.v1.WithdrawOpinionRequestRequest.reason",
    "cadrex.v1.RetractRecordRequest.reason",
    "cadrex.v1.ReplyOpinionRequest.text",
    "cadrex.v1.ReplyOpinionRequest.correction_reason",
    "cadrex.v1.ReplyOpinionRequest.deviation_reason",
    "cadrex.v1.InspectionFinding.summary",
    "cadrex.v1.ArchiveReview.note",
];

/// The kind of text the request field `full_name` holds (see [`LONG_TEXT_FIELDS`]).
pub fn text_kind(full_name: &str) -> Text {
    if LONG_TEXT_FIELDS.contains(&full_name) {
        Text::Long
    } else {
        Text::Line
    }
}

/// Bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069): they make text display in another order than it is stored,
/// so a name or a reason could read differently to its reader than to the log.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Why `v` is not acceptable text of kind `kind`, if it is not: control
/// characters (NUL above all, which PostgreSQL cannot store while SQLite can)
/// and bidirectional overrides are refused everywhere; long text keeps `\n`
/// and `\t`.
pub fn text_fault(v: &str, kind: Text) -> Option<&'static str> {
    let allowed = |c: char| kind == Text::Long && (c == '\n' || c == '\t');
    if v.chars().any(|c| c.is_control() && !allowed(c)) {
        return Some(match kind {
            Text::Line => "no control characters (one line)",
            Text::Long => "no control characters other than line breaks and tabs",
        });
    }
    if v.chars().any(is_bidi_control) {
        return Some("no bidirectional override characters (U+202A–U+202E, U+2066–U+2069)");
    }
    None
}

/// The one text check: present when `required` (not blank), at most `max`
/// characters, and no character [`text_fault`] refuses.
pub fn check_text(
    field: &str,
    v: &str,
    max: usize,
    required: bool,
    kind: Text,
) -> Option<FieldViolation> {
    if required && v.trim().is_empty() {
        return Some(FieldViolation::new(
            field,
            format!("required, at most {max} characters"),
        ));
    }
    if v.chars().count() > max {
        return Some(FieldViolation::new(
            field,
            format!("at most {max} characters"),
        ));
    }
    text_fault(v, kind).map(|why| FieldViolation::new(field, why))
}

/// Checks a free-text field (notes, reasons, reply text): [`check_text`] for
/// long text.
pub fn free_text(field: &str, v: &str, max: usize, required: bool) -> Option<FieldViolation> {
    check_text(field, v, max, required, Text::Long)
}

/// Checks a single-line label (names, titles, numbers): [`check_text`] for one line.
pub fn label(field: &str, v: &str, max: usize, required: bool) -> Option<FieldViolation> {
    check_text(field, v, max, required, Text::Line)
}

/// The one date check: an ISO date `YYYY-MM-DD` (the only date form on the
/// wire) between [`MIN_DATE`] and [`MAX_DATE`]; `None` for anything else.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if s.len() != 10 || !(MIN_DATE..=MAX_DATE).contains(&s) {
        return None;
    }
    time::Date::parse(s, &fmt).ok()
}

/// Description of a date field that [`parse_date`] refused.
pub const DATE_RULE: &str = "must be a date YYYY-MM-DD between 1900-01-01 and 2099-12-31";

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn text_refuses_controls_and_bidi_overrides() {
        assert!(free_text("f", "一\t二\n三", 10, true).is_none());
        assert!(
            label("f", "一\t二", 10, true).is_some(),
            "labels are one line"
        );
        for bad in [
            "a\u{1b}[2J",
            "a\r",
            "a\u{85}",
            "a\u{202E}b",
            "\u{2066}x",
            "x\u{2069}",
        ] {
            assert!(free_text("f", bad, 10, false).is_some(), "{bad:?}");
            assert!(label("f", bad, 10, false).is_some(), "{bad:?}");
        }
        assert!(
            label("f", "张三\u{200D}", 10, true).is_none(),
            "joiners are text"
        );
    }

    #[test]
    fn dates_lie_in_the_two_centuries() {
        assert!(parse_date("1900-01-01").is_some());
        assert!(parse_date("2099-12-31").is_some());
        assert!(parse_date("1899-12-31").is_none());
        assert!(parse_date("2100-01-01").is_none());
        assert!(parse_date("0024-05-01").is_none());
        assert!(parse_date("2024-02-30").is_none());
        assert!(parse_date("2024-2-3").is_none());
    }
}
