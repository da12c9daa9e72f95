//! Per-system limits through the real server: a system over its rate or concurrency limit gets RESOURCE_EXHAUSTED with RetryInfo, other systems go on.

use std::time::{Duration, Instant};

use cadrex::proto::{self, CreateCadreRequest, GetCadreRequest, WhoAmIRequest};
use tonic::Code;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::common::{Backend, TestServer, count_rows, new_cadre};

both_backends!(
    rate_limit_refuses_one_system_only,
    concurrency_limit_counts_open_streams,
);

type Feed = proto::change_feed_service_client::ChangeFeedServiceClient<tonic::transport::Channel>;

/// Checks the details every limited call carries; returns the RetryInfo delay.
fn assert_limited(status: &tonic::Status, reason: &str) -> Duration {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "cadrex");
    let localized = status
        .get_details_localized_message()
        .expect("LocalizedMessage");
    assert_eq!(localized.locale, "zh-CN");
    assert!(!localized.message.is_empty());
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo with a delay");
    assert!(delay > Duration::ZERO, "{delay:?}");
    delay
}

async fn rate_limit_refuses_one_system_only(backend: Backend) {
    const RATE: u32 = 2;
    const BURST: u32 = 3;
    const FLOOD: usize = 30;
    let server = TestServer::spawn_with(backend, |c| {
        c.rate_limit_per_system = RATE;
        c.rate_limit_burst = BURST;
        // An override lifts one system well above the default.
        c.system_limits.insert(
            "urn:cadrex:system:petition:360821:petition-sys".into(),
            cadrex::ratelimit::LimitOverride {
                rate_per_second: Some(1000),
                burst: Some(1000),
                ..Default::default()
            },
        );
    })
    .await;
    // A real cadre, so that every admitted read is an access-log row.
    let cadre = server
        .cadres("organization", "360821")
        .await
        .create_cadre(CreateCadreRequest {
            cadre: Some(new_cadre("王五", "360821", 7)),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let rows_before = count_rows(&server.store_url, "SELECT COUNT(*) FROM access_log").await;

    let audit = server.cadres("audit", "360821").await;
    let discipline = server.cadres("discipline", "360821").await;
    let petition = server.system("petition", "360821").await;
    let started = Instant::now();
    let flood = (0..FLOOD).map(|_| {
        let mut c = audit.clone();
        let name = cadre.name.clone();
        tokio::spawn(async move { c.get_cadre(GetCadreRequest { name }).await })
    });
    // At the same time: another system within its own budget, and the overridden one
    // far above the default.
    let other = (0..BURST).map(|_| {
        let mut c = discipline.clone();
        let name = cadre.name.clone();
        tokio::spawn(async move { c.get_cadre(GetCadreRequest { name }).await })
    });
    let lifted = (0..40).map(|_| {
        let mut c = petition.clone();
        tokio::spawn(async move { c.who_am_i(WhoAmIRequest {}).await })
    });
    let flood: Vec<_> = futures::future::join_all(flood).await;
    let other: Vec<_> = futures::future::join_all(other).await;
    let lifted: Vec<_> = futures::future::join_all(lifted).await;
    let elapsed = started.elapsed().as_secs_f64();

    let mut admitted = 0;
    let mut delay = Duration::ZERO;
    for r in flood {
        match r.unwrap() {
            Ok(_) => admitted += 1,
            Err(status) => delay = assert_limited(&status, "RATE_LIMITED"),
        }
    }
    // GCRA admits the burst plus what the rate refills while the flood lasts.
    let most = BURST as f64 + RATE as f64 * elapsed + 1.0;
    assert!(admitted >= 1, "nothing admitted");
    assert!(
        (admitted as f64) <= most,
        "{admitted} admitted in {elapsed:.2}s, at most {most:.1} expected"
    );
    assert!(admitted < FLOOD, "no call was limited in {elapsed:.2}s");
    assert!(delay <= Duration::from_secs(1), "{delay:?}");
    for r in other {
        r.unwrap()
            .expect("another system within its budget is unaffected");
    }
    for r in lifted {
        r.unwrap().expect("the overridden system is not limited");
    }

    // Refused calls touched no cadre data: only admitted reads were logged.
    let rows_after = count_rows(&server.store_url, "SELECT COUNT(*) FROM access_log").await;
    assert_eq!(rows_after - rows_before, (admitted + BURST as usize) as i64);

    // After the advised delay the limited system is served again.
    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    let mut audit = audit;
    audit
        .get_cadre(GetCadreRequest {
            name: cadre.name.clone(),
        })
        .await
        .expect("served again after RetryInfo's delay");
}

async fn concurrency_limit_counts_open_streams(backend: Backend) {
    const MAX: usize = 2;
    let server = TestServer::spawn_with(backend, |c| {
        c.max_concurrent_calls_per_system = MAX as u32;
    })
    .await;
    let audit_channel = server.channel("audit", "360821").await;
    let mut streams = Vec::new();
    for _ in 0..MAX {
        let s = Feed::new(audit_channel.clone())
            .watch_changes(proto::WatchChangesRequest::default())
            .await
            .expect("a stream within the limit opens")
            .into_inner();
        streams.push(s);
    }
    // The streams hold both slots: the next call of the same system is refused,
    // whatever it is.
    let mut audit = proto::system_service_client::SystemServiceClient::new(audit_channel.clone());
    let status = audit.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_limited(&status, "TOO_MANY_CONCURRENT_CALLS");
    let status = Feed::new(audit_channel.clone())
        .watch_changes(proto::WatchChangesRequest::default())
        .await
        .unwrap_err();
    assert_limited(&status, "TOO_MANY_CONCURRENT_CALLS");

    // Another system has its own slots, streams included.
    let discipline = server.channel("discipline", "360821").await;
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(
            Feed::new(discipline.clone())
                .watch_changes(proto::WatchChangesRequest::default())
                .await
                .expect("another system's stream")
                .into_inner(),
        );
    }
    drop(held);
    let mut org = server.system("organization", "360821").await;
    for _ in 0..5 {
        org.who_am_i(WhoAmIRequest {}).await.unwrap();
    }

    // Closing one stream frees its slot once the server sees the stream reset.
    drop(streams.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match audit.who_am_i(WhoAmIRequest {}).await {
            Ok(_) => break,
            Err(status) => {
                assert_limited(&status, "TOO_MANY_CONCURRENT_CALLS");
                assert!(Instant::now() < deadline, "slot not released");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // The freed slot takes a new stream; with it the system is full again.
    let again = Feed::new(audit_channel.clone())
        .watch_changes(proto::WatchChangesRequest::default())
        .await
        .expect("the freed slot takes a new stream");
    let status = audit.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_limited(&status, "TOO_MANY_CONCURRENT_CALLS");
    drop((again, streams));
}
