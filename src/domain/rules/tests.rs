//! Tests of the rules engine: every rule, its periods and its boundaries.

use super::*;
use time::macros::date;

use BarredUntil as B;
use Verdict::*;

fn party(name: &str, kind: PartyType, probation_years: u32, decision: Date) -> Fact {
    Fact::Sanction {
        name: name.into(),
        active: true,
        track: Track::Party,
        party: Some(kind),
        state: None,
        probation_years,
        decision_date: decision,
        // Deliberately later than the decision, so a rule reading the wrong date shows.
        effective_date: add_months(decision, 1),
    }
}

fn state(name: &str, kind: StateType, decision: Date, effective: Date) -> Fact {
    Fact::Sanction {
        name: name.into(),
        active: true,
        track: Track::State,
        party: None,
        state: Some(kind),
        probation_years: 0,
        decision_date: decision,
        effective_date: effective,
    }
}

fn admon(name: &str, kind: AdmonishmentKind, date: Date) -> Fact {
    Fact::Admonishment {
        name: name.into(),
        active: true,
        kind,
        date,
    }
}

fn org(name: &str, kind: OrgHandlingKind, date: Date) -> Fact {
    Fact::OrgHandling {
        name: name.into(),
        active: true,
        kind,
        date,
    }
}

fn pm(name: &str, result: PmResult, check_date: Date) -> Fact {
    Fact::PersonalMatters {
        name: name.into(),
        active: true,
        result,
        check_date,
    }
}

fn clue(name: &str, disposal: Disposal, open: bool) -> Fact {
    Fact::Clue {
        name: name.into(),
        active: true,
        disposal,
        open,
    }
}

fn petition(name: &str, specific: bool, closed_or_rejected: bool) -> Fact {
    Fact::Petition {
        name: name.into(),
        active: true,
        specific,
        closed_or_rejected,
    }
}

fn finding(name: &str, transferred: bool, done: bool, deadline: Option<Date>) -> Fact {
    Fact::AuditFinding {
        name: name.into(),
        active: true,
        transferred_to_discipline: transferred,
        rectification_done: done,
        deadline,
    }
}

fn inspection(name: &str, transferred: bool, done: bool, deadline: Option<Date>) -> Fact {
    Fact::InspectionFinding {
        name: name.into(),
        active: true,
        transferred_to_discipline: transferred,
        rectification_done: done,
        deadline,
    }
}

fn archive(name: &str) -> Fact {
    Fact::ArchiveReview {
        name: name.into(),
        active: true,
    }
}

fn retracted(mut f: Fact) -> Fact {
    match &mut f {
        Fact::Sanction { active, .. }
        | Fact::Admonishment { active, .. }
        | Fact::Clue { active, .. }
        | Fact::OrgHandling { active, .. }
        | Fact::PersonalMatters { active, .. }
        | Fact::Evaluation { active, .. }
        | Fact::AuditEngagement { active, .. }
        | Fact::AuditFinding { active, .. }
        | Fact::Petition { active, .. }
        | Fact::InspectionFinding { active, .. }
        | Fact::ArchiveReview { active, .. } => *active = false,
    }
    f
}

fn evaluation(name: &str) -> Fact {
    Fact::Evaluation {
        name: name.into(),
        active: true,
    }
}

fn engagement(name: &str) -> Fact {
    Fact::AuditEngagement {
        name: name.into(),
        active: true,
    }
}

struct Case {
    title: &'static str,
    facts: Vec<Fact>,
    as_of: Date,
    verdict: Verdict,
    barred_until: BarredUntil,
    /// (rule, verdict, cited record) in the order the draft must list them.
    reasons: Vec<(&'static str, Verdict, &'static str)>,
}

use rule_id::*;

fn cases() -> Vec<Case> {
    use AdmonishmentKind as A;
    use OrgHandlingKind as O;
    use PartyType as P;
    use StateType as S;
    vec![
        // --- party sanctions: from the decision date ---
        Case {
            title: "party warning: decision day is barred",
            facts: vec![party("s1", P::Warning, 0, date!(2025 - 03 - 10))],
            as_of: date!(2025 - 03 - 10),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 03 - 10)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "party warning: last barred day",
            facts: vec![party("s1", P::Warning, 0, date!(2025 - 03 - 10))],
            as_of: date!(2026 - 03 - 09),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 03 - 10)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "party warning: first free day, still a matter",
            facts: vec![party("s1", P::Warning, 0, date!(2025 - 03 - 10))],
            as_of: date!(2026 - 03 - 10),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
        },
        Case {
            title: "party serious warning: 2024-08-31 + 18 clamps to 2026-02-28, last day",
            facts: vec![party("s1", P::SeriousWarning, 0, date!(2024 - 08 - 31))],
            as_of: date!(2026 - 02 - 27),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 02 - 28)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "party serious warning: first free day 2026-02-28",
            facts: vec![party("s1", P::SeriousWarning, 0, date!(2024 - 08 - 31))],
            as_of: date!(2026 - 02 - 28),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
        },
        Case {
            title: "removal from party post: leap day + 24 = 2026-02-28, last day",
            facts: vec![party(
                "s1",
                P::RemovalFromPartyPost,
                0,
                date!(2024 - 02 - 29),
            )],
            as_of: date!(2026 - 02 - 27),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 02 - 28)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "removal from party post: first free day",
            facts: vec![party(
                "s1",
                P::RemovalFromPartyPost,
                0,
                date!(2024 - 02 - 29),
            )],
            as_of: date!(2026 - 02 - 28),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
        },
        Case {
            title: "probation 1 year = 36 months: last barred day",
            facts: vec![party("s1", P::Probation, 1, date!(2023 - 05 - 15))],
            as_of: date!(2026 - 05 - 14),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 05 - 15)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "probation 1 year: first free day",
            facts: vec![party("s1", P::Probation, 1, date!(2023 - 05 - 15))],
            as_of: date!(2026 - 05 - 15),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
        },
        Case {
            title: "probation 2 years = 48 months: still barred when 1 year would be free",
            facts: vec![party("s1", P::Probation, 2, date!(2023 - 05 - 15))],
            as_of: date!(2026 - 05 - 15),
            verdict: NotAgree,
            barred_until: B::Date(date!(2027 - 05 - 15)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "probation 2 years: last barred day",
            facts: vec![party("s1", P::Probation, 2, date!(2023 - 05 - 15))],
            as_of: date!(2027 - 05 - 14),
            verdict: NotAgree,
            barred_until: B::Date(date!(2027 - 05 - 15)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "probation 2 years: first free day",
            facts: vec![party("s1", P::Probation, 2, date!(2023 - 05 - 15))],
            as_of: date!(2027 - 05 - 15),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
        },
        Case {
            title: "party expulsion: permanent",
            facts: vec![party("s1", P::Expulsion, 0, date!(2001 - 01 - 01))],
            as_of: date!(2040 - 01 - 01),
            verdict: NotAgree,
            barred_until: B::Permanent,
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "party period runs from the decision date, not the later effective date",
            facts: vec![Fact::Sanction {
                name: "s1".into(),
                active: true,
                track: Track::Party,
                party: Some(P::Warning),
                state: None,
                probation_years: 0,
                decision_date: date!(2025 - 01 - 10),
                effective_date: date!(2025 - 02 - 10),
            }],
            as_of: date!(2026 - 01 - 10),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1")],
        },
        // --- state sanctions: from the effective date ---
        Case {
            title: "state warning: last barred day counted from the effective date",
            facts: vec![state(
                "s2",
                S::Warning,
                date!(2025 - 12 - 20),
                date!(2026 - 01 - 05),
            )],
            as_of: date!(2026 - 07 - 04),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 07 - 05)),
            reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
        },
        Case {
            title: "state warning: first free day (decision + 6 would be 2026-06-20)",
            facts: vec![state(
                "s2",
                S::Warning,
                date!(2025 - 12 - 20),
                date!(2026 - 01 - 05),
            )],
            as_of: date!(2026 - 07 - 05),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(STATE_SANCTION_PERIOD, IssueNotBlocking, "s2")],
        },
        Case {
            title: "state demerit: 12 months from 2025-08-31, last day",
            facts: vec![state(
                "s2",
                S::Demerit,
                date!(2025 - 08 - 31),
                date!(2025 - 08 - 31),
            )],
            as_of: date!(2026 - 08 - 30),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 08 - 31)),
            reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
        },
        Case {
            title: "state major demerit: leap day + 18 = 2025-08-29, first free day",
            facts: vec![state(
                "s2",
                S::MajorDemerit,
                date!(2024 - 02 - 29),
                date!(2024 - 02 - 29),
            )],
            as_of: date!(2025 - 08 - 29),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(STATE_SANCTION_PERIOD, IssueNotBlocking, "s2")],
        },
        Case {
            title: "state demotion: leap day + 24 = 2026-02-28, last day",
            facts: vec![state(
                "s2",
                S::Demotion,
                date!(2024 - 02 - 29),
                date!(2024 - 02 - 29),
            )],
            as_of: date!(2026 - 02 - 27),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 02 - 28)),
            reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
        },
        Case {
            title: "state dismissal from post: 24 months, first free day",
            facts: vec![state(
                "s2",
                S::DismissalFromPost,
                date!(2023 - 11 - 30),
                date!(2023 - 11 - 30),
            )],
            as_of: date!(2025 - 11 - 30),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(STATE_SANCTION_PERIOD, IssueNotBlocking, "s2")],
        },
        Case {
            title: "state expulsion from service: permanent",
            facts: vec![state(
                "s2",
                S::ExpulsionFromService,
                date!(2010 - 06 - 01),
                date!(2010 - 06 - 01),
            )],
            as_of: date!(2026 - 06 - 01),
            verdict: NotAgree,
            barred_until: B::Permanent,
            reasons: vec![(STATE_SANCTION_PERIOD, NotAgree, "s2")],
        },
        // --- admonishments ---
        Case {
            title: "admonition: 2025-08-31 + 6 = 2026-02-28, last day",
            facts: vec![admon("a1", A::Admonition, date!(2025 - 08 - 31))],
            as_of: date!(2026 - 02 - 27),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 02 - 28)),
            reasons: vec![(ADMONITION_PERIOD, NotAgree, "a1")],
        },
        Case {
            title: "admonition: first free day",
            facts: vec![admon("a1", A::Admonition, date!(2025 - 08 - 31))],
            as_of: date!(2026 - 02 - 28),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(ADMONITION_PERIOD, IssueNotBlocking, "a1")],
        },
        Case {
            title: "talk reminder, criticism, ordered self-review: matters, no bar",
            facts: vec![
                admon("a1", A::TalkReminder, date!(2026 - 01 - 01)),
                admon("a2", A::Criticism, date!(2026 - 01 - 01)),
                admon("a3", A::OrderedSelfReview, date!(2026 - 01 - 01)),
            ],
            as_of: date!(2026 - 01 - 02),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![
                (MATTER_ON_RECORD, IssueNotBlocking, "a1"),
                (MATTER_ON_RECORD, IssueNotBlocking, "a2"),
                (MATTER_ON_RECORD, IssueNotBlocking, "a3"),
            ],
        },
        // --- organisational handling ---
        Case {
            title: "removal from post: leap day + 24, last day",
            facts: vec![org("o1", O::RemovalFromPost, date!(2024 - 02 - 29))],
            as_of: date!(2026 - 02 - 27),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 02 - 28)),
            reasons: vec![(ORG_HANDLING_PERIOD, NotAgree, "o1")],
        },
        Case {
            title: "ordered resignation: 24 months, first free day",
            facts: vec![org("o1", O::OrderedResignation, date!(2024 - 03 - 31))],
            as_of: date!(2026 - 03 - 31),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(ORG_HANDLING_PERIOD, IssueNotBlocking, "o1")],
        },
        Case {
            title: "ordered resignation: last barred day",
            facts: vec![org("o1", O::OrderedResignation, date!(2024 - 03 - 31))],
            as_of: date!(2026 - 03 - 30),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 03 - 31)),
            reasons: vec![(ORG_HANDLING_PERIOD, NotAgree, "o1")],
        },
        Case {
            title: "demotion in rank: 2025-01-31 + 24, last day",
            facts: vec![org("o1", O::DemotionInRank, date!(2025 - 01 - 31))],
            as_of: date!(2027 - 01 - 30),
            verdict: NotAgree,
            barred_until: B::Date(date!(2027 - 01 - 31)),
            reasons: vec![(ORG_HANDLING_PERIOD, NotAgree, "o1")],
        },
        Case {
            title: "suspension for review and reassignment: matters, no period",
            facts: vec![
                org("o1", O::SuspensionForReview, date!(2026 - 01 - 05)),
                org("o2", O::Reassignment, date!(2026 - 01 - 05)),
            ],
            as_of: date!(2026 - 01 - 06),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![
                (MATTER_ON_RECORD, IssueNotBlocking, "o1"),
                (MATTER_ON_RECORD, IssueNotBlocking, "o2"),
            ],
        },
        // --- personal matters ---
        Case {
            title: "concealed: leap day + 12 = 2025-02-28, last day",
            facts: vec![pm("p1", PmResult::Concealed, date!(2024 - 02 - 29))],
            as_of: date!(2025 - 02 - 27),
            verdict: NotAgree,
            barred_until: B::Date(date!(2025 - 02 - 28)),
            reasons: vec![(CONCEALED_PERSONAL_MATTERS_PERIOD, NotAgree, "p1")],
        },
        Case {
            title: "concealed: first free day",
            facts: vec![pm("p1", PmResult::Concealed, date!(2024 - 02 - 29))],
            as_of: date!(2025 - 02 - 28),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(CONCEALED_PERSONAL_MATTERS_PERIOD, IssueNotBlocking, "p1")],
        },
        Case {
            title: "under-reported is a matter; consistent is not",
            facts: vec![
                pm("p1", PmResult::UnderReported, date!(2025 - 06 - 01)),
                pm("p2", PmResult::Consistent, date!(2025 - 06 - 01)),
            ],
            as_of: date!(2025 - 06 - 02),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "p1")],
        },
        Case {
            title: "consistent check, evaluation and engagement: no matter at all",
            facts: vec![
                pm("p2", PmResult::Consistent, date!(2025 - 06 - 01)),
                evaluation("e1"),
                engagement("g1"),
            ],
            as_of: date!(2025 - 06 - 02),
            verdict: NoIssue,
            barred_until: B::None,
            reasons: vec![],
        },
        // --- clues ---
        Case {
            title: "open clue, registered: defer",
            facts: vec![clue("c1", Disposal::Registered, true)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(OPEN_CLUE, Defer, "c1")],
        },
        Case {
            title: "open clue, talk or inquiry: defer",
            facts: vec![clue("c1", Disposal::TalkOrInquiry, true)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(OPEN_CLUE, Defer, "c1")],
        },
        Case {
            title: "open clue, preliminary check: defer",
            facts: vec![clue("c1", Disposal::PreliminaryCheck, true)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(OPEN_CLUE, Defer, "c1")],
        },
        Case {
            title: "open clue, case opened: defer",
            facts: vec![clue("c1", Disposal::CaseOpened, true)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(OPEN_CLUE, Defer, "c1")],
        },
        Case {
            title: "shelved, concluded and closed clues: matters that do not defer",
            facts: vec![
                clue("c1", Disposal::Shelved, true),
                clue("c2", Disposal::CaseOpened, false),
                clue("c3", Disposal::Closed, true),
            ],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![
                (MATTER_ON_RECORD, IssueNotBlocking, "c1"),
                (MATTER_ON_RECORD, IssueNotBlocking, "c2"),
                (MATTER_ON_RECORD, IssueNotBlocking, "c3"),
            ],
        },
        // --- petitions ---
        Case {
            title: "specific petition not closed: defer",
            facts: vec![petition("t1", true, false)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(UNCLOSED_SPECIFIC_PETITION, Defer, "t1")],
        },
        Case {
            title: "closed or rejected specific petition and open unspecific one: matters",
            facts: vec![petition("t1", true, true), petition("t2", false, false)],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![
                (MATTER_ON_RECORD, IssueNotBlocking, "t1"),
                (MATTER_ON_RECORD, IssueNotBlocking, "t2"),
            ],
        },
        // --- audit findings ---
        Case {
            title: "finding transferred to discipline, not done: defer",
            facts: vec![finding("f1", true, false, None)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(FINDING_TRANSFERRED_TO_DISCIPLINE, Defer, "f1")],
        },
        Case {
            title: "finding transferred and rectified: a matter only",
            facts: vec![finding("f1", true, true, Some(date!(2025 - 06 - 30)))],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "f1")],
        },
        Case {
            title: "finding past its rectification deadline: flagged",
            facts: vec![finding("f1", false, false, Some(date!(2025 - 12 - 31)))],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "f1")],
        },
        Case {
            title: "finding on its deadline day is not yet overdue",
            facts: vec![finding("f1", false, false, Some(date!(2026 - 01 - 01)))],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "f1")],
        },
        Case {
            title: "finding transferred and overdue: both rows listed, defer wins",
            facts: vec![finding("f1", true, false, Some(date!(2025 - 12 - 31)))],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![
                (FINDING_TRANSFERRED_TO_DISCIPLINE, Defer, "f1"),
                (FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "f1"),
            ],
        },
        // --- inspection findings (DESIGN §6a: the rules of audit findings) ---
        Case {
            title: "inspection finding transferred to discipline, not done: defer",
            facts: vec![inspection("i1", true, false, None)],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![(FINDING_TRANSFERRED_TO_DISCIPLINE, Defer, "i1")],
        },
        Case {
            title: "inspection finding transferred and rectified: a matter only",
            facts: vec![inspection("i1", true, true, Some(date!(2025 - 06 - 30)))],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "i1")],
        },
        Case {
            title: "inspection finding past its rectification deadline: flagged",
            facts: vec![inspection("i1", false, false, Some(date!(2025 - 12 - 31)))],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "i1")],
        },
        Case {
            title: "inspection finding on its deadline day is not yet overdue",
            facts: vec![inspection("i1", false, false, Some(date!(2026 - 01 - 01)))],
            as_of: date!(2026 - 01 - 01),
            verdict: IssueNotBlocking,
            barred_until: B::None,
            reasons: vec![(MATTER_ON_RECORD, IssueNotBlocking, "i1")],
        },
        Case {
            title: "inspection finding transferred and overdue: both rows, defer wins",
            facts: vec![inspection("i1", true, false, Some(date!(2025 - 12 - 31)))],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![
                (FINDING_TRANSFERRED_TO_DISCIPLINE, Defer, "i1"),
                (FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "i1"),
            ],
        },
        Case {
            title: "a retracted inspection finding counts for nothing",
            facts: vec![retracted(inspection("i1", true, false, None))],
            as_of: date!(2026 - 01 - 01),
            verdict: NoIssue,
            barred_until: B::None,
            reasons: vec![],
        },
        Case {
            title: "an archive review is no matter",
            facts: vec![archive("v1")],
            as_of: date!(2026 - 01 - 01),
            verdict: NoIssue,
            barred_until: B::None,
            reasons: vec![],
        },
        // --- combinations ---
        Case {
            title: "several bars: the latest end wins",
            facts: vec![
                party("s1", P::Warning, 0, date!(2025 - 03 - 10)),
                state(
                    "s2",
                    S::Demerit,
                    date!(2025 - 08 - 31),
                    date!(2025 - 08 - 31),
                ),
                admon("a1", A::Admonition, date!(2025 - 12 - 01)),
            ],
            as_of: date!(2026 - 01 - 15),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 08 - 31)),
            reasons: vec![
                (PARTY_SANCTION_PERIOD, NotAgree, "s1"),
                (STATE_SANCTION_PERIOD, NotAgree, "s2"),
                (ADMONITION_PERIOD, NotAgree, "a1"),
            ],
        },
        Case {
            title: "permanent beats any date",
            facts: vec![
                party("s1", P::Warning, 0, date!(2025 - 03 - 10)),
                state(
                    "s2",
                    S::ExpulsionFromService,
                    date!(2025 - 04 - 01),
                    date!(2025 - 04 - 01),
                ),
            ],
            as_of: date!(2025 - 06 - 01),
            verdict: NotAgree,
            barred_until: B::Permanent,
            reasons: vec![
                (PARTY_SANCTION_PERIOD, NotAgree, "s1"),
                (STATE_SANCTION_PERIOD, NotAgree, "s2"),
            ],
        },
        Case {
            title: "an ended bar does not set barred_until; the running one does",
            facts: vec![
                party("s1", P::Warning, 0, date!(2023 - 01 - 10)),
                admon("a1", A::Admonition, date!(2025 - 11 - 30)),
            ],
            as_of: date!(2026 - 01 - 01),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 05 - 30)),
            reasons: vec![
                (ADMONITION_PERIOD, NotAgree, "a1"),
                (PARTY_SANCTION_PERIOD, IssueNotBlocking, "s1"),
            ],
        },
        Case {
            title: "precedence: not agree > defer > issue, every row listed, non-matters silent",
            facts: vec![
                finding("f1", false, false, Some(date!(2025 - 01 - 01))),
                evaluation("e1"),
                clue("c1", Disposal::TalkOrInquiry, true),
                petition("t1", true, false),
                pm("p1", PmResult::Concealed, date!(2025 - 10 - 01)),
                admon("a1", A::TalkReminder, date!(2025 - 01 - 01)),
            ],
            as_of: date!(2026 - 01 - 01),
            verdict: NotAgree,
            barred_until: B::Date(date!(2026 - 10 - 01)),
            reasons: vec![
                (CONCEALED_PERSONAL_MATTERS_PERIOD, NotAgree, "p1"),
                (OPEN_CLUE, Defer, "c1"),
                (UNCLOSED_SPECIFIC_PETITION, Defer, "t1"),
                (FINDING_PAST_RECTIFICATION_DEADLINE, IssueNotBlocking, "f1"),
                (MATTER_ON_RECORD, IssueNotBlocking, "a1"),
            ],
        },
        Case {
            title: "precedence: defer > issue not blocking",
            facts: vec![
                admon("a1", A::Criticism, date!(2025 - 01 - 01)),
                clue("c1", Disposal::PreliminaryCheck, true),
            ],
            as_of: date!(2026 - 01 - 01),
            verdict: Defer,
            barred_until: B::None,
            reasons: vec![
                (OPEN_CLUE, Defer, "c1"),
                (MATTER_ON_RECORD, IssueNotBlocking, "a1"),
            ],
        },
        Case {
            title: "retracted records count for nothing",
            facts: vec![
                retracted(party("s1", P::Expulsion, 0, date!(2020 - 01 - 01))),
                retracted(clue("c1", Disposal::CaseOpened, true)),
                retracted(pm("p1", PmResult::Concealed, date!(2025 - 10 - 01))),
                retracted(finding("f1", true, false, None)),
                retracted(petition("t1", true, false)),
                retracted(admon("a1", A::TalkReminder, date!(2025 - 01 - 01))),
            ],
            as_of: date!(2026 - 01 - 01),
            verdict: NoIssue,
            barred_until: B::None,
            reasons: vec![],
        },
        Case {
            title: "bar starting after the as-of date blocks by default",
            facts: vec![party("s1", P::Warning, 0, date!(2026 - 06 - 01))],
            as_of: date!(2026 - 05 - 01),
            verdict: NotAgree,
            barred_until: B::Date(date!(2027 - 06 - 01)),
            reasons: vec![(PARTY_SANCTION_PERIOD, NotAgree, "s1")],
        },
        Case {
            title: "no records at all",
            facts: vec![],
            as_of: date!(2026 - 01 - 01),
            verdict: NoIssue,
            barred_until: B::None,
            reasons: vec![],
        },
    ]
}

#[test]
fn rules_table() {
    let params = RuleParams::default();
    let cases = cases();
    assert!(cases.len() >= 30);
    for case in cases {
        let d = draft(&case.facts, case.as_of, &params);
        let got: Vec<(&str, Verdict, &str)> = d
            .reasons
            .iter()
            .map(|r| (r.rule, r.verdict, r.records[0].as_str()))
            .collect();
        assert_eq!(d.verdict, case.verdict, "{}: verdict", case.title);
        assert_eq!(d.barred_until, case.barred_until, "{}: until", case.title);
        assert_eq!(got, case.reasons, "{}: reasons", case.title);
        for r in &d.reasons {
            assert_eq!(r.records.len(), 1, "{}: one record per reason", case.title);
            assert!(!r.description.is_empty());
        }
    }
}

#[test]
fn rules_add_months_clamps_to_month_end() {
    let cases = [
        (date!(2024 - 02 - 29), 12, date!(2025 - 02 - 28)),
        (date!(2025 - 08 - 31), 6, date!(2026 - 02 - 28)),
        (date!(2024 - 02 - 29), 48, date!(2028 - 02 - 29)),
        (date!(2024 - 01 - 31), 1, date!(2024 - 02 - 29)),
        (date!(2023 - 01 - 31), 1, date!(2023 - 02 - 28)),
        (date!(2025 - 03 - 31), 1, date!(2025 - 04 - 30)),
        (date!(2025 - 12 - 15), 1, date!(2026 - 01 - 15)),
        (date!(2025 - 05 - 15), 0, date!(2025 - 05 - 15)),
        (date!(2023 - 05 - 15), 36, date!(2026 - 05 - 15)),
    ];
    for (start, n, end) in cases {
        assert_eq!(add_months(start, n), end, "{start} + {n}");
    }
    assert_eq!(add_months(date!(9999 - 06 - 01), 12), Date::MAX);
}

#[test]
fn rules_removal_reports_months_without_post() {
    let d = draft(
        &[org(
            "o1",
            OrgHandlingKind::RemovalFromPost,
            date!(2024 - 02 - 29),
        )],
        date!(2024 - 06 - 01),
        &RuleParams::default(),
    );
    assert_eq!(
        d.reasons.len(),
        1,
        "the 12 months are text, not a second bar"
    );
    assert!(d.reasons[0].description.contains("2025-02-28"));
    assert!(d.reasons[0].description.contains("2026-02-28"));
}

#[test]
fn rules_not_yet_started_bar_can_be_reported_as_matter() {
    let params = RuleParams {
        bar_not_yet_started_blocks: false,
        ..RuleParams::default()
    };
    let facts = [
        party("s1", PartyType::Warning, 0, date!(2026 - 06 - 01)),
        party("s2", PartyType::Expulsion, 0, date!(2026 - 06 - 01)),
    ];
    let d = draft(&facts, date!(2026 - 05 - 01), &params);
    assert_eq!(d.verdict, IssueNotBlocking);
    assert_eq!(d.barred_until, B::None);
    assert_eq!(d.reasons[0].barred_until, B::Date(date!(2027 - 06 - 01)));
    assert_eq!(d.reasons[1].barred_until, B::Permanent);
}

#[test]
fn rules_verdict_order_is_severity() {
    assert!(NotAgree > Defer && Defer > IssueNotBlocking && IssueNotBlocking > NoIssue);
    assert!(B::Permanent > B::Date(date!(9999 - 12 - 31)));
    assert!(B::Date(date!(2000 - 01 - 01)) > B::None);
    assert_eq!(NotAgree.as_str(), "NOT_AGREE");
}

#[test]
fn rules_odd_inputs_stay_matters() {
    // A sanction whose type is missing, a zero-month period, an out-of-range probation.
    let facts = [Fact::Sanction {
        name: "s1".into(),
        active: true,
        track: Track::Party,
        party: None,
        state: Some(StateType::Warning),
        probation_years: 0,
        decision_date: date!(2026 - 01 - 01),
        effective_date: date!(2026 - 01 - 01),
    }];
    let d = draft(&facts, date!(2026 - 01 - 02), &RuleParams::default());
    assert_eq!(d.verdict, IssueNotBlocking);
    assert_eq!(d.reasons[0].rule, MATTER_ON_RECORD);

    let params = RuleParams {
        admonition_months: 0,
        ..RuleParams::default()
    };
    let facts = [admon(
        "a1",
        AdmonishmentKind::Admonition,
        date!(2026 - 06 - 01),
    )];
    let d = draft(&facts, date!(2026 - 01 - 02), &params);
    assert_eq!((d.verdict, d.barred_until), (IssueNotBlocking, B::None));

    let facts = [party("s1", PartyType::Probation, 5, date!(2023 - 05 - 15))];
    let d = draft(&facts, date!(2026 - 01 - 02), &RuleParams::default());
    assert_eq!(d.barred_until, B::Date(date!(2027 - 05 - 15)));
}

#[test]
fn rules_is_matter_follows_design() {
    assert!(clue("c", Disposal::Shelved, false).is_matter());
    assert!(pm("p", PmResult::UnderReported, date!(2025 - 01 - 01)).is_matter());
    assert!(!pm("p", PmResult::Consistent, date!(2025 - 01 - 01)).is_matter());
    assert!(!evaluation("e").is_matter());
    assert!(!engagement("g").is_matter());
    assert!(!retracted(petition("t", false, false)).is_matter());
}

#[test]
fn rules_params_file_matches_defaults() {
    let shipped = include_str!("../../../data/rules.toml");
    assert_eq!(
        RuleParams::from_toml(shipped).unwrap(),
        RuleParams::default()
    );
}

#[test]
fn rules_params_partial_and_unknown_keys() {
    let p = RuleParams::from_toml("admonition_months = 9\n").unwrap();
    assert_eq!(p.admonition_months, 9);
    assert_eq!(p.party_warning_months, 12);
    assert_eq!(RuleParams::from_toml("").unwrap(), RuleParams::default());
    assert!(RuleParams::from_toml("admonition_month = 9\n").is_err());
    assert!(RuleParams::from_toml("admonition_months = \"six\"\n").is_err());
    assert!(RuleParams::from_toml("admonition_months = -1\n").is_err());
}

#[test]
fn every_rule_has_a_distinct_id_and_a_title() {
    for id in rule_id::ALL {
        assert!(!rule_id::title(id).is_empty(), "{id}");
    }
    let distinct: std::collections::HashSet<&str> = rule_id::ALL.into_iter().collect();
    assert_eq!(distinct.len(), rule_id::ALL.len());
    assert_eq!(rule_id::title("no_such_rule"), "");
}
