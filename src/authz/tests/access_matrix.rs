//! The shipped policies against the access matrix of docs/reference.md §2, for every agency of `Agency::ALL` and kind of `Kind::ALL`.
//!
//! Nothing here lists agencies or kinds: the expectations are read from the table users
//! read, so a new agency or kind fails these tests until the table has its column or row
//! and its policies decide as the table says.

use std::sync::OnceLock;

use cedar_policy::Effect;

use super::*;
use crate::authz::matrix::{ACCESS_LOG, CADRE, Cell, INFORMANT, Matrix, OPINIONS, OWN_CALLS, View};
use crate::domain::records::Kind;

/// The matrix as docs/reference.md writes it, read once.
fn table() -> &'static Matrix {
    static TABLE: OnceLock<Matrix> = OnceLock::new();
    TABLE.get_or_init(|| {
        Matrix::parse(
            matrix::REFERENCE,
            &Agency::ALL.map(Agency::as_str),
            &Kind::ALL.map(Kind::as_str),
        )
    })
}

/// The cell of `row` (a kind's name or a named row of [`matrix`]) for `agency`.
pub(super) fn cell(row: &str, agency: Agency) -> &'static Cell {
    table().cell(row, agency.as_str())
}

/// The view action a cell's view is decided by.
fn view_action(view: Option<View>) -> Option<Action> {
    view.map(|v| match v {
        View::Full => Action::ReadFull,
        View::Summary => Action::ReadSummary,
    })
}

/// An allow comes from the caller's own file: every permit there carries its prefix.
fn assert_own_permits(agency: Agency, d: &Decision, what: &str) {
    assert!(
        !d.policy_ids.is_empty()
            && d.policy_ids
                .iter()
                .all(|id| id.starts_with(&format!("{agency}-"))),
        "{what}: allowed by {:?}, not by policies/{agency}.cedar",
        d.policy_ids
    );
}

fn record(division: &str, kind: &str, owner: (&str, &str), transfer: (&str, &str)) -> Resource {
    Resource::Record {
        id: "r-1".into(),
        division: division.into(),
        kind: kind.into(),
        owner_agency: owner.0.into(),
        owner_division: owner.1.into(),
        transfer_agency: transfer.0.into(),
        transfer_division: transfer.1.into(),
    }
}

#[test]
fn the_table_has_a_column_per_agency_and_a_row_per_kind() {
    for agency in Agency::ALL {
        for kind in Kind::ALL.map(Kind::as_str) {
            let c = cell(kind, agency);
            assert!(!c.grants.is_empty(), "{agency} × {kind}: {c:?}");
            assert!(
                !c.has("N") || c.grants.len() == 1,
                "{agency} × {kind}: N with something else: {}",
                c.text
            );
        }
    }
    // Parts and notes as written: `**` stripped, a comma inside a note kept.
    let admonishment = cell("ADMONISHMENT", Agency::Organization);
    assert_eq!(admonishment.note("A"), Some("those it issues"));
    assert_eq!(admonishment.note("F"), Some(""));
    assert!(cell(INFORMANT, Agency::Organization).has("N"));
    let log = cell(ACCESS_LOG, Agency::Discipline);
    assert_eq!(log.grants.len(), 1, "{log:?}");
    assert!(log.says("F", "calls by systems in it"));
}

#[test]
#[should_panic(expected = "no column for agency \"ombudsman\"")]
fn a_new_agency_without_a_column_fails() {
    let mut agencies = Agency::ALL.map(Agency::as_str).to_vec();
    agencies.push("ombudsman");
    Matrix::parse(matrix::REFERENCE, &agencies, &Kind::ALL.map(Kind::as_str));
}

#[test]
#[should_panic(expected = "no row for \"BACKGROUND_CHECK\"")]
fn a_new_kind_without_a_row_fails() {
    let mut kinds = Kind::ALL.map(Kind::as_str).to_vec();
    kinds.push("BACKGROUND_CHECK");
    Matrix::parse(matrix::REFERENCE, &Agency::ALL.map(Agency::as_str), &kinds);
}

/// Each agency's permits are in `policies/<agency>.cedar`, carry its prefix and are
/// limited to it; a file named after no agency grants nothing to one agency.
#[test]
fn every_agency_has_its_own_policy_file() {
    let is_agency_file = |name: &str| Agency::ALL.iter().any(|a| name == format!("{a}.cedar"));
    for agency in Agency::ALL {
        let name = format!("{agency}.cedar");
        let (_, text) = shipped_policies()
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| {
                panic!("no policies/{name}: every agency's permits are in its own file")
            });
        for p in PolicySet::from_str(text).unwrap().policies() {
            let id = p.annotation("id").unwrap_or_default();
            assert!(
                id.starts_with(&format!("{agency}-")),
                "{name}: policy {id:?} does not start with \"{agency}-\""
            );
            if p.effect() == Effect::Permit {
                assert!(
                    p.to_string()
                        .contains(&format!("principal.agency == \"{agency}\"")),
                    "{name}: permit {id} is not limited to {agency}"
                );
            }
        }
    }
    for (name, text) in shipped_policies()
        .iter()
        .filter(|(n, _)| !is_agency_file(n))
    {
        for p in PolicySet::from_str(text).unwrap().policies() {
            let body = p.to_string();
            assert!(
                p.effect() == Effect::Forbid
                    || !(body.contains("principal.agency ==")
                        || body.contains(".contains(principal.agency)")),
                "{name}: permit {:?} grants to named agencies; it belongs in their own files",
                p.annotation("id")
            );
        }
    }
}

#[test]
fn records_follow_the_matrix() {
    let authz = shipped();
    let levels = [Action::ReadFull, Action::ReadSummary];
    for agency in Agency::ALL {
        let other = Agency::ALL.into_iter().find(|a| *a != agency).unwrap();
        for kind in Kind::ALL.map(Kind::as_str) {
            let c = cell(kind, agency);
            // A county and the province over it, both covering the cadre at 360821.
            for caller in ["360821", "360000"] {
                let p = principal(agency, caller);
                let at = |what: &str| format!("{agency} at {caller} × {kind}: {what} ({})", c.text);
                let decide = |action, resource: &Resource| authz.authorize(&p, action, resource);

                // A: submits new records and writes over its own body's, never another's.
                for (owner, what) in [(("", ""), "new"), ((agency.as_str(), caller), "own")] {
                    let d = decide(
                        Action::SubmitRecord,
                        &record("360821", kind, owner, ("", "")),
                    );
                    assert_eq!(d.allowed, c.has("A"), "{}", at(&format!("submit {what}")));
                    if d.allowed {
                        assert_own_permits(agency, &d, &at("submit"));
                    }
                }
                for owner in [(agency.as_str(), "360802"), (other.as_str(), caller)] {
                    let d = decide(
                        Action::SubmitRecord,
                        &record("360821", kind, owner, ("", "")),
                    );
                    assert!(!d.allowed, "{}", at(&format!("submit over {owner:?}")));
                    if c.has("A") {
                        assert_eq!(
                            d.policy_ids,
                            ["submit-only-over-own-records"],
                            "{}",
                            at("submit")
                        );
                    }
                }
                let own = record("360821", kind, (agency.as_str(), caller), ("", ""));
                let d = decide(Action::RetractRecord, &own);
                assert!(d.allowed, "{}", at("retract own"));
                assert_eq!(d.policy_ids, ["owner-retracts"]);
                let theirs = record("360821", kind, (other.as_str(), caller), ("", ""));
                assert!(
                    !decide(Action::RetractRecord, &theirs).allowed,
                    "{}",
                    at("retract")
                );

                // Every agency calls the read methods; what it sees is its view.
                let plain = record("360821", kind, ("", ""), ("", ""));
                for action in [Action::GetRecord, Action::ListRecords] {
                    let d = decide(action, &plain);
                    assert!(d.allowed, "{}", at(action.as_str()));
                    assert_own_permits(agency, &d, &at(action.as_str()));
                }
                for (transfer, own_transfer) in [
                    (("", ""), false),
                    ((agency.as_str(), caller), true),
                    ((agency.as_str(), "360802"), false),
                    ((other.as_str(), caller), false),
                ] {
                    let r = record("360821", kind, ("", ""), transfer);
                    let seen = authz.first_allowed(&p, &levels, &r);
                    assert_eq!(
                        seen.as_ref().map(|(level, _)| *level),
                        view_action(c.record_view(own_transfer)),
                        "{}",
                        at(&format!("view, transferred by {transfer:?}"))
                    );
                    if let Some((_, d)) = seen {
                        assert_own_permits(agency, &d, &at("view"));
                    }
                }

                // Outside the jurisdiction nothing, whatever the cell says.
                let outside = record(
                    if caller == "360821" {
                        "360802"
                    } else {
                        "110101"
                    },
                    kind,
                    (agency.as_str(), caller),
                    ("", ""),
                );
                for action in [
                    Action::SubmitRecord,
                    Action::RetractRecord,
                    Action::GetRecord,
                    Action::ListRecords,
                    Action::ReadFull,
                    Action::ReadSummary,
                    Action::ReadInformant,
                ] {
                    let d = decide(action, &outside);
                    assert!(!d.allowed, "{}", at(&format!("{action} outside")));
                    assert!(
                        d.policy_ids
                            .iter()
                            .any(|id| id == "record-outside-jurisdiction"),
                        "{}: {d:?}",
                        at(&format!("{action} outside"))
                    );
                }
            }
        }
    }
}

/// The informant row: F or A reads the informant block of petitions, "(filed in its
/// jurisdiction only)" of petitions filed with a petition system at or below the caller's
/// division; N never, by the allowlist forbid, so a new agency is kept out whatever its
/// own file permits.
#[test]
fn informants_follow_the_matrix() {
    let authz = shipped();
    for agency in Agency::ALL {
        let c = cell(INFORMANT, agency);
        let reads = c.has("A") || c.has("F");
        let within_only =
            c.says("A", "filed in its jurisdiction") || c.says("F", "filed in its jurisdiction");
        for caller in ["360821", "360000"] {
            let p = principal(agency, caller);
            let at = |what: &str| format!("{agency} at {caller}: {what} ({})", c.text);
            for (filed, inside) in [
                (caller, true),
                ("360802", caller == "360000"),
                ("110101", false),
            ] {
                let petition = record("360821", "PETITION", ("petition", filed), ("", ""));
                let d = authz.authorize(&p, Action::ReadInformant, &petition);
                assert_eq!(
                    d.allowed,
                    reads && (inside || !within_only),
                    "{}",
                    at(&format!("informant of a petition filed at {filed}"))
                );
                if d.allowed {
                    assert_own_permits(agency, &d, &at("informant"));
                } else if !reads {
                    assert_eq!(
                        d.policy_ids,
                        ["informant-protection"],
                        "{}",
                        at("informant")
                    );
                } else {
                    assert_eq!(
                        d.policy_ids,
                        ["informant-filed-within-jurisdiction"],
                        "{}",
                        at("informant")
                    );
                }
            }
            for kind in Kind::ALL
                .map(Kind::as_str)
                .into_iter()
                .filter(|k| *k != "PETITION")
            {
                let r = record("360821", kind, (agency.as_str(), caller), ("", ""));
                assert!(
                    !authz.authorize(&p, Action::ReadInformant, &r).allowed,
                    "{}",
                    at(&format!("informant of a {kind}"))
                );
            }
        }
    }
}

const CADRE_ACTIONS: [Action; 7] = [
    Action::CreateCadre,
    Action::UpdateCadre,
    Action::GetCadre,
    Action::ListCadres,
    Action::LookupCadre,
    Action::ReadFull,
    Action::ReadSummary,
];

/// What the cadre row grants an agency on a cadre inside its jurisdiction: A writes the
/// registry, any grant finds cadres, and the view is [`Cell::cadre_view`].
fn granted(agency: Agency, action: Action) -> bool {
    let c = cell(CADRE, agency);
    match action {
        Action::CreateCadre | Action::UpdateCadre => c.has("A"),
        Action::GetCadre | Action::ListCadres | Action::LookupCadre => !c.has("N"),
        Action::ReadFull | Action::ReadSummary => view_action(c.cadre_view()) == Some(action),
        _ => unreachable!("not a cadre action"),
    }
}

#[test]
fn cadre_matrix() {
    let authz = shipped();
    // (caller division, cadre division, inside jurisdiction)
    let placements = [
        ("360821", "360821", true),  // own county
        ("360821", "360802", false), // neighbouring county
        ("360802", "360821", false),
        ("360800", "360821", true), // prefecture over its county
        ("360000", "360821", true), // province over its county
        ("360000", "360000", true),
        ("360000", "110101", false), // another province
        ("360821", "360800", false), // a county does not cover its prefecture
        (NATIONAL, "360821", true),
        (NATIONAL, "110101", true),
    ];
    for agency in Agency::ALL {
        for (caller, target, inside) in placements {
            let p = principal(agency, caller);
            for action in CADRE_ACTIONS {
                let expect = inside && granted(agency, action);
                let d = authz.authorize(&p, action, &cadre(target));
                assert_eq!(
                    d.allowed, expect,
                    "{agency} at {caller}, {action} on cadre at {target}: {d:?}"
                );
                if d.allowed {
                    let id = match action {
                        Action::CreateCadre | Action::UpdateCadre => "writes-cadres",
                        Action::ReadFull => "reads-cadres-full",
                        Action::ReadSummary => "reads-cadres-masked",
                        _ => "finds-cadres",
                    };
                    assert_eq!(d.policy_ids, [format!("{agency}-{id}")]);
                } else if !inside {
                    assert_eq!(d.policy_ids, ["cadre-outside-jurisdiction"]);
                } else {
                    assert!(
                        d.policy_ids.is_empty(),
                        "default deny names no policy: {d:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn view_levels() {
    let authz = shipped();
    let levels = [Action::ReadFull, Action::ReadSummary];
    for agency in Agency::ALL {
        let p = principal(agency, "360000");
        let seen = authz.first_allowed(&p, &levels, &cadre("360821"));
        assert_eq!(
            seen.as_ref().map(|(level, _)| *level),
            view_action(cell(CADRE, agency).cadre_view()),
            "{agency}"
        );
        if let Some((_, d)) = seen {
            assert!(d.allowed && !d.policy_ids.is_empty());
        }
        assert!(
            authz.first_allowed(&p, &levels, &cadre("110101")).is_none(),
            "{agency}"
        );
    }
    assert!(
        authz
            .first_allowed(&principal(Agency::Audit, "360821"), &[], &cadre("360821"))
            .is_none()
    );
}

/// The opinion row: "A (asks …)" requests, "A (drafts, replies …)" drafts and replies;
/// "sees all in its jurisdiction" reads every request's piece there, "sees own requests"
/// the pieces of its own; N none of it. Every agency assembles a dossier, cut to its
/// views. The exceptions for a cadre that moved are in `purpose_and_request_are_context`.
#[test]
fn opinions_follow_the_matrix() {
    let authz = shipped();
    let piece = RequestFacts {
        names_cadre: true,
        visible: true,
        ..RequestFacts::default()
    };
    for agency in Agency::ALL {
        let c = cell(OPINIONS, agency);
        let reads_all = c.says("A", "sees all");
        let reads_own = reads_all || c.says("A", "sees own requests");
        assert!(
            !c.has("A") || reads_own,
            "{agency}: the opinion cell {:?} does not say which requests it sees",
            c.text
        );
        for caller in ["360821", "360000"] {
            let p = principal(agency, caller);
            let at = |what: &str| format!("{agency} at {caller}: {what} ({})", c.text);
            let decide = |action, division: &str, request: Option<RequestFacts>| {
                // A dossier is read for a purpose; a pre-inspection briefing is
                // the one every agency may read for (inspection reads for no
                // other, dossier.cedar and inspection.cedar).
                let facts = Facts {
                    purpose: (action == Action::ReadDossier)
                        .then(|| "PRE_INSPECTION_BRIEFING".to_string()),
                    request,
                };
                authz.authorize_with(&p, action, &cadre(division), &facts)
            };
            for (action, expect) in [
                (Action::RequestOpinion, c.says("A", "asks")),
                (Action::DraftOpinion, c.says("A", "replies")),
                (Action::ReplyOpinion, c.says("A", "replies")),
                (Action::ReadDossier, true),
            ] {
                let d = decide(action, "360821", None);
                assert_eq!(d.allowed, expect, "{}", at(action.as_str()));
                if expect {
                    assert_own_permits(agency, &d, &at(action.as_str()));
                }
                let d = decide(action, "110101", None);
                assert!(!d.allowed, "{}", at(action.as_str()));
                assert_eq!(d.policy_ids, ["cadre-outside-jurisdiction"]);
            }
            for (request, expect) in [
                (piece, reads_all),
                (RequestFacts { own: true, ..piece }, reads_own),
            ] {
                let d = decide(Action::ReadOpinions, "360821", Some(request));
                assert_eq!(d.allowed, expect, "{}", at(&format!("read {request:?}")));
                if expect {
                    assert_own_permits(agency, &d, &at("read opinions"));
                }
            }
        }
    }
}

/// The access-log row: F reads every row in its jurisdiction and verifies the chain,
/// "own calls" its own rows; both fetch checkpoints. Every agency asks who it is and
/// follows the change feed.
#[test]
fn access_log_and_exchange() {
    let authz = shipped();
    for agency in Agency::ALL {
        let c = cell(ACCESS_LOG, agency);
        for division in ["360821", NATIONAL] {
            let p = principal(agency, division);
            for (action, resource, expect) in [
                (Action::WhoAmI, Resource::Exchange, true),
                (Action::AllowedMethods, Resource::Exchange, true),
                (Action::ReadChanges, Resource::Exchange, true),
                (
                    Action::ListAccessEvents,
                    Resource::AccessLog,
                    c.has("F") || c.has(OWN_CALLS),
                ),
                (
                    Action::GetCheckpoint,
                    Resource::AccessLog,
                    c.has("F") || c.has(OWN_CALLS),
                ),
                (Action::ReadAllAccessEvents, Resource::AccessLog, c.has("F")),
                (Action::VerifyAccessLog, Resource::AccessLog, c.has("F")),
            ] {
                let d = authz.authorize(&p, action, &resource);
                let at = format!("{agency} at {division}: {action} ({})", c.text);
                assert_eq!(d.allowed, expect, "{at}");
                if expect {
                    assert_eq!(d.policy_ids.len(), 1, "{at}: {d:?}");
                    assert_own_permits(agency, &d, &at);
                } else {
                    assert!(d.policy_ids.is_empty(), "{at}: {d:?}");
                }
            }
        }
    }
}
