//! Calendar-month periods and the bars they set: when a bar ends, and the reason it gives at the as-of date.

use time::{Date, Month};

use super::{BarredUntil, Reason, RuleParams, Verdict};

/// `d` plus `n` calendar months, the day clamped to the end of the target month
/// (2024-02-29 + 12 = 2025-02-28; 2025-08-31 + 6 = 2026-02-28). Saturates at [`Date::MAX`].
pub fn add_months(d: Date, n: u32) -> Date {
    let index = i64::from(d.year()) * 12 + i64::from(u8::from(d.month()) - 1) + i64::from(n);
    let Ok(year) = i32::try_from(index.div_euclid(12)) else {
        return Date::MAX;
    };
    // rem_euclid(12) is in 0..12, so the month number is in 1..=12.
    let month = Month::try_from(index.rem_euclid(12) as u8 + 1).unwrap_or(Month::December);
    let day = d.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).unwrap_or(Date::MAX)
}

/// How long a bar lasts.
#[derive(Clone, Copy)]
pub(super) enum Period {
    Months(u32),
    Permanent,
}

/// One period rule applied to one record.
pub(super) struct Bar {
    pub(super) rule: &'static str,
    /// zh-CN name of the record, with its date.
    pub(super) label: String,
    /// Short English gloss.
    pub(super) en: &'static str,
    pub(super) start: Date,
    pub(super) period: Period,
    /// Appended to the description of a bar that has not ended.
    pub(super) note: Note,
}

#[derive(Default)]
pub(super) struct Note {
    pub(super) zh: String,
    pub(super) en: String,
}

/// The reason `bar` gives at `as_of` (the cases are set out on [`draft`](super::draft)).
pub(super) fn bar_reason(bar: Bar, name: &str, as_of: Date, p: &RuleParams) -> Reason {
    let Bar {
        rule,
        label,
        en,
        start,
        period,
        note,
    } = bar;
    let Note {
        zh: note_zh,
        en: note_en,
    } = note;
    let not_started = start > as_of;
    let (verdict, barred_until, description) = match period {
        Period::Permanent => {
            let verdict = if not_started && !p.bar_not_yet_started_blocks {
                Verdict::IssueNotBlocking
            } else {
                Verdict::NotAgree
            };
            let when = if not_started {
                format!("（自{start}起，晚于出具意见日期{as_of}）")
            } else {
                String::new()
            };
            (
                verdict,
                BarredUntil::Permanent,
                format!("{label}：不得提拔或者进一步使用，无期限{when} / {en}: permanent bar"),
            )
        }
        // A zero-month period means the operator switched the bar off: a matter, no bar.
        Period::Months(0) => (
            Verdict::IssueNotBlocking,
            BarredUntil::None,
            format!("{label}：未设影响期 / {en}: no period configured"),
        ),
        Period::Months(n) => {
            let end = add_months(start, n);
            if end <= as_of {
                (
                    Verdict::IssueNotBlocking,
                    BarredUntil::Date(end),
                    format!(
                        "{label}：影响期{n}个月，已于{end}届满，仍属有问题记录 \
                         / {en}: {n}-month bar ended {end}"
                    ),
                )
            } else if not_started {
                let verdict = if p.bar_not_yet_started_blocks {
                    Verdict::NotAgree
                } else {
                    Verdict::IssueNotBlocking
                };
                (
                    verdict,
                    BarredUntil::Date(end),
                    format!(
                        "{label}：影响期{n}个月，自{start}起算（晚于出具意见日期{as_of}），\
                         {end}起不再影响{note_zh} / {en}: {n}-month bar from {start} \
                         (after the as-of date), free from {end}{note_en}"
                    ),
                )
            } else {
                (
                    Verdict::NotAgree,
                    BarredUntil::Date(end),
                    format!(
                        "{label}：影响期{n}个月，{end}前不得提拔或者进一步使用{note_zh} \
                         / {en}: {n}-month bar, free from {end}{note_en}"
                    ),
                )
            }
        }
    };
    Reason {
        rule,
        verdict,
        description,
        records: vec![name.to_owned()],
        barred_until,
    }
}
