//! Tests of the authorizer: the shipped policies, the decision cache and the access matrix.

use super::*;
use crate::domain::agency::Agency;
use std::path::PathBuf;

mod access_matrix;

fn principal(agency: Agency, division: &str) -> Principal {
    let system = format!("{}-sys", agency.as_str());
    Principal {
        uri: format!("urn:cadrex:system:{agency}:{division}:{system}"),
        agency,
        division: division.to_string(),
        system,
        fingerprint: "00".repeat(32),
        serial: "01".into(),
        not_after: i64::MAX,
    }
}

fn cadre(division: &str) -> Resource {
    Resource::Cadre {
        id: "c-1".into(),
        division: division.into(),
    }
}

fn shipped() -> Authorizer {
    Authorizer::load(None).expect("shipped policies load")
}

fn policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[test]
fn authorizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Authorizer>();
}

#[test]
fn shipped_policies_validate_strictly_without_warnings() {
    let (schema, warnings) = Schema::from_cedarschema_str(shipped_schema()).unwrap();
    assert_eq!(warnings.count(), 0);
    let mut set = PolicySet::new();
    for (name, text) in shipped_policies() {
        for p in PolicySet::from_str(text)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"))
            .policies()
        {
            set.add(with_annotated_id(p).unwrap()).unwrap();
        }
    }
    let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
    let problems: Vec<String> = result
        .validation_errors()
        .map(|e| e.to_string())
        .chain(result.validation_warnings().map(|w| w.to_string()))
        .collect();
    assert!(result.validation_passed_without_warnings(), "{problems:?}");
}

#[test]
fn embedded_policies_match_the_directory() {
    let mut on_disk: Vec<String> = std::fs::read_dir(policy_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cedar"))
        .collect();
    on_disk.sort();
    let embedded: Vec<&str> = shipped_policies().iter().map(|(n, _)| *n).collect();
    assert_eq!(on_disk, embedded, "build.rs embeds every policies/*.cedar");
    for (name, text) in shipped_policies() {
        assert_eq!(
            std::fs::read_to_string(policy_dir().join(name)).unwrap(),
            *text
        );
    }

    let from_dir = Authorizer::load(Some(&policy_dir())).expect("policy directory loads");
    assert_eq!(from_dir.policy_ids(), shipped().policy_ids());
    // Jurisdiction, ownership, informant protection and the dossier's conditions are the
    // same for every agency, in the files not named after one; docs and tests name them.
    let shared: Vec<String> = shipped()
        .policy_ids()
        .into_iter()
        .filter(|id| !Agency::ALL.iter().any(|a| id.starts_with(&format!("{a}-"))))
        .collect();
    assert_eq!(
        shared,
        [
            "cadre-outside-jurisdiction",
            "informant-filed-within-jurisdiction",
            "informant-protection",
            "named-request-must-be-visible",
            "owner-retracts",
            "record-outside-jurisdiction",
            "submit-only-over-own-records",
            "vetting-needs-an-open-request",
        ]
    );
}

/// Copies the shipped policy directory so a test can add or break a file.
fn scratch_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SCHEMA_FILE), shipped_schema()).unwrap();
    for (name, text) in shipped_policies() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn invalid_or_unnamed_policies_are_refused() {
    let dir = scratch_policies();
    std::fs::write(
        dir.path().join("zz.cedar"),
        "@id(\"typo\") permit (principal, action, resource) when { principal.agnecy == \"audit\" };",
    )
    .unwrap();
    let err = Authorizer::load(Some(dir.path())).unwrap_err();
    assert!(format!("{err:#}").contains("validate"), "{err:#}");

    std::fs::write(
        dir.path().join("zz.cedar"),
        "permit (principal, action, resource);",
    )
    .unwrap();
    let err = Authorizer::load(Some(dir.path())).unwrap_err();
    assert!(format!("{err:#}").contains("@id"), "{err:#}");

    std::fs::write(
        dir.path().join("zz.cedar"),
        "@id(\"organization-writes-cadres\") permit (principal, action, resource);",
    )
    .unwrap();
    let err = Authorizer::load(Some(dir.path())).unwrap_err();
    assert!(
        format!("{err:#}").contains("organization-writes-cadres"),
        "{err:#}"
    );

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join(SCHEMA_FILE), shipped_schema()).unwrap();
    assert!(
        Authorizer::load(Some(empty.path())).is_err(),
        "an empty policy set loaded"
    );
}

#[test]
fn forbid_wins_over_a_broad_permit() {
    let dir = scratch_policies();
    std::fs::write(
        dir.path().join("zz.cedar"),
        "@id(\"allow-everything\") permit (principal, action, resource);",
    )
    .unwrap();
    let authz = Authorizer::load(Some(dir.path())).unwrap();
    let d = authz.authorize(
        &principal(Agency::Audit, "360821"),
        Action::UpdateCadre,
        &cadre("360802"),
    );
    assert!(!d.allowed);
    assert_eq!(d.policy_ids, ["cadre-outside-jurisdiction"]);
    let d = authz.authorize(
        &principal(Agency::Audit, "360821"),
        Action::UpdateCadre,
        &cadre("360821"),
    );
    assert!(d.allowed);
    assert_eq!(d.policy_ids, ["allow-everything"]);
}

#[test]
fn decisions_are_cached_only_while_no_policy_names_a_resource() {
    let org = principal(Agency::Organization, "360821");
    let authz = shipped();
    assert!(authz.cache.is_some(), "shipped policies name no resource");
    let first = authz.authorize(&org, Action::UpdateCadre, &cadre("360821"));
    let again = authz.authorize(&org, Action::UpdateCadre, &cadre("360821"));
    assert!(first.allowed && again.allowed);
    assert_eq!(first.policy_ids, again.policy_ids);
    // Another division or another caller is another key.
    assert!(
        !authz
            .authorize(&org, Action::UpdateCadre, &cadre("360802"))
            .allowed
    );
    let audit = principal(Agency::Audit, "360821");
    assert!(
        !authz
            .authorize(&audit, Action::UpdateCadre, &cadre("360821"))
            .allowed
    );

    // A policy about one cadre makes decisions depend on the id: no cache,
    // and the two cadres of one division are decided differently.
    let dir = scratch_policies();
    std::fs::write(
        dir.path().join("zz.cedar"),
        "@id(\"freeze-one\") forbid (principal, action == Cadrex::Action::\"UpdateCadre\", resource == Cadrex::Cadre::\"c-frozen\");",
    )
    .unwrap();
    let authz = Authorizer::load(Some(dir.path())).unwrap();
    assert!(authz.cache.is_none());
    let frozen = Resource::Cadre {
        id: "c-frozen".into(),
        division: "360821".into(),
    };
    assert!(
        authz
            .authorize(&org, Action::UpdateCadre, &cadre("360821"))
            .allowed
    );
    let d = authz.authorize(&org, Action::UpdateCadre, &frozen);
    assert!(!d.allowed);
    assert_eq!(d.policy_ids, ["freeze-one"]);
}

/// Purpose of use and the named request are context, and the conditions
/// on them policies (DESIGN §2): organization's vetting needs an open
/// request of its own for the cadre; a named request must be one whose
/// piece the caller sees; the opinions about a cadre that moved away stay
/// readable to the requester and to a discipline body that replied.
#[test]
fn purpose_and_request_are_context() {
    let authz = shipped();
    let open = RequestFacts {
        own: true,
        names_cadre: true,
        visible: true,
        ..RequestFacts::default()
    };
    let dossier = |agency, purpose: &str, request: Option<RequestFacts>| {
        let facts = Facts {
            purpose: Some(purpose.into()),
            request,
        };
        authz
            .authorize_with(
                &principal(agency, "360821"),
                Action::ReadDossier,
                &cadre("360821"),
                &facts,
            )
            .allowed
    };
    let org = Agency::Organization;
    assert!(dossier(org, "APPOINTMENT_VETTING", Some(open)));
    assert!(!dossier(org, "APPOINTMENT_VETTING", None));
    for closed in [
        RequestFacts { own: false, ..open },
        RequestFacts {
            withdrawn: true,
            ..open
        },
        RequestFacts {
            reply_stale: true,
            ..open
        },
        RequestFacts {
            names_cadre: false,
            ..open
        },
    ] {
        assert!(
            !dossier(org, "APPOINTMENT_VETTING", Some(closed)),
            "{closed:?}"
        );
    }
    assert!(dossier(org, "ROUTINE_SUPERVISION", None));
    assert!(dossier(Agency::Discipline, "APPOINTMENT_VETTING", None));
    assert!(!dossier(
        Agency::Discipline,
        "CASE_HANDLING",
        Some(RequestFacts {
            visible: false,
            ..open
        })
    ));

    let opinions = |agency, at: &str, request: RequestFacts| {
        let facts = Facts {
            purpose: None,
            request: Some(request),
        };
        authz
            .authorize_with(
                &principal(agency, "360821"),
                Action::ReadOpinions,
                &cadre(at),
                &facts,
            )
            .allowed
    };
    let piece = RequestFacts {
        names_cadre: true,
        ..RequestFacts::default()
    };
    // Inside the jurisdiction: discipline every piece, organization its own.
    assert!(opinions(Agency::Discipline, "360821", piece));
    assert!(!opinions(org, "360821", piece));
    assert!(opinions(org, "360821", RequestFacts { own: true, ..piece }));
    // Moved away: the requester and a discipline body that replied keep theirs.
    assert!(opinions(org, "360802", RequestFacts { own: true, ..piece }));
    assert!(!opinions(Agency::Discipline, "360802", piece));
    assert!(opinions(
        Agency::Discipline,
        "360802",
        RequestFacts {
            replied_by_own: true,
            ..piece
        }
    ));
    assert!(!opinions(
        org,
        "360802",
        RequestFacts {
            replied_by_own: true,
            ..piece
        }
    ));
    // What an agency without a part in vetting reads of a request (the matrix's N).
    for agency in Agency::ALL
        .into_iter()
        .filter(|a| access_matrix::cell(matrix::OPINIONS, *a).has("N"))
    {
        assert!(!opinions(
            agency,
            "360821",
            RequestFacts {
                own: true,
                replied_by_own: true,
                ..piece
            }
        ));
    }
}

fn petition_record(division: &str, owner: (&str, &str)) -> Resource {
    Resource::Record {
        id: "r-1".into(),
        division: division.into(),
        kind: "PETITION".into(),
        owner_agency: owner.0.into(),
        owner_division: owner.1.into(),
        transfer_agency: String::new(),
        transfer_division: String::new(),
    }
}

#[test]
fn petition_reads_informants_filed_within_its_jurisdiction_only() {
    let authz = shipped();
    let informant = |agency, division: &str, owner: &str| {
        authz
            .authorize(
                &principal(agency, division),
                Action::ReadInformant,
                &petition_record("360821", ("petition", owner)),
            )
            .allowed
    };
    assert!(informant(Agency::Petition, "360821", "360821"));
    assert!(!informant(Agency::Petition, "360821", "360000"));
    assert!(!informant(Agency::Petition, "360821", "360802"));
    assert!(informant(Agency::Petition, "360000", "360821"));
    assert!(informant(Agency::Petition, "360800", "360821"));
    assert!(informant(Agency::Discipline, "360821", "360000"));
    assert!(!informant(Agency::Organization, "360821", "360821"));
    // A petition without a stored owner is never opened for a petition system.
    assert!(
        !authz
            .authorize(
                &principal(Agency::Petition, "360821"),
                Action::ReadInformant,
                &petition_record("360821", ("", "")),
            )
            .allowed
    );
}

#[test]
fn malformed_requests_are_denied_not_panicked() {
    let authz = shipped();
    let org = principal(Agency::Organization, "360821");
    // An action paired with the wrong kind of resource fails request validation.
    assert!(
        !authz
            .authorize(&org, Action::ReadFull, &Resource::Exchange)
            .allowed
    );
    assert!(
        !authz
            .authorize(&org, Action::WhoAmI, &cadre("360821"))
            .allowed
    );
    assert!(
        !authz
            .authorize(&org, Action::GetCheckpoint, &Resource::Exchange)
            .allowed
    );
    for bad in ["", "36", "36082", "3608210", "36082x", "三六〇八二一"] {
        assert!(
            !authz.authorize(&org, Action::GetCadre, &cadre(bad)).allowed,
            "{bad:?}"
        );
        let mut p = org.clone();
        p.division = bad.into();
        assert!(
            !authz
                .authorize(&p, Action::WhoAmI, &Resource::Exchange)
                .allowed,
            "{bad:?}"
        );
    }
    // Ids that are not Cedar identifiers are fine as entity ids.
    let odd = Resource::Cadre {
        id: "-".into(),
        division: "360821".into(),
    };
    assert!(authz.authorize(&org, Action::ListCadres, &odd).allowed);
    let odd = Resource::Cadre {
        id: "\"\\ ::".into(),
        division: "360821".into(),
    };
    assert!(authz.authorize(&org, Action::GetCadre, &odd).allowed);
}

#[test]
fn action_names_are_unique_and_in_order() {
    for (i, a) in Action::ALL.iter().enumerate() {
        assert_eq!(a.index(), i);
    }
    let names: HashSet<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(names.len(), Action::ALL.len());
}
