//! Table tests of unit-head tenures and the audits they are owed, at every boundary of DESIGN §6a.

use time::macros::date;

use super::*;

fn post(unit: &str, head: bool, start: Date, end: Option<Date>) -> Post {
    Post {
        unit_name: format!("单位{unit}"),
        unit_credit_code: unit.into(),
        unit_head: head,
        start,
        end,
    }
}

fn engagement(departure: bool, unit: Option<&str>, start: Date, end: Date) -> Engagement {
    Engagement {
        name: format!("e-{start}-{end}"),
        departure,
        unit_credit_code: unit.map(str::to_string),
        period_start: start,
        period_end: end,
    }
}

fn flags(posts: &[Post], engagements: &[Engagement], as_of: Date) -> Vec<Vec<FlagKind>> {
    assess(&tenures(posts), engagements, as_of, &RuleParams::default())
        .into_iter()
        .map(|a| a.flags)
        .collect()
}

#[test]
fn consecutive_head_posts_in_one_unit_are_one_tenure() {
    let posts = [
        post(
            "A",
            true,
            date!(2018 - 01 - 01),
            Some(date!(2020 - 12 - 31)),
        ),
        // The next day, same unit: the same tenure (a new title, say).
        post(
            "A",
            true,
            date!(2021 - 01 - 01),
            Some(date!(2022 - 06 - 30)),
        ),
        // Not the head: no tenure.
        post("B", false, date!(2022 - 07 - 01), None),
        // The same unit again after a gap: a new tenure.
        post("A", true, date!(2023 - 01 - 01), None),
        post(
            "C",
            true,
            date!(2023 - 01 - 01),
            Some(date!(2024 - 01 - 01)),
        ),
    ];
    let t = tenures(&posts);
    let spans: Vec<(&str, Date, Option<Date>)> = t
        .iter()
        .map(|t| (t.unit_credit_code.as_str(), t.start, t.end))
        .collect();
    assert_eq!(
        spans,
        [
            ("A", date!(2018 - 01 - 01), Some(date!(2022 - 06 - 30))),
            ("A", date!(2023 - 01 - 01), None),
            ("C", date!(2023 - 01 - 01), Some(date!(2024 - 01 - 01))),
        ]
    );
    assert!(t[1].is_current(date!(2030 - 01 - 01)));
    // A planned end is current until that day has passed.
    assert!(t[2].is_current(date!(2024 - 01 - 01)));
    assert!(!t[2].is_current(date!(2024 - 01 - 02)));
}

#[test]
fn departure_audit_is_missing_six_months_after_the_tenure_ends() {
    let ended = [post(
        "A",
        true,
        date!(2020 - 01 - 01),
        Some(date!(2025 - 03 - 15)),
    )];
    use FlagKind::DepartureAuditMissing as M;
    // end + 6 months = 2025-09-15: flagged only after that day.
    for (as_of, expect) in [
        (date!(2025 - 09 - 15), vec![]),
        (date!(2025 - 09 - 16), vec![M]),
    ] {
        assert_eq!(flags(&ended, &[], as_of), [expect], "{as_of}");
    }
    let as_of = date!(2026 - 01 - 01);
    for (e, expect, why) in [
        (
            engagement(
                true,
                Some("A"),
                date!(2020 - 01 - 01),
                date!(2025 - 03 - 01),
            ),
            vec![],
            "a departure audit reaching the last month",
        ),
        (
            engagement(
                true,
                Some("A"),
                date!(2020 - 01 - 01),
                date!(2025 - 02 - 28),
            ),
            vec![M],
            "one ending the month before",
        ),
        (
            engagement(
                false,
                Some("A"),
                date!(2020 - 01 - 01),
                date!(2025 - 03 - 15),
            ),
            vec![M],
            "an in-office audit is not a departure audit",
        ),
        (
            engagement(
                true,
                Some("B"),
                date!(2020 - 01 - 01),
                date!(2025 - 03 - 15),
            ),
            vec![M],
            "another unit's",
        ),
        (
            engagement(true, None, date!(2024 - 01 - 01), date!(2025 - 03 - 15)),
            vec![],
            "no unit named: matched by overlapping period",
        ),
        (
            engagement(true, None, date!(2025 - 04 - 01), date!(2025 - 12 - 31)),
            vec![M],
            "no unit named and after the tenure",
        ),
    ] {
        assert_eq!(flags(&ended, &[e], as_of), [expect], "{why}");
    }
}

#[test]
fn term_audit_is_due_after_thirty_six_months_without_a_recent_audit() {
    let current = [post("A", true, date!(2022 - 03 - 31), None)];
    use FlagKind::TermAuditDue as T;
    // start + 36 months = 2025-03-31: due from that day.
    for (as_of, expect) in [
        (date!(2025 - 03 - 30), vec![]),
        (date!(2025 - 03 - 31), vec![T]),
    ] {
        assert_eq!(flags(&current, &[], as_of), [expect], "{as_of}");
    }
    let as_of = date!(2026 - 06 - 15);
    // as_of - 36 months = 2023-06-15.
    for (e, expect, why) in [
        (
            engagement(
                false,
                Some("A"),
                date!(2022 - 03 - 31),
                date!(2023 - 06 - 15),
            ),
            vec![],
            "an in-office audit ending exactly 36 months back",
        ),
        (
            engagement(
                false,
                Some("A"),
                date!(2022 - 03 - 31),
                date!(2023 - 06 - 14),
            ),
            vec![T],
            "one ending the day before",
        ),
        (
            engagement(
                true,
                Some("A"),
                date!(2022 - 03 - 31),
                date!(2024 - 01 - 01),
            ),
            vec![],
            "a departure audit counts too",
        ),
    ] {
        assert_eq!(flags(&current, &[e], as_of), [expect], "{why}");
    }
    // A planned end in the future keeps the tenure current.
    let planned = [post(
        "A",
        true,
        date!(2022 - 03 - 31),
        Some(date!(2026 - 08 - 01)),
    )];
    assert_eq!(flags(&planned, &[], as_of), [vec![T]]);
}

#[test]
fn a_planned_departure_enters_the_horizon_ninety_days_ahead() {
    let as_of = date!(2026 - 01 - 01);
    let p = RuleParams::default();
    for (end, expect) in [
        (date!(2026 - 04 - 01), true), // as_of + 90 days
        (date!(2026 - 04 - 02), false),
        (date!(2026 - 01 - 01), true),
        (date!(2025 - 12 - 31), false), // already ended
    ] {
        let t = tenures(&[post("A", true, date!(2025 - 01 - 01), Some(end))]);
        assert_eq!(
            assess(&t, &[], as_of, &p)[0].planned_departure,
            expect,
            "{end}"
        );
    }
}

#[test]
fn months_back_clamp_to_the_month_end() {
    assert_eq!(sub_months(date!(2026 - 05 - 31), 3), date!(2026 - 02 - 28));
    assert_eq!(sub_months(date!(2027 - 02 - 28), 36), date!(2024 - 02 - 28));
    assert_eq!(sub_months(date!(2026 - 01 - 15), 1), date!(2025 - 12 - 15));
}
