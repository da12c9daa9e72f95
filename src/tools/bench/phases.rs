//! The phases of `cadrex bench`: each a workload over mTLS (or, for the baseline, in process) driven for a slot of the run's time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::harness::{Stats, channels, drive};
use super::{INGEST_BATCH, INGEST_CALLERS, PROVINCE};
use crate::domain::agency::Agency;
use crate::identity::Principal;
use crate::proto;
use crate::proto::change_feed_service_client::ChangeFeedServiceClient;
use crate::proto::dossier_service_client::DossierServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::rng::Rng;

/// Picks a cadre for (caller, iteration) reproducibly from the run's seed.
fn target(seed: u64, targets: &[String], caller: usize, i: u64) -> String {
    let mut r = Rng::new(seed ^ ((caller as u64) << 40) ^ i);
    format!("cadres/{}", targets[r.below(targets.len())])
}

pub fn dossier_request(cadre: String) -> proto::GetCadreDossierRequest {
    proto::GetCadreDossierRequest {
        cadre,
        purpose: proto::Purpose::CaseHandling as i32,
        opinion_request: String::new(),
    }
}

/// GetCadreDossier at `callers` concurrent callers as the province's discipline system.
pub(super) async fn dossier_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    targets: Arc<Vec<String>>,
    seed: u64,
    callers: usize,
    time: Duration,
) -> anyhow::Result<Stats> {
    let clients: Arc<Vec<DossierServiceClient<Channel>>> = Arc::new(
        channels(pki_dir, addr, Agency::Discipline, PROVINCE, callers.min(8))?
            .into_iter()
            .map(DossierServiceClient::new)
            .collect(),
    );
    drive(callers, time, move |c, i| {
        let mut client = clients[c % clients.len()].clone();
        let req = dossier_request(target(seed, &targets, c, i));
        async move {
            client.get_cadre_dossier(req).await?;
            Ok(1)
        }
    })
    .await
}

pub(super) async fn ceiling_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    callers: usize,
    time: Duration,
) -> anyhow::Result<Stats> {
    let clients: Arc<Vec<_>> = Arc::new(
        channels(pki_dir, addr, Agency::Discipline, PROVINCE, callers.min(8))?
            .into_iter()
            .map(tonic_health::pb::health_client::HealthClient::new)
            .collect(),
    );
    drive(callers, time, move |c, _| {
        let mut client = clients[c % clients.len()].clone();
        async move {
            client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await?;
            Ok(1)
        }
    })
    .await
}

/// A finding about a cadre with an engagement by the benchmark's audit system.
pub fn finding(
    run: &str,
    n: u64,
    cadre_id: &str,
    engagement_sid: &str,
) -> proto::SubmitRecordRequest {
    proto::SubmitRecordRequest {
        record: Some(proto::Record {
            cadre: format!("cadres/{cadre_id}"),
            source_record_id: format!("bench-{run}-{n}"),
            source_version: 1,
            classification: proto::Classification::Internal as i32,
            payload: Some(proto::record::Payload::AuditFinding(proto::AuditFinding {
                engagement_source_record_id: engagement_sid.to_string(),
                problem_type: proto::ProblemType::IrregularFunds as i32,
                amount_fen: 1_250_000 + n as i64,
                characterisation: "超标准列支公务接待费".into(),
                responsibility: proto::Responsibility::Direct as i32,
                transfer: proto::Transfer::None as i32,
                rectification: Some(proto::Rectification {
                    deadline: "2026-12-31".into(),
                    status: proto::RectificationStatus::InProgress as i32,
                    report_ref: String::new(),
                }),
                finding_date: "2026-05-20".into(),
                engagement: String::new(),
            })),
            ..Default::default()
        }),
        request_id: String::new(),
        validate_only: false,
    }
}

pub(super) async fn ingest_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    engagements: Arc<Vec<(String, String)>>,
    time: Duration,
) -> anyhow::Result<Stats> {
    if engagements.is_empty() {
        anyhow::bail!(
            "no audit engagements by the {PROVINCE} audit system in the store; run `cadrex seed`"
        );
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let clients: Arc<Vec<RecordServiceClient<Channel>>> = Arc::new(
        channels(pki_dir, addr, Agency::Audit, PROVINCE, INGEST_CALLERS)?
            .into_iter()
            .map(|c| RecordServiceClient::new(c).max_decoding_message_size(64 << 20))
            .collect(),
    );
    drive(INGEST_CALLERS, time, move |c, i| {
        let mut client = clients[c % clients.len()].clone();
        let base = ((c as u64) << 40) | (i * INGEST_BATCH as u64);
        let requests = (0..INGEST_BATCH as u64)
            .map(|k| {
                let (cadre, sid) = &engagements[((base + k) % engagements.len() as u64) as usize];
                finding(&run, base + k, cadre, sid)
            })
            .collect();
        async move {
            let resp = client
                .batch_submit_records(proto::BatchSubmitRecordsRequest {
                    requests,
                    request_id: String::new(),
                    validate_only: false,
                })
                .await?
                .into_inner();
            if let Some(e) = resp.results.iter().find_map(|r| r.error.as_ref()) {
                anyhow::bail!("ingest item refused: {} {}", e.reason, e.message);
            }
            Ok(resp.results.len() as u64)
        }
    })
    .await
}

/// Reads the whole feed from its start as the province's discipline system.
pub(super) async fn feed_phase(
    pki_dir: &Path,
    addr: SocketAddr,
    time: Duration,
) -> anyhow::Result<Stats> {
    let mut client = ChangeFeedServiceClient::new(
        channels(pki_dir, addr, Agency::Discipline, PROVINCE, 1)?.remove(0),
    )
    .max_decoding_message_size(64 << 20);
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut cursor = String::new();
    while start.elapsed() < time {
        let t = Instant::now();
        let page = client
            .list_changes(proto::ListChangesRequest {
                after_cursor: cursor.clone(),
                kinds: Vec::new(),
                page_size: 1000,
            })
            .await?
            .into_inner();
        stats.latencies_us.push(t.elapsed().as_micros() as u64);
        stats.calls += 1;
        stats.items += page.events.len() as u64;
        // A page may hold no event the caller can see while the cursor still
        // moves; only a cursor that stops moving is the end of the feed.
        if page.next_cursor == cursor {
            break;
        }
        cursor = page.next_cursor;
    }
    stats.elapsed = start.elapsed();
    stats.latencies_us.sort_unstable();
    Ok(stats)
}

/// In-process dossiers at `callers`: the same assembly the handler runs.
pub(super) async fn in_process_phase(
    state: Arc<crate::AppState>,
    principal: Principal,
    targets: Arc<Vec<String>>,
    seed: u64,
    callers: usize,
    time: Duration,
) -> anyhow::Result<Stats> {
    drive(callers, time, move |c, i| {
        let state = state.clone();
        let principal = principal.clone();
        let req = dossier_request(target(seed, &targets, c, i));
        async move {
            crate::dossier_in_process(state, principal, req)
                .await
                .map_err(|e| anyhow::anyhow!("in-process dossier: {e}"))?;
            Ok(1)
        }
    })
    .await
}
