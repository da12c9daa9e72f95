//! The opinion requests of a seeded store, in every state a vetting can be in: pending, overdue, replied, replied but stale, withdrawn.

use crate::domain::agency::Agency;
use crate::domain::clock::now_us;
use crate::domain::states::{ChangeKind, ChangeOp, RequestState};
use crate::proto;
use crate::rng::Rng;
use crate::store::{Change, OpinionRequestRow, ReplyRow, Store, WriteMeta};

use super::people::{self, PROVINCES};
use super::{Owners, log_entry, rpc};

const VERDICTS: &[(&str, &str)] = &[
    ("NO_ISSUE", "经查，未发现影响使用的问题。"),
    ("ISSUE_NOT_BLOCKING", "有问题但不影响使用。"),
    ("DEFER", "有问题线索正在核查，建议暂缓。"),
    ("NOT_AGREE", "处于处分影响期内，不同意。"),
];
const PURPOSES: &[&str] = &[
    "PROMOTION",
    "FURTHER_USE",
    "RE_ELECTION",
    "AWARD",
    "TRANSFER",
];

/// Opinion requests in every state: pending, overdue (pending past due),
/// replied, replied but stale (as-of more than 90 days ago), withdrawn.
pub(super) async fn seed_opinions(
    store: &dyn Store,
    owners: &Owners,
    rng: &mut Rng,
    by_province: &[Vec<String>],
) -> anyhow::Result<(usize, usize)> {
    let today = crate::domain::clock::today();
    let now = now_us();
    let day_us = 86_400_000_000i64;
    let (mut requests, mut replies) = (0, 0);
    for (pi, cadres) in by_province.iter().enumerate() {
        let prov = PROVINCES[pi].code;
        let org = owners.of(prov, Agency::Organization);
        let disc = owners.of(prov, Agency::Discipline);
        for _ in 0..cadres.len() / 20 {
            let n = 1 + rng.below(3);
            let mut ids: Vec<String> = Vec::with_capacity(n);
            while ids.len() < n.min(cadres.len()) {
                let c = rng.pick(cadres).clone();
                if !ids.contains(&c) {
                    ids.push(c);
                }
            }
            let state = rng.below(100);
            let id = rng.id();
            let name = format!("opinionRequests/{id}");
            let overdue = (35..50).contains(&state);
            let due = if overdue {
                today - time::Duration::days(1 + rng.below(20) as i64)
            } else {
                today + time::Duration::days(3 + rng.below(14) as i64)
            };
            let row = OpinionRequestRow {
                id: id.clone(),
                requester: org.uri.clone(),
                requester_agency: org.agency.as_str().into(),
                requester_division: org.division.clone(),
                purpose: rng.pick(PURPOSES).to_string(),
                due_date: due.to_string(),
                state: RequestState::Pending,
                note: "拟提拔使用，请回复廉政意见。".into(),
                withdraw_reason: String::new(),
                warnings: Vec::new(),
                revision: 1,
                create_time_us: now - if overdue { 30 * day_us } else { day_us },
                update_time_us: now,
                cadres: ids.clone(),
            };
            write_request(store, org, &row).await?;
            requests += 1;
            match state {
                // 0..35 pending, 35..50 overdue: nothing more.
                50..=89 => {
                    let stale = state >= 75;
                    for c in &ids {
                        let (verdict, text) = *rng.pick(VERDICTS);
                        let reply_id = rng.id();
                        let reply_name = format!("{name}/replies/{reply_id}");
                        let reply = ReplyRow {
                            id: reply_id,
                            request_id: id.clone(),
                            cadre_id: c.clone(),
                            verdict: verdict.into(),
                            text: text.into(),
                            cited_records: Vec::new(),
                            signer: people::name(rng),
                            as_of_us: if stale { now - 120 * day_us } else { now },
                            correction_reason: String::new(),
                            corrects: String::new(),
                            replier: disc.uri.clone(),
                            purpose: row.purpose.clone(),
                            revision: 1,
                            create_time_us: now,
                            ..ReplyRow::default()
                        };
                        let meta = WriteMeta {
                            log: log_entry(
                                disc,
                                &rpc(proto::opinion_service_server::SERVICE_NAME, "ReplyOpinion"),
                                vec![reply_name.clone()],
                            ),
                            changes: vec![Change {
                                op: ChangeOp::Upsert,
                                resource: reply_name,
                                kind: ChangeKind::OpinionReply.as_str().into(),
                                revision: 1,
                                division: org.division.clone(),
                                from_division: None,
                            }],
                            idempotency: None,
                        };
                        store.add_opinion_reply(&reply, meta).await?;
                        replies += 1;
                    }
                }
                90.. => {
                    let meta = WriteMeta {
                        log: log_entry(
                            org,
                            &rpc(
                                proto::opinion_service_server::SERVICE_NAME,
                                "WithdrawOpinionRequest",
                            ),
                            vec![name.clone()],
                        ),
                        changes: vec![Change {
                            op: ChangeOp::Upsert,
                            resource: name.clone(),
                            kind: ChangeKind::OpinionRequest.as_str().into(),
                            revision: 2,
                            division: org.division.clone(),
                            from_division: None,
                        }],
                        idempotency: None,
                    };
                    store
                        .withdraw_opinion_request(&id, "拟任职务调整，撤回本次征求", meta)
                        .await?;
                }
                _ => {}
            }
        }
    }
    Ok((requests, replies))
}

/// The pending request an archive review of `cadre_id` serves (档案必审 is
/// done for a request, DESIGN §6a): made by the province's organization
/// department before the review is written, as its system would.
pub(super) async fn archive_request(
    store: &dyn Store,
    owners: &Owners,
    province: &str,
    request_id: &str,
    cadre_id: &str,
) -> anyhow::Result<()> {
    let org = owners.of(province, Agency::Organization);
    let now = now_us();
    let row = OpinionRequestRow {
        id: request_id.to_string(),
        requester: org.uri.clone(),
        requester_agency: org.agency.as_str().into(),
        requester_division: org.division.clone(),
        purpose: "PROMOTION".into(),
        due_date: (crate::domain::clock::today() + time::Duration::days(14)).to_string(),
        state: RequestState::Pending,
        note: "拟提拔使用，请回复廉政意见。".into(),
        withdraw_reason: String::new(),
        warnings: Vec::new(),
        revision: 1,
        create_time_us: now,
        update_time_us: now,
        cadres: vec![cadre_id.to_string()],
    };
    write_request(store, org, &row).await
}

/// Stores `row` as `org`'s CreateOpinionRequest would: the request, its
/// change row and its access-log row naming it and its cadres.
async fn write_request(
    store: &dyn Store,
    org: &crate::identity::Principal,
    row: &OpinionRequestRow,
) -> anyhow::Result<()> {
    let name = format!("opinionRequests/{}", row.id);
    let resources = std::iter::once(name.clone())
        .chain(row.cadres.iter().map(|c| format!("cadres/{c}")))
        .collect();
    let meta = WriteMeta {
        log: log_entry(
            org,
            &rpc(
                proto::opinion_service_server::SERVICE_NAME,
                "CreateOpinionRequest",
            ),
            resources,
        ),
        changes: vec![Change {
            op: ChangeOp::Upsert,
            resource: name,
            kind: ChangeKind::OpinionRequest.as_str().into(),
            revision: 1,
            division: org.division.clone(),
            from_division: None,
        }],
        idempotency: None,
    };
    store.create_opinion_request(row, meta).await?;
    Ok(())
}
