//! Integrity-opinion use cases (廉政意见回复): requests from organization departments, rule-computed drafts and immutable replies from discipline commissions.
//!
//! `view` decides what a caller sees of a request (the one renderer of a
//! request and its replies); `list` pages requests; `write` creates,
//! withdraws, drafts and replies.

use std::collections::HashMap;
use std::sync::Arc;

use super::records::RecordApi;
use super::{AppState, Call, Outcome, RequestKey, page_size, page_token};
use crate::authz::{Action, Facts, RequestFacts, Resource};
use crate::domain::clock::{date_of, micros, now_us, timestamp, today};
use crate::domain::records::{self, Kind};
use crate::domain::rules::{self, BarredUntil};
use crate::domain::states::{ChangeKind, ChangeOp, RecordState, RequestState};
use crate::domain::{division, filter, free_text, label, parse_date};
use crate::error::{Error, FieldViolation, Reason, Result};
use crate::proto;
use crate::store::{
    CadreMove, Change, OpinionQuery, OpinionRequestRow, RecordQuery, ReplyRow, WriteMeta,
};

mod list;
mod readiness;
mod view;
mod write;

pub(crate) use view::RequestView;

#[derive(Clone)]
pub struct OpinionApi {
    pub(crate) state: Arc<AppState>,
    records: RecordApi,
}

impl OpinionApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            records: RecordApi::new(state.clone()),
            state,
        }
    }
}

const PREFIX: &str = "opinionRequests/";

fn request_name(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn parse_request_name(name: &str) -> Result<String> {
    name.strip_prefix(PREFIX)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .ok_or_else(|| Error::invalid("name", "must be opinionRequests/{request}"))
}

fn cadre_id(name: &str, field: &str) -> Result<String> {
    name.strip_prefix("cadres/")
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(field, "must be cadres/{cadre}"))
}

fn purpose_name(p: i32) -> Option<&'static str> {
    Some(match proto::OpinionPurpose::try_from(p).ok()? {
        proto::OpinionPurpose::Promotion => "PROMOTION",
        proto::OpinionPurpose::FurtherUse => "FURTHER_USE",
        proto::OpinionPurpose::ReElection => "RE_ELECTION",
        proto::OpinionPurpose::Award => "AWARD",
        proto::OpinionPurpose::Transfer => "TRANSFER",
        proto::OpinionPurpose::Unspecified => return None,
    })
}

fn purpose_proto(s: &str) -> proto::OpinionPurpose {
    match s {
        "PROMOTION" => proto::OpinionPurpose::Promotion,
        "FURTHER_USE" => proto::OpinionPurpose::FurtherUse,
        "RE_ELECTION" => proto::OpinionPurpose::ReElection,
        "AWARD" => proto::OpinionPurpose::Award,
        "TRANSFER" => proto::OpinionPurpose::Transfer,
        _ => proto::OpinionPurpose::Unspecified,
    }
}

pub fn verdict_proto(v: rules::Verdict) -> proto::Verdict {
    match v {
        rules::Verdict::NoIssue => proto::Verdict::NoIssue,
        rules::Verdict::IssueNotBlocking => proto::Verdict::IssueNotBlocking,
        rules::Verdict::Defer => proto::Verdict::Defer,
        rules::Verdict::NotAgree => proto::Verdict::NotAgree,
    }
}

fn verdict_name(v: i32) -> Option<&'static str> {
    Some(match proto::Verdict::try_from(v).ok()? {
        proto::Verdict::NoIssue => "NO_ISSUE",
        proto::Verdict::IssueNotBlocking => "ISSUE_NOT_BLOCKING",
        proto::Verdict::Defer => "DEFER",
        proto::Verdict::NotAgree => "NOT_AGREE",
        proto::Verdict::Unspecified => return None,
    })
}

fn verdict_from_name(s: &str) -> proto::Verdict {
    match s {
        "NO_ISSUE" => proto::Verdict::NoIssue,
        "ISSUE_NOT_BLOCKING" => proto::Verdict::IssueNotBlocking,
        "DEFER" => proto::Verdict::Defer,
        "NOT_AGREE" => proto::Verdict::NotAgree,
        _ => proto::Verdict::Unspecified,
    }
}

/// `(date, permanent)` of a bar, for the wire.
pub fn barred(b: BarredUntil) -> (String, bool) {
    match b {
        BarredUntil::None => (String::new(), false),
        BarredUntil::Date(d) => (d.to_string(), false),
        BarredUntil::Permanent => (String::new(), true),
    }
}

pub fn reasons_proto(reasons: &[rules::Reason]) -> Vec<proto::DraftReason> {
    reasons
        .iter()
        .map(|r| {
            let (barred_until, barred_permanently) = barred(r.barred_until);
            proto::DraftReason {
                rule: r.rule.to_string(),
                rule_title: rules::rule_id::title(r.rule).to_string(),
                verdict: verdict_proto(r.verdict) as i32,
                description: r.description.clone(),
                records: r.records.clone(),
                barred_until,
                barred_permanently,
            }
        })
        .collect()
}

fn cadre_resource(id: &str, division: &str) -> Resource {
    Resource::Cadre {
        id: id.to_string(),
        division: division.to_string(),
    }
}

/// Whether `p` is the requester of `req`: a system of the same agency and
/// division ("own", DESIGN §1). A fact the policies decide on, not a decision.
pub(crate) fn is_requester(p: &crate::identity::Principal, req: &OpinionRequestRow) -> bool {
    p.agency.as_str() == req.requester_agency && p.division == req.requester_division
}
/// Every record of a cadre as `call`'s principal may see it (no tombstones:
/// retracted records count for nothing).
pub async fn visible_records(
    api: &RecordApi,
    state: &AppState,
    call: &mut Call,
    cadre_id: &str,
) -> Result<Vec<proto::Record>> {
    let query = RecordQuery {
        cadre_id: Some(cadre_id.to_string()),
        jurisdiction_prefix: String::new(),
        kinds: Kind::ALL.iter().map(|k| k.as_str().to_string()).collect(),
        state: Some(RecordState::Active),
        max_revision: i64::MAX,
        limit: 100_000,
        ..Default::default()
    };
    let rows = state.store.list_records(&query).await?;
    api.render_rows(call, &rows)
}
