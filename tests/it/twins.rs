//! Twin-caller differential: for every RPC of the served descriptors, a caller outside the jurisdiction naming a real resource and a missing one of the same shape gets identical answers and identical own access-log rows.
//!
//! The methods come from `cadrex::proto::FILE_DESCRIPTOR_SET`, not a hand
//! list: a method with neither a twin case below nor an entry in
//! `NO_RESOURCE` fails the test, so an RPC added later is not silently
//! skipped. Every call goes through one raw-bytes call function; requests
//! are built as typed messages and encoded.

use std::collections::{BTreeMap, BTreeSet};

use cadrex::proto;
use prost::Message;
use tonic::Status;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::matrix::agencies;
use crate::common::{
    Backend, RpcMethod, TestServer, cadrex_methods, id_number, new_cadre, own_access_events,
    raw_unary,
};

both_backends!(outsider_sees_real_and_missing_resources_alike);

/// Methods that name no cadre, record or opinion request, so have no twin.
const NO_RESOURCE: &[(&str, &str)] = &[
    (
        "SystemService/WhoAmI",
        "describes the caller's own certificate",
    ),
    (
        "SystemService/AllowedMethods",
        "evaluated against a resource in the caller's own jurisdiction",
    ),
    (
        "CadreService/ListCadres",
        "lists within the caller's jurisdiction; takes only a page and a filter",
    ),
    (
        "DossierService/ListAuditCandidates",
        "lists within the caller's jurisdiction; takes only a page",
    ),
    (
        "OpinionService/ListOpinionRequests",
        "lists the caller's visible requests; takes only a page and a filter",
    ),
    (
        "ChangeFeedService/ListChanges",
        "takes a cursor and kinds, no resource name",
    ),
    (
        "ChangeFeedService/WatchChanges",
        "takes a cursor and kinds, no resource name",
    ),
    ("AccessLogService/GetCheckpoint", "takes no argument"),
    ("AccessLogService/VerifyAccessLog", "takes only a flag"),
];

/// A county that does not cover 360821, where the real resources live.
const OUTSIDE: &str = "360802";
/// Its answers list other calls' rows, compared with their identities set aside.
const LIST_ACCESS_EVENTS: &str = "AccessLogService/ListAccessEvents";

/// One request pair: the same call naming a real resource and a missing one.
struct Twin {
    label: String,
    /// What the two sides are called in a failure: real and missing, or two spellings.
    sides: [&'static str; 2],
    real: Vec<u8>,
    missing: Vec<u8>,
}

/// The real resources at 360821 and same-shaped names that exist nowhere.
struct Fixture {
    server: TestServer,
    cadre: proto::Cadre,
    missing_cadre: String,
    records: Vec<(String, proto::Record)>,
    opinion: String,
    missing_opinion: String,
    id_number: String,
    missing_id_number: String,
    /// A cadre of the callers' own county, so that a batch can name one they
    /// may write beside the twin: the row of such a call is one the caller's
    /// own discipline commission reads in full.
    own_id_number: String,
    /// Spellings of one name (real, missing, and their case variants), each
    /// set replaced by one placeholder before comparing.
    tokens: Vec<Vec<String>>,
}

/// A different id of the same shape: each digit and letter moved one step
/// within its class, separators kept.
fn same_shape(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            '0'..='8' => (c as u8 + 1) as char,
            '9' => '0',
            'a'..='e' => (c as u8 + 1) as char,
            'f' => 'a',
            'g'..='y' => (c as u8 + 1) as char,
            'z' => 'g',
            'A'..='Y' => (c as u8 + 1) as char,
            'Z' => 'A',
            other => other,
        })
        .collect()
}

/// A valid 公民身份号码 of a man at 360821 born 1975-03-12 whose check
/// character is `X`, skipping the first `skip` of them.
fn id_ending_x(skip: usize) -> String {
    (1..999)
        .step_by(2)
        .map(|seq| id_number("360821", "19750312", seq))
        .filter(|n| n.ends_with('X'))
        .nth(skip)
        .unwrap()
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let server = TestServer::spawn(backend).await;
        let id = id_ending_x(0);
        let mut c = new_cadre("孪生对象", "360821", 1);
        c.id_number = id.clone();
        let cadre = server
            .cadres("organization", "360821")
            .await
            .create_cadre(proto::CreateCadreRequest {
                cadre: Some(c),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let by_kind = crate::common::one_of_each_kind(&server, &cadre, "TWIN-CANARY").await;
        let mut records: Vec<(String, proto::Record)> = by_kind
            .into_iter()
            .map(|(k, r)| (k.to_string(), r))
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let opinion = proto::opinion_service_client::OpinionServiceClient::new(
            server.channel("organization", "360821").await,
        )
        .create_opinion_request(proto::CreateOpinionRequestRequest {
            cadres: vec![cadre.name.clone()],
            purpose: proto::OpinionPurpose::Promotion as i32,
            note: "孪生测试".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .name;

        let own_id_number = server.register(OUTSIDE, "本县对象", 7).await.id_number;
        let cadre_id = cadre.name.trim_start_matches("cadres/").to_string();
        let opinion_id = opinion.trim_start_matches("opinionRequests/").to_string();
        let missing_id_number = id_ending_x(1);
        let mut tokens = vec![
            vec![cadre_id.clone(), same_shape(&cadre_id)],
            vec![opinion_id.clone(), same_shape(&opinion_id)],
            vec![
                id.clone(),
                missing_id_number.clone(),
                id.to_ascii_lowercase(),
                missing_id_number.to_ascii_lowercase(),
            ],
        ];
        for (_, r) in &records {
            let rid = r.name.rsplit('/').next().unwrap().to_string();
            tokens.push(vec![rid.clone(), same_shape(&rid)]);
        }
        for t in &tokens {
            assert!(t.iter().all(|s| s.len() == t[0].len()) && t[0] != t[1]);
        }
        Fixture {
            server,
            missing_cadre: format!("cadres/{}", same_shape(&cadre_id)),
            cadre,
            records,
            missing_opinion: format!("opinionRequests/{}", same_shape(&opinion_id)),
            opinion,
            id_number: id,
            missing_id_number,
            own_id_number,
            tokens,
        }
    }

    fn missing_record(&self, real: &str) -> String {
        let (c, r) = cadrex::domain::records::parse_record_name(real).unwrap();
        format!("cadres/{}/records/{}", same_shape(&c), same_shape(&r))
    }

    /// Replaces every real and missing token by the same placeholder.
    fn normalize(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (i, spellings) in self.tokens.iter().enumerate() {
            let placeholder = format!("<T{i}>");
            for s in spellings {
                out = replace_bytes(&out, s.as_bytes(), placeholder.as_bytes());
            }
        }
        out
    }

    fn normalize_str(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.normalize(s.as_bytes())).into_owned()
    }

    /// The twin cases of `method` for a caller of `agency`, or `None` when the
    /// test does not know the method.
    fn twins(&self, method: &str, agency: &str) -> Option<Vec<Twin>> {
        let mut out = Vec::new();
        let mut pair = |label: &str, real: Vec<u8>, missing: Vec<u8>| {
            let sides = if label.starts_with("X vs x") {
                ["X", "x"]
            } else {
                ["real", "missing"]
            };
            out.push(Twin {
                label: label.to_string(),
                sides,
                real,
                missing,
            })
        };
        let real_cadre = self.cadre.name.clone();
        let missing_cadre = self.missing_cadre.clone();
        let cadres = [real_cadre.clone(), missing_cadre.clone()];
        let ids = [self.id_number.clone(), self.missing_id_number.clone()];
        let lower_ids = [
            self.id_number.to_ascii_lowercase(),
            self.missing_id_number.to_ascii_lowercase(),
        ];
        let opinions = [self.opinion.clone(), self.missing_opinion.clone()];
        let both = |f: &dyn Fn(usize) -> Vec<u8>| (f(0), f(1));
        // The same registered number spelled with `X` and with `x` is one
        // person (DESIGN §1): at the caller's own division, both spellings of
        // the real number form a twin too.
        let spellings = [self.id_number.clone(), self.id_number.to_ascii_lowercase()];
        let create_at = |division: &str, id: &str| proto::CreateCadreRequest {
            cadre: Some({
                let mut c = new_cadre("孪生新建", division, 400);
                c.id_number = id.to_string();
                c
            }),
            request_id: String::new(),
        };
        let create = |id: &str| create_at("360821", id);
        let own_kind = match agency {
            "discipline" => 0,
            "organization" => 4,
            "audit" => 7,
            _ => 9,
        };
        let submit = |by_id: Option<&str>, by_name: Option<&str>, source: &str| {
            let (payload, _) = crate::common::baseline_payload(own_kind, &self.records[0].1.name);
            proto::SubmitRecordRequest {
                record: Some(proto::Record {
                    cadre: by_name.unwrap_or_default().to_string(),
                    cadre_id_number: by_id.unwrap_or_default().to_string(),
                    source_record_id: source.to_string(),
                    source_version: 1,
                    classification: proto::Classification::Internal as i32,
                    payload: Some(payload),
                    ..Default::default()
                }),
                request_id: String::new(),
                validate_only: false,
            }
        };
        match method {
            "CadreService/CreateCadre" => {
                let (a, b) = both(&|i| create(&ids[i]).encode_to_vec());
                pair("id_number", a, b);
                let (a, b) = both(&|i| create(&lower_ids[i]).encode_to_vec());
                pair("lowercase id_number", a, b);
                let (a, b) = both(&|i| create_at(OUTSIDE, &spellings[i]).encode_to_vec());
                pair("X vs x, at the caller's division", a, b);
            }
            "CadreService/BatchCreateCadres" => {
                for (label, set) in [("id_number", &ids), ("lowercase id_number", &lower_ids)] {
                    let (a, b) = both(&|i| {
                        proto::BatchCreateCadresRequest {
                            requests: vec![create(&set[i])],
                            request_id: String::new(),
                            validate_only: false,
                        }
                        .encode_to_vec()
                    });
                    pair(label, a, b);
                }
                let (a, b) = both(&|i| {
                    proto::BatchCreateCadresRequest {
                        requests: vec![create_at(OUTSIDE, &spellings[i])],
                        request_id: String::new(),
                        validate_only: false,
                    }
                    .encode_to_vec()
                });
                pair("X vs x, at the caller's division", a, b);
            }
            "CadreService/GetCadre" => {
                let (a, b) = both(&|i| {
                    proto::GetCadreRequest {
                        name: cadres[i].clone(),
                    }
                    .encode_to_vec()
                });
                pair("name", a, b);
            }
            "CadreService/UpdateCadre" => {
                let (a, b) = both(&|i| {
                    proto::UpdateCadreRequest {
                        cadre: Some(proto::Cadre {
                            name: cadres[i].clone(),
                            display_name: "改名".into(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["display_name".into()],
                        }),
                    }
                    .encode_to_vec()
                });
                pair("name", a, b);
            }
            "CadreService/LookupCadre" => {
                let sets = [
                    ("id_number", &ids),
                    ("lowercase id_number", &lower_ids),
                    ("X vs x", &spellings),
                ];
                for (label, set) in sets {
                    let (a, b) = both(&|i| {
                        proto::LookupCadreRequest {
                            id_number: set[i].clone(),
                        }
                        .encode_to_vec()
                    });
                    pair(label, a, b);
                }
            }
            "RecordService/SubmitRecord" => {
                let (a, b) = both(&|i| submit(Some(&ids[i]), None, "TWIN-ID").encode_to_vec());
                pair("cadre_id_number", a, b);
                let (a, b) =
                    both(&|i| submit(Some(&lower_ids[i]), None, "TWIN-LC").encode_to_vec());
                pair("lowercase cadre_id_number", a, b);
                let (a, b) =
                    both(&|i| submit(Some(&spellings[i]), None, "TWIN-XX").encode_to_vec());
                pair("X vs x cadre_id_number", a, b);
                let (a, b) = both(&|i| submit(None, Some(&cadres[i]), "TWIN-NAME").encode_to_vec());
                pair("cadre", a, b);
            }
            "RecordService/BatchSubmitRecords" => {
                let (a, b) = both(&|i| {
                    proto::BatchSubmitRecordsRequest {
                        requests: vec![submit(Some(&ids[i]), None, "TWIN-BID")],
                        request_id: String::new(),
                        validate_only: false,
                    }
                    .encode_to_vec()
                });
                pair("cadre_id_number", a, b);
                let (a, b) = both(&|i| {
                    proto::BatchSubmitRecordsRequest {
                        requests: vec![submit(None, Some(&cadres[i]), "TWIN-BNAME")],
                        request_id: String::new(),
                        validate_only: false,
                    }
                    .encode_to_vec()
                });
                pair("cadre", a, b);
                // Beside an item the caller may write: the call succeeds, so
                // its row names the caller's own cadre and its discipline
                // commission reads it in full; the refused twin item must
                // leave no trace there either.
                let own = self.own_id_number.clone();
                let (a, b) = both(&|i| {
                    proto::BatchSubmitRecordsRequest {
                        requests: vec![
                            submit(Some(&own), None, &format!("TWIN-OWN-{agency}")),
                            submit(Some(&ids[i]), None, "TWIN-BMIX"),
                        ],
                        request_id: String::new(),
                        validate_only: false,
                    }
                    .encode_to_vec()
                });
                pair("cadre_id_number beside an own cadre", a, b);
            }
            "RecordService/GetRecord" => {
                for (kind, r) in &self.records {
                    let names = [r.name.clone(), self.missing_record(&r.name)];
                    let (a, b) = both(&|i| {
                        proto::GetRecordRequest {
                            name: names[i].clone(),
                        }
                        .encode_to_vec()
                    });
                    pair(kind, a, b);
                }
            }
            "RecordService/RetractRecord" => {
                for (kind, r) in &self.records {
                    let names = [r.name.clone(), self.missing_record(&r.name)];
                    let (a, b) = both(&|i| {
                        proto::RetractRecordRequest {
                            name: names[i].clone(),
                            reason: "撤回".into(),
                            etag: String::new(),
                        }
                        .encode_to_vec()
                    });
                    pair(kind, a, b);
                }
            }
            "RecordService/ListRecords" => {
                let (a, b) = both(&|i| {
                    proto::ListRecordsRequest {
                        parent: cadres[i].clone(),
                        page_size: 50,
                        ..Default::default()
                    }
                    .encode_to_vec()
                });
                pair("parent", a, b);
            }
            "OpinionService/CreateOpinionRequest" => {
                let (a, b) = both(&|i| {
                    proto::CreateOpinionRequestRequest {
                        cadres: vec![cadres[i].clone()],
                        purpose: proto::OpinionPurpose::Promotion as i32,
                        ..Default::default()
                    }
                    .encode_to_vec()
                });
                pair("cadres", a, b);
            }
            "OpinionService/GetOpinionRequest" => {
                let (a, b) = both(&|i| {
                    proto::GetOpinionRequestRequest {
                        name: opinions[i].clone(),
                    }
                    .encode_to_vec()
                });
                pair("name", a, b);
            }
            "OpinionService/WithdrawOpinionRequest" => {
                let (a, b) = both(&|i| {
                    proto::WithdrawOpinionRequestRequest {
                        name: opinions[i].clone(),
                        reason: "撤回".into(),
                    }
                    .encode_to_vec()
                });
                pair("name", a, b);
            }
            "OpinionService/DraftOpinion" => {
                let (a, b) = both(&|i| {
                    proto::DraftOpinionRequest {
                        name: opinions[i].clone(),
                        cadre: cadres[i].clone(),
                        as_of_date: String::new(),
                    }
                    .encode_to_vec()
                });
                pair("name and cadre", a, b);
            }
            "OpinionService/ReplyOpinion" => {
                let (a, b) = both(&|i| {
                    proto::ReplyOpinionRequest {
                        name: opinions[i].clone(),
                        cadre: cadres[i].clone(),
                        verdict: proto::Verdict::NoIssue as i32,
                        text: "未发现问题".into(),
                        signer: "某某".into(),
                        ..Default::default()
                    }
                    .encode_to_vec()
                });
                pair("name and cadre", a, b);
            }
            "OpinionService/GetVettingReadiness" => {
                let (a, b) = both(&|i| {
                    proto::GetVettingReadinessRequest {
                        name: opinions[i].clone(),
                        cadre: cadres[i].clone(),
                    }
                    .encode_to_vec()
                });
                pair("name and cadre", a, b);
            }
            "DossierService/GetCadreDossier" => {
                let purpose = match agency {
                    "organization" => proto::Purpose::AppointmentVetting,
                    "discipline" => proto::Purpose::CaseHandling,
                    "audit" => proto::Purpose::AuditPlanning,
                    _ => proto::Purpose::PetitionHandling,
                } as i32;
                let (a, b) = both(&|i| {
                    proto::GetCadreDossierRequest {
                        cadre: cadres[i].clone(),
                        purpose,
                        opinion_request: String::new(),
                    }
                    .encode_to_vec()
                });
                pair("cadre", a, b);
                let (a, b) = both(&|i| {
                    proto::GetCadreDossierRequest {
                        cadre: cadres[i].clone(),
                        purpose,
                        opinion_request: opinions[i].clone(),
                    }
                    .encode_to_vec()
                });
                pair("cadre and opinion_request", a, b);
            }
            "AccessLogService/ListAccessEvents" => {
                let (a, b) = both(&|i| {
                    proto::ListAccessEventsRequest {
                        cadre: cadres[i].clone(),
                        page_size: 100,
                        ..Default::default()
                    }
                    .encode_to_vec()
                });
                pair("cadre", a, b);
            }
            _ => return None,
        }
        Some(out)
    }

    /// The answer with the twin names replaced, field by field. Access events
    /// listed in an answer are other calls' rows: their seq, time and request
    /// id are set aside as for the caller's own rows.
    fn answer(
        &self,
        method: &str,
        outcome: &Result<Vec<u8>, Status>,
    ) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        match outcome {
            Ok(bytes) => {
                out.insert("code", "Ok".to_string());
                let bytes = if method == LIST_ACCESS_EVENTS {
                    let mut r = proto::ListAccessEventsResponse::decode(bytes.as_slice())
                        .expect("a ListAccessEvents answer decodes");
                    for e in &mut r.access_events {
                        e.seq = 0;
                        e.time = None;
                        e.request_id.clear();
                    }
                    r.encode_to_vec()
                } else {
                    bytes.clone()
                };
                out.insert(
                    "response bytes",
                    format!("{:?}", String::from_utf8_lossy(&self.normalize(&bytes))),
                );
            }
            Err(s) => {
                out.insert("code", format!("{:?}", s.code()));
                out.insert("message", self.normalize_str(s.message()));
                out.insert(
                    "details",
                    self.normalize_str(&format!("{:?}", s.get_error_details())),
                );
                out.insert(
                    "details bytes",
                    format!(
                        "{:?}",
                        String::from_utf8_lossy(&self.normalize(s.details()))
                    ),
                );
            }
        }
        out
    }

    /// The caller's own rows of one call, each field named, with seq, time,
    /// request id and the chain hashes set aside.
    /// The digest of a ListAccessEvents answer covers the listed rows' seq and
    /// time, so it is set aside there; the answer itself is compared above.
    fn rows(
        &self,
        method: &str,
        events: &[&proto::AccessEvent],
    ) -> Vec<BTreeMap<&'static str, String>> {
        events
            .iter()
            .map(|e| {
                let mut m = BTreeMap::new();
                let mut put = |k: &'static str, v: String| {
                    m.insert(k, self.normalize_str(&v));
                };
                put("principal", e.principal.clone());
                put("certificate_fingerprint", e.certificate_fingerprint.clone());
                put("officer", e.officer.clone());
                put("method", e.method.clone());
                put("resources", format!("{:?}", e.resources));
                put("purpose", e.purpose.clone());
                put("decision", format!("{:?}", e.decision()));
                put("policy_ids", format!("{:?}", e.policy_ids));
                put("status_code", e.status_code.to_string());
                if method != LIST_ACCESS_EVENTS {
                    put("response_sha256", e.response_sha256.clone());
                }
                m
            })
            .collect()
    }
}

fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// The fields on which two named maps differ, each with both values.
fn differences(
    a: &BTreeMap<&'static str, String>,
    b: &BTreeMap<&'static str, String>,
    sides: [&str; 2],
) -> Vec<String> {
    let keys: BTreeSet<&&str> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(**k) != b.get(**k))
        .map(|k| {
            let show = |m: &BTreeMap<&str, String>| {
                m.get(*k).map(|v| shorten(v)).unwrap_or("<absent>".into())
            };
            format!(
                "{k} differ: {} {} / {} {}",
                sides[0],
                show(a),
                sides[1],
                show(b)
            )
        })
        .collect()
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 400 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(400).collect::<String>())
    }
}

/// The twins, then each again with `validate_only` set when the method's
/// request has that field (AIP-163), found in the descriptors: a dry run must
/// not tell a real resource from a missing one either. Notes the method in
/// `dry_run_methods`.
fn with_validate_only(
    m: &RpcMethod,
    twins: Vec<Twin>,
    dry_run_methods: &mut BTreeSet<String>,
) -> Vec<Twin> {
    use prost_reflect::{DescriptorPool, DynamicMessage, Value};
    let pool = DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
    let input = pool
        .get_message_by_name(m.input.trim_start_matches('.'))
        .unwrap_or_else(|| panic!("{}: input {} in the descriptors", m.short, m.input));
    let Some(field) = input.get_field_by_name("validate_only") else {
        return twins;
    };
    dry_run_methods.insert(m.short.clone());
    let dry = |bytes: &[u8]| {
        let mut msg = DynamicMessage::decode(input.clone(), bytes).unwrap();
        msg.set_field(&field, Value::Bool(true));
        msg.encode_to_vec()
    };
    let dry_runs: Vec<Twin> = twins
        .iter()
        .map(|t| Twin {
            label: format!("{}, validate_only", t.label),
            sides: t.sides,
            real: dry(&t.real),
            missing: dry(&t.missing),
        })
        .collect();
    twins.into_iter().chain(dry_runs).collect()
}

/// One call of `path` tagged with `x-request-id`, so its row can be found.
async fn tagged(ch: &Channel, path: &str, body: Vec<u8>, tag: &str) -> Result<Vec<u8>, Status> {
    let metadata = [("x-request-id", tag.as_bytes().to_vec())];
    raw_unary(ch.clone(), path, body, &metadata).await
}

struct Sent {
    method: String,
    agency: &'static str,
    label: String,
    sides: [&'static str; 2],
    real_tag: String,
    missing_tag: String,
}

async fn outsider_sees_real_and_missing_resources_alike(backend: Backend) {
    let f = Fixture::new(backend).await;
    let methods = cadrex_methods();
    let known: BTreeSet<&str> = methods.iter().map(|m| m.short.as_str()).collect();
    let stale: Vec<&str> = NO_RESOURCE
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| !known.contains(m))
        .collect();
    assert!(
        stale.is_empty(),
        "NO_RESOURCE names methods the descriptors no longer have: {stale:?}"
    );

    let mut channels: BTreeMap<&str, Channel> = BTreeMap::new();
    for a in agencies() {
        channels.insert(a, f.server.channel(a, OUTSIDE).await);
    }

    let mut uncovered = Vec::new();
    let mut failures = Vec::new();
    let mut sent = Vec::new();
    let mut dry_run_methods = BTreeSet::new();
    // ListAccessEvents goes first: before any other twin call has named the
    // resources, the caller's own rows about them are none, real or missing.
    let mut ordered: Vec<&RpcMethod> = methods.iter().collect();
    ordered.sort_by_key(|m| m.short != "AccessLogService/ListAccessEvents");
    let mut seq = 0;
    for m in ordered {
        let RpcMethod {
            short,
            path,
            server_streaming,
            client_streaming,
            ..
        } = m;
        if NO_RESOURCE.iter().any(|(m, _)| m == short) {
            continue;
        }
        for agency in agencies() {
            let Some(twins) = f.twins(short, agency) else {
                uncovered.push(short.clone());
                break;
            };
            let twins = with_validate_only(m, twins, &mut dry_run_methods);
            assert!(
                !server_streaming && !client_streaming,
                "{short}: streaming methods need a streaming twin call"
            );
            for twin in twins {
                seq += 1;
                let real_tag = format!("twin-{seq}-real");
                let missing_tag = format!("twin-{seq}-missing");
                let ch = &channels[agency];
                let real = tagged(ch, path, twin.real, &real_tag).await;
                let missing = tagged(ch, path, twin.missing, &missing_tag).await;
                for d in differences(
                    &f.answer(short, &real),
                    &f.answer(short, &missing),
                    twin.sides,
                ) {
                    failures.push(format!(
                        "{short} [{}], {agency}-{OUTSIDE}: answer {d}",
                        twin.label
                    ));
                }
                sent.push(Sent {
                    method: short.clone(),
                    agency,
                    label: twin.label,
                    sides: twin.sides,
                    real_tag,
                    missing_tag,
                });
            }
        }
    }

    // Each caller reads back its own rows once, after every call is durable.
    let mut by_agency = BTreeMap::new();
    for a in agencies() {
        by_agency.insert(a, own_access_events(channels[a].clone()).await);
    }
    let mut checked = 0;
    for s in &sent {
        let events = &by_agency[s.agency];
        let of = |tag: &str| -> Vec<&proto::AccessEvent> {
            events.iter().filter(|e| e.request_id == tag).collect()
        };
        let (real, missing) = (
            f.rows(&s.method, &of(&s.real_tag)),
            f.rows(&s.method, &of(&s.missing_tag)),
        );
        checked += real.len() + missing.len();
        let where_ = format!("{} [{}], {}-{OUTSIDE}", s.method, s.label, s.agency);
        if real.is_empty() {
            // DESIGN §3: every RPC that touches cadre data, allowed or denied, appends a row.
            failures.push(format!(
                "{where_}: no own access-log row for the {} name",
                s.sides[0]
            ));
        }
        if real.len() != missing.len() {
            failures.push(format!(
                "{where_}: {} own access-log rows for the {} name, {} for the {} one",
                real.len(),
                s.sides[0],
                missing.len(),
                s.sides[1]
            ));
            continue;
        }
        for (a, b) in real.iter().zip(&missing) {
            for d in differences(a, b, s.sides) {
                failures.push(format!("{where_}: ListAccessEvents {d}"));
            }
        }
    }
    eprintln!(
        "twins: {} calls, {checked} own access-log rows compared, {} failures",
        sent.len() * 2,
        failures.len()
    );
    assert!(
        uncovered.is_empty(),
        "methods with neither a twin case nor a NO_RESOURCE entry: {uncovered:?}"
    );
    assert!(checked > 0, "no own access-log rows were read back");
    // Submits and batch creates take validate_only (AIP-163); if the field
    // went missing from them, the dry-run twins would silently vanish.
    for m in [
        "RecordService/SubmitRecord",
        "RecordService/BatchSubmitRecords",
        "CadreService/BatchCreateCadres",
    ] {
        assert!(
            dry_run_methods.contains(m),
            "{m} was not sent with validate_only: {dry_run_methods:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} twin differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
