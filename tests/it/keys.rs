//! `cadrex keys rotate` end to end: informant blocks resealed under a new key, old keys retired, still readable by discipline and petition only; interrupted rotations resume.

use std::path::Path;

use cadrex::proto::{self, record::Payload};
use prost::Message;

use crate::both_backends;
use crate::common::{Backend, TestServer, cadrex_bin, count_rows, raw_informant_bytes};
use crate::common::{cadre, record, records_client};

both_backends!(rotation_keeps_informants_readable_to_discipline_only);

const DIVISION: &str = "360821";
const PETITIONS: usize = 7;

fn petition(canary: &str, i: usize) -> Payload {
    Payload::Petition(proto::Petition {
        received_date: "2025-03-01".into(),
        channel: proto::PetitionChannel::Letter as i32,
        anonymous: false,
        category: proto::PetitionCategory::AccusationDiscipline as i32,
        specific: true,
        status: proto::PetitionStatus::Accepted as i32,
        forwarded_to: String::new(),
        summary: format!("反映其违规收受礼金 第{i}件"),
        informant: Some(proto::Informant {
            name: format!("{canary}-name-{i}"),
            unit: format!("{canary}-unit-{i}"),
            contact: format!("{canary}-contact-{i}"),
            address: format!("{canary}-address-{i}"),
        }),
    })
}

/// The key ids in the key file, in order.
fn key_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(':').unwrap().0.to_string())
        .collect()
}

fn rotate(server: &TestServer, key_file: &Path) -> String {
    let (ok, out) = cadrex_bin(&[
        "keys",
        "rotate",
        "--store",
        &server.store_url,
        "--key-file",
        key_file.to_str().unwrap(),
        "--batch",
        "3",
    ]);
    assert!(ok, "cadrex keys rotate: {out}");
    out
}

/// The stored informant key ids with their row counts.
async fn stored_key_ids(url: &str, key_id: &str) -> (i64, i64) {
    (
        count_rows(
            url,
            &format!("SELECT COUNT(*) FROM records WHERE informant_key_id = '{key_id}'"),
        )
        .await,
        count_rows(
            url,
            &format!(
                "SELECT COUNT(*) FROM records WHERE informant_key_id IS NOT NULL \
                 AND informant_key_id <> '{key_id}'"
            ),
        )
        .await,
    )
}

/// Serves the first server's store and PKI again, in process.
async fn reopen(first: &TestServer) -> TestServer {
    let (store, pki) = (first.store_url.clone(), first.pki.clone());
    TestServer::spawn_with(first.backend, move |c| {
        c.store = store;
        c.pki_dir = pki;
    })
    .await
}

/// Discipline and petition read every informant intact; organization and
/// audit get no byte of it from reads, lists or the access log.
async fn assert_views(server: &TestServer, names: &[String], canary: &str) {
    for agency in ["discipline", "petition"] {
        let mut client = records_client(server.channel(agency, DIVISION).await);
        for (i, name) in names.iter().enumerate() {
            let r = client
                .get_record(proto::GetRecordRequest { name: name.clone() })
                .await
                .unwrap_or_else(|e| panic!("{agency} reads {name}: {e:?}"))
                .into_inner();
            let Some(Payload::Petition(p)) = r.payload else {
                panic!("{agency}: {name} is not a full petition")
            };
            let informant = p.informant.expect("informant block");
            assert_eq!(informant.name, format!("{canary}-name-{i}"), "{agency}");
            assert_eq!(
                informant.address,
                format!("{canary}-address-{i}"),
                "{agency}"
            );
        }
    }
    for agency in ["organization", "audit"] {
        let mut client = records_client(server.channel(agency, DIVISION).await);
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for name in names {
            match client
                .get_record(proto::GetRecordRequest { name: name.clone() })
                .await
            {
                Ok(r) => seen.push(r.into_inner().encode_to_vec()),
                Err(e) => seen.push(format!("{e:?}").into_bytes()),
            }
        }
        let list = client
            .list_records(proto::ListRecordsRequest {
                parent: "cadres/-".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        seen.push(list.into_inner().encode_to_vec());
        let events = server
            .access_log(agency, DIVISION)
            .await
            .list_access_events(proto::ListAccessEventsRequest::default())
            .await
            .unwrap();
        seen.push(events.into_inner().encode_to_vec());
        for bytes in &seen {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{agency} received informant data"
            );
        }
    }
}

async fn rotation_keeps_informants_readable_to_discipline_only(backend: Backend) {
    let mut first = TestServer::spawn(backend).await;
    let c = cadre(&first, 81).await;
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let mut petitions = records_client(first.channel("petition", DIVISION).await);
    let mut names = Vec::new();
    for i in 0..PETITIONS {
        let r = petitions
            .submit_record(proto::SubmitRecordRequest {
                record: Some(record(&c, &format!("XF-K-{i}"), 1, petition(&canary, i))),
                request_id: String::new(),
                validate_only: false,
            })
            .await
            .unwrap()
            .into_inner();
        names.push(r.record.expect("stored record").name);
    }
    first.stop().await;
    let key_file = first.pki.join("informant.key");
    let old_text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key_ids(&key_file), ["k1"]);
    assert_eq!(stored_key_ids(&first.store_url, "k1").await, (7, 0));

    // Offline rotation in batches of 3 rows.
    let out = rotate(&first, &key_file);
    assert!(out.contains("informant key k2: 7 blocks"), "{out}");
    assert_eq!(key_ids(&key_file), ["k2"], "the old key is retired");
    let old_hex = old_text.trim().split_once(':').unwrap().1;
    assert!(
        !std::fs::read_to_string(&key_file)
            .unwrap()
            .contains(old_hex)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(stored_key_ids(&first.store_url, "k2").await, (7, 0));
    let raw = raw_informant_bytes(&first.store_url).await;
    assert!(!raw.is_empty());
    assert!(
        !raw.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "informant data stored in clear"
    );

    let mut second = reopen(&first).await;
    assert_views(&second, &names, &canary).await;
    second.stop().await;

    // A second rotation works the same way.
    let out = rotate(&first, &key_file);
    assert!(out.contains("informant key k3: 7 blocks"), "{out}");
    assert!(out.contains("retired k2"), "{out}");
    assert_eq!(key_ids(&key_file), ["k3"]);
    assert_eq!(stored_key_ids(&first.store_url, "k3").await, (7, 0));

    // An interrupted rotation (new key written first, marker set, rows still
    // under the old key) is finished by the next run with the same new key.
    let k3_line = std::fs::read_to_string(&key_file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("k3:"))
        .unwrap()
        .to_string();
    std::fs::write(
        &key_file,
        format!(
            "# cadrex keys rotate: in progress to k9\nk9:{}\n{k3_line}\n",
            "9a".repeat(32)
        ),
    )
    .unwrap();
    let out = rotate(&first, &key_file);
    assert!(
        out.contains("informant key k9 (resumed): 7 blocks"),
        "{out}"
    );
    assert_eq!(key_ids(&key_file), ["k9"]);
    assert_eq!(stored_key_ids(&first.store_url, "k9").await, (7, 0));
    let third = reopen(&first).await;
    assert_views(&third, &names, &canary).await;
    drop(third);
}
