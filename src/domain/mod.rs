//! Domain rules: identifiers, divisions, the access-log chain, record validation, the rules engine and the working-day calendar (whose data files are the only I/O here).

pub mod cadre;
pub mod calendar;
pub mod chain;
pub mod division;
pub mod filter;
pub mod ids;
pub mod records;
pub mod rules;

/// Parses an ISO date `YYYY-MM-DD` (the only date form on the wire).
pub fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if s.len() != 10 {
        return None;
    }
    time::Date::parse(s, &fmt).ok()
}
