//! The cadre registry through the real server: writes by organization only, jurisdiction, views, validation, etags, idempotency.

use cadrex::proto::{
    self, CreateCadreRequest, GetCadreRequest, ListCadresRequest, LookupCadreRequest,
    UpdateCadreRequest,
};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, id_number, new_cadre, violated_fields};
use crate::common::{record, records_client, submit};

both_backends!(
    organization_creates_updates_and_lists,
    only_organization_writes,
    jurisdiction_and_existence_oracle,
    views_mask_the_id_number,
    bad_identifiers_name_their_fields,
    request_id_replays_the_original_response,
    masked_views_hide_the_birth_date_on_every_path,
    lowercase_x_is_the_same_id_number,
    undecodable_bodies_are_invalid_argument,
    invalid_argument_message_names_the_first_field,
    dates_and_text_are_checked_alike_everywhere,
);

/// Creates a cadre through the organization department of its own county.
async fn create(server: &TestServer, division: &str, name: &str, seq: u32) -> proto::Cadre {
    server.register(division, name, seq).await
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

async fn organization_creates_updates_and_lists(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut org = server.cadres("organization", "360821").await;
    let created = create(&server, "360821", "张三", 1).await;
    assert!(created.name.starts_with("cadres/"));
    assert_eq!(created.birth_date, "1975-03-12");
    assert!(!created.id_number_masked);
    assert!(!created.etag.is_empty());

    let got = org
        .get_cadre(GetCadreRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, created);

    let mut changed = created.clone();
    changed.display_name = "张三丰".into();
    let updated = org
        .update_cadre(UpdateCadreRequest {
            cadre: Some(changed.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "张三丰");
    assert_ne!(updated.etag, created.etag);

    // The old etag is now stale.
    let err = org
        .update_cadre(UpdateCadreRequest {
            cadre: Some(changed),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "ETAG_MISMATCH");

    for i in 2..=5 {
        create(&server, "360821", &format!("王{i}"), i).await;
    }
    create(&server, "360802", "赵六", 9).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = org
            .list_cadres(ListCadresRequest {
                page_size: 2,
                page_token: token.clone(),
                filter: String::new(),
                include_past_posts: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.cadres.len() <= 2);
        seen.extend(page.cadres.into_iter().map(|c| c.display_name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen.len(),
        5,
        "a county caller lists its own county only: {seen:?}"
    );
    assert!(!seen.contains(&"赵六".to_string()));

    let filtered = org
        .list_cadres(ListCadresRequest {
            page_size: 0,
            page_token: String::new(),
            filter: r#"display_name = "王*""#.into(),
            include_past_posts: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.cadres.len(), 4);
    let err = org
        .list_cadres(ListCadresRequest {
            page_size: 0,
            page_token: String::new(),
            filter: "rank = 1".into(),
            include_past_posts: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // A province caller sees both counties.
    let province = server
        .cadres("organization", "360000")
        .await
        .list_cadres(ListCadresRequest {
            page_size: 100,
            page_token: String::new(),
            filter: r#"managing_division = "360802""#.into(),
            include_past_posts: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(province.cadres.len(), 1);
    assert_eq!(province.cadres[0].display_name, "赵六");
}

async fn only_organization_writes(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    for agency in ["audit", "discipline", "petition"] {
        let err = server
            .cadres(agency, "360821")
            .await
            .create_cadre(CreateCadreRequest {
                cadre: Some(new_cadre("李四", "360821", 1)),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{agency}");
    }
    let created = create(&server, "360821", "李四", 1).await;
    let err = server
        .cadres("audit", "360821")
        .await
        .update_cadre(UpdateCadreRequest {
            cadre: Some(created.clone()),
            update_mask: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Moving a cadre to a division the caller does not cover is refused …
    let mut moved = created.clone();
    moved.managing_division = "360802".into();
    let err = server
        .cadres("organization", "360821")
        .await
        .update_cadre(UpdateCadreRequest {
            cadre: Some(moved.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["managing_division".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // … and allowed to a caller covering both.
    let done = server
        .cadres("organization", "360000")
        .await
        .update_cadre(UpdateCadreRequest {
            cadre: Some(moved),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["managing_division".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.managing_division, "360802");
}

async fn jurisdiction_and_existence_oracle(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let created = create(&server, "360821", "钱七", 3).await;
    let other_county = server.cadres("discipline", "360802").await;
    let out_of_reach = other_county
        .clone()
        .get_cadre(GetCadreRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap_err();
    let missing = other_county
        .clone()
        .get_cadre(GetCadreRequest {
            name: "cadres/0190aaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(out_of_reach.code(), Code::PermissionDenied);
    assert_eq!(reason(&out_of_reach), "CADRE_NOT_ACCESSIBLE");
    assert_eq!(out_of_reach.code(), missing.code());
    assert_eq!(out_of_reach.message(), missing.message());
    assert_eq!(
        out_of_reach.details(),
        missing.details(),
        "byte-for-byte the same details"
    );

    // The same by id number.
    let by_number = other_county
        .clone()
        .lookup_cadre(LookupCadreRequest {
            id_number: created.id_number.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(by_number.details(), missing.details());

    // Creating a cadre whose id number is registered elsewhere reveals nothing either.
    let mut dup = new_cadre("钱七", "360802", 3);
    dup.id_number = created.id_number.clone();
    let err = server
        .cadres("organization", "360802")
        .await
        .create_cadre(CreateCadreRequest {
            cadre: Some(dup.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "CADRE_NOT_ACCESSIBLE");
    dup.managing_division = "360821".into();
    let err = server
        .cadres("organization", "360821")
        .await
        .create_cadre(CreateCadreRequest {
            cadre: Some(dup),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // The province covers the county.
    let got = server
        .cadres("discipline", "360000")
        .await
        .get_cadre(GetCadreRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.id_number, created.id_number);
}

async fn views_mask_the_id_number(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let created = create(&server, "360821", "孙八", 4).await;
    for (agency, masked) in [
        ("discipline", false),
        ("organization", false),
        ("audit", true),
        ("petition", true),
    ] {
        let got = server
            .cadres(agency, "360821")
            .await
            .get_cadre(GetCadreRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.id_number_masked, masked, "{agency}");
        if masked {
            assert_ne!(got.id_number, created.id_number);
            assert!(
                !got.id_number.contains("19750312"),
                "birth date hidden: {}",
                got.id_number
            );
            let bytes = got.encode_to_vec();
            assert!(
                !bytes
                    .windows(created.id_number.len())
                    .any(|w| w == created.id_number.as_bytes()),
                "{agency} response must not carry the full id number"
            );
        } else {
            assert_eq!(got.id_number, created.id_number);
        }
        let listed = server
            .cadres(agency, "360821")
            .await
            .list_cadres(ListCadresRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.cadres[0].id_number_masked, masked);
    }
}

async fn bad_identifiers_name_their_fields(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut c = new_cadre("周九", "360821", 5);
    let flip = |s: &str| if s.ends_with('0') { "1" } else { "0" };
    let last = flip(&c.id_number);
    c.id_number.replace_range(17..18, last);
    let last = flip(&c.posts[0].unit_credit_code);
    c.posts[0].unit_credit_code.replace_range(17..18, last);
    c.managing_division = "36082".into();
    let err = server
        .cadres("organization", "360821")
        .await
        .create_cadre(CreateCadreRequest {
            cadre: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&err);
    for f in [
        "cadre.id_number",
        "cadre.posts[0].unit_credit_code",
        "cadre.managing_division",
    ] {
        assert!(fields.contains(&f.to_string()), "{f} in {fields:?}");
    }
    let loc = err
        .get_details_localized_message()
        .expect("LocalizedMessage");
    assert_eq!(loc.locale, "zh-CN");
    assert!(!loc.message.is_empty());
    assert_eq!(reason(&err), "INVALID_ARGUMENT");
}

async fn request_id_replays_the_original_response(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut org = server.cadres("organization", "360821").await;
    let req = CreateCadreRequest {
        cadre: Some(new_cadre("吴十", "360821", 6)),
        request_id: "0b9e8c1e-7f7c-4b8e-9a3e-1d2c3b4a5f60".into(),
    };
    let first = org.create_cadre(req.clone()).await.unwrap().into_inner();
    let again = org.create_cadre(req.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    let list = org
        .list_cadres(ListCadresRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.cadres.len(), 1, "no second cadre");
    let mut other = req;
    other.cadre.as_mut().unwrap().display_name = "吴十一".into();
    let err = org.create_cadre(other).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "REQUEST_ID_REUSED");
}

/// True when `needle` occurs anywhere in `bytes`.
fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Asserts that `c`, as shown to `agency`, hides or shows the birth date as
/// the matrix says, in the field and anywhere in the encoded message `bytes`.
fn assert_birth_date_view(agency: &str, path: &str, c: &proto::Cadre, bytes: &[u8], masked: bool) {
    assert_eq!(c.id_number_masked, masked, "{agency} {path}");
    if masked {
        assert_eq!(c.birth_date, "", "{agency} {path}: birth date hidden");
        for needle in ["1975-03-12", "19750312"] {
            assert!(
                !contains(bytes, needle),
                "{agency} {path}: the answer carries {needle}"
            );
        }
    } else {
        assert_eq!(c.birth_date, "1975-03-12", "{agency} {path}");
    }
}

/// The masked 公民身份号码 plus a birth date in clear is the whole number, so a
/// masked view hides the birth date in every path that renders a cadre.
async fn masked_views_hide_the_birth_date_on_every_path(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let created = create(&server, "360821", "钱七", 7).await;
    assert_eq!(created.birth_date, "1975-03-12");
    for (agency, masked, purpose) in [
        ("discipline", false, proto::Purpose::CaseHandling),
        ("organization", false, proto::Purpose::RoutineSupervision),
        ("audit", true, proto::Purpose::AuditPlanning),
        ("petition", true, proto::Purpose::PetitionHandling),
    ] {
        let ch = server.channel(agency, "360821").await;
        let mut cadres = proto::cadre_service_client::CadreServiceClient::new(ch.clone());
        let got = cadres
            .get_cadre(GetCadreRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_birth_date_view(agency, "GetCadre", &got, &got.encode_to_vec(), masked);

        let listed = cadres
            .list_cadres(ListCadresRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_birth_date_view(
            agency,
            "ListCadres",
            &listed.cadres[0],
            &listed.encode_to_vec(),
            masked,
        );

        let looked = cadres
            .lookup_cadre(LookupCadreRequest {
                id_number: created.id_number.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_birth_date_view(
            agency,
            "LookupCadre",
            &looked,
            &looked.encode_to_vec(),
            masked,
        );

        let page = proto::change_feed_service_client::ChangeFeedServiceClient::new(ch.clone())
            .list_changes(proto::ListChangesRequest {
                after_cursor: String::new(),
                kinds: vec![proto::ChangeKind::Cadre as i32],
                page_size: 10,
            })
            .await
            .unwrap()
            .into_inner();
        let event = page
            .events
            .iter()
            .find_map(|e| match &e.view {
                Some(proto::change_event::View::Cadre(c)) => Some(c),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{agency}: a cadre event in {page:?}"));
        assert_birth_date_view(agency, "ListChanges", event, &page.encode_to_vec(), masked);

        let dossier = proto::dossier_service_client::DossierServiceClient::new(ch)
            .get_cadre_dossier(proto::GetCadreDossierRequest {
                cadre: created.name.clone(),
                purpose: purpose as i32,
                opinion_request: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("{agency} dossier: {e:?}"))
            .into_inner();
        assert_birth_date_view(
            agency,
            "GetCadreDossier",
            dossier.cadre.as_ref().unwrap(),
            &dossier.encode_to_vec(),
            masked,
        );
    }
}

/// The wire answer of a call, for byte-for-byte comparison of twins.
fn answer<T: Message>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String, Vec<u8>) {
    match r {
        Ok(r) => (Code::Ok, String::new(), r.into_inner().encode_to_vec()),
        Err(s) => (s.code(), s.message().to_string(), s.details().to_vec()),
    }
}

/// A 公民身份号码 of `division` whose check character is `X`.
fn number_ending_in_x(division: &str) -> (String, u32) {
    (1..500)
        .map(|seq| (id_number(division, "19750312", seq), seq))
        .find(|(n, _)| n.ends_with('X'))
        .expect("one in eleven numbers ends in X")
}

/// `…x` and `…X` are one person: every RPC answers the twins alike, so a
/// lowercase `x` cannot tell "registered elsewhere" from "out of reach".
async fn lowercase_x_is_the_same_id_number(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let (upper, seq) = number_ending_in_x("360821");
    let lower = upper.to_ascii_lowercase();
    let mut person = new_cadre("郑十二", "360821", 0);
    person.id_number = upper.clone();
    person.gender = if seq % 2 == 1 {
        proto::Gender::Male as i32
    } else {
        proto::Gender::Female as i32
    };
    let mut home = server.cadres("organization", "360821").await;
    let created = home
        .create_cadre(CreateCadreRequest {
            cadre: Some(person.clone()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id_number, upper);

    let mut elsewhere = server.cadres("organization", "360802").await;
    let mut twins = Vec::new();
    for number in [&upper, &lower] {
        let mut c = person.clone();
        c.id_number = number.clone();
        c.managing_division = "360802".into();
        let create = answer(
            elsewhere
                .create_cadre(CreateCadreRequest {
                    cadre: Some(c.clone()),
                    request_id: String::new(),
                })
                .await,
        );
        let batch = answer(
            elsewhere
                .batch_create_cadres(proto::BatchCreateCadresRequest {
                    requests: vec![CreateCadreRequest {
                        cadre: Some(c),
                        request_id: String::new(),
                    }],
                    request_id: String::new(),
                    validate_only: false,
                })
                .await,
        );
        let lookup_out = answer(
            elsewhere
                .lookup_cadre(LookupCadreRequest {
                    id_number: number.clone(),
                })
                .await,
        );
        let lookup_home = answer(
            home.lookup_cadre(LookupCadreRequest {
                id_number: number.clone(),
            })
            .await,
        );
        let mut again = person.clone();
        again.id_number = number.clone();
        let create_home = answer(
            home.create_cadre(CreateCadreRequest {
                cadre: Some(again),
                request_id: String::new(),
            })
            .await,
        );
        twins.push((create, batch, lookup_out, lookup_home, create_home));
    }
    let (x_upper, x_lower) = (&twins[0], &twins[1]);
    assert_eq!(x_upper.0.0, Code::PermissionDenied, "{:?}", x_upper.0);
    assert_eq!(x_upper.0, x_lower.0, "CreateCadre elsewhere");
    assert_eq!(x_upper.1, x_lower.1, "BatchCreateCadres elsewhere");
    assert_eq!(x_upper.2.0, Code::PermissionDenied);
    assert_eq!(x_upper.2, x_lower.2, "LookupCadre elsewhere");
    assert_eq!(x_upper.3.0, Code::Ok);
    assert_eq!(x_upper.3, x_lower.3, "LookupCadre at home");
    assert_eq!(x_upper.4.0, Code::AlreadyExists);
    assert_eq!(x_upper.4, x_lower.4, "CreateCadre at home");

    // A record naming the cadre by the lowercase number is filed under it.
    let mut r = record(
        &created,
        "AD-X",
        1,
        proto::record::Payload::Admonishment(proto::Admonishment {
            r#type: proto::AdmonishmentType::TalkReminder as i32,
            date: "2025-02-01".into(),
            issuer: "县纪委".into(),
        }),
    );
    r.cadre_id_number = lower.clone();
    let stored = records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(r))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert!(
        stored
            .name
            .starts_with(&format!("{}/records/", created.name))
    );
    let listed = home
        .list_cadres(ListCadresRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cadres.len(), 1, "one person, one cadre");
}

/// A message whose field 1 is a varint, sent where a string is expected.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireType {
    #[prost(int64, tag = "1")]
    name: i64,
}

/// A message whose field 1 holds bytes that are not UTF-8, sent where a
/// string is expected.
#[derive(Clone, PartialEq, prost::Message)]
struct NotUtf8 {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
}

/// Sends `message` to the method at `path` as if it were its request.
async fn raw_call<M: Message + Default + Clone + 'static>(
    server: &TestServer,
    path: &'static str,
    message: M,
) -> tonic::Status {
    let ch = server.channel("organization", "360821").await;
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    grpc.unary::<M, proto::Cadre, _>(
        tonic::Request::new(message),
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("an undecodable body is refused")
}

/// A body that does not decode is the caller's error (INVALID_ARGUMENT with
/// the usual details), not tonic's INTERNAL, which reads as a server fault.
async fn undecodable_bodies_are_invalid_argument(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    for status in [
        raw_call(
            &server,
            "/cadrex.v1.CadreService/GetCadre",
            WrongWireType { name: 7 },
        )
        .await,
        raw_call(
            &server,
            "/cadrex.v1.CadreService/LookupCadre",
            NotUtf8 {
                name: vec![0xff, 0xfe, b'a'],
            },
        )
        .await,
    ] {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reason(&status), "MALFORMED_REQUEST", "{status:?}");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.domain, "cadrex");
        let loc = status
            .get_details_localized_message()
            .expect("LocalizedMessage");
        assert_eq!(loc.locale, "zh-CN");
        assert!(!loc.message.is_empty());
        assert!(status.message().contains("does not decode"), "{status:?}");
    }
    // The server is still serving that connection's peers.
    create(&server, "360821", "王十三", 13).await;
}

/// Many clients show only the message: it names the first bad field and why.
async fn invalid_argument_message_names_the_first_field(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut c = new_cadre("冯十四", "360821", 14);
    c.posts[0].start_date = "2021-02-30".into();
    c.managing_division = "36082".into();
    let err = server
        .cadres("organization", "360821")
        .await
        .create_cadre(CreateCadreRequest {
            cadre: Some(c),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&err);
    assert_eq!(fields[0], "cadre.managing_division", "{fields:?}");
    assert!(
        err.message()
            .starts_with("cadre.managing_division: must be a 6-digit"),
        "{:?}",
        err.message()
    );
    // The zh-CN message names it too, with the count, for operators who
    // read only that one.
    let zh = err
        .get_details_localized_message()
        .expect("LocalizedMessage");
    assert_eq!(zh.locale, "zh-CN");
    assert!(
        zh.message.contains("cadre.managing_division")
            && zh.message.contains(&format!("共 {} 处", fields.len())),
        "{zh:?}"
    );

    let created = create(&server, "360821", "冯十五", 15).await;
    let err = records_client(server.channel("discipline", "360821").await)
        .submit_record(submit(record(
            &created,
            "SC-M",
            1,
            proto::record::Payload::Sanction(proto::Sanction {
                track: proto::SanctionTrack::Party as i32,
                party_type: proto::PartySanctionType::Warning as i32,
                decision_date: "2025-04-02".into(),
                effective_date: "2025-04-01".into(),
                form_of_discipline: 2,
                ..Default::default()
            }),
        )))
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "record.sanction.effective_date: must not be before decision_date"
    );

    // Echoed input stays clipped, so the trailers stay small.
    let long = "x".repeat(100_000);
    let err = server
        .cadres("organization", "360821")
        .await
        .update_cadre(UpdateCadreRequest {
            cadre: Some(created.clone()),
            update_mask: Some(prost_types::FieldMask { paths: vec![long] }),
        })
        .await
        .unwrap_err();
    assert!(err.message().starts_with("update_mask.paths: "), "{err:?}");
    assert!(
        err.message().chars().count() <= 121,
        "{}",
        err.message().len()
    );
}

/// One date rule (1900-01-01..2099-12-31) and one text rule (no control
/// characters, no bidirectional overrides; long text keeps `\n` and `\t`) for
/// every kind of field.
async fn dates_and_text_are_checked_alike_everywhere(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut org = server.cadres("organization", "360821").await;
    let refused = |c: proto::Cadre| CreateCadreRequest {
        cadre: Some(c),
        request_id: String::new(),
    };
    // Text is checked before anything else (DESIGN §4, `grpc::text`), so a
    // request with bad text names only its text fields; dates are checked
    // once the text is clean.
    let mut c = new_cadre("褚\u{202E}十六", "360821", 16);
    c.posts[0].title = "局长\u{2066}".into();
    c.posts[0].unit_name = "某县\n财政局".into();
    let mut dated = new_cadre("褚十六", "360821", 16);
    dated.posts[0].start_date = "1899-12-31".into();
    dated.posts[0].end_date = "2100-01-01".into();
    let mut fields = violated_fields(&org.create_cadre(refused(c)).await.unwrap_err());
    fields.extend(violated_fields(
        &org.create_cadre(refused(dated)).await.unwrap_err(),
    ));
    for f in [
        "cadre.display_name",
        "cadre.posts[0].start_date",
        "cadre.posts[0].end_date",
        "cadre.posts[0].title",
        "cadre.posts[0].unit_name",
    ] {
        assert!(fields.contains(&f.to_string()), "{f} in {fields:?}");
    }
    // A birth date outside the range, even with a valid check character.
    let mut old = new_cadre("卫十七", "360821", 17);
    old.id_number = id_number("360821", "18991231", 35);
    let err = org.create_cadre(refused(old)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["cadre.id_number"]);

    let created = create(&server, "360821", "蒋十八", 18).await;
    let mut records = records_client(server.channel("discipline", "360821").await);
    let clue = |conclusion: &str, received: &str, due: &str| {
        submit(record(
            &created,
            "XS-D",
            1,
            proto::record::Payload::Clue(proto::Clue {
                source: proto::ClueSource::Other as i32,
                source_record: String::new(),
                disposal: proto::ClueDisposal::Closed as i32,
                status: proto::ClueStatus::Concluded as i32,
                conclusion: conclusion.into(),
                received_date: received.into(),
                reply_due_date: due.into(),
            }),
        ))
    };
    for (req, field) in [
        (
            clue("查无实据\u{1b}[2J", "2025-03-01", ""),
            "record.clue.conclusion",
        ),
        (
            clue("查无\u{202D}实据", "2025-03-01", ""),
            "record.clue.conclusion",
        ),
        (clue("", "0025-03-01", ""), "record.clue.received_date"),
        (
            clue("", "2025-03-01", "2100-01-01"),
            "record.clue.reply_due_date",
        ),
    ] {
        let err = records.submit_record(req).await.unwrap_err();
        assert_eq!(violated_fields(&err), [field], "{err:?}");
    }
    let sanction = proto::record::Payload::Sanction(proto::Sanction {
        track: proto::SanctionTrack::Party as i32,
        party_type: proto::PartySanctionType::Warning as i32,
        decision_number: "赣纪\t〔2025〕3号".into(),
        decision_date: "2025-04-01".into(),
        effective_date: "2099-12-31".into(),
        form_of_discipline: 2,
        ..Default::default()
    });
    let err = records
        .submit_record(submit(record(&created, "SC-D", 1, sanction)))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["record.sanction.decision_number"],
        "a number is one line"
    );
    // Long text keeps line breaks and tabs; the last day of 2099 is a date.
    records
        .submit_record(clue(
            "一、查无实据\n二、\t予以了结",
            "2025-03-01",
            "2099-12-31",
        ))
        .await
        .unwrap();
}
