//! Poison isolation: values a store refuses, in every string field of every request message and in the metadata, never fail another system's calls nor cost them their access-log row.
//!
//! The string fields come from the served descriptors: each method's input
//! message is walked (nested messages and every `oneof` variant included) and
//! each string field is set in turn, by hand at the wire level, on top of a
//! valid baseline request. Meanwhile another system runs a steady load of
//! `GetCadre` calls, each tagged with `x-request-id` so its row can be found.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cadrex::proto;
use prost::Message;
use prost::encoding::{WireType, decode_varint};
use prost_types::field_descriptor_proto::Type;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::both_backends;
use crate::common::wire::{get_path, has_parents, parse, set_path};
use crate::common::{
    Backend, RpcMethod, TestServer, cadrex_methods, descriptor_set, message_type, new_cadre,
    own_access_events, raw_call, raw_unary, server_log,
};
use crate::common::{DOCUMENTED, baseline_payload};

both_backends!(store_refused_values_in_every_string_field_fail_only_their_own_call);

/// Concurrent `GetCadre` loops of the bystander system.
const LOAD_LOOPS: usize = 8;
/// Poisoning calls in flight at once, so they share group-commit batches with the load.
const POISON_WORKERS: usize = 4;
/// Nesting depth of the walk over input messages (Batch → Submit → Record → payload → field).
const MAX_DEPTH: usize = 6;

/// A field path of numbers and of names, e.g. `[1, 28, 9, 1]` and `record.petition.informant.name`.
#[derive(Clone, Debug)]
struct FieldPath {
    numbers: Vec<u32>,
    names: String,
}

/// Every string field reachable from message `type_name`.
fn string_paths(set: &prost_types::FileDescriptorSet, type_name: &str) -> Vec<FieldPath> {
    fn walk(
        set: &prost_types::FileDescriptorSet,
        type_name: &str,
        prefix: &FieldPath,
        on_path: &mut Vec<String>,
        out: &mut Vec<FieldPath>,
    ) {
        let Some(msg) = message_type(set, type_name) else {
            return;
        };
        if on_path.len() >= MAX_DEPTH || on_path.iter().any(|t| t == type_name) {
            return;
        }
        on_path.push(type_name.to_string());
        for field in &msg.field {
            let mut p = prefix.clone();
            p.numbers.push(field.number() as u32);
            if !p.names.is_empty() {
                p.names.push('.');
            }
            p.names.push_str(field.name());
            match field.r#type() {
                Type::String => out.push(p),
                Type::Message => walk(set, field.type_name(), &p, on_path, out),
                _ => {}
            }
        }
        on_path.pop();
    }
    let mut out = Vec::new();
    let root = FieldPath {
        numbers: Vec::new(),
        names: String::new(),
    };
    walk(set, type_name, &root, &mut Vec::new(), &mut out);
    out
}

/// The codes of every `cadrex.v1.ItemError` inside an encoded `type_name`:
/// a batch answers OK and refuses its items one by one.
fn item_error_codes(set: &prost_types::FileDescriptorSet, type_name: &str, msg: &[u8]) -> Vec<i32> {
    let mut out = Vec::new();
    let Some(desc) = message_type(set, type_name) else {
        return out;
    };
    for f in parse(msg) {
        if f.wire != WireType::LengthDelimited {
            continue;
        }
        let Some(field) = desc.field.iter().find(|d| d.number() as u32 == f.number) else {
            continue;
        };
        if field.r#type() != Type::Message {
            continue;
        }
        let inner = &f.raw[f.value_at..];
        if field.type_name() == ".cadrex.v1.ItemError" {
            let code = parse(inner)
                .iter()
                .find(|g| g.number == 1 && g.wire == WireType::Varint)
                .map(|g| decode_varint(&mut &g.raw[g.value_at..]).unwrap() as i32)
                .unwrap_or(0);
            out.push(code);
        } else {
            out.extend(item_error_codes(set, field.type_name(), inner));
        }
    }
    out
}

/// A valid request of one method and the home-county agency that sends it.
struct Baseline {
    agency: &'static str,
    body: Vec<u8>,
}

struct Fixture {
    server: TestServer,
    cadre: proto::Cadre,
    baselines: BTreeMap<&'static str, Vec<Baseline>>,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let server = TestServer::spawn(backend).await;
        let cadre = crate::common::cadre(&server, 1).await;
        let target = crate::common::cadre(&server, 2).await;
        let records = crate::common::one_of_each_kind(&server, &cadre, "POISON-CANARY").await;
        let org = server.channel("organization", "360821").await;
        let mut opinions = Vec::new();
        for _ in 0..2 {
            opinions.push(
                proto::opinion_service_client::OpinionServiceClient::new(org.clone())
                    .create_opinion_request(proto::CreateOpinionRequestRequest {
                        cadres: vec![cadre.name.clone()],
                        purpose: proto::OpinionPurpose::Promotion as i32,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .name,
            );
        }
        let petition = records["PETITION"].name.clone();
        let sanction = records["SANCTION"].name.clone();
        let evaluation = records["EVALUATION"].name.clone();

        let mut b: BTreeMap<&'static str, Vec<Baseline>> = BTreeMap::new();
        let mut put = |method: &'static str, agency: &'static str, m: &dyn DynEncode| {
            b.entry(method).or_default().push(Baseline {
                agency,
                body: m.encode_dyn(),
            });
        };
        put(
            "SystemService/WhoAmI",
            "organization",
            &proto::WhoAmIRequest {},
        );
        put(
            "SystemService/AllowedMethods",
            "organization",
            &proto::AllowedMethodsRequest {},
        );
        let create = proto::CreateCadreRequest {
            cadre: Some(new_cadre("新任干部", "360821", 300)),
            request_id: String::new(),
        };
        put("CadreService/CreateCadre", "organization", &create);
        put(
            "CadreService/BatchCreateCadres",
            "organization",
            &proto::BatchCreateCadresRequest {
                requests: vec![proto::CreateCadreRequest {
                    cadre: Some(new_cadre("批量干部", "360821", 301)),
                    request_id: String::new(),
                }],
                request_id: String::new(),
                validate_only: false,
            },
        );
        put(
            "CadreService/GetCadre",
            "organization",
            &proto::GetCadreRequest {
                name: cadre.name.clone(),
            },
        );
        put(
            "CadreService/UpdateCadre",
            "organization",
            &proto::UpdateCadreRequest {
                cadre: Some(proto::Cadre {
                    name: target.name.clone(),
                    display_name: "改名干部".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["display_name".into()],
                }),
            },
        );
        put(
            "CadreService/ListCadres",
            "organization",
            &proto::ListCadresRequest {
                page_size: 5,
                page_token: String::new(),
                filter: "display_name = \"记录对象\"".into(),
                include_past_posts: false,
            },
        );
        put(
            "CadreService/LookupCadre",
            "discipline",
            &proto::LookupCadreRequest {
                id_number: cadre.id_number.clone(),
            },
        );
        // One baseline per payload kind, so a field of any variant is set on a
        // record that is otherwise valid for its owner.
        for kind in 0..10 {
            let (payload, owner) = baseline_payload(kind, &petition);
            let submit = proto::SubmitRecordRequest {
                record: Some(proto::Record {
                    cadre_id_number: cadre.id_number.clone(),
                    source_record_id: format!("POISON-{kind}"),
                    source_version: 1,
                    classification: proto::Classification::Internal as i32,
                    payload: Some(payload),
                    ..Default::default()
                }),
                request_id: String::new(),
                validate_only: false,
            };
            put("RecordService/SubmitRecord", owner, &submit);
            put(
                "RecordService/BatchSubmitRecords",
                owner,
                &proto::BatchSubmitRecordsRequest {
                    requests: vec![submit],
                    request_id: String::new(),
                    validate_only: false,
                },
            );
        }
        put(
            "RecordService/GetRecord",
            "discipline",
            &proto::GetRecordRequest {
                name: sanction.clone(),
            },
        );
        put(
            "RecordService/ListRecords",
            "discipline",
            &proto::ListRecordsRequest {
                parent: cadre.name.clone(),
                page_size: 5,
                page_token: String::new(),
                filter: "kind = \"SANCTION\"".into(),
            },
        );
        put(
            "RecordService/RetractRecord",
            "organization",
            &proto::RetractRecordRequest {
                name: evaluation,
                reason: "录入错误".into(),
                etag: String::new(),
            },
        );
        put(
            "OpinionService/CreateOpinionRequest",
            "organization",
            &proto::CreateOpinionRequestRequest {
                cadres: vec![cadre.name.clone()],
                purpose: proto::OpinionPurpose::Promotion as i32,
                due_date: "2099-01-01".into(),
                note: "拟提拔".into(),
                request_id: String::new(),
            },
        );
        put(
            "OpinionService/GetOpinionRequest",
            "organization",
            &proto::GetOpinionRequestRequest {
                name: opinions[0].clone(),
            },
        );
        put(
            "OpinionService/ListOpinionRequests",
            "organization",
            &proto::ListOpinionRequestsRequest {
                page_size: 5,
                page_token: String::new(),
                filter: "state = \"PENDING\"".into(),
            },
        );
        put(
            "OpinionService/WithdrawOpinionRequest",
            "organization",
            &proto::WithdrawOpinionRequestRequest {
                name: opinions[1].clone(),
                reason: "人选调整".into(),
            },
        );
        put(
            "OpinionService/DraftOpinion",
            "discipline",
            &proto::DraftOpinionRequest {
                name: opinions[0].clone(),
                cadre: cadre.name.clone(),
                as_of_date: "2025-06-01".into(),
            },
        );
        put(
            "OpinionService/ReplyOpinion",
            "discipline",
            &proto::ReplyOpinionRequest {
                name: opinions[0].clone(),
                cadre: cadre.name.clone(),
                verdict: proto::Verdict::IssueNotBlocking as i32,
                text: "有轻微问题".into(),
                cited_records: vec![sanction],
                signer: "某某".into(),
                as_of_time: None,
                correction_reason: String::new(),
                deviation_reason: "处分影响期已届满，经集体研究".into(),
                request_id: String::new(),
            },
        );
        put(
            "DossierService/GetCadreDossier",
            "discipline",
            &proto::GetCadreDossierRequest {
                cadre: cadre.name.clone(),
                purpose: proto::Purpose::CaseHandling as i32,
                opinion_request: String::new(),
            },
        );
        put(
            "DossierService/GetCadreDossier",
            "organization",
            &proto::GetCadreDossierRequest {
                cadre: cadre.name.clone(),
                purpose: proto::Purpose::AppointmentVetting as i32,
                opinion_request: opinions[0].clone(),
            },
        );
        put(
            "OpinionService/GetVettingReadiness",
            "organization",
            &proto::GetVettingReadinessRequest {
                name: opinions[0].clone(),
                cadre: cadre.name.clone(),
            },
        );
        put(
            "DossierService/ListAuditCandidates",
            "audit",
            &proto::ListAuditCandidatesRequest {
                page_size: 5,
                page_token: String::new(),
            },
        );
        put(
            "ChangeFeedService/ListChanges",
            "discipline",
            &proto::ListChangesRequest {
                after_cursor: String::new(),
                kinds: Vec::new(),
                page_size: 5,
            },
        );
        put(
            "ChangeFeedService/WatchChanges",
            "discipline",
            &proto::WatchChangesRequest {
                after_cursor: String::new(),
                kinds: Vec::new(),
            },
        );
        put(
            "AccessLogService/ListAccessEvents",
            "discipline",
            &proto::ListAccessEventsRequest {
                page_size: 5,
                cadre: cadre.name.clone(),
                principal: "urn:cadrex:system:audit:360821:audit-mis".into(),
                method: "/cadrex.v1.CadreService/GetCadre".into(),
                ..Default::default()
            },
        );
        put(
            "AccessLogService/GetCheckpoint",
            "discipline",
            &proto::GetCheckpointRequest {},
        );
        put(
            "AccessLogService/VerifyAccessLog",
            "discipline",
            &proto::VerifyAccessLogRequest { full: false },
        );
        Fixture {
            server,
            cadre,
            baselines: b,
        }
    }
}

/// The single text column of every row `sql` returns, read directly from the store.
async fn text_rows(url: &str, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let sql = || sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql())
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql())
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }
}

/// Encodes any request message behind one trait object.
trait DynEncode {
    fn encode_dyn(&self) -> Vec<u8>;
}

impl<M: Message> DynEncode for M {
    fn encode_dyn(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

/// One poisoning call: where the value went, which system sends it, and the request.
#[derive(Clone)]
struct Poison {
    what: String,
    agency: &'static str,
    path: String,
    /// The response type, searched for the item errors of a batch.
    output: String,
    server_streaming: bool,
    body: Vec<u8>,
    metadata: Vec<(&'static str, Vec<u8>)>,
}

/// Sends one call and returns the response bytes (none when a stream opened) or the status.
async fn send(channel: Channel, p: &Poison) -> Result<Vec<u8>, Status> {
    let method = RpcMethod {
        path: p.path.clone(),
        short: String::new(),
        input: String::new(),
        output: p.output.clone(),
        server_streaming: p.server_streaming,
        client_streaming: false,
    };
    raw_call(channel, &method, p.body.clone(), &p.metadata).await
}

async fn store_refused_values_in_every_string_field_fail_only_their_own_call(backend: Backend) {
    let started = Instant::now();
    let f = Fixture::new(backend).await;
    let set = descriptor_set();
    let methods = cadrex_methods();

    let known: BTreeSet<&str> = methods.iter().map(|m| m.short.as_str()).collect();
    let unknown: Vec<&&str> = f
        .baselines
        .keys()
        .filter(|m| !known.contains(**m))
        .collect();
    assert!(
        unknown.is_empty(),
        "baselines for methods the descriptors no longer have: {unknown:?}"
    );
    let values: [(&str, Vec<u8>); 2] = [
        ("NUL", "甲\0乙".as_bytes().to_vec()),
        ("1 MB", "x".repeat(1 << 20).into_bytes()),
    ];
    // Header values cannot carry NUL: over-long, non-UTF-8 and an encoded NUL instead.
    let header_values: [(&str, Vec<u8>); 3] = [
        ("8 KB", b"x".repeat(8 << 10)),
        ("non-UTF-8", b"\xff\xfe\x80officer".to_vec()),
        ("%00", b"a%00b".to_vec()),
    ];

    let mut poisons = Vec::new();
    let mut without_baseline = Vec::new();
    let mut fields = 0;
    for m in &methods {
        let Some(baselines) = f.baselines.get(m.short.as_str()) else {
            without_baseline.push(m.short.clone());
            continue;
        };
        for path in string_paths(&set, &m.input) {
            fields += 1;
            let base = baselines
                .iter()
                .find(|b| has_parents(&b.body, &path.numbers))
                .unwrap_or(&baselines[0]);
            // The baseline's own value with a NUL inside gets past prefix and
            // shape checks that a bare NUL would fail.
            let mut variants: Vec<(&str, Vec<u8>, &Baseline)> =
                values.iter().map(|(l, v)| (*l, v.clone(), base)).collect();
            let with_value = baselines.iter().find_map(|b| {
                get_path(&b.body, &path.numbers)
                    .filter(|v| !v.is_empty())
                    .map(|v| (v, b))
            });
            if let Some((valid, base)) = with_value {
                let mut v = valid.clone();
                v.push(0);
                variants.push(("valid+NUL", v, base));
                let mut v = valid;
                v.extend(std::iter::repeat_n(b'7', 1 << 20));
                variants.push(("valid+1 MB", v, base));
            }
            for (label, value, base) in &variants {
                poisons.push(Poison {
                    what: format!("{} {} [{label}]", m.short, path.names),
                    agency: base.agency,
                    path: m.path.clone(),
                    output: m.output.clone(),
                    server_streaming: m.server_streaming,
                    body: set_path(&base.body, &path.numbers, value),
                    metadata: Vec::new(),
                });
            }
        }
        let base = &baselines[0];
        for header in ["x-cadrex-officer", "x-request-id"] {
            for (label, value) in &header_values {
                poisons.push(Poison {
                    what: format!("{} {header} [{label}]", m.short),
                    agency: base.agency,
                    path: m.path.clone(),
                    output: m.output.clone(),
                    server_streaming: m.server_streaming,
                    body: base.body.clone(),
                    metadata: vec![(header, value.clone())],
                });
            }
        }
    }
    assert!(
        without_baseline.is_empty(),
        "methods with no baseline request: {without_baseline:?}"
    );

    // The bystander: a province system reading a county cadre, tagged per call.
    let done = Arc::new(AtomicBool::new(false));
    let bystander = f.server.channel("organization", "360000").await;
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..LOAD_LOOPS {
        let (done, ch, name) = (done.clone(), bystander.clone(), f.cadre.name.clone());
        load.spawn(async move {
            let mut tags = Vec::new();
            let mut errors = Vec::new();
            let mut n = 0;
            while !done.load(Ordering::Relaxed) || n < 5 {
                n += 1;
                let tag = format!("bystander-{worker}-{n}");
                let body = proto::GetCadreRequest { name: name.clone() }.encode_to_vec();
                let path = "/cadrex.v1.CadreService/GetCadre";
                if let Err(s) = raw_unary(
                    ch.clone(),
                    path,
                    body,
                    &[("x-request-id", tag.clone().into_bytes())],
                )
                .await
                {
                    errors.push(format!("{tag}: {:?} {}", s.code(), s.message()));
                }
                tags.push(tag);
            }
            (tags, errors)
        });
    }

    let mut channels = BTreeMap::new();
    for a in ["organization", "discipline", "audit", "petition"] {
        channels.insert(a, f.server.channel(a, "360821").await);
    }
    let queue = Arc::new(std::sync::Mutex::new(poisons.clone()));
    let set = Arc::new(set);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..POISON_WORKERS {
        let (queue, channels, set) = (queue.clone(), channels.clone(), set.clone());
        workers.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let Some(p) = queue.lock().unwrap().pop() else {
                    return seen;
                };
                // A refused call, or a batch that answered OK with refused items.
                let refusal = match send(channels[p.agency].clone(), &p).await {
                    Err(s) => Some((s.code(), s.message().to_string())),
                    Ok(bytes) => item_error_codes(&set, &p.output, &bytes)
                        .into_iter()
                        .find(|c| *c != 0)
                        .map(|c| (Code::from_i32(c), "batch item".to_string())),
                };
                seen.push((p.what, refusal));
            }
        });
    }
    let mut outcomes = Vec::new();
    while let Some(r) = workers.join_next().await {
        outcomes.extend(r.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    let mut tags = Vec::new();
    let mut bystander_errors = Vec::new();
    while let Some(r) = load.join_next().await {
        let (t, e) = r.unwrap();
        tags.extend(t);
        bystander_errors.extend(e);
    }

    let mut failures = Vec::new();
    let mut codes: BTreeMap<String, u32> = BTreeMap::new();
    for (what, err) in &outcomes {
        let code = err.as_ref().map(|e| e.0).unwrap_or(Code::Ok);
        *codes.entry(format!("{code:?}")).or_default() += 1;
        if code != Code::Ok && !DOCUMENTED.contains(&code) {
            let msg = err.as_ref().map(|e| e.1.as_str()).unwrap_or_default();
            failures.push(format!(
                "poison {what}: answered {code:?} ({})",
                msg.chars().take(200).collect::<String>()
            ));
        }
    }
    for e in &bystander_errors {
        failures.push(format!("bystander call failed: {e}"));
    }
    let rows = own_access_events(bystander.clone()).await;
    let mut per_tag: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *per_tag.entry(r.request_id.as_str()).or_default() += 1;
    }
    let unlogged: Vec<&String> = tags
        .iter()
        .filter(|t| per_tag.get(t.as_str()).copied().unwrap_or(0) != 1)
        .collect();
    if !unlogged.is_empty() {
        failures.push(format!(
            "{} of {} bystander calls do not have exactly one access-log row, e.g. {:?}",
            unlogged.len(),
            tags.len(),
            &unlogged[..unlogged.len().min(5)]
        ));
    }

    // Only validated names enter the log (DESIGN §3): a poison value is never
    // stored verbatim, only sanitized to its length and digest.
    let mut verbatim = "SELECT method || ' ' || principal || ' resources ' || length(resources) \
         || ' chars, officer ' || length(officer) || ' chars' FROM access_log \
         WHERE length(resources) > 4096 \
         OR length(officer) > 4096 OR length(request_id) > 4096 OR length(purpose) > 4096 \
         OR resources LIKE '%\\u0000%' OR officer LIKE '%\\u0000%'"
        .to_string();
    if backend == Backend::Sqlite {
        verbatim.push_str(" OR instr(resources, char(0)) > 0 OR instr(officer, char(0)) > 0");
    }
    for row in text_rows(&f.server.store_url, &verbatim).await {
        failures.push(format!(
            "access-log row holds a poison value (NUL or over 4 KiB) verbatim: {row}"
        ));
    }

    let health = tonic_health::pb::health_client::HealthClient::new(bystander.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status);
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    if !health.as_ref().is_ok_and(|s| *s == serving) {
        failures.push(format!("server not serving afterwards: {health:?}"));
    }
    if server_log().text().contains("panicked") {
        failures.push("a panic was logged".into());
    }
    eprintln!(
        "poison_all ({backend:?}): {fields} string fields, {} poisoning calls {codes:?}, \
         {} bystander calls, {:.1} s",
        outcomes.len(),
        tags.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(tags.len() > LOAD_LOOPS * 5, "the load did not run");
    assert!(
        failures.is_empty(),
        "{} poison isolation failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
