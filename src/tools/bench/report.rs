//! What `cadrex bench` found, as one JSON object or as a table with each figure's goal beside it.

use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use super::{COMPARE_AT, CONCURRENCY, INGEST_BATCH, INGEST_CALLERS, PROVINCE};

/// Everything measured, as printed.
#[derive(Debug, Default)]
pub struct Report {
    pub backend: String,
    pub cadres: usize,
    pub changes: i64,
    pub ceiling: Vec<(usize, f64)>,
    /// (callers, requests/s, p50 ms, p99 ms)
    pub dossier: Vec<(usize, f64, f64, f64)>,
    pub in_process: f64,
    pub ingest: f64,
    pub raw_insert: f64,
    pub feed: f64,
    pub feed_events: u64,
    pub unlogged: Option<f64>,
    pub peak_rss: Option<u64>,
    pub duration: Duration,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl Report {
    fn dossier_at(&self, n: usize) -> Option<&(usize, f64, f64, f64)> {
        self.dossier.iter().find(|d| d.0 == n)
    }

    /// One JSON object with every figure; `null` where a figure was not
    /// measured (no unlogged build, or no child process to read RSS from).
    pub fn json(&self) -> Value {
        let per = |f: &dyn Fn(usize) -> f64| -> Value {
            CONCURRENCY
                .iter()
                .map(|n| (n.to_string(), json!(f(*n))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let ceiling = |n: usize| {
            self.ceiling
                .iter()
                .find(|c| c.0 == n)
                .map(|c| c.1)
                .unwrap_or(0.0)
        };
        let d = |n: usize| self.dossier_at(n).copied().unwrap_or((n, 0.0, 0.0, 0.0));
        let logged = d(COMPARE_AT).1;
        json!({
            "backend": self.backend,
            "cadres": self.cadres,
            "changes": self.changes,
            "duration_s": self.duration.as_secs_f64(),
            "ceiling_rps": per(&ceiling),
            "dossier_rps": per(&|n| d(n).1),
            "dossier_p50_ms": per(&|n| d(n).2),
            "dossier_p99_ms": per(&|n| d(n).3),
            "dossier_to_ceiling": per(&|n| ratio(d(n).1, ceiling(n))),
            "dossier_in_process_rps": self.in_process,
            "dossier_rpc_to_in_process": ratio(logged, self.in_process),
            "ingest_findings_per_s": self.ingest,
            "raw_insert_rows_per_s": self.raw_insert,
            "ingest_to_raw": ratio(self.ingest, self.raw_insert),
            "feed_changes_per_s": self.feed,
            "feed_events": self.feed_events,
            "dossier_unlogged_rps": self.unlogged,
            "logged_to_unlogged": self.unlogged.map(|u| ratio(logged, u)),
            "server_peak_rss_mib": self.peak_rss.map(|b| b as f64 / (1024.0 * 1024.0)),
        })
    }

    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec!["figure", "value", "goal"]);
        let ceiling = |n: usize| {
            self.ceiling
                .iter()
                .find(|c| c.0 == n)
                .map(|c| c.1)
                .unwrap_or(0.0)
        };
        for n in CONCURRENCY {
            t.add_row(vec![
                format!("ceiling (health Check), {n} callers"),
                format!("{:.0} req/s", ceiling(n)),
                String::new(),
            ]);
        }
        for &(n, rps, p50, p99) in &self.dossier {
            t.add_row(vec![
                format!("GetCadreDossier, {n} callers"),
                format!("{rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms"),
                if n == COMPARE_AT {
                    "p99 ≤ 10 ms".into()
                } else {
                    String::new()
                },
            ]);
            t.add_row(vec![
                format!("  dossier / ceiling, {n} callers"),
                format!("{:.2}", ratio(rps, ceiling(n))),
                "≥ 0.6".into(),
            ]);
        }
        let logged = self.dossier_at(COMPARE_AT).map(|d| d.1).unwrap_or(0.0);
        t.add_row(vec![
            format!("dossier in-process (no gRPC/TLS/log), {COMPARE_AT} callers"),
            format!("{:.0} dossiers/s", self.in_process),
            String::new(),
        ]);
        t.add_row(vec![
            "  dossier RPC / in-process".into(),
            format!("{:.2}", ratio(logged, self.in_process)),
            "≥ 0.5".into(),
        ]);
        t.add_row(vec![
            format!("BatchSubmitRecords, findings ×{INGEST_BATCH}, {INGEST_CALLERS} callers"),
            format!("{:.0} findings/s", self.ingest),
            if self.backend == "sqlite" {
                "≥ 20,000/s".into()
            } else {
                String::new()
            },
        ]);
        t.add_row(vec![
            format!("raw multi-row INSERT, {INGEST_BATCH} rows/transaction"),
            format!("{:.0} rows/s", self.raw_insert),
            String::new(),
        ]);
        t.add_row(vec![
            "  ingest / raw insert".into(),
            format!("{:.2}", ratio(self.ingest, self.raw_insert)),
            "≥ 0.5".into(),
        ]);
        t.add_row(vec![
            "ListChanges, 1 consumer, page 1000".into(),
            format!("{:.0} changes/s ({} events)", self.feed, self.feed_events),
            "≥ 100,000/s".into(),
        ]);
        match self.unlogged {
            Some(u) => {
                t.add_row(vec![
                    format!("dossier, access log no-op, {COMPARE_AT} callers"),
                    format!("{u:.0} req/s"),
                    String::new(),
                ]);
                t.add_row(vec![
                    "  logged / unlogged".into(),
                    format!("{:.2}", ratio(logged, u)),
                    "≥ 0.8".into(),
                ]);
            }
            None => {
                t.add_row(vec![
                    "  logged / unlogged",
                    "n/a (build with --features bench-nolog)",
                    "≥ 0.8",
                ]);
            }
        }
        t.add_row(vec![
            "server peak RSS (VmHWM)".into(),
            match self.peak_rss {
                Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
                None => "n/a (--server)".into(),
            },
            "≤ 100 MiB".into(),
        ]);
        format!(
            "cadrex bench: {} store, {} cadres in {PROVINCE}'s jurisdiction, {} changes, {:.0}s\n{t}",
            self.backend,
            self.cadres,
            self.changes,
            self.duration.as_secs_f64()
        )
    }
}
