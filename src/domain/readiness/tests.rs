//! Table tests of the four musts at every boundary: a missing, satisfied and blocking state for each, a stale reply, a concealment inside and just past its bar.

use time::macros::date;

use super::*;

fn review(name: &str, d: Date, discrepancies: bool, written: i64) -> Review {
    Review {
        name: name.into(),
        date: d,
        discrepancies,
        written,
    }
}

fn check(name: &str, year: i32, d: Date, concealed: bool) -> Check {
    Check {
        name: name.into(),
        report_year: year,
        check_date: d,
        concealed,
    }
}

fn state_of(e: &Evidence, item: Item, as_of: Date) -> (State, Vec<String>) {
    let j = judge(e, as_of, &RuleParams::default())
        .into_iter()
        .find(|j| j.item == item)
        .unwrap();
    assert!(!j.reason.is_empty());
    (j.state, j.cited)
}

const AS_OF: Date = date!(2026 - 06 - 15);

#[test]
fn the_four_items_come_in_order() {
    let items: Vec<Item> = judge(&Evidence::default(), AS_OF, &RuleParams::default())
        .into_iter()
        .map(|j| j.item)
        .collect();
    assert_eq!(items, Item::ALL);
}

#[test]
fn archive_review_the_latest_decides() {
    use State::*;
    let e = |reviews| Evidence {
        reviews,
        ..Evidence::default()
    };
    assert_eq!(state_of(&e(vec![]), Item::ArchiveReview, AS_OF).0, Missing);
    assert_eq!(
        state_of(
            &e(vec![review("r1", AS_OF, false, 1)]),
            Item::ArchiveReview,
            AS_OF
        ),
        (Satisfied, vec!["r1".into()])
    );
    assert_eq!(
        state_of(
            &e(vec![review("r1", AS_OF, true, 1)]),
            Item::ArchiveReview,
            AS_OF
        ),
        (Blocking, vec!["r1".into()])
    );
    // Discrepancies cleared by a later review.
    let cleared = e(vec![
        review("r1", date!(2026 - 05 - 01), true, 1),
        review("r2", date!(2026 - 06 - 01), false, 2),
    ]);
    assert_eq!(state_of(&cleared, Item::ArchiveReview, AS_OF).0, Satisfied);
    // Written last decides, whatever date a review gives: one dated ahead
    // (a typo, or on purpose) does not outrank the discrepancies after it.
    let ahead = e(vec![
        review("r1", date!(2099 - 01 - 01), false, 1),
        review("r2", date!(2026 - 06 - 01), true, 2),
    ]);
    assert_eq!(
        state_of(&ahead, Item::ArchiveReview, AS_OF),
        (Blocking, vec!["r2".into()])
    );
}

#[test]
fn personal_matters_needs_a_recent_check_and_no_running_concealment() {
    use State::*;
    let e = |checks| Evidence {
        checks,
        ..Evidence::default()
    };
    let old = check("c0", 2024, date!(2025 - 03 - 01), false);
    assert_eq!(
        state_of(&e(vec![old.clone()]), Item::PersonalMatters, AS_OF).0,
        Missing
    );
    let last_year = check("c1", 2025, date!(2026 - 03 - 01), false);
    assert_eq!(
        state_of(
            &e(vec![old, last_year.clone()]),
            Item::PersonalMatters,
            AS_OF
        ),
        (Satisfied, vec!["c1".into()])
    );
    // 瞒报 bars 12 months from the check date: blocking on its last day,
    // not the day the bar ends.
    let concealed = check("c2", 2024, date!(2025 - 06 - 15), true);
    let both = e(vec![last_year.clone(), concealed.clone()]);
    assert_eq!(
        state_of(&both, Item::PersonalMatters, date!(2026 - 06 - 14)),
        (Blocking, vec!["c2".into()])
    );
    assert_eq!(
        state_of(&both, Item::PersonalMatters, date!(2026 - 06 - 15)).0,
        Satisfied
    );
}

#[test]
fn the_discipline_opinion_is_the_reply_in_force() {
    use State::*;
    let e = |verdict, stale| Evidence {
        reply: Some(Reply {
            name: "p1".into(),
            verdict,
            stale,
        }),
        ..Evidence::default()
    };
    assert_eq!(
        state_of(&Evidence::default(), Item::DisciplineOpinion, AS_OF).0,
        Missing
    );
    for (verdict, stale, expect) in [
        (Verdict::NoIssue, false, Satisfied),
        (Verdict::IssueNotBlocking, false, Satisfied),
        (Verdict::Defer, false, Blocking),
        (Verdict::NotAgree, false, Blocking),
        (Verdict::NoIssue, true, Missing),
        (Verdict::NotAgree, true, Missing),
    ] {
        assert_eq!(
            state_of(&e(verdict, stale), Item::DisciplineOpinion, AS_OF),
            (expect, vec!["p1".into()]),
            "{verdict:?} stale={stale}"
        );
    }
}

#[test]
fn every_specific_petition_must_be_closed_or_rejected() {
    use State::*;
    let e = |done: &[bool]| Evidence {
        specific_petitions: done
            .iter()
            .enumerate()
            .map(|(i, d)| Petition {
                name: format!("t{i}"),
                done: *d,
            })
            .collect(),
        ..Evidence::default()
    };
    assert_eq!(
        state_of(&e(&[]), Item::SpecificPetitions, AS_OF).0,
        Satisfied
    );
    assert_eq!(
        state_of(&e(&[true, true]), Item::SpecificPetitions, AS_OF).0,
        Satisfied
    );
    assert_eq!(
        state_of(&e(&[true, false]), Item::SpecificPetitions, AS_OF),
        (Blocking, vec!["t1".into()])
    );
}
