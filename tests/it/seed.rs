//! Seeded data is data the server would accept: a sample of what `cadrex seed` generates, every kind among it, submitted through the API by the owner agency's system is accepted and stored as it was sent.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use cadrex::admin::seed::{people, records};
use cadrex::domain::records::Kind;
use cadrex::proto::{self, record::Payload};
use cadrex::rng::Rng;

use crate::both_backends;
use crate::common::{Backend, TestServer, records_client, submit};

both_backends!(seeded_records_are_accepted_unchanged);

/// The systems that submit: each agency's at the test PKI's province, whose
/// jurisdiction covers every Jiangxi cadre the generator makes.
const PROVINCE: &str = "360000";

async fn seeded_records_are_accepted_unchanged(backend: Backend) {
    let server = TestServer::spawn(backend).await;
    let mut clients = HashMap::new();
    let mut rng = Rng::new(7);
    let mut used = HashSet::new();
    let mut kinds = HashSet::new();
    let mut people_seen = 0;
    while kinds.len() < Kind::ALL.len() {
        people_seen += 1;
        assert!(people_seen < 200, "no kind after {kinds:?} in 200 cadres");
        let person = people::person(&mut rng, &mut used);
        let generated = records::records(&mut rng, &person, 12);
        if !person.cadre.managing_division.starts_with(&PROVINCE[..2]) {
            continue;
        }
        let cadre = server
            .cadres("organization", PROVINCE)
            .await
            .create_cadre(proto::CreateCadreRequest {
                cadre: Some(person.cadre.clone()),
                request_id: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("seeded cadre refused: {s:?}"))
            .into_inner();
        // The seed names records by the ids it chose; the server chooses its own.
        let mut names: HashMap<String, String> = HashMap::new();
        let mut engagements: HashMap<String, String> = HashMap::new();
        for g in generated {
            let mut sent = g.record.clone();
            sent.cadre = cadre.name.clone();
            if let Some(Payload::Clue(k)) = &mut sent.payload
                && !k.source_record.is_empty()
            {
                k.source_record = names[&k.source_record].clone();
            }
            // A seeded archive review serves a request the seed made; here
            // the organization department makes it through the API first.
            if let Some(Payload::ArchiveReview(a)) = &mut sent.payload {
                a.opinion_request = server
                    .ask_opinion(PROVINCE, vec![cadre.name.clone()])
                    .await
                    .name;
            }
            let kind = Kind::of(sent.payload.as_ref().unwrap()).unwrap();
            let client = match clients.entry(g.owner) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(records_client(
                    server.channel(g.owner.as_str(), PROVINCE).await,
                )),
            };
            let stored = client
                .submit_record(submit(sent.clone()))
                .await
                .unwrap_or_else(|s| panic!("seeded {kind:?} refused: {s:?}\n{sent:?}"))
                .into_inner()
                .record
                .unwrap();
            // All as sent, but for the engagement a finding belongs to, which
            // the server fills in.
            let mut expected = sent.payload.clone();
            if let Some(Payload::AuditFinding(f)) = &mut expected {
                f.engagement = engagements[&f.engagement_source_record_id].clone();
            }
            assert_eq!(stored.payload, expected, "{kind:?}");
            assert_eq!(
                (
                    &stored.cadre,
                    &stored.source_record_id,
                    stored.source_version,
                    stored.classification
                ),
                (
                    &sent.cadre,
                    &sent.source_record_id,
                    sent.source_version,
                    sent.classification
                ),
                "{kind:?}"
            );
            names.insert(
                format!("cadres/{}/records/{}", person.id, g.id),
                stored.name.clone(),
            );
            if kind == Kind::AuditEngagement {
                engagements.insert(sent.source_record_id.clone(), stored.name.clone());
            }
            kinds.insert(kind);
        }
    }
}
