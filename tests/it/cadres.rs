//! The cadre registry through the real server: writes by organization only, jurisdiction, views, validation, etags, idempotency.

use cadrex::proto::{
    self, CreateCadreRequest, GetCadreRequest, ListCadresRequest, LookupCadreRequest,
    UpdateCadreRequest,
};
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, new_cadre, violated_fields};

both_backends!(
    organization_creates_updates_and_lists,
    only_organization_writes,
    jurisdiction_and_existence_oracle,
    views_mask_the_id_number,
    bad_identifiers_name_their_fields,
    request_id_replays_the_original_response,
);

/// Creates a cadre through the organization department of its own county.
async fn create(server: &TestServer, division: &str, name: &str, seq: u32) -> proto::Cadre {
    server
        .cadres("organization", division)
        .await
        .create_cadre(CreateCadreRequest {
            cadre: Some(new_cadre(name, division, seq)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
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
