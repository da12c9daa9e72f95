//! `cadrex client …`: the operator's terminal client for dossiers and the vetting workflow, over mutual TLS with an agency's certificate.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::proto::{self, record::Payload};
use crate::tools::connect::{self, ConnectArgs};

/// A failed call as an operator should read it: a refused certificate reads
/// as it does in `import` and `sync` ([`connect::refusal`],
/// [`connect::tls_refusal`]), anything else as [`explain`] puts it. A bare
/// transport failure is checked with [`connect::tls_probe`], since under TLS
/// 1.3 the server's alert for a refused certificate is often lost to tonic.
pub async fn explain_call(
    status: tonic::Status,
    method: &str,
    conn: &ConnectArgs,
) -> anyhow::Error {
    if status.code() == tonic::Code::Unauthenticated
        && let Some(text) = connect::refusal(&status, method, &conn.cert)
    {
        return anyhow::anyhow!(text);
    }
    if let Some(refused) = connect::refused_by_tls(&status, method, conn).await {
        return refused;
    }
    explain(status)
}

/// Unwraps an answer, or explains the failure with [`explain_call`].
trait OrExplain<T> {
    async fn or_explain(self, method: &str, conn: &ConnectArgs) -> anyhow::Result<T>;
}

impl<T> OrExplain<T> for Result<tonic::Response<T>, tonic::Status> {
    async fn or_explain(self, method: &str, conn: &ConnectArgs) -> anyhow::Result<T> {
        match self {
            Ok(r) => Ok(r.into_inner()),
            Err(s) => Err(explain_call(s, method, conn).await),
        }
    }
}

/// A status as an operator should read it: code, reason and the zh-CN message.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default();
    let zh = status
        .get_details_localized_message()
        .map(|m| m.message)
        .unwrap_or_default();
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect()
        })
        .unwrap_or_default();
    let mut text = format!("{:?} {reason}: {}", status.code(), status.message());
    if !zh.is_empty() {
        text.push_str(&format!("\n  {zh}"));
    }
    for f in fields {
        text.push_str(&format!("\n  - {f}"));
    }
    anyhow::anyhow!(text)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

fn verdict(v: i32) -> &'static str {
    match proto::Verdict::try_from(v).unwrap_or(proto::Verdict::Unspecified) {
        proto::Verdict::NoIssue => "未发现影响使用的问题 NO_ISSUE",
        proto::Verdict::IssueNotBlocking => "有问题但不影响使用 ISSUE_NOT_BLOCKING",
        proto::Verdict::Defer => "暂缓 DEFER",
        proto::Verdict::NotAgree => "不同意 NOT_AGREE",
        proto::Verdict::Unspecified => "-",
    }
}

/// One line describing a record's content, whatever its view.
fn summary_line(r: &proto::Record) -> String {
    match &r.payload {
        Some(Payload::Sanction(s)) => format!(
            "track {} party {} state {} decided {} effective {}",
            s.track, s.party_type, s.state_type, s.decision_date, s.effective_date
        ),
        Some(Payload::SanctionSummary(s)) => format!(
            "track {} party {} state {} decided {} effective {}",
            s.track, s.party_type, s.state_type, s.decision_date, s.effective_date
        ),
        Some(Payload::Admonishment(a)) => {
            format!("type {} on {} by {}", a.r#type, a.date, a.issuer)
        }
        Some(Payload::Clue(c)) => format!(
            "disposal {} status {} received {}",
            c.disposal, c.status, c.received_date
        ),
        Some(Payload::ClueSummary(c)) => format!("disposal {} status {}", c.disposal, c.status),
        Some(Payload::OrgHandling(o)) => format!("type {} on {}", o.r#type, o.date),
        Some(Payload::PersonalMattersCheck(p)) => format!(
            "{} report, result {}, checked {}",
            p.report_year, p.result, p.check_date
        ),
        Some(Payload::Evaluation(e)) => format!("{} kind {} grade {}", e.year, e.kind, e.grade),
        Some(Payload::EvaluationSummary(e)) => format!("{} grade {}", e.year, e.grade),
        Some(Payload::AuditEngagement(a)) => format!(
            "type {} {}..{} report {}",
            a.r#type, a.period_start, a.period_end, a.report_number
        ),
        Some(Payload::AuditFinding(f)) => {
            let r = f.rectification.clone().unwrap_or_default();
            format!(
                "problem {} amount {:.2} yuan transfer {} rectification {} by {}",
                f.problem_type,
                f.amount_fen as f64 / 100.0,
                f.transfer,
                r.status,
                r.deadline
            )
        }
        Some(Payload::Petition(p)) => format!(
            "received {} category {} status {} specific {}",
            p.received_date, p.category, p.status, p.specific
        ),
        Some(Payload::PetitionSummary(p)) => format!(
            "received {} category {} status {} specific {}",
            p.received_date, p.category, p.status, p.specific
        ),
        None => "(no content)".into(),
    }
}

/// A dossier for a person at a terminal: flags first, then identity, then one table per section.
pub fn render_dossier(d: &proto::CadreDossier) -> String {
    let mut out = String::new();
    if let Some(f) = &d.flags {
        out.push_str(&format!(
            "规则结论 / rule verdict: {}\n",
            verdict(f.verdict)
        ));
        if f.promotion_barred_permanently {
            out.push_str("影响期 / promotion barred: permanently\n");
        } else if !f.promotion_barred_until.is_empty() {
            out.push_str(&format!(
                "影响期 / promotion barred until: {}\n",
                f.promotion_barred_until
            ));
        }
        let mut flags = table(&["flag", "records"]);
        for (name, list) in [
            ("open clues 未了结线索", &f.open_clues),
            (
                "unclosed specific petitions 未办结具体信访",
                &f.unclosed_specific_petitions,
            ),
            (
                "findings transferred to discipline 移送纪检",
                &f.findings_transferred_to_discipline,
            ),
            (
                "unrectified past deadline 逾期未整改",
                &f.unrectified_findings_past_deadline,
            ),
            (
                "concealed personal matters 瞒报",
                &f.concealed_personal_matters,
            ),
        ] {
            if !list.is_empty() {
                flags.add_row(vec![name.to_string(), list.join("\n")]);
            }
        }
        out.push_str(&format!("{flags}\n"));
        let mut reasons = table(&["rule", "verdict", "why", "records"]);
        for r in &f.reasons {
            reasons.add_row(vec![
                r.rule.clone(),
                verdict(r.verdict).into(),
                r.description.clone(),
                r.records.join("\n"),
            ]);
        }
        out.push_str(&format!("{reasons}\n"));
    }
    if let Some(c) = &d.cadre {
        out.push_str(&format!(
            "{} {}  {}  managed at {}\n",
            c.display_name, c.id_number, c.name, c.managing_division
        ));
        let mut posts = table(&["unit", "title", "rank", "一把手", "from", "to"]);
        for p in &c.posts {
            posts.add_row(vec![
                p.unit_name.clone(),
                p.title.clone(),
                p.rank.clone(),
                if p.unit_head { "是" } else { "" }.into(),
                p.start_date.clone(),
                p.end_date.clone(),
            ]);
        }
        out.push_str(&format!("{posts}\n"));
    }
    for s in &d.sections {
        let kind = proto::RecordKind::try_from(s.kind)
            .map(|k| k.as_str_name())
            .unwrap_or("?");
        let mut t = table(&["record", "date", "view", "content", "source"]);
        for r in &s.records {
            let source = r
                .provenance
                .as_ref()
                .map(|p| p.submitting_system.clone())
                .unwrap_or_default();
            t.add_row(vec![
                r.name.clone(),
                r.event_date.clone(),
                r.view.to_string(),
                summary_line(r),
                source,
            ]);
        }
        out.push_str(&format!("{kind} ({})\n{t}\n", s.records.len()));
    }
    out
}

/// An opinion request with its replies, for a terminal.
pub fn render_request(r: &proto::OpinionRequest) -> String {
    let state = proto::OpinionRequestState::try_from(r.state)
        .map(|s| s.as_str_name())
        .unwrap_or("?");
    let mut out = format!(
        "{}  {state}{}  due {}  by {}\n",
        r.name,
        if r.overdue { " OVERDUE" } else { "" },
        r.due_date,
        r.requester
    );
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    let mut t = table(&["cadre", "verdict", "stale", "signer", "as of"]);
    for c in &r.cadre_opinions {
        match &c.reply {
            Some(p) => t.add_row(vec![
                c.cadre.clone(),
                verdict(p.verdict).into(),
                if p.stale { "STALE" } else { "" }.into(),
                p.signer.clone(),
                p.as_of_time
                    .map(|t| t.seconds.to_string())
                    .unwrap_or_default(),
            ]),
            None => t.add_row(vec![
                c.cadre.clone(),
                "(pending)".into(),
                String::new(),
                String::new(),
                String::new(),
            ]),
        };
    }
    out.push_str(&format!("{t}\n"));
    out
}

/// A draft for a terminal.
pub fn render_draft(d: &proto::OpinionDraft) -> String {
    let mut out = format!(
        "{}  draft verdict: {}  (as of {})\n",
        d.cadre,
        verdict(d.verdict),
        d.as_of_date
    );
    if d.barred_permanently {
        out.push_str("barred permanently\n");
    } else if !d.barred_until.is_empty() {
        out.push_str(&format!("barred until {}\n", d.barred_until));
    }
    let mut t = table(&["rule", "verdict", "why", "records"]);
    for r in &d.reasons {
        t.add_row(vec![
            r.rule.clone(),
            verdict(r.verdict).into(),
            r.description.clone(),
            r.records.join("\n"),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    out
}

/// `cadrex client …` arguments.
#[derive(clap::Args, Debug)]
pub struct ClientCli {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Prints a cadre's dossier: flags first, then identity and one table per kind.
    Dossier {
        /// cadres/{cadre}
        #[arg(long)]
        cadre: String,
        /// APPOINTMENT_VETTING, CASE_HANDLING, ROUTINE_SUPERVISION, AUDIT_PLANNING or PETITION_HANDLING.
        #[arg(long)]
        purpose: String,
        /// opinionRequests/{request} (organization's APPOINTMENT_VETTING).
        #[arg(long)]
        request: Option<String>,
    },
    /// The integrity-opinion workflow.
    Opinion {
        #[command(subcommand)]
        command: OpinionCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum OpinionCommand {
    /// Asks for opinions on one or more cadres (organization).
    Create {
        #[arg(long = "cadre", required = true)]
        cadres: Vec<String>,
        /// PROMOTION, FURTHER_USE, RE_ELECTION, AWARD or TRANSFER.
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        due: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Lists requests (organization: its own; discipline: its jurisdiction).
    List {
        /// e.g. `state = "PENDING"`, `overdue = "true"`.
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Shows one request with every cadre's latest reply.
    Show {
        #[arg(long)]
        request: String,
    },
    /// Computes the rule-based draft for one cadre (discipline).
    Draft {
        #[arg(long)]
        request: String,
        #[arg(long)]
        cadre: String,
    },
    /// Replies for one cadre (discipline).
    Reply {
        #[arg(long)]
        request: String,
        #[arg(long)]
        cadre: String,
        /// NO_ISSUE, ISSUE_NOT_BLOCKING, DEFER or NOT_AGREE.
        #[arg(long)]
        verdict: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        signer: String,
        #[arg(long = "cite")]
        cited: Vec<String>,
        #[arg(long)]
        correction_reason: Option<String>,
    },
    /// Withdraws a pending request (organization).
    Withdraw {
        #[arg(long)]
        request: String,
        #[arg(long)]
        reason: String,
    },
}

fn enum_value<E>(prefix: &str, name: &str, parse: impl Fn(&str) -> Option<E>) -> anyhow::Result<E> {
    let upper = name.trim().to_ascii_uppercase().replace('-', "_");
    let full = if upper.starts_with(prefix) {
        upper
    } else {
        format!("{prefix}{upper}")
    };
    parse(&full).ok_or_else(|| anyhow::anyhow!("unknown value {name:?}"))
}

/// Runs one `cadrex client` command, printing for a person at a terminal.
pub async fn run(cli: ClientCli) -> anyhow::Result<()> {
    let conn = cli.connect;
    let channel = conn.channel()?;
    match cli.command {
        ClientCommand::Dossier {
            cadre,
            purpose,
            request,
        } => {
            let purpose = enum_value("PURPOSE_", &purpose, proto::Purpose::from_str_name)?;
            let d = proto::dossier_service_client::DossierServiceClient::new(channel)
                .get_cadre_dossier(proto::GetCadreDossierRequest {
                    cadre,
                    purpose: purpose as i32,
                    opinion_request: request.unwrap_or_default(),
                })
                .await
                .or_explain("GetCadreDossier", &conn)
                .await?;
            print!("{}", render_dossier(&d));
        }
        ClientCommand::Opinion { command } => {
            let mut client = proto::opinion_service_client::OpinionServiceClient::new(channel);
            match command {
                OpinionCommand::Create {
                    cadres,
                    purpose,
                    due,
                    note,
                } => {
                    let purpose = enum_value(
                        "OPINION_PURPOSE_",
                        &purpose,
                        proto::OpinionPurpose::from_str_name,
                    )?;
                    let r = client
                        .create_opinion_request(proto::CreateOpinionRequestRequest {
                            cadres,
                            purpose: purpose as i32,
                            due_date: due.unwrap_or_default(),
                            note: note.unwrap_or_default(),
                            request_id: uuid::Uuid::new_v4().to_string(),
                        })
                        .await
                        .or_explain("CreateOpinionRequest", &conn)
                        .await?;
                    print!("{}", render_request(&r));
                }
                OpinionCommand::List { filter } => {
                    let mut token = String::new();
                    loop {
                        let page = client
                            .list_opinion_requests(proto::ListOpinionRequestsRequest {
                                page_size: 100,
                                page_token: token,
                                filter: filter.clone(),
                            })
                            .await
                            .or_explain("ListOpinionRequests", &conn)
                            .await?;
                        for r in &page.opinion_requests {
                            print!("{}", render_request(r));
                        }
                        if page.next_page_token.is_empty() {
                            break;
                        }
                        token = page.next_page_token;
                    }
                }
                OpinionCommand::Show { request } => {
                    let r = client
                        .get_opinion_request(proto::GetOpinionRequestRequest { name: request })
                        .await
                        .or_explain("GetOpinionRequest", &conn)
                        .await?;
                    print!("{}", render_request(&r));
                }
                OpinionCommand::Draft { request, cadre } => {
                    let d = client
                        .draft_opinion(proto::DraftOpinionRequest {
                            name: request,
                            cadre,
                            as_of_date: String::new(),
                        })
                        .await
                        .or_explain("DraftOpinion", &conn)
                        .await?;
                    print!("{}", render_draft(&d));
                }
                OpinionCommand::Reply {
                    request,
                    cadre,
                    verdict: v,
                    text,
                    signer,
                    cited,
                    correction_reason,
                } => {
                    let v = enum_value("VERDICT_", &v, proto::Verdict::from_str_name)?;
                    let r = client
                        .reply_opinion(proto::ReplyOpinionRequest {
                            name: request,
                            cadre,
                            verdict: v as i32,
                            text,
                            cited_records: cited,
                            signer,
                            as_of_time: None,
                            correction_reason: correction_reason.unwrap_or_default(),
                            request_id: uuid::Uuid::new_v4().to_string(),
                        })
                        .await
                        .or_explain("ReplyOpinion", &conn)
                        .await?;
                    println!("{}  {}  stale: {}", r.name, verdict(r.verdict), r.stale);
                }
                OpinionCommand::Withdraw { request, reason } => {
                    let r = client
                        .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
                            name: request,
                            reason,
                        })
                        .await
                        .or_explain("WithdrawOpinionRequest", &conn)
                        .await?;
                    print!("{}", render_request(&r));
                }
            }
        }
    }
    Ok(())
}
