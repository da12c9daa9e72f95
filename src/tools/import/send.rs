//! Talking to the server: the preflight, batches with keyed request ids, retries, splitting a batch too large, and each row's outcome.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use prost::Message;
use ring::hmac;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::parse::{Item, Pending};
use super::{ImportArgs, ImportKind};
use crate::domain::agency::Agency;
use crate::proto;
use crate::proto::cadre_service_client::CadreServiceClient;
use crate::proto::record_service_client::RecordServiceClient;
use crate::proto::system_service_client::SystemServiceClient;
use crate::tools::connect::{self, Patience, code_name, error_reason};

/// Tries per batch for transient failures; with the backoff below the last try
/// starts about 15 s after the first, enough to ride out a server restart.
const MAX_TRIES: u32 = 6;
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Longer than the server's own per-call timeout (30 s by default), so that a
/// slow batch ends with the server's DEADLINE_EXCEEDED rather than ours.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) async fn connect(args: &ImportArgs) -> anyhow::Result<Channel> {
    let endpoint = args
        .connection()
        .endpoint()?
        .connect_timeout(Duration::from_secs(10))
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true);
    endpoint.connect().await.with_context(|| {
        format!(
            "cannot connect to {} (is the server running, does its certificate name {:?} \
             and chain to {}?)",
            args.server,
            args.server_name,
            args.ca.display()
        )
    })
}

/// What became of one row on the server.
pub(super) enum Outcome {
    Accepted(Stored),
    Unchanged(Stored),
    Stale(Stored),
    Rejected(proto::ItemError),
}

/// What a row became in the exchange: the resource name and, for records,
/// the revision the answer carried (both empty in a dry run, which stores
/// nothing).
#[derive(Clone, Debug, Default)]
pub(super) struct Stored {
    pub(super) name: String,
    pub(super) revision: Option<i64>,
}

impl Stored {
    fn of_record(r: Option<&proto::Record>) -> Self {
        r.map(|r| Stored {
            name: r.name.clone(),
            revision: Some(r.revision).filter(|v| *v > 0),
        })
        .unwrap_or_default()
    }

    fn of_cadre(c: Option<&proto::Cadre>) -> Self {
        Stored {
            name: c.map(|c| c.name.clone()).unwrap_or_default(),
            revision: None,
        }
    }
}

/// The answer to one call, or the instruction to split the batch.
enum Sent {
    Done(Vec<Outcome>),
    TooLarge(Status),
}

pub(super) struct Sender {
    kind: ImportKind,
    records: RecordServiceClient<Channel>,
    cadres: CadreServiceClient<Channel>,
    system: SystemServiceClient<Channel>,
    run_start: SystemTime,
    /// Salts request ids of follow-up calls within this run (see `submit`).
    run_salt: [u8; 16],
    /// Keys the request ids (see [`request_id_key`]).
    id_key: hmac::Key,
    bar: indicatif::ProgressBar,
    /// Named when the server refuses it.
    cert: PathBuf,
    /// Every call asks `validate_only`.
    pub(super) dry_run: bool,
}

impl Sender {
    pub(super) fn new(
        kind: ImportKind,
        channel: Channel,
        run_start: SystemTime,
        bar: indicatif::ProgressBar,
        cert: PathBuf,
        id_key: hmac::Key,
    ) -> Self {
        // Responses carry whole records; allow more than tonic's 4 MiB default.
        let limit = 64 << 20;
        let salt_src = format!(
            "{}:{:?}",
            std::process::id(),
            run_start.duration_since(UNIX_EPOCH).unwrap_or_default()
        );
        let mut run_salt = [0u8; 16];
        run_salt.copy_from_slice(&Sha256::digest(salt_src.as_bytes())[..16]);
        Self {
            kind,
            records: RecordServiceClient::new(channel.clone()).max_decoding_message_size(limit),
            cadres: CadreServiceClient::new(channel.clone()).max_decoding_message_size(limit),
            system: SystemServiceClient::new(channel),
            run_start,
            run_salt,
            id_key,
            bar,
            cert,
            dry_run: false,
        }
    }

    /// Confirms the server accepts the certificate and that its agency may
    /// submit this kind, before any row is sent.
    pub(super) async fn preflight(&mut self, args: &ImportArgs) -> anyhow::Result<()> {
        let me = match self.system.who_am_i(proto::WhoAmIRequest {}).await {
            Ok(r) => r.into_inner(),
            // A refused certificate reads as it does in every client.
            Err(s) => match connect::refused_by_tls(&s, "WhoAmI", &args.connection()).await {
                Some(refused) => return Err(refused),
                None => return Err(fatal_status(&s, "WhoAmI", args)),
            },
        };
        let agency = proto::Agency::try_from(me.agency)
            .ok()
            .and_then(Agency::from_proto);
        let owners = self.kind.owners();
        if !agency.is_some_and(|a| owners.contains(&a)) {
            let names: Vec<_> = owners.iter().map(|a| a.as_str()).collect();
            bail!(
                "{} records are submitted by {} systems; {} is {} (use that agency's certificate)",
                self.kind,
                names.join(" or "),
                me.principal,
                agency.map_or("an unknown agency", Agency::as_str)
            );
        }
        tracing::debug!(principal = %me.principal, "importing as");
        Ok(())
    }

    /// Sends `batch` and returns one outcome per row, in order.
    ///
    /// The first call's request id is the content hash, so a retry of a batch
    /// whose response was lost, in this run or a later one, replays the
    /// server's answer. A replayed answer may be stale, though: a row refused
    /// yesterday because its cadre or engagement was missing would be refused
    /// again from the replay after the cadre was registered. So rows refused
    /// for a reason that depends on other data are sent once more under a
    /// request id salted with this run, and transient item failures are
    /// retried with backoff the same way.
    pub(super) async fn submit(&mut self, batch: &[Pending]) -> anyhow::Result<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = (0..batch.len()).map(|_| None).collect();
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut round = 0u32;
        loop {
            let items: Vec<&Pending> = todo.iter().map(|&i| &batch[i]).collect();
            let salt = (round > 0).then(|| {
                let mut s = self.run_salt.to_vec();
                s.extend_from_slice(&round.to_be_bytes());
                s
            });
            let results = self.send_split(&items, salt.as_deref()).await?;
            let mut again = Vec::new();
            let mut transient = false;
            for (&i, outcome) in todo.iter().zip(results) {
                match outcome {
                    Outcome::Rejected(e) if is_transient_item(&e) && round + 1 < MAX_TRIES => {
                        transient = true;
                        again.push(i);
                    }
                    Outcome::Rejected(e) if round == 0 && depends_on_other_data(&e) => {
                        again.push(i);
                    }
                    o => outcomes[i] = Some(o),
                }
            }
            if again.is_empty() {
                break;
            }
            round += 1;
            if transient {
                tokio::time::sleep(backoff(round)).await;
            }
            todo = again;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every row has an outcome"))
            .collect())
    }

    /// Sends items, halving a batch the server finds too large.
    async fn send_split(
        &mut self,
        items: &[&Pending],
        salt: Option<&[u8]>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut out: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
        // Ranges still to send, the next one last, so the file order holds.
        let mut ranges = vec![(0, items.len())];
        while let Some((a, b)) = ranges.pop() {
            match self.send_retrying(&items[a..b], salt).await? {
                Sent::Done(results) => {
                    for (slot, r) in out[a..b].iter_mut().zip(results) {
                        *slot = Some(r);
                    }
                }
                Sent::TooLarge(_) if b - a > 1 => {
                    let mid = a + (b - a) / 2;
                    ranges.push((mid, b));
                    ranges.push((a, mid));
                }
                Sent::TooLarge(status) => {
                    out[a] = Some(Outcome::Rejected(proto::ItemError {
                        code: status.code() as i32,
                        reason: error_reason(&status).unwrap_or_default(),
                        message: format!("row alone is too large to send: {}", status.message()),
                        field_violations: Vec::new(),
                    }));
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|o| o.expect("every item was sent"))
            .collect())
    }

    /// One call with whole-call retries under the same request id.
    async fn send_retrying(
        &mut self,
        items: &[&Pending],
        salt: Option<&[u8]>,
    ) -> anyhow::Result<Sent> {
        let mut request = build_request(self.kind, items, salt, &self.id_key);
        match &mut request {
            BatchRequest::Records(r) => r.validate_only = self.dry_run,
            BatchRequest::Cadres(r) => r.validate_only = self.dry_run,
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let result = match &request {
                BatchRequest::Records(r) => self
                    .records
                    .batch_submit_records(r.clone())
                    .await
                    .map(|resp| self.record_outcomes(items.len(), resp.into_inner())),
                BatchRequest::Cadres(r) => self
                    .cadres
                    .batch_create_cadres(r.clone())
                    .await
                    .map(|resp| self.cadre_outcomes(items.len(), resp.into_inner())),
            };
            let status = match result {
                Ok(outcomes) => return Ok(Sent::Done(outcomes)),
                Err(s) => s,
            };
            match status.code() {
                Code::ResourceExhausted | Code::OutOfRange => return Ok(Sent::TooLarge(status)),
                _ if is_transient(&status) && tries < MAX_TRIES => {
                    let wait = backoff(tries);
                    self.bar.suspend(|| {
                        tracing::warn!(
                            code = code_name(status.code() as i32),
                            message = status.message(),
                            first_line = items[0].line,
                            "batch failed; retrying in {wait:?} (try {} of {MAX_TRIES})",
                            tries + 1
                        )
                    });
                    tokio::time::sleep(wait).await;
                }
                Code::Unauthenticated | Code::PermissionDenied => {
                    bail!(connect::refusal(&status, self.method(), &self.cert).unwrap_or_default());
                }
                _ => bail!(
                    "{} failed{}: {} {}{}",
                    self.method(),
                    if tries > 1 {
                        format!(" after {tries} tries")
                    } else {
                        String::new()
                    },
                    code_name(status.code() as i32),
                    status.message(),
                    error_reason(&status)
                        .map(|r| format!(" (reason {r})"))
                        .unwrap_or_default()
                ),
            }
        }
    }

    fn method(&self) -> &'static str {
        if self.kind == ImportKind::Cadre {
            "CadreService.BatchCreateCadres"
        } else {
            "RecordService.BatchSubmitRecords"
        }
    }

    fn existed_before(&self, t: Option<&prost_types::Timestamp>) -> bool {
        t.and_then(|t| {
            let secs = u64::try_from(t.seconds).ok()?;
            let nanos = u32::try_from(t.nanos).ok()?;
            Some(UNIX_EPOCH + Duration::new(secs, nanos) < self.run_start)
        })
        .unwrap_or(false)
    }

    fn record_outcomes(&self, n: usize, resp: proto::BatchSubmitRecordsResponse) -> Vec<Outcome> {
        let mut by_index: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        for r in resp.results {
            let Some(slot) = usize::try_from(r.index)
                .ok()
                .and_then(|i| by_index.get_mut(i))
            else {
                continue;
            };
            let stored_as = Stored::of_record(r.record.as_ref());
            *slot = Some(match (r.error, r.stale) {
                (Some(e), _) => Outcome::Rejected(e),
                (None, true) => Outcome::Stale(stored_as),
                // The server returns the stored record for a repeat of the
                // same version and content; its write time tells a re-run
                // from a fresh write.
                (None, false) => {
                    let stored = r.record.as_ref().and_then(|rec| rec.update_time.as_ref());
                    if self.existed_before(stored) {
                        Outcome::Unchanged(stored_as)
                    } else {
                        Outcome::Accepted(stored_as)
                    }
                }
            });
        }
        fill_missing(by_index)
    }

    fn cadre_outcomes(&self, n: usize, resp: proto::BatchCreateCadresResponse) -> Vec<Outcome> {
        let mut by_index: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        for r in resp.results {
            let Some(slot) = usize::try_from(r.index)
                .ok()
                .and_then(|i| by_index.get_mut(i))
            else {
                continue;
            };
            *slot = Some(match r.error {
                Some(e) => Outcome::Rejected(e),
                None => {
                    // A replayed batch says `created` again; the creation
                    // time says whether it happened in this run.
                    let created_before =
                        self.existed_before(r.cadre.as_ref().and_then(|c| c.create_time.as_ref()));
                    let stored_as = Stored::of_cadre(r.cadre.as_ref());
                    if r.created && !created_before {
                        Outcome::Accepted(stored_as)
                    } else {
                        Outcome::Unchanged(stored_as)
                    }
                }
            });
        }
        fill_missing(by_index)
    }
}

enum BatchRequest {
    Records(proto::BatchSubmitRecordsRequest),
    Cadres(proto::BatchCreateCadresRequest),
}

/// The key of a system's request ids: SHA-256 of a label and its private key
/// file. The same batch from the same system always gets the same id, so a
/// lost response replays on the next run; the id is a keyed digest because it
/// is kept in the access log for good, and a plain digest of a batch of
/// petitions would let anyone reading the database confirm a guessed
/// informant offline.
pub(super) fn request_id_key(key_pem: &[u8]) -> hmac::Key {
    let mut h = Sha256::new();
    h.update(b"cadrex import request id v1\0");
    h.update(key_pem);
    hmac::Key::new(hmac::HMAC_SHA256, &h.finalize())
}

/// The request and its request id: hex HMAC-SHA-256 under `key` over the
/// kind, the salt (none on the first call) and the encoded batch.
fn build_request(
    kind: ImportKind,
    items: &[&Pending],
    salt: Option<&[u8]>,
    key: &hmac::Key,
) -> BatchRequest {
    let mut h = hmac::Context::with_key(key);
    h.update(kind.as_str().as_bytes());
    h.update(&[0u8]);
    if let Some(s) = salt {
        h.update(s);
    }
    match kind {
        ImportKind::Cadre => {
            let mut req = proto::BatchCreateCadresRequest {
                requests: items
                    .iter()
                    .map(|p| proto::CreateCadreRequest {
                        cadre: match &p.item {
                            Item::Cadre(c) => Some((**c).clone()),
                            Item::Record(_) => None,
                        },
                        request_id: String::new(),
                    })
                    .collect(),
                request_id: String::new(),
                validate_only: false,
            };
            h.update(&req.encode_to_vec());
            req.request_id = hex::encode(h.sign().as_ref());
            BatchRequest::Cadres(req)
        }
        ImportKind::Record(_) => {
            let mut req = proto::BatchSubmitRecordsRequest {
                requests: items
                    .iter()
                    .map(|p| proto::SubmitRecordRequest {
                        record: match &p.item {
                            Item::Record(r) => Some((**r).clone()),
                            Item::Cadre(_) => None,
                        },
                        request_id: String::new(),
                        validate_only: false,
                    })
                    .collect(),
                request_id: String::new(),
                validate_only: false,
            };
            h.update(&req.encode_to_vec());
            req.request_id = hex::encode(h.sign().as_ref());
            BatchRequest::Records(req)
        }
    }
}

/// A result the server left out counts as a failure of that row, not a success.
fn fill_missing(v: Vec<Option<Outcome>>) -> Vec<Outcome> {
    v.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::Rejected(proto::ItemError {
                    code: Code::Internal as i32,
                    reason: "NO_RESULT".into(),
                    message: "the server returned no result for this row".into(),
                    field_violations: Vec::new(),
                })
            })
        })
        .collect()
}

fn backoff(try_number: u32) -> Duration {
    connect::backoff(try_number, BACKOFF_MAX)
}

fn is_transient(status: &Status) -> bool {
    connect::is_transient(status, Patience::Run)
}

fn is_transient_item(e: &proto::ItemError) -> bool {
    connect::is_transient_item(e.code, &e.reason)
}

/// Refusals that another import may have cured since (a cadre registered, an
/// engagement submitted), as opposed to faults of the row itself.
fn depends_on_other_data(e: &proto::ItemError) -> bool {
    matches!(
        Code::from(e.code),
        Code::NotFound | Code::PermissionDenied | Code::FailedPrecondition
    )
}

fn fatal_status(status: &Status, method: &str, args: &ImportArgs) -> anyhow::Error {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => {
            anyhow::anyhow!(connect::refusal(status, method, &args.cert).unwrap_or_default())
        }
        code => anyhow::anyhow!(
            "{method} on {} failed: {} {} (check --cert {}, --key and --ca {})",
            args.server,
            code_name(code as i32),
            status.message(),
            args.cert.display(),
            args.ca.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::import::parse::parse_row;
    use crate::tools::import::read::row;

    #[test]
    fn request_ids_are_keyed_content_digests() {
        let mk = |id: &str| {
            let r = row(&[
                ("cadre_id_number", "36082119750312001X"),
                ("source_record_id", id),
                ("classification", "INTERNAL"),
            ]);
            parse_row(ImportKind::OrgHandling, &r).unwrap_or_else(|_| panic!("parses"))
        };
        let (a, b) = (mk("OH-1"), mk("OH-2"));
        let key = request_id_key(b"one system's key");
        let keyed = |items: &[&Pending], salt: Option<&[u8]>, key: &hmac::Key| match build_request(
            ImportKind::OrgHandling,
            items,
            salt,
            key,
        ) {
            BatchRequest::Records(r) => r.request_id,
            BatchRequest::Cadres(r) => r.request_id,
        };
        let id = |items: &[&Pending], salt: Option<&[u8]>| keyed(items, salt, &key);
        assert_eq!(id(&[&a, &b], None), id(&[&a, &b], None));
        assert_eq!(id(&[&a, &b], None).len(), 64);
        assert_ne!(id(&[&a, &b], None), id(&[&b, &a], None));
        assert_ne!(id(&[&a, &b], None), id(&[&a, &b], Some(b"x")));
        // Another system's key gives another id, and the id is not the plain
        // digest of what it covers, which anyone could recompute.
        let other = request_id_key(b"another system's key");
        assert_ne!(id(&[&a, &b], None), keyed(&[&a, &b], None, &other));
        let BatchRequest::Records(req) =
            build_request(ImportKind::OrgHandling, &[&a, &b], None, &key)
        else {
            unreachable!()
        };
        let mut body = req.clone();
        body.request_id = String::new();
        let mut plain = Sha256::new();
        plain.update(ImportKind::OrgHandling.as_str().as_bytes());
        plain.update([0u8]);
        plain.update(body.encode_to_vec());
        assert_ne!(req.request_id, hex::encode(plain.finalize()));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(10), BACKOFF_MAX);
    }
}
