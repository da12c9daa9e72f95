//! Property tests over every request message: random and boundary values get only documented status codes, never change stored data when refused, and never crash the server.
//!
//! Values come from proptest strategies with a fixed seed and fixed case counts
//! (no shrinking: each case is awaited directly against one real server per
//! test, and a failure prints the whole request instead). Each strategy mixes a
//! valid baseline built from real fixture data with hostile values, so calls get
//! past the first check and deep into validation.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use cadrex::proto::{self, record::Payload};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::{BoxedStrategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, credit_code, id_number, new_cadre, server_log};
use crate::common::{DOCUMENTED, baseline_payload};
use crate::common::{cadre, one_of_each_kind};

both_backends!(
    system_and_cadre_requests,
    record_requests,
    feed_and_access_log_requests,
    opinion_and_dossier_requests,
    nul_in_every_free_text_field,
);

/// Tables whose content a refused call must leave alone; the access log
/// (`access_log*`, `log_checkpoints`) and `meta` (verification bookkeeping)
/// are meant to change.
const DATA_TABLES: [&str; 9] = [
    "cadres",
    "request_ids",
    "change_counter",
    "changes",
    "records",
    "record_versions",
    "opinion_requests",
    "opinion_request_cadres",
    "opinion_replies",
];

const AGENCIES: [&str; 4] = ["organization", "discipline", "audit", "petition"];
/// The divisions the test PKI issues clients for: the home county, a sibling
/// county outside its jurisdiction, and the province above both.
const DIVISIONS: [&str; 3] = ["360821", "360802", "360000"];

/// Cases per RPC: a debug build runs each test file in well under a minute per backend.
fn cases(backend: Backend) -> u32 {
    match backend {
        Backend::Sqlite => 64,
        Backend::Postgres => 16,
    }
}

// ---------------------------------------------------------------------------
// Value strategies shared by every message.

/// Strings that break naive code: empty, whitespace, NUL, bidi overrides,
/// emoji, 10 KB (below the 4 MiB message limit), SQL and format metacharacters.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        1 => Just(" \t\r\n".to_string()),
        1 => Just("\0".to_string()),
        1 => Just("a\0b".to_string()),
        1 => Just("\u{202E}lanif\u{202C}.exe".to_string()),
        1 => Just("\u{FEFF}\u{200B}\u{0301}".to_string()),
        1 => Just("👨‍👩‍👧‍👦".repeat(40)),
        1 => Just("x".repeat(10_240)),
        1 => Just("中".repeat(3_400)),
        1 => Just("'; DROP TABLE cadres; --".to_string()),
        1 => Just("%s%n{}{{0}}\\u0000$1".to_string()),
        2 => "[a-zA-Z0-9 _./*-]{1,16}",
        2 => any::<String>(),
    ]
    .boxed()
}

/// Dates: real ones, impossible ones (month 13, day 0, 31 April, 29 Feb 2025),
/// far past and future, wrong formats, and arbitrary text.
fn date() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (1990i32..2030, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        2 => (-1i32..12_000, 0u32..=14, 0u32..=33)
            .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        2 => select(vec![
            "2024-02-29", "2025-02-29", "2025-13-01", "2025-00-10", "2025-01-00",
            "2025-04-31", "9999-12-31", "0000-01-01", "-001-01-01", "+10000-01-01",
            "2025-1-1", "20250101", "2025/01/01", "2025-01-01T00:00:00Z",
            "２０２５-０１-０１", " 2025-01-01", "2025-01-01 ", "2025-01-01\0",
        ])
        .prop_map(String::from),
        1 => text(),
    ]
    .boxed()
}

fn int64() -> BoxedStrategy<i64> {
    prop_oneof![
        1 => select(vec![0, -1, 1, 2, i64::MIN, i64::MAX, i64::from(i32::MAX) + 1]),
        2 => -3i64..3000,
        1 => any::<i64>(),
    ]
    .boxed()
}

/// Enum numbers: known values, zero (`*_UNSPECIFIED`), and ones prost keeps
/// as unknown i32s.
fn enum_value() -> BoxedStrategy<i32> {
    prop_oneof![
        5 => -1i32..12,
        1 => select(vec![i32::MIN, i32::MAX, 1 << 20]),
        1 => any::<i32>(),
    ]
    .boxed()
}

fn page_size() -> BoxedStrategy<i32> {
    prop_oneof![
        4 => 1i32..=100,
        2 => select(vec![i32::MIN, -1, 0, 1, 2, 999, 1000, 1001, 5000, 5001, i32::MAX]),
        2 => -10i32..2000,
        1 => any::<i32>(),
    ]
    .boxed()
}

fn timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    let ts = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
    prop_oneof![
        2 => Just(None),
        2 => (1_600_000_000i64..1_900_000_000, 0i32..1_000_000_000).prop_map(move |(s, n)| ts(s, n)),
        2 => select(vec![
            ts(0, 0), ts(-1, 0), ts(0, -1), ts(0, 1_000_000_000), ts(1_700_000_000, i32::MAX),
            ts(i64::MIN, 0), ts(i64::MAX, 999_999_999), ts(253_402_300_800, 0),
            ts(-62_135_596_801, 0), ts(1_700_000_000, i32::MIN),
        ]),
        1 => (any::<i64>(), any::<i32>()).prop_map(move |(s, n)| ts(s, n)),
    ]
    .boxed()
}

fn request_id() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        2 => "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        // Reused across calls and RPCs: replays of other content must be refused cleanly.
        1 => Just("props-fixed-request".to_string()),
        1 => text(),
    ]
    .boxed()
}

/// A valid string altered in one place: cut, a character replaced, removed or
/// added, case flipped, doubled, reversed.
fn mutated(valid: Vec<String>) -> BoxedStrategy<String> {
    (select(valid), 0u8..8, any::<Index>(), "[ -~]{1,3}")
        .prop_map(|(s, op, at, extra)| {
            let chars: Vec<char> = s.chars().collect();
            let i = if chars.is_empty() {
                0
            } else {
                at.index(chars.len())
            };
            let mut out: Vec<char> = chars.clone();
            match op {
                0 => out.truncate(i),
                1 if !out.is_empty() => out[i] = extra.chars().next().unwrap(),
                2 => out.extend(extra.chars()),
                3 => out.splice(0..0, extra.chars()).for_each(drop),
                4 => out = s.to_ascii_uppercase().chars().collect(),
                5 if !out.is_empty() => {
                    out.remove(i);
                }
                6 => out.extend(chars.iter()),
                _ => out.reverse(),
            }
            out.into_iter().collect()
        })
        .boxed()
}

/// Resource names: real ones, the same altered, and almost-valid shapes.
fn resource_name(valid: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(valid.clone()),
        2 => mutated(valid),
        2 => select(vec![
            "", "cadres/", "cadres/-", "cadres/../", "cadres/./x", "cadres/-/records/x",
            "cadres/-/records/", "cadres//records/x", "/cadres/x", "cadres/x/records/y/z",
            "opinionRequests/", "opinionRequests/-", "opinionRequests/../cadres/x",
            "cadres/%2e%2e", "cadres/\0", "cadres/ ", "CADRES/abc", "cadres/*",
            "cadres/'; DELETE FROM cadres; --",
        ])
        .prop_map(String::from),
        1 => "(cadres|opinionRequests|records)/[a-z0-9-]{0,34}",
        1 => (select(vec!["cadres/", "opinionRequests/", "cadres/-/records/"]), text())
            .prop_map(|(p, t)| format!("{p}{t}")),
        1 => text(),
    ]
    .boxed()
}

/// Page tokens and cursors: real ones, tampered ones, random base64 and text.
fn token(valid: Vec<String>) -> BoxedStrategy<String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    prop_oneof![
        6 => Just(String::new()),
        2 => select(valid.clone()),
        3 => mutated(valid),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| STANDARD.encode(b)),
        1 => text(),
    ]
    .boxed()
}

/// Filters: valid terms, valid terms joined, broken syntax, unknown fields, huge.
fn filter(valid: Vec<&'static str>) -> BoxedStrategy<String> {
    let fields = vec![
        "kind",
        "state",
        "update_time",
        "managing_division",
        "display_name",
        "overdue",
        "stale",
        "name",
        "",
    ];
    let ops = vec!["=", "!=", ">=", "<", "==", ":", "~", ""];
    prop_oneof![
        6 => Just(String::new()),
        4 => select(valid.clone()).prop_map(String::from),
        1 => (select(valid.clone()), select(valid)).prop_map(|(a, b)| format!("{a} AND {b}")),
        2 => select(vec![
            "AND", "=", "\"", "kind = ", "kind = \"", "kind = \"SANCTION", "kind == \"SANCTION\"",
            "kind = \"SANCTION\" OR state = \"ACTIVE\"", "NOT kind = \"X\"", "(kind = \"SANCTION\")",
            "kind = \"SANCTION\" AND", "unknown_field = \"1\"", "display_name = \"%\"",
            "display_name = \"_\"", "managing_division = \"*\"", "managing_division = \"3*6\"",
            "managing_division = \"**\"", "update_time >= \"2026-13-01T00:00:00Z\"",
            "update_time >= \"yesterday\"", "update_time >= 1", "state = \"\"", "overdue = \"yes\"",
            "kind = \"SANCTION\"\0", "kind = 'SANCTION'",
        ])
        .prop_map(String::from),
        2 => (select(fields.clone()), select(ops.clone()), text())
            .prop_map(|(f, o, v)| format!("{f} {o} \"{v}\"")),
        1 => (select(fields), select(ops), text()).prop_map(|(f, o, v)| format!("{f} {o} {v:?}")),
        1 => text(),
        1 => Just("kind = \"SANCTION\" AND ".repeat(400) + "kind = \"SANCTION\""),
    ]
    .boxed()
}

fn division() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(vec!["360821", "360802", "360000", "360800", "000000", "110101"])
            .prop_map(String::from),
        1 => select(vec!["", "36082", "3608211", "36082a", "３６０８２１", "-36082", " 360821"])
            .prop_map(String::from),
        1 => "[0-9]{6}",
        1 => text(),
    ]
    .boxed()
}

/// 公民身份号码: registered ones (and lowercase), fresh valid ones, a wrong check
/// digit, wrong lengths, text.
fn id_numbers(known: Vec<String>) -> BoxedStrategy<String> {
    let lower: Vec<String> = known.iter().map(|s| s.to_ascii_lowercase()).collect();
    prop_oneof![
        3 => select(known.clone()),
        1 => select(lower),
        3 => ("[1-6][0-9]{5}", 1940u32..2005, 1u32..=12, 1u32..=28, 0u32..1000)
            .prop_map(|(d, y, m, day, s)| id_number(&d, &format!("{y:04}{m:02}{day:02}"), s)),
        1 => select(known).prop_map(|s| {
            let last = if s.ends_with('0') { '1' } else { '0' };
            format!("{}{last}", &s[..17])
        }),
        1 => "[0-9]{17}[0-9Xx]",
        1 => "[0-9]{0,20}",
        1 => text(),
    ]
    .boxed()
}

fn credit_codes() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[0-9A-HJ-NP-RTUW-Y]{9}".prop_map(|b| credit_code(&b)),
        1 => "[0-9A-HJ-NP-RTUW-Y]{9}".prop_map(|b| credit_code(&b).to_ascii_lowercase()),
        1 => "[0-9A-Z]{18}",
        1 => text(),
    ]
    .boxed()
}

/// One hostile value of each shape; a mutation picks the one matching the field it replaces.
#[derive(Clone, Debug)]
struct Hostile {
    text: String,
    date: String,
    int: i64,
    enm: i32,
    on: bool,
    id: String,
    div: String,
    name: String,
    credit: String,
    ts: Option<prost_types::Timestamp>,
}

fn hostile(f: &Fixture) -> BoxedStrategy<Hostile> {
    (
        text(),
        date(),
        int64(),
        enum_value(),
        any::<bool>(),
        id_numbers(f.id_numbers()),
        division(),
        resource_name(f.all_names()),
        credit_codes(),
        timestamp(),
    )
        .prop_map(
            |(text, date, int, enm, on, id, div, name, credit, ts)| Hostile {
                text,
                date,
                int,
                enm,
                on,
                id,
                div,
                name,
                credit,
                ts,
            },
        )
        .boxed()
}

/// Up to three (field index, value) replacements applied to a valid baseline.
fn mutations(f: &Fixture) -> BoxedStrategy<Vec<(usize, Hostile)>> {
    prop::collection::vec((0usize..24, hostile(f)), 0..=3).boxed()
}

/// A calling system: one of the four agencies at one of the test divisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Caller(&'static str, &'static str);

/// Mostly `main` at the home county, sometimes anyone.
fn caller(main: &'static str) -> BoxedStrategy<Caller> {
    let everyone: Vec<Caller> = AGENCIES
        .into_iter()
        .flat_map(|a| DIVISIONS.into_iter().map(move |d| Caller(a, d)))
        .collect();
    prop_oneof![3 => Just(Caller(main, "360821")), 2 => select(everyone)].boxed()
}

/// The officer header: absent, empty, raw UTF-8 bytes, long, control-free ASCII.
fn officer() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(Vec::new())),
        1 => Just(Some("张三 \u{202E}".as_bytes().to_vec())),
        1 => Just(Some(b"x".repeat(4000))),
        1 => "[ -~]{0,64}".prop_map(|s| Some(s.into_bytes())),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// The fixture: one server, real data to aim at, and a digest of the data tables.

struct Fixture {
    server: TestServer,
    cadre: proto::Cadre,
    /// A second cadre at the home county, the target of updates.
    target: proto::Cadre,
    /// A cadre at 360802, outside the home county's jurisdiction.
    foreign: proto::Cadre,
    records: Vec<proto::Record>,
    petition: String,
    /// Pending opinion requests: the first two for drafts and replies, the third for withdrawal.
    opinions: Vec<String>,
    page_tokens: Vec<String>,
    cursors: Vec<String>,
    channels: BTreeMap<Caller, Channel>,
    runner: TestRunner,
    digest: Vec<(&'static str, i64, String)>,
    /// Status codes seen per RPC, printed at the end and checked for coverage.
    seen: BTreeMap<&'static str, BTreeMap<String, u32>>,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let server = TestServer::spawn(backend).await;
        let main = cadre(&server, 1).await;
        let target = cadre(&server, 2).await;
        let foreign = server
            .cadres("organization", "360802")
            .await
            .create_cadre(proto::CreateCadreRequest {
                cadre: Some(new_cadre("辖外干部", "360802", 3)),
                request_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let by_kind = one_of_each_kind(&server, &main, "PROPS-CANARY").await;
        let petition = by_kind["PETITION"].name.clone();
        let records: Vec<proto::Record> = by_kind.into_values().collect();

        let mut channels = BTreeMap::new();
        for a in AGENCIES {
            for d in DIVISIONS {
                channels.insert(Caller(a, d), server.channel(a, d).await);
            }
        }
        let home = |a: &'static str| channels[&Caller(a, "360821")].clone();

        let mut opinions = Vec::new();
        for cadres in [
            vec![main.name.clone()],
            vec![target.name.clone()],
            vec![main.name.clone(), target.name.clone()],
        ] {
            let req =
                proto::opinion_service_client::OpinionServiceClient::new(home("organization"))
                    .create_opinion_request(proto::CreateOpinionRequestRequest {
                        cadres,
                        purpose: proto::OpinionPurpose::Promotion as i32,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
            opinions.push(req.name);
        }

        // Real page tokens and cursors, for tampering.
        let mut page_tokens = Vec::new();
        let mut cursors = Vec::new();
        let cadres = proto::cadre_service_client::CadreServiceClient::new(home("organization"))
            .list_cadres(proto::ListCadresRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        page_tokens.push(cadres.next_page_token);
        let listed = proto::record_service_client::RecordServiceClient::new(home("discipline"))
            .list_records(proto::ListRecordsRequest {
                parent: "cadres/-".into(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        page_tokens.push(listed.next_page_token);
        cursors.push(listed.cursor);
        let requests =
            proto::opinion_service_client::OpinionServiceClient::new(home("organization"))
                .list_opinion_requests(proto::ListOpinionRequestsRequest {
                    page_size: 1,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        page_tokens.push(requests.next_page_token);
        let log = proto::access_log_service_client::AccessLogServiceClient::new(home("discipline"))
            .list_access_events(proto::ListAccessEventsRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        page_tokens.push(log.next_page_token);
        let changes =
            proto::change_feed_service_client::ChangeFeedServiceClient::new(home("discipline"))
                .list_changes(proto::ListChangesRequest {
                    page_size: 3,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        cursors.push(changes.next_cursor);
        cursors.extend(changes.events.into_iter().map(|e| e.cursor));
        page_tokens.retain(|t| !t.is_empty());
        cursors.retain(|t| !t.is_empty());
        assert!(page_tokens.len() >= 3, "fixture pages: {page_tokens:?}");
        assert!(cursors.len() >= 2, "fixture cursors: {cursors:?}");

        let config = Config {
            cases: cases(backend),
            failure_persistence: None,
            ..Config::default()
        };
        let runner = TestRunner::new_with_rng(
            config.clone(),
            TestRng::deterministic_rng(config.rng_algorithm),
        );
        let mut f = Fixture {
            server,
            cadre: main,
            target,
            foreign,
            records,
            petition,
            opinions,
            page_tokens,
            cursors,
            channels,
            runner,
            digest: Vec::new(),
            seen: BTreeMap::new(),
        };
        f.digest = f.data_digest().await;
        f
    }

    fn cadre_names(&self) -> Vec<String> {
        let id = |c: &proto::Cadre| c.name.trim_start_matches("cadres/").to_string();
        vec![
            self.cadre.name.clone(),
            self.target.name.clone(),
            self.foreign.name.clone(),
            "cadres/-".into(),
            // Well-formed but unknown.
            format!("cadres/{}", uuid::Uuid::nil().simple()),
            format!("cadres/{}", id(&self.cadre).to_ascii_uppercase()),
        ]
    }

    fn record_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.records.iter().map(|r| r.name.clone()).collect();
        let foreign = self.foreign.name.clone();
        for r in &self.records {
            let rec = r.name.rsplit('/').next().unwrap().to_string();
            // The right record id under the wrong cadre, and under the wildcard.
            out.push(format!("{foreign}/records/{rec}"));
            out.push(format!("cadres/-/records/{rec}"));
        }
        out
    }

    fn opinion_names(&self) -> Vec<String> {
        let mut out = self.opinions.clone();
        out.push(format!("opinionRequests/{}", uuid::Uuid::nil().simple()));
        out
    }

    fn all_names(&self) -> Vec<String> {
        let mut out = self.cadre_names();
        out.extend(self.record_names());
        out.extend(self.opinion_names());
        out
    }

    fn id_numbers(&self) -> Vec<String> {
        vec![
            self.cadre.id_number.clone(),
            self.target.id_number.clone(),
            self.foreign.id_number.clone(),
        ]
    }

    fn generate<S: Strategy>(&mut self, strategy: &S) -> S::Value {
        strategy
            .new_tree(&mut self.runner)
            .expect("strategy generates")
            .current()
    }

    /// Row count and a SHA-256 over the sorted rows of each data table, read directly.
    async fn data_digest(&self) -> Vec<(&'static str, i64, String)> {
        use sqlx::{Connection, Row};
        let url = &self.server.store_url;
        let mut out = Vec::new();
        if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            for t in DATA_TABLES {
                let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{t}')"
                )))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| format!("quote(\"{}\")", r.get::<String, _>(0)))
                .collect();
                let sql = format!("SELECT {} FROM {t}", cols.join(" || '|' || "));
                let rows: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>(0))
                    .collect();
                out.push(digest_rows(t, rows));
            }
            let _ = c.close().await;
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            for t in DATA_TABLES {
                let rows: Vec<String> =
                    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {t} AS t")))
                        .fetch_all(&mut c)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| r.get::<String, _>(0))
                        .collect();
                out.push(digest_rows(t, rows));
            }
            let _ = c.close().await;
        }
        out
    }

    /// Generates `cases` requests from `strategy`, sends each as its caller,
    /// and judges the outcome.
    async fn run<R, S, F, Fut>(&mut self, rpc: &'static str, cases: u32, strategy: S, call: F)
    where
        R: Debug,
        S: Strategy<Value = (Caller, R)>,
        F: Fn(Channel, tonic::Request<R>) -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        let officers = officer();
        for _ in 0..cases {
            let (who, message) = self.generate(&strategy);
            let officer = self.generate(&officers);
            let shown = shorten(&format!("{who:?} officer={officer:?} {message:?}"));
            let mut request = tonic::Request::new(message);
            if let Some(value) =
                officer.and_then(|o| tonic::metadata::MetadataValue::try_from(o.as_slice()).ok())
            {
                request.metadata_mut().insert("x-cadrex-officer", value);
            }
            let outcome = call(self.channels[&who].clone(), request).await;
            self.judge(rpc, &shown, outcome).await;
        }
        self.assert_alive(rpc).await;
    }

    async fn judge(&mut self, rpc: &'static str, shown: &str, outcome: Result<(), Status>) {
        let key = match &outcome {
            Ok(()) => "OK".to_string(),
            Err(s) => format!("{:?}", s.code()),
        };
        *self.seen.entry(rpc).or_default().entry(key).or_default() += 1;
        match outcome {
            Ok(()) => self.digest = self.data_digest().await,
            Err(status) => {
                assert!(
                    DOCUMENTED.contains(&status.code()),
                    "{rpc} answered {:?} ({}) to {shown}\nserver log tail:\n{}",
                    status.code(),
                    status.message(),
                    log_tail()
                );
                assert!(
                    !status.message().is_empty(),
                    "{rpc}: empty message for {shown}"
                );
                if status.code() != Code::ResourceExhausted {
                    let info = status.get_details_error_info().unwrap_or_else(|| {
                        panic!("{rpc}: {:?} without ErrorInfo for {shown}", status.code())
                    });
                    assert_eq!(info.domain, "cadrex", "{rpc}: {shown}");
                    assert!(
                        !info.reason.is_empty()
                            && info
                                .reason
                                .chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                        "{rpc}: reason {:?} for {shown}",
                        info.reason
                    );
                }
                if status.code() == Code::InvalidArgument {
                    let bad = status.get_details_bad_request();
                    assert!(
                        bad.is_some_and(|b| !b.field_violations.is_empty()),
                        "{rpc}: INVALID_ARGUMENT without field violations for {shown}"
                    );
                }
                let now = self.data_digest().await;
                assert_eq!(
                    now,
                    self.digest,
                    "{rpc} refused with {:?} ({}) but changed stored data: {shown}",
                    status.code(),
                    status.message()
                );
            }
        }
    }

    /// The server still answers health checks and has logged no panic.
    async fn assert_alive(&self, after: &str) {
        let ch = self.channels[&Caller("petition", "360821")].clone();
        let resp = tonic_health::pb::health_client::HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_or_else(|e| panic!("health check after {after}: {e:?}"))
            .into_inner();
        assert_eq!(
            resp.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "after {after}"
        );
        let log = server_log().text();
        assert!(
            !log.contains("panicked"),
            "a panic was logged after {after}"
        );
    }

    /// Prints what was seen and requires each RPC to have refused something
    /// and the listed ones to have also accepted something, so a strategy that
    /// never reaches the handler's success path does not go unnoticed.
    fn finish(&self, must_succeed: &[&str]) {
        for (rpc, codes) in &self.seen {
            eprintln!("{rpc}: {codes:?}");
        }
        // PostgreSQL runs a quarter of the cases: too few to require every
        // success path, and SQLite already proves the strategies reach them.
        if self.server.backend == Backend::Postgres {
            return;
        }
        for rpc in must_succeed {
            assert!(
                self.seen.get(rpc).is_some_and(|c| c.contains_key("OK")),
                "{rpc} never succeeded: {:?}",
                self.seen.get(rpc)
            );
        }
    }
}

/// The last lines of the server log, to show why a call failed.
fn log_tail() -> String {
    let log = server_log().text();
    let lines: Vec<&str> = log
        .lines()
        .rev()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .take(4)
        .collect();
    lines
        .into_iter()
        .rev()
        .map(|l| shorten_to(l, 600))
        .collect::<Vec<_>>()
        .join("\n")
}

fn digest_rows(table: &'static str, mut rows: Vec<String>) -> (&'static str, i64, String) {
    rows.sort();
    let mut h = Sha256::new();
    for r in &rows {
        h.update(r.as_bytes());
        h.update([0]);
    }
    (table, rows.len() as i64, hex::encode(h.finalize()))
}

fn shorten(s: &str) -> String {
    shorten_to(s, 3000)
}

fn shorten_to(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}… ({} chars)", s.chars().count())
    }
}

/// Applies `(field, value)` to a cadre: each index names one field, `%` wraps.
fn mutate_cadre(c: &mut proto::Cadre, muts: &[(usize, Hostile)]) {
    for (field, h) in muts {
        let h = h.clone();
        match field % 17 {
            0 => c.display_name = h.text,
            1 => c.gender = h.enm,
            2 => c.birth_date = h.date,
            3 | 4 => c.id_number = h.id,
            5 | 6 => c.managing_division = h.div,
            7 => c.name = h.name,
            8 => c.etag = h.text,
            9 => c.posts.clear(),
            10 => c
                .posts
                .iter_mut()
                .for_each(|p| p.unit_name = h.text.clone()),
            11 => c
                .posts
                .iter_mut()
                .for_each(|p| p.unit_credit_code = h.credit.clone()),
            12 => c.posts.iter_mut().for_each(|p| p.title = h.text.clone()),
            13 => c
                .posts
                .iter_mut()
                .for_each(|p| p.start_date = h.date.clone()),
            14 => c.posts.iter_mut().for_each(|p| p.end_date = h.date.clone()),
            15 => {
                let p = c.posts.first().cloned().unwrap_or_default();
                c.posts = vec![p; 1 + (h.int.unsigned_abs() % 300) as usize];
            }
            _ => {
                c.create_time = h.ts;
                c.id_number_masked = h.on;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// SystemService and CadreService.

async fn system_and_cadre_requests(backend: Backend) {
    let mut f = Fixture::new(backend).await;
    let n = cases(backend);
    type Cadres = proto::cadre_service_client::CadreServiceClient<Channel>;
    type System = proto::system_service_client::SystemServiceClient<Channel>;

    let s = caller("organization").prop_map(|c| (c, proto::WhoAmIRequest {}));
    f.run("WhoAmI", n / 4, s, |ch, r| async move {
        System::new(ch).who_am_i(r).await.map(drop)
    })
    .await;
    let s = caller("audit").prop_map(|c| (c, proto::AllowedMethodsRequest {}));
    f.run("AllowedMethods", n / 4, s, |ch, r| async move {
        System::new(ch).allowed_methods(r).await.map(drop)
    })
    .await;

    let create = (
        "[\\p{Han}]{2,4}",
        100u32..400,
        select(vec!["360821", "360821", "360802", "360000"]),
        mutations(&f),
        request_id(),
    )
        .prop_map(|(name, seq, div, muts, request_id)| {
            let mut c = new_cadre(&name, div, seq);
            mutate_cadre(&mut c, &muts);
            proto::CreateCadreRequest {
                cadre: Some(c),
                request_id,
            }
        });
    let s = (caller("organization"), create.clone(), 0u8..10).prop_map(|(c, mut r, missing)| {
        if missing == 0 {
            r.cadre = None;
        }
        (c, r)
    });
    f.run("CreateCadre", n, s, |ch, r| async move {
        Cadres::new(ch).create_cadre(r).await.map(drop)
    })
    .await;

    let s = (caller("organization"), resource_name(f.cadre_names()))
        .prop_map(|(c, name)| (c, proto::GetCadreRequest { name }));
    f.run("GetCadre", n, s, |ch, r| async move {
        Cadres::new(ch).get_cadre(r).await.map(drop)
    })
    .await;

    let paths = vec![
        "display_name",
        "gender",
        "birth_date",
        "managing_division",
        "posts",
        "id_number",
        "name",
        "etag",
        "",
        "*",
        "posts.title",
        "display_name ",
    ];
    let mask = prop_oneof![
        1 => Just(None),
        3 => prop::collection::vec(select(paths).prop_map(String::from), 0..4)
            .prop_map(|paths| Some(prost_types::FieldMask { paths })),
        1 => prop::collection::vec(text(), 1..3).prop_map(|paths| Some(prost_types::FieldMask { paths })),
    ];
    let target = f.target.clone();
    let names = resource_name(f.cadre_names());
    let s = (caller("organization"), mutations(&f), mask, names, 0u8..4).prop_map(
        move |(c, muts, update_mask, name, pick)| {
            let mut cadre = target.clone();
            if pick == 0 {
                cadre.name = name;
            }
            cadre.display_name = "更新后".into();
            mutate_cadre(&mut cadre, &muts);
            (
                c,
                proto::UpdateCadreRequest {
                    cadre: Some(cadre),
                    update_mask,
                },
            )
        },
    );
    f.run("UpdateCadre", n, s, |ch, r| async move {
        Cadres::new(ch).update_cadre(r).await.map(drop)
    })
    .await;

    let s = (
        caller("organization"),
        page_size(),
        token(f.page_tokens.clone()),
        filter(vec![
            "managing_division = \"360821\"",
            "managing_division = \"36*\"",
            "display_name = \"记*\"",
            "display_name = \"记录对象\"",
        ]),
    )
        .prop_map(|(c, page_size, page_token, filter)| {
            (
                c,
                proto::ListCadresRequest {
                    page_size,
                    page_token,
                    filter,
                    include_past_posts: false,
                },
            )
        });
    f.run("ListCadres", n, s, |ch, r| async move {
        Cadres::new(ch).list_cadres(r).await.map(drop)
    })
    .await;

    let s = (caller("audit"), id_numbers(f.id_numbers()))
        .prop_map(|(c, id_number)| (c, proto::LookupCadreRequest { id_number }));
    f.run("LookupCadre", n, s, |ch, r| async move {
        Cadres::new(ch).lookup_cadre(r).await.map(drop)
    })
    .await;

    let s = (
        caller("organization"),
        prop_oneof![
            6 => prop::collection::vec(create, 0..5),
            1 => Just(vec![proto::CreateCadreRequest::default(); 1001]),
        ],
        request_id(),
    )
        .prop_map(|(c, requests, request_id)| {
            (
                c,
                proto::BatchCreateCadresRequest {
                    requests,
                    request_id,
                    validate_only: false,
                },
            )
        });
    f.run("BatchCreateCadres", n, s, |ch, r| async move {
        Cadres::new(ch).batch_create_cadres(r).await.map(drop)
    })
    .await;

    f.finish(&[
        "WhoAmI",
        "AllowedMethods",
        "CreateCadre",
        "GetCadre",
        "UpdateCadre",
        "ListCadres",
        "LookupCadre",
        "BatchCreateCadres",
    ]);
}

// ---------------------------------------------------------------------------
// RecordService.

/// Applies `(field, value)` to a payload: each index names one of its fields.
fn mutate_payload(p: &mut Payload, muts: &[(usize, Hostile)]) {
    for (field, h) in muts {
        let h = h.clone();
        let i = *field;
        match p {
            Payload::Sanction(s) => match i % 8 {
                0 => s.track = h.enm,
                1 => s.party_type = h.enm,
                2 => s.state_type = h.enm,
                3 => s.probation_years = h.int as i32,
                4 => s.decision_number = h.text,
                5 => s.decision_date = h.date,
                6 => s.effective_date = h.date,
                _ => s.form_of_discipline = h.int as i32,
            },
            Payload::Admonishment(a) => match i % 3 {
                0 => a.r#type = h.enm,
                1 => a.date = h.date,
                _ => a.issuer = h.text,
            },
            Payload::Clue(c) => match i % 7 {
                0 => c.source = h.enm,
                1 => c.source_record = h.name,
                2 => c.disposal = h.enm,
                3 => c.status = h.enm,
                4 => c.conclusion = h.text,
                5 => c.received_date = h.date,
                _ => c.reply_due_date = h.date,
            },
            Payload::OrgHandling(o) => match i % 2 {
                0 => o.r#type = h.enm,
                _ => o.date = h.date,
            },
            Payload::PersonalMattersCheck(m) => match i % 4 {
                0 => m.report_year = h.int as i32,
                1 => m.result = h.enm,
                2 => m.check_date = h.date,
                _ => m.handling = h.text,
            },
            Payload::Evaluation(e) => match i % 3 {
                0 => e.year = h.int as i32,
                1 => e.kind = h.enm,
                _ => e.grade = h.enm,
            },
            Payload::AuditEngagement(e) => match i % 6 {
                0 => e.r#type = h.enm,
                1 => e.period_start = h.date,
                2 => e.period_end = h.date,
                3 => e.report_number = h.text,
                4 => e.audited_post = h.text,
                _ => e.report_date = h.date,
            },
            Payload::AuditFinding(a) => match i % 12 {
                0 => a.engagement_source_record_id = h.text,
                1 => a.problem_type = h.enm,
                2 | 3 => a.amount_fen = h.int,
                4 => a.characterisation = h.text,
                5 => a.responsibility = h.enm,
                6 => a.transfer = h.enm,
                7 => a.rectification = None,
                8 => {
                    if let Some(r) = a.rectification.as_mut() {
                        r.deadline = h.date
                    }
                }
                9 => {
                    if let Some(r) = a.rectification.as_mut() {
                        r.status = h.enm
                    }
                }
                10 => a.finding_date = h.date,
                _ => a.engagement = h.name,
            },
            Payload::Petition(t) => match i % 11 {
                0 => t.received_date = h.date,
                1 => t.channel = h.enm,
                2 => t.anonymous = h.on,
                3 => t.category = h.enm,
                4 => t.specific = h.on,
                5 => t.status = h.enm,
                6 => t.forwarded_to = h.text,
                7 => t.summary = h.text,
                8 => t.informant = None,
                9 => {
                    if let Some(inf) = t.informant.as_mut() {
                        inf.name = h.text.clone();
                        inf.contact = h.text;
                    }
                }
                _ => t.anonymous = !t.anonymous,
            },
            // Summary variants are output-only; they stay as they are.
            _ => {}
        }
    }
}

/// Record-level replacements: cadre reference, identity fields, output-only
/// fields, and the payload swapped for nothing or for a summary variant.
fn mutate_record(r: &mut proto::Record, muts: &[(usize, Hostile)]) {
    for (field, h) in muts {
        let h = h.clone();
        match field % 16 {
            0 => r.cadre = h.name,
            1 => r.cadre_id_number = h.id,
            2 => {
                r.cadre = h.name;
                r.cadre_id_number = String::new();
            }
            3 => r.source_record_id = h.text,
            4 => r.source_version = h.int,
            5 => r.classification = h.enm,
            6 => r.kind = h.enm,
            7 => r.name = h.name,
            8 => r.owner_system = h.text,
            9 => r.revision = h.int,
            10 => r.etag = h.text,
            11 => r.state = h.enm,
            12 => r.view = h.enm,
            13 => r.payload = None,
            14 => {
                r.payload = Some(match h.int.rem_euclid(4) {
                    0 => Payload::SanctionSummary(proto::SanctionSummary::default()),
                    1 => Payload::ClueSummary(proto::ClueSummary {
                        disposal: h.enm,
                        status: 1,
                    }),
                    2 => Payload::EvaluationSummary(proto::EvaluationSummary {
                        year: 2024,
                        grade: h.enm,
                    }),
                    _ => Payload::PetitionSummary(proto::PetitionSummary::default()),
                })
            }
            _ => {
                r.update_time = h.ts;
                r.provenance = Some(proto::Provenance {
                    submitting_system: h.text,
                    ..Default::default()
                });
            }
        }
    }
}

/// A submission: a baseline of some kind mutated at record and payload level,
/// sent mostly by the kind's owner.
fn submission(f: &Fixture) -> BoxedStrategy<(Caller, proto::SubmitRecordRequest)> {
    let cadre = f.cadre.clone();
    let petition = f.petition.clone();
    let everyone = caller("organization");
    (
        0usize..10,
        select(vec!["PX-1", "PX-2", "PX-3", "AE-1", "SC-1"]),
        prop_oneof![4 => 1i64..4, 1 => int64()],
        0u8..4,
        mutations(f),
        mutations(f),
        request_id(),
        everyone,
        0u8..4,
    )
        .prop_map(
            move |(kind, source, version, by_name, rec_muts, pay_muts, request_id, other, who)| {
                let (mut payload, owner) = baseline_payload(kind, &petition);
                mutate_payload(&mut payload, &pay_muts);
                let mut record = proto::Record {
                    cadre_id_number: cadre.id_number.clone(),
                    source_record_id: source.into(),
                    source_version: version,
                    classification: proto::Classification::Internal as i32,
                    payload: Some(payload),
                    ..Default::default()
                };
                if by_name == 0 {
                    record.cadre = cadre.name.clone();
                    record.cadre_id_number.clear();
                }
                mutate_record(&mut record, &rec_muts);
                let caller = if who == 0 {
                    other
                } else {
                    Caller(owner, "360821")
                };
                (
                    caller,
                    proto::SubmitRecordRequest {
                        record: Some(record),
                        request_id,
                        validate_only: false,
                    },
                )
            },
        )
        .boxed()
}

async fn record_requests(backend: Backend) {
    let mut f = Fixture::new(backend).await;
    let n = cases(backend);
    type Records = proto::record_service_client::RecordServiceClient<Channel>;

    let s = (submission(&f), 0u8..12).prop_map(|((c, mut r), missing)| {
        if missing == 0 {
            r.record = None;
        }
        (c, r)
    });
    f.run("SubmitRecord", 2 * n, s, |ch, r| async move {
        Records::new(ch).submit_record(r).await.map(drop)
    })
    .await;

    let s = (
        prop_oneof![
            6 => prop::collection::vec(submission(&f).prop_map(|(_, r)| r), 0..5),
            1 => Just(vec![proto::SubmitRecordRequest::default(); 1001]),
        ],
        request_id(),
        prop_oneof![
            Just("audit"),
            Just("discipline"),
            Just("organization"),
            Just("petition")
        ],
    )
        .prop_map(|(requests, request_id, agency)| {
            (
                Caller(agency, "360821"),
                proto::BatchSubmitRecordsRequest {
                    requests,
                    request_id,
                    validate_only: false,
                },
            )
        });
    f.run("BatchSubmitRecords", n, s, |ch, r| async move {
        Records::new(ch).batch_submit_records(r).await.map(drop)
    })
    .await;

    let s = (caller("discipline"), resource_name(f.record_names()))
        .prop_map(|(c, name)| (c, proto::GetRecordRequest { name }));
    f.run("GetRecord", n, s, |ch, r| async move {
        Records::new(ch).get_record(r).await.map(drop)
    })
    .await;

    let s = (
        caller("audit"),
        resource_name(f.cadre_names()),
        page_size(),
        token(f.page_tokens.clone()),
        filter(vec![
            "kind = \"AUDIT_FINDING\"",
            "kind = \"SANCTION\"",
            "state = \"ACTIVE\"",
            "state = \"RETRACTED\"",
            "update_time >= \"2026-01-01T00:00:00Z\"",
            "update_time < \"2030-01-01T00:00:00Z\"",
        ]),
    )
        .prop_map(|(c, parent, page_size, page_token, filter)| {
            (
                c,
                proto::ListRecordsRequest {
                    parent,
                    page_size,
                    page_token,
                    filter,
                },
            )
        });
    f.run("ListRecords", n, s, |ch, r| async move {
        Records::new(ch).list_records(r).await.map(drop)
    })
    .await;

    let etags: Vec<String> = f.records.iter().map(|r| r.etag.clone()).collect();
    let s = (
        caller("audit"),
        resource_name(f.record_names()),
        prop_oneof![3 => "[\\p{Han}]{2,8}", 1 => text()],
        prop_oneof![
            Just(String::new()),
            select(etags.clone()),
            mutated(etags),
            text()
        ],
    )
        .prop_map(|(c, name, reason, etag)| {
            (c, proto::RetractRecordRequest { name, reason, etag })
        });
    f.run("RetractRecord", n, s, |ch, r| async move {
        Records::new(ch).retract_record(r).await.map(drop)
    })
    .await;

    f.finish(&[
        "SubmitRecord",
        "BatchSubmitRecords",
        "GetRecord",
        "ListRecords",
    ]);
}

// ---------------------------------------------------------------------------
// ChangeFeedService and AccessLogService.

fn kinds() -> BoxedStrategy<Vec<i32>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::collection::vec(0i32..6, 1..4),
        1 => prop::collection::vec(enum_value(), 1..4),
        1 => Just(vec![1; 5000]),
    ]
    .boxed()
}

async fn feed_and_access_log_requests(backend: Backend) {
    let mut f = Fixture::new(backend).await;
    let n = cases(backend);
    type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<Channel>;
    type Log = proto::access_log_service_client::AccessLogServiceClient<Channel>;

    let s = (
        caller("discipline"),
        token(f.cursors.clone()),
        kinds(),
        page_size(),
    )
        .prop_map(|(c, after_cursor, kinds, page_size)| {
            (
                c,
                proto::ListChangesRequest {
                    after_cursor,
                    kinds,
                    page_size,
                },
            )
        });
    f.run("ListChanges", n, s, |ch, r| async move {
        Feed::new(ch).list_changes(r).await.map(drop)
    })
    .await;

    let s = (caller("organization"), token(f.cursors.clone()), kinds()).prop_map(
        |(c, after_cursor, kinds)| {
            (
                c,
                proto::WatchChangesRequest {
                    after_cursor,
                    kinds,
                },
            )
        },
    );
    f.run("WatchChanges", n / 4, s, |ch, r| async move {
        let mut stream = Feed::new(ch).watch_changes(r).await?.into_inner();
        // A refusal may also arrive as the stream's first item.
        match tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
            Ok(Err(status)) => Err(status),
            _ => Ok(()),
        }
    })
    .await;

    let principals = vec![
        "urn:cadrex:system:organization:360821:organization-sys",
        "urn:cadrex:system:audit:360821:audit-sys",
        "urn:cadrex:system:audit:360821",
        "urn:cadrex:system:*",
        "",
    ];
    let methods = vec![
        "/cadrex.v1.CadreService/GetCadre",
        "/cadrex.v1.RecordService/SubmitRecord",
        "cadrex.v1.CadreService/GetCadre",
        "/",
        "",
    ];
    let s = (
        caller("discipline"),
        (page_size(), token(f.page_tokens.clone())),
        prop_oneof![2 => Just(String::new()), 3 => resource_name(f.cadre_names())],
        (timestamp(), timestamp()),
        prop_oneof![3 => select(principals).prop_map(String::from), 1 => text()],
        prop_oneof![3 => select(methods).prop_map(String::from), 1 => text()],
    )
        .prop_map(
            |(c, (page_size, page_token), cadre, (start_time, end_time), principal, method)| {
                (
                    c,
                    proto::ListAccessEventsRequest {
                        page_size,
                        page_token,
                        cadre,
                        start_time,
                        end_time,
                        principal,
                        method,
                    },
                )
            },
        );
    f.run("ListAccessEvents", n, s, |ch, r| async move {
        Log::new(ch).list_access_events(r).await.map(drop)
    })
    .await;

    let s = caller("discipline").prop_map(|c| (c, proto::GetCheckpointRequest {}));
    f.run("GetCheckpoint", n / 4, s, |ch, r| async move {
        Log::new(ch).get_checkpoint(r).await.map(drop)
    })
    .await;

    let s = (caller("discipline"), any::<bool>())
        .prop_map(|(c, full)| (c, proto::VerifyAccessLogRequest { full }));
    f.run("VerifyAccessLog", n / 4, s, |ch, r| async move {
        let resp = Log::new(ch).verify_access_log(r).await?.into_inner();
        // Hostile input never breaks the chain it is logged into.
        assert!(resp.intact, "access log not intact: {resp:?}");
        Ok(())
    })
    .await;

    f.finish(&[
        "ListChanges",
        "WatchChanges",
        "ListAccessEvents",
        "VerifyAccessLog",
    ]);
}

// ---------------------------------------------------------------------------
// OpinionService and DossierService.

async fn opinion_and_dossier_requests(backend: Backend) {
    let mut f = Fixture::new(backend).await;
    let n = cases(backend);
    type Opinions = proto::opinion_service_client::OpinionServiceClient<Channel>;
    type Dossiers = proto::dossier_service_client::DossierServiceClient<Channel>;

    let cadre_list = prop_oneof![
        4 => Just(vec![f.cadre.name.clone()]),
        2 => Just(vec![f.cadre.name.clone(), f.target.name.clone()]),
        6 => prop::collection::vec(resource_name(f.cadre_names()), 0..4),
        1 => Just(vec![f.cadre.name.clone(); 2]),
        1 => Just(vec![f.cadre.name.clone(); 101]),
    ];
    let s = (
        caller("organization"),
        cadre_list,
        prop_oneof![2 => 1i32..=5, 1 => enum_value()],
        prop_oneof![
            2 => Just(String::new()),
            2 => (2027i32..2030, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
            3 => date(),
        ],
        prop_oneof![2 => Just(String::new()), 1 => text()],
        request_id(),
    )
        .prop_map(|(c, cadres, purpose, due_date, note, request_id)| {
            (
                c,
                proto::CreateOpinionRequestRequest {
                    cadres,
                    purpose,
                    due_date,
                    note,
                    request_id,
                },
            )
        });
    f.run("CreateOpinionRequest", n, s, |ch, r| async move {
        Opinions::new(ch).create_opinion_request(r).await.map(drop)
    })
    .await;

    let s = (caller("discipline"), resource_name(f.opinion_names()))
        .prop_map(|(c, name)| (c, proto::GetOpinionRequestRequest { name }));
    f.run("GetOpinionRequest", n, s, |ch, r| async move {
        Opinions::new(ch).get_opinion_request(r).await.map(drop)
    })
    .await;

    let s = (
        caller("discipline"),
        page_size(),
        token(f.page_tokens.clone()),
        filter(vec![
            "state = \"PENDING\"",
            "state = \"REPLIED\"",
            "overdue = \"true\"",
            "stale = \"false\"",
        ]),
    )
        .prop_map(|(c, page_size, page_token, filter)| {
            (
                c,
                proto::ListOpinionRequestsRequest {
                    page_size,
                    page_token,
                    filter,
                },
            )
        });
    f.run("ListOpinionRequests", n, s, |ch, r| async move {
        Opinions::new(ch).list_opinion_requests(r).await.map(drop)
    })
    .await;

    // (request, cadre) pairs that belong together, or each drawn on its own.
    let pairs = prop_oneof![
        2 => Just((f.opinions[0].clone(), f.cadre.name.clone())),
        1 => Just((f.opinions[1].clone(), f.target.name.clone())),
        3 => (resource_name(f.opinion_names()), resource_name(f.cadre_names())),
    ];
    let s = (
        caller("discipline"),
        pairs.clone(),
        prop_oneof![2 => Just(String::new()), 3 => date()],
    )
        .prop_map(|(c, (name, cadre), as_of_date)| {
            (
                c,
                proto::DraftOpinionRequest {
                    name,
                    cadre,
                    as_of_date,
                },
            )
        });
    f.run("DraftOpinion", n, s, |ch, r| async move {
        Opinions::new(ch).draft_opinion(r).await.map(drop)
    })
    .await;

    let s = (
        caller("discipline"),
        pairs,
        (
            prop_oneof![3 => 1i32..=4, 1 => enum_value()],
            prop_oneof![3 => Just("经查，未发现影响使用的问题".to_string()), 1 => text()],
        ),
        prop::collection::vec(resource_name(f.record_names()), 0..3),
        prop_oneof![3 => Just("县纪委 张某".to_string()), 1 => text()],
        timestamp(),
        (
            prop_oneof![2 => Just(String::new()), 1 => text()],
            prop_oneof![2 => Just(String::new()), 1 => text()],
        ),
        request_id(),
    )
        .prop_map(
            |(
                c,
                (name, cadre),
                (verdict, text),
                cited_records,
                signer,
                as_of_time,
                (correction_reason, deviation_reason),
                request_id,
            )| {
                (
                    c,
                    proto::ReplyOpinionRequest {
                        name,
                        cadre,
                        verdict,
                        text,
                        cited_records,
                        signer,
                        as_of_time,
                        correction_reason,
                        deviation_reason,
                        request_id,
                    },
                )
            },
        );
    f.run("ReplyOpinion", n, s, |ch, r| async move {
        Opinions::new(ch).reply_opinion(r).await.map(drop)
    })
    .await;

    let s = (
        caller("discipline"),
        resource_name(f.cadre_names()),
        enum_value(),
        prop_oneof![2 => Just(String::new()), 3 => resource_name(f.opinion_names())],
    )
        .prop_map(|(c, cadre, purpose, opinion_request)| {
            (
                c,
                proto::GetCadreDossierRequest {
                    cadre,
                    purpose,
                    opinion_request,
                },
            )
        });
    f.run("GetCadreDossier", n, s, |ch, r| async move {
        Dossiers::new(ch).get_cadre_dossier(r).await.map(drop)
    })
    .await;

    // Last: a successful withdrawal ends the request the calls above aim at.
    let s = (
        caller("organization"),
        prop_oneof![
            1 => Just(f.opinions[2].clone()),
            3 => resource_name(f.opinion_names()),
        ],
        prop_oneof![3 => "[\\p{Han}]{2,8}", 1 => text()],
    )
        .prop_map(|(c, name, reason)| (c, proto::WithdrawOpinionRequestRequest { name, reason }));
    f.run("WithdrawOpinionRequest", n, s, |ch, r| async move {
        Opinions::new(ch)
            .withdraw_opinion_request(r)
            .await
            .map(drop)
    })
    .await;

    f.finish(&[
        "CreateOpinionRequest",
        "GetOpinionRequest",
        "ListOpinionRequests",
        "DraftOpinion",
        "ReplyOpinion",
        "GetCadreDossier",
        "WithdrawOpinionRequest",
    ]);
}

// ---------------------------------------------------------------------------
// NUL in free text: SQLite stores it, PostgreSQL refuses it in `text`, so a
// field that reaches the store unchecked would fail only there. Each case is
// a valid request with NUL in one field.

async fn nul_in_every_free_text_field(backend: Backend) {
    let mut f = Fixture::new(backend).await;
    type Cadres = proto::cadre_service_client::CadreServiceClient<Channel>;
    type Records = proto::record_service_client::RecordServiceClient<Channel>;
    type Opinions = proto::opinion_service_client::OpinionServiceClient<Channel>;
    type Log = proto::access_log_service_client::AccessLogServiceClient<Channel>;
    const NUL: &str = "甲\0乙";
    let org = Caller("organization", "360821");

    let cadre_with = |seq: u32, edit: &dyn Fn(&mut proto::Cadre)| {
        let mut c = new_cadre("新任干部", "360821", seq);
        edit(&mut c);
        c
    };
    let edits: Vec<(&'static str, proto::Cadre)> = vec![
        (
            "CreateCadre.display_name",
            cadre_with(401, &|c| c.display_name = NUL.into()),
        ),
        (
            "CreateCadre.unit_name",
            cadre_with(402, &|c| c.posts[0].unit_name = NUL.into()),
        ),
        (
            "CreateCadre.title",
            cadre_with(403, &|c| c.posts[0].title = NUL.into()),
        ),
        (
            "CreateCadre.rank",
            cadre_with(404, &|c| c.posts[0].rank = NUL.into()),
        ),
    ];
    for (rpc, cadre) in edits {
        let req = proto::CreateCadreRequest {
            cadre: Some(cadre),
            request_id: String::new(),
        };
        f.run(rpc, 1, Just((org, req)), |ch, r| async move {
            Cadres::new(ch).create_cadre(r).await.map(drop)
        })
        .await;
    }
    let req = proto::CreateCadreRequest {
        cadre: Some(new_cadre("新任干部", "360821", 405)),
        request_id: NUL.into(),
    };
    f.run(
        "CreateCadre.request_id",
        1,
        Just((org, req)),
        |ch, r| async move { Cadres::new(ch).create_cadre(r).await.map(drop) },
    )
    .await;
    let req = proto::BatchCreateCadresRequest {
        requests: vec![proto::CreateCadreRequest {
            cadre: Some(cadre_with(406, &|c| c.display_name = NUL.into())),
            request_id: String::new(),
        }],
        request_id: String::new(),
        validate_only: false,
    };
    f.run(
        "BatchCreateCadres.display_name",
        1,
        Just((org, req)),
        |ch, r| async move { Cadres::new(ch).batch_create_cadres(r).await.map(drop) },
    )
    .await;
    let mut target = f.target.clone();
    target.display_name = NUL.into();
    let req = proto::UpdateCadreRequest {
        cadre: Some(target),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["display_name".into()],
        }),
    };
    f.run(
        "UpdateCadre.display_name",
        1,
        Just((org, req)),
        |ch, r| async move { Cadres::new(ch).update_cadre(r).await.map(drop) },
    )
    .await;
    let req = proto::ListCadresRequest {
        filter: format!("display_name = \"{NUL}\""),
        ..Default::default()
    };
    f.run(
        "ListCadres.filter",
        1,
        Just((org, req)),
        |ch, r| async move { Cadres::new(ch).list_cadres(r).await.map(drop) },
    )
    .await;

    // Records: one text field of a valid payload at a time, and the ids around it.
    let mut submissions: Vec<(&'static str, Caller, proto::Record)> = Vec::new();
    let base = |kind: usize, source: &str| {
        let (payload, owner) = baseline_payload(kind, &f.petition);
        let record = proto::Record {
            cadre_id_number: f.cadre.id_number.clone(),
            source_record_id: source.into(),
            source_version: 1,
            classification: proto::Classification::Internal as i32,
            payload: Some(payload),
            ..Default::default()
        };
        (Caller(owner, "360821"), record)
    };
    let (who, mut r) = base(0, "NUL-1");
    if let Some(Payload::Sanction(s)) = r.payload.as_mut() {
        s.decision_number = NUL.into();
    }
    submissions.push(("SubmitRecord.decision_number", who, r));
    let (who, mut r) = base(0, NUL);
    r.source_record_id = NUL.into();
    submissions.push(("SubmitRecord.source_record_id", who, r));
    let (who, mut r) = base(9, "NUL-2");
    if let Some(Payload::Petition(p)) = r.payload.as_mut() {
        p.summary = NUL.into();
        p.forwarded_to = NUL.into();
    }
    submissions.push(("SubmitRecord.petition", who, r));
    let (who, mut r) = base(9, "NUL-3");
    if let Some(Payload::Petition(p)) = r.payload.as_mut() {
        p.informant.as_mut().unwrap().name = NUL.into();
    }
    submissions.push(("SubmitRecord.informant", who, r));
    let (who, mut r) = base(7, "NUL-4");
    if let Some(Payload::AuditEngagement(e)) = r.payload.as_mut() {
        e.report_number = NUL.into();
        e.audited_post = NUL.into();
    }
    submissions.push(("SubmitRecord.audit_engagement", who, r));
    let (who, mut r) = base(8, "NUL-5");
    if let Some(Payload::AuditFinding(a)) = r.payload.as_mut() {
        a.characterisation = NUL.into();
    }
    submissions.push(("SubmitRecord.characterisation", who, r));
    let (who, mut r) = base(8, "NUL-6");
    if let Some(Payload::AuditFinding(a)) = r.payload.as_mut() {
        a.engagement_source_record_id = NUL.into();
    }
    submissions.push(("SubmitRecord.engagement_source_record_id", who, r));
    let (who, mut r) = base(3, "NUL-7");
    if let Some(Payload::Clue(c)) = r.payload.as_mut() {
        c.conclusion = NUL.into();
    }
    submissions.push(("SubmitRecord.conclusion", who, r));
    let (who, mut r) = base(5, "NUL-8");
    if let Some(Payload::PersonalMattersCheck(m)) = r.payload.as_mut() {
        m.handling = NUL.into();
    }
    submissions.push(("SubmitRecord.handling", who, r));
    let (who, mut r) = base(2, "NUL-9");
    r.cadre_id_number = format!("{}\0", f.cadre.id_number);
    submissions.push(("SubmitRecord.cadre_id_number", who, r));
    for (rpc, who, record) in submissions {
        let req = proto::SubmitRecordRequest {
            record: Some(record.clone()),
            request_id: String::new(),
            validate_only: false,
        };
        f.run(rpc, 1, Just((who, req)), |ch, r| async move {
            Records::new(ch).submit_record(r).await.map(drop)
        })
        .await;
        let req = proto::BatchSubmitRecordsRequest {
            requests: vec![proto::SubmitRecordRequest {
                record: Some(record),
                request_id: String::new(),
                validate_only: false,
            }],
            request_id: NUL.into(),
            validate_only: false,
        };
        f.run(rpc, 1, Just((who, req)), |ch, r| async move {
            Records::new(ch).batch_submit_records(r).await.map(drop)
        })
        .await;
    }
    let finding = f
        .records
        .iter()
        .find(|r| matches!(r.payload, Some(Payload::AuditFinding(_))))
        .unwrap()
        .clone();
    let req = proto::RetractRecordRequest {
        name: finding.name,
        reason: NUL.into(),
        etag: String::new(),
    };
    f.run(
        "RetractRecord.reason",
        1,
        Just((Caller("audit", "360821"), req)),
        |ch, r| async move { Records::new(ch).retract_record(r).await.map(drop) },
    )
    .await;
    let req = proto::ListRecordsRequest {
        parent: "cadres/-".into(),
        filter: format!("kind = \"{NUL}\""),
        ..Default::default()
    };
    f.run(
        "ListRecords.filter",
        1,
        Just((Caller("audit", "360821"), req)),
        |ch, r| async move { Records::new(ch).list_records(r).await.map(drop) },
    )
    .await;

    // Opinions.
    let req = proto::CreateOpinionRequestRequest {
        cadres: vec![f.cadre.name.clone()],
        purpose: proto::OpinionPurpose::FurtherUse as i32,
        note: NUL.into(),
        ..Default::default()
    };
    f.run(
        "CreateOpinionRequest.note",
        1,
        Just((org, req)),
        |ch, r| async move { Opinions::new(ch).create_opinion_request(r).await.map(drop) },
    )
    .await;
    let (request, cadre) = (f.opinions[0].clone(), f.cadre.name.clone());
    let reply = |text: &str, signer: &str| proto::ReplyOpinionRequest {
        name: request.clone(),
        cadre: cadre.clone(),
        verdict: proto::Verdict::NoIssue as i32,
        text: text.into(),
        signer: signer.into(),
        ..Default::default()
    };
    let dis = Caller("discipline", "360821");
    for (rpc, req) in [
        ("ReplyOpinion.text", reply(NUL, "县纪委 张某")),
        ("ReplyOpinion.signer", reply("经查", NUL)),
    ] {
        f.run(rpc, 1, Just((dis, req)), |ch, r| async move {
            Opinions::new(ch).reply_opinion(r).await.map(drop)
        })
        .await;
    }
    let mut corrected = reply("更正", "县纪委 张某");
    corrected.correction_reason = NUL.into();
    f.run(
        "ReplyOpinion.correction_reason",
        1,
        Just((dis, corrected)),
        |ch, r| async move { Opinions::new(ch).reply_opinion(r).await.map(drop) },
    )
    .await;
    let req = proto::ListOpinionRequestsRequest {
        filter: format!("state = \"{NUL}\""),
        ..Default::default()
    };
    f.run(
        "ListOpinionRequests.filter",
        1,
        Just((dis, req)),
        |ch, r| async move { Opinions::new(ch).list_opinion_requests(r).await.map(drop) },
    )
    .await;
    let req = proto::WithdrawOpinionRequestRequest {
        name: f.opinions[2].clone(),
        reason: NUL.into(),
    };
    f.run(
        "WithdrawOpinionRequest.reason",
        1,
        Just((org, req)),
        |ch, r| async move {
            Opinions::new(ch)
                .withdraw_opinion_request(r)
                .await
                .map(drop)
        },
    )
    .await;

    for (rpc, principal, method) in [
        ("ListAccessEvents.principal", NUL, ""),
        ("ListAccessEvents.method", "", NUL),
    ] {
        let req = proto::ListAccessEventsRequest {
            principal: principal.into(),
            method: method.into(),
            ..Default::default()
        };
        f.run(rpc, 1, Just((dis, req)), |ch, r| async move {
            Log::new(ch).list_access_events(r).await.map(drop)
        })
        .await;
    }
    f.finish(&[]);
}
