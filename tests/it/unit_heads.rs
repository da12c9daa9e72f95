//! Unit heads (一把手) through the real server (DESIGN §6a): tenures and the departure and term audits they are owed in the dossier, per agency, and the audit office's worklist with its boundaries, jurisdiction and refusals.

use cadrex::proto::{self, record::Payload};
use time::Duration;
use tonic::Code;

use crate::both_backends;
use crate::common::{
    Backend, TestServer, cadrex_bin, credit_code, new_cadre, record, records_client, submit,
};

both_backends!(
    tenures_and_owed_audits_in_the_dossier_and_the_worklist,
    a_tour_finds_a_units_leaders_and_briefs_itself,
);

type Dossiers = proto::dossier_service_client::DossierServiceClient<tonic::transport::Channel>;

const COUNTY: &str = "360821";

fn day(offset_days: i64) -> String {
    (cadrex::domain::clock::today() + Duration::days(offset_days)).to_string()
}

fn head_post(unit: &str, start: String, end: String) -> proto::Post {
    proto::Post {
        unit_name: format!("单位{unit}"),
        unit_credit_code: credit_code(unit),
        title: "局长".into(),
        rank: "正处级".into(),
        unit_head: true,
        start_date: start,
        end_date: end,
    }
}

async fn create(server: &TestServer, seq: u32, posts: Vec<proto::Post>) -> proto::Cadre {
    let mut c = new_cadre("一把手", COUNTY, seq);
    c.posts = posts;
    server
        .cadres("organization", COUNTY)
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn engagement(departure: bool, unit: &str, start: String, end: String) -> Payload {
    Payload::AuditEngagement(proto::AuditEngagement {
        r#type: if departure {
            proto::AuditEngagementType::Departure
        } else {
            proto::AuditEngagementType::InOffice
        } as i32,
        period_start: start,
        period_end: end.clone(),
        report_number: "审经责〔2026〕1号".into(),
        audited_post: "局长".into(),
        report_date: end,
        audited_unit_credit_code: credit_code(unit),
    })
}

/// (cadre, unit code, flags, planned departure) of the worklist as `division`'s audit office reads it.
async fn worklist(server: &TestServer, division: &str) -> Vec<(String, String, Vec<i32>, bool)> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = Dossiers::new(server.channel("audit", division).await)
            .list_audit_candidates(proto::ListAuditCandidatesRequest {
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        for c in page.audit_candidates {
            let t = c.tenure.unwrap();
            out.push((c.cadre, t.unit_credit_code, t.flags, t.planned_departure));
        }
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn tenures(server: &TestServer, agency: &str, cadre: &str) -> Vec<proto::UnitHeadTenure> {
    let purpose = match agency {
        "audit" => proto::Purpose::AuditPlanning,
        "petition" => proto::Purpose::PetitionHandling,
        _ => proto::Purpose::RoutineSupervision,
    };
    Dossiers::new(server.channel(agency, COUNTY).await)
        .get_cadre_dossier(proto::GetCadreDossierRequest {
            cadre: cadre.into(),
            purpose: purpose as i32,
            opinion_request: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .unit_head_tenures
}

async fn tenures_and_owed_audits_in_the_dossier_and_the_worklist(backend: Backend) {
    use proto::UnitHeadFlag::{DepartureAuditMissing as MISSING, TermAuditDue as DUE};
    let server = TestServer::spawn(backend).await;
    let (u1, u2, u3, u4) = ("UH0000001", "UH0000002", "UH0000003", "UH0000004");
    // Left u1 seven months ago (departure audit missing), heads u2 for 40
    // months (term audit due): two tenures, both flagged.
    let left_and_long = create(
        &server,
        61,
        vec![
            head_post(u1, "2015-01-01".into(), day(-215)),
            head_post(u2, day(-1217), String::new()),
        ],
    )
    .await;
    // Leaves u3 in 30 days (planned), is in its first year: listed for the plan only.
    let leaving = create(&server, 62, vec![head_post(u3, day(-365), day(30))]).await;
    // Left u4 five months ago: not yet flagged; leaves nothing planned.
    let recent = create(&server, 63, vec![head_post(u4, day(-1000), day(-150))]).await;
    let mut not_head = new_cadre("副职", COUNTY, 64);
    not_head.posts[0].unit_head = false;
    server
        .cadres("organization", COUNTY)
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(not_head),
            request_id: String::new(),
        })
        .await
        .unwrap();

    let expect = |rows: &[(&proto::Cadre, &str, Vec<proto::UnitHeadFlag>, bool)]| {
        let mut v: Vec<(String, String, Vec<i32>, bool)> = rows
            .iter()
            .map(|(c, u, f, p)| {
                (
                    c.name.clone(),
                    credit_code(u),
                    f.iter().map(|f| *f as i32).collect(),
                    *p,
                )
            })
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<(String, String, Vec<i32>, bool)>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(worklist(&server, COUNTY).await),
        expect(&[
            (&left_and_long, u1, vec![MISSING], false),
            (&left_and_long, u2, vec![DUE], false),
            (&leaving, u3, vec![], true),
        ])
    );
    assert!(
        worklist(&server, "360802").await.is_empty(),
        "another county's audit office sees none of them"
    );
    assert_eq!(
        sorted(worklist(&server, "360000").await).len(),
        3,
        "the province sees them"
    );
    // The operator's client prints the same worklist.
    let (crt, key) = server.client_files("audit", COUNTY);
    let (ok, out) = cadrex_bin(&[
        "client",
        "--cert",
        &crt.display().to_string(),
        "--key",
        &key.display().to_string(),
        "--server",
        &format!("https://localhost:{}", server.addr.port()),
        "audit",
        "candidates",
    ]);
    assert!(ok, "{out}");
    for expected in [
        "离任审计缺失 DEPARTURE_AUDIT_MISSING",
        "任期审计到期 TERM_AUDIT_DUE",
        "planned departure",
        &credit_code(u3),
    ] {
        assert!(out.contains(expected), "{expected} in\n{out}");
    }
    assert!(!out.contains(&credit_code(u4)), "{out}");
    for agency in ["discipline", "organization", "petition"] {
        let err = Dossiers::new(server.channel(agency, COUNTY).await)
            .list_audit_candidates(proto::ListAuditCandidatesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{agency}");
    }

    // The dossier: every agency sees the tenures; those that read audit
    // engagements see the flags; petition does not.
    for agency in ["discipline", "organization", "audit", "petition"] {
        let t = tenures(&server, agency, &left_and_long.name).await;
        let seen: Vec<(String, bool, Vec<i32>)> = t
            .iter()
            .map(|t| (t.unit_credit_code.clone(), t.current, t.flags.clone()))
            .collect();
        let flags = |f: proto::UnitHeadFlag| {
            if agency == "petition" {
                vec![]
            } else {
                vec![f as i32]
            }
        };
        assert_eq!(
            seen,
            [
                (credit_code(u1), false, flags(MISSING)),
                (credit_code(u2), true, flags(DUE)),
            ],
            "{agency}"
        );
    }
    let t = tenures(&server, "organization", &recent.name).await;
    assert!(t[0].flags.is_empty(), "five months after leaving: not yet");

    // The audits arrive: a departure audit of u1 reaching its last month,
    // an in-office audit of u2 ending a year ago. Nothing is owed any more.
    let mut audit = records_client(server.channel("audit", COUNTY).await);
    let departure = audit
        .submit_record(submit(record(
            &left_and_long,
            "AE-U1",
            1,
            engagement(true, u1, "2015-01-01".into(), day(-215)),
        )))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap()
        .name;
    audit
        .submit_record(submit(record(
            &left_and_long,
            "AE-U2",
            1,
            engagement(false, u2, day(-1217), day(-365)),
        )))
        .await
        .unwrap();
    assert_eq!(
        sorted(worklist(&server, COUNTY).await),
        expect(&[(&leaving, u3, vec![], true)])
    );
    let t = tenures(&server, "audit", &left_and_long.name).await;
    assert!(t.iter().all(|t| t.flags.is_empty()), "{t:?}");
    assert_eq!(t[0].covering_engagements, [departure]);
    let petition = tenures(&server, "petition", &left_and_long.name).await;
    assert!(
        petition.iter().all(|t| t.covering_engagements.is_empty()),
        "petition is not told of engagements"
    );
}

/// Names of the cadres `inspection` at `division` lists under `filter`,
/// a page of one at a time.
async fn holding(server: &TestServer, division: &str, filter: &str, past: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .cadres("inspection", division)
            .await
            .list_cadres(proto::ListCadresRequest {
                page_size: 1,
                page_token: token,
                filter: filter.into(),
                include_past_posts: past,
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.cadres.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            out.sort();
            return out;
        }
        token = page.next_page_token;
    }
}

/// DESIGN §6a: before it is stationed a tour lists who holds posts in the
/// unit it will inspect (current ones, and past ones when asked), within its
/// jurisdiction, and reads their dossiers for PRE_INSPECTION_BRIEFING only.
async fn a_tour_finds_a_units_leaders_and_briefs_itself(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let unit = "XC0000001";
    let current = create(
        &server,
        71,
        vec![head_post(unit, "2022-01-01".into(), String::new())],
    )
    .await;
    let planned = create(
        &server,
        72,
        vec![head_post(unit, "2022-01-01".into(), day(20))],
    )
    .await;
    let left = create(
        &server,
        73,
        vec![head_post(unit, "2015-01-01".into(), day(-400))],
    )
    .await;
    create(
        &server,
        74,
        vec![head_post("XC0000002", "2022-01-01".into(), String::new())],
    )
    .await;
    let mut elsewhere = new_cadre("邻县干部", "360802", 75);
    elsewhere.posts = vec![head_post(unit, "2022-01-01".into(), String::new())];
    server
        .cadres("organization", "360802")
        .await
        .create_cadre(proto::CreateCadreRequest {
            cadre: Some(elsewhere),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let filter = format!("unit_credit_code = \"{}\"", credit_code(unit));
    let mut now = vec![current.name.clone(), planned.name.clone()];
    now.sort();
    assert_eq!(holding(&server, COUNTY, &filter, false).await, now);
    let mut ever = vec![
        current.name.clone(),
        planned.name.clone(),
        left.name.clone(),
    ];
    ever.sort();
    assert_eq!(holding(&server, COUNTY, &filter, true).await, ever);
    // A lowercase code is the same code; the province sees the neighbour too.
    let lower = filter.to_lowercase();
    assert_eq!(holding(&server, COUNTY, &lower, false).await, now);
    assert_eq!(holding(&server, "360000", &filter, false).await.len(), 3);
    for bad in ["unit_credit_code = \"9136*\"", "unit_credit_code = \"123\""] {
        let err = server
            .cadres("inspection", COUNTY)
            .await
            .list_cadres(proto::ListCadresRequest {
                filter: bad.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
    }

    // The briefing itself: the dossier for PRE_INSPECTION_BRIEFING, not for
    // any other purpose.
    let read = |purpose: proto::Purpose| {
        let (server, cadre) = (&server, current.name.clone());
        async move {
            Dossiers::new(server.channel("inspection", COUNTY).await)
                .get_cadre_dossier(proto::GetCadreDossierRequest {
                    cadre,
                    purpose: purpose as i32,
                    opinion_request: String::new(),
                })
                .await
        }
    };
    let d = read(proto::Purpose::PreInspectionBriefing)
        .await
        .unwrap()
        .into_inner();
    assert!(
        d.cadre.unwrap().id_number_masked,
        "inspection reads the id number masked"
    );
    for purpose in [
        proto::Purpose::RoutineSupervision,
        proto::Purpose::CaseHandling,
    ] {
        let err = read(purpose).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{purpose:?}");
    }
}
