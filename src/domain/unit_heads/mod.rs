//! Unit heads (一把手): tenures from a cadre's posts, and the departure and term audits they are owed (DESIGN §6a).

use time::{Date, Duration, Month};

use super::rules::RuleParams;
use super::rules::periods::add_months;

/// One post as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Post {
    pub unit_name: String,
    pub unit_credit_code: String,
    pub unit_head: bool,
    pub start: Date,
    /// The last day in the post; may lie in the future (a planned departure).
    pub end: Option<Date>,
}

/// Consecutive unit-head posts in one unit (by 统一社会信用代码): one tenure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenure {
    pub unit_name: String,
    pub unit_credit_code: String,
    pub start: Date,
    /// The last day of its last post; `None` while open-ended.
    pub end: Option<Date>,
}

impl Tenure {
    /// A post is current until its end date has passed.
    pub fn is_current(&self, as_of: Date) -> bool {
        self.end.is_none_or(|e| e >= as_of)
    }
}

/// An economic-responsibility audit engagement as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engagement {
    /// The record's resource name.
    pub name: String,
    /// 离任 (DEPARTURE) rather than 任中 (IN_OFFICE).
    pub departure: bool,
    /// The audited unit, when the engagement names it.
    pub unit_credit_code: Option<String>,
    pub period_start: Date,
    pub period_end: Date,
}

impl Engagement {
    /// Whether it audited the unit of `t`: by the unit it names, or, naming
    /// none, by its period overlapping the tenure.
    fn covers_unit_of(&self, t: &Tenure, as_of: Date) -> bool {
        match &self.unit_credit_code {
            Some(unit) => *unit == t.unit_credit_code,
            None => {
                self.period_start <= t.end.unwrap_or(as_of).max(t.start)
                    && self.period_end >= t.start
            }
        }
    }
}

/// Why a tenure is flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagKind {
    /// 离任必审: ended more than the grace period ago with no departure audit reaching its last month.
    DepartureAuditMissing,
    /// 任职满三年必审: current for the term or longer, with no recent in-office or departure audit.
    TermAuditDue,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::DepartureAuditMissing => "DEPARTURE_AUDIT_MISSING",
            FlagKind::TermAuditDue => "TERM_AUDIT_DUE",
        }
    }
}

/// The flags of one tenure, and the engagements that already cover part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub tenure: Tenure,
    pub flags: Vec<FlagKind>,
    /// Names of the engagements of its unit whose period overlaps the tenure.
    pub covering: Vec<String>,
    /// Its last post ends on a planned date within the worklist's horizon.
    pub planned_departure: bool,
}

/// `d` minus `n` calendar months, the day clamped to the end of the month
/// (the mirror of [`add_months`]). Saturates at [`Date::MIN`].
fn sub_months(d: Date, n: u32) -> Date {
    let index = i64::from(d.year()) * 12 + i64::from(u8::from(d.month()) - 1) - i64::from(n);
    let Ok(year) = i32::try_from(index.div_euclid(12)) else {
        return Date::MIN;
    };
    let month = Month::try_from(index.rem_euclid(12) as u8 + 1).unwrap_or(Month::January);
    let day = d.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MIN)
}

/// The unit-head tenures of a cadre's posts, oldest first: unit-head posts
/// of one unit that follow each other without a gap of more than a day are
/// one tenure.
pub fn tenures(posts: &[Post]) -> Vec<Tenure> {
    let mut heads: Vec<&Post> = posts.iter().filter(|p| p.unit_head).collect();
    heads.sort_by_key(|p| (p.start, p.unit_credit_code.clone()));
    let mut out: Vec<Tenure> = Vec::new();
    for p in heads {
        if let Some(t) = out.last_mut()
            && t.unit_credit_code == p.unit_credit_code
            && t.end.is_none_or(|e| p.start <= e + Duration::days(1))
        {
            t.end = match (t.end, p.end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            continue;
        }
        out.push(Tenure {
            unit_name: p.unit_name.clone(),
            unit_credit_code: p.unit_credit_code.clone(),
            start: p.start,
            end: p.end,
        });
    }
    out
}

/// Each tenure with the audits it is owed at `as_of` (DESIGN §6a).
pub fn assess(
    tenures: &[Tenure],
    engagements: &[Engagement],
    as_of: Date,
    p: &RuleParams,
) -> Vec<Assessment> {
    tenures
        .iter()
        .map(|t| {
            let of_unit: Vec<&Engagement> = engagements
                .iter()
                .filter(|e| e.covers_unit_of(t, as_of))
                .collect();
            let mut flags = Vec::new();
            match t.end {
                Some(end) if end < as_of => {
                    // The audit must reach the tenure's last month.
                    let last_month = end.replace_day(1).unwrap_or(end);
                    let audited = of_unit
                        .iter()
                        .any(|e| e.departure && e.period_end >= last_month);
                    if add_months(end, p.departure_audit_grace_months) < as_of && !audited {
                        flags.push(FlagKind::DepartureAuditMissing);
                    }
                }
                _ => {
                    let since = sub_months(as_of, p.term_audit_months);
                    let recent = of_unit.iter().any(|e| e.period_end >= since);
                    if add_months(t.start, p.term_audit_months) <= as_of && !recent {
                        flags.push(FlagKind::TermAuditDue);
                    }
                }
            }
            let horizon = as_of + Duration::days(i64::from(p.planned_departure_days));
            Assessment {
                tenure: t.clone(),
                flags,
                covering: of_unit
                    .iter()
                    .filter(|e| {
                        e.period_start <= t.end.unwrap_or(as_of).max(t.start)
                            && e.period_end >= t.start
                    })
                    .map(|e| e.name.clone())
                    .collect(),
                planned_departure: t.end.is_some_and(|e| e >= as_of && e <= horizon),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
