//! `cadrex client …`: the operator's terminal client for cadres, records, dossiers, the access log and the vetting workflow, over mutual TLS with an agency's certificate.
//!
//! Every call names the officer (`--officer` or `CADREX_OFFICER`) for the
//! access log; a cadre may be given by name or by 公民身份号码; answers print
//! for a person ([`render`]) or, with `--output json`, for a script ([`protojson`]).

use crate::proto::{
    self, access_log_service_client::AccessLogServiceClient,
    cadre_service_client::CadreServiceClient, dossier_service_client::DossierServiceClient,
    opinion_service_client::OpinionServiceClient, record_service_client::RecordServiceClient,
};
use crate::protojson;
use crate::tools::connect::{self, ConnectArgs, Officer, OfficerChannel};
use crate::tools::render;

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

/// `cadrex client …` arguments.
#[derive(clap::Args, Debug)]
pub struct ClientCli {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The person the system acts for, recorded in the access log of every
    /// call (at most 64 characters) [default: $CADREX_OFFICER].
    #[arg(long, global = true)]
    pub officer: Option<String>,
    /// `text` for a person at a terminal, `json` for scripts (protobuf canonical JSON).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// How `dossier` prints the dossier.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DossierFormat {
    /// For the terminal (or `--output json`).
    Text,
    /// A printable HTML page.
    Html,
}

/// How answers are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Tables and labels within 100 columns, zh-CN with English names.
    Text,
    /// Protobuf canonical JSON of the answer (a list: all pages in one response message).
    Json,
}

/// Help of every flag that names a cadre.
const CADRE_HELP: &str =
    "cadres/{cadre}, or the cadre's 18-character 公民身份号码 (found with LookupCadre)";

#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Prints a cadre's dossier: the rule verdict and flags, identity and posts, the vetting
    /// request, then one table per kind that has records.
    Dossier {
        #[arg(long, help = CADRE_HELP)]
        cadre: String,
        /// Purpose of use: APPOINTMENT_VETTING, CASE_HANDLING, ROUTINE_SUPERVISION,
        /// AUDIT_PLANNING or PETITION_HANDLING (any case, `-` for `_`).
        #[arg(long)]
        purpose: String,
        /// opinionRequests/{request}: required for organization's APPOINTMENT_VETTING.
        #[arg(long)]
        request: Option<String>,
        /// `html` prints one self-contained page to print or archive, with the reading
        /// system, officer, time, purpose and access-log seq of this read in its footer.
        #[arg(long, value_enum, default_value = "text")]
        format: DossierFormat,
    },
    /// Cadres: find one by 公民身份号码, read, list.
    Cadre {
        #[command(subcommand)]
        command: CadreCommand,
    },
    /// Records: read, list, retract.
    Record {
        #[command(subcommand)]
        command: RecordCommand,
    },
    /// The access log as this system may read it, and its signed checkpoint.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// The integrity-opinion workflow.
    Opinion {
        #[command(subcommand)]
        command: OpinionCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum CadreCommand {
    /// Finds a cadre by 公民身份号码 (a lowercase `x` is fine). A number not
    /// registered and one outside this system's jurisdiction read the same.
    Lookup {
        /// The 18-character 公民身份号码.
        #[arg(long)]
        id_number: String,
    },
    /// Reads cadres with their posts.
    Get {
        /// cadres/{cadre} or a 公民身份号码; repeat the flag or separate with commas.
        #[arg(long = "cadre", required = true, value_delimiter = ',')]
        cadres: Vec<String>,
    },
    /// Lists cadres in this system's jurisdiction, one line each.
    List {
        /// e.g. `managing_division = "3608*"` or `display_name = "张*"`, joined by AND.
        #[arg(long, default_value = "")]
        filter: String,
        /// Cadres per call (the server caps it at 1000); every page is printed.
        #[arg(long, default_value_t = 200)]
        page_size: i32,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum RecordCommand {
    /// Reads one record in this system's view.
    Get {
        /// cadres/{cadre}/records/{record}
        #[arg(long)]
        name: String,
    },
    /// Lists records of one cadre, or of every cadre in this system's jurisdiction.
    List {
        /// cadres/{cadre} or a 公民身份号码 [default: every cadre, `cadres/-`].
        #[arg(long)]
        cadre: Option<String>,
        /// e.g. `kind = "AUDIT_FINDING"`, `state = "ACTIVE"`,
        /// `update_time >= "2026-01-01T00:00:00Z"`, joined by AND.
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Retracts a record this system's agency and division own (soft delete).
    Retract {
        /// cadres/{cadre}/records/{record}
        #[arg(long)]
        name: String,
        /// Why; required, kept with the record and shown to its owner.
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum LogCommand {
    /// Lists access-log rows (discipline: its jurisdiction; others: their own calls).
    Events {
        /// Only rows that touched this cadre (cadres/{cadre} or a 公民身份号码).
        #[arg(long)]
        cadre: Option<String>,
        /// Only rows of this calling system (urn:cadrex:system:…).
        #[arg(long)]
        principal: Option<String>,
        /// Only rows of this method: GetCadreDossier or /cadrex.v1.DossierService/GetCadreDossier.
        #[arg(long)]
        method: Option<String>,
        /// Only rows at or after: YYYY-MM-DD (Asia/Shanghai midnight) or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// Only rows before: YYYY-MM-DD (Asia/Shanghai midnight) or RFC 3339.
        #[arg(long)]
        until: Option<String>,
    },
    /// Prints the newest signed checkpoint as protobuf JSON, as `cadrex log checkpoint` does.
    Checkpoint,
}

#[derive(clap::Subcommand, Debug)]
pub enum OpinionCommand {
    /// Asks for opinions on one or more cadres (organization).
    Create {
        /// cadres/{cadre} or a 公民身份号码; repeat the flag or separate with commas.
        #[arg(long = "cadre", required = true, value_delimiter = ',')]
        cadres: Vec<String>,
        /// PROMOTION, FURTHER_USE, RE_ELECTION, AWARD or TRANSFER (any case).
        #[arg(long)]
        purpose: String,
        /// Reply due date YYYY-MM-DD [default: 10 working days after today].
        #[arg(long)]
        due: Option<String>,
        /// Note to the discipline commission; shown only to callers that see every cadre.
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
        /// opinionRequests/{request}
        #[arg(long)]
        request: String,
    },
    /// Computes the rule-based draft for one cadre (discipline), each rule
    /// with the cited records' summaries.
    Draft {
        /// opinionRequests/{request}
        #[arg(long)]
        request: String,
        #[arg(long, help = CADRE_HELP)]
        cadre: String,
    },
    /// Replies for one cadre (discipline); a second reply is a correction.
    Reply {
        /// opinionRequests/{request}
        #[arg(long)]
        request: String,
        #[arg(long, help = CADRE_HELP)]
        cadre: String,
        /// NO_ISSUE, ISSUE_NOT_BLOCKING, DEFER or NOT_AGREE (any case, `-` for `_`).
        #[arg(long)]
        verdict: String,
        /// The opinion text (廉政意见).
        #[arg(long)]
        text: String,
        /// Who signs the reply.
        #[arg(long)]
        signer: String,
        /// cadres/{cadre}/records/{record} the opinion relies on; repeat or separate with commas.
        #[arg(long = "cite", value_delimiter = ',')]
        cited: Vec<String>,
        /// Why this reply corrects the earlier one; required for a correction.
        #[arg(long)]
        correction_reason: Option<String>,
        /// Why the verdict is kinder than the rules' draft; required then.
        #[arg(long)]
        deviation_reason: Option<String>,
    },
    /// Withdraws a pending request (organization).
    Withdraw {
        /// opinionRequests/{request}
        #[arg(long)]
        request: String,
        /// Why; required.
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

/// Whether `s` is written as a 公民身份号码 (17 digits and a check character,
/// `x` in either case) rather than as a resource name. The check digit itself
/// is the server's to judge.
pub fn is_id_number(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 18
        && b[..17].iter().all(u8::is_ascii_digit)
        && matches!(b[17], b'0'..=b'9' | b'X' | b'x')
}

/// A parsed `--since`/`--until`: `YYYY-MM-DD` is midnight in Asia/Shanghai.
fn instant(flag: &str, v: &str) -> anyhow::Result<prost_types::Timestamp> {
    use time::format_description::well_known::Rfc3339;
    let t = match time::OffsetDateTime::parse(v, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let d = time::Date::parse(v, &fmt).map_err(|_| {
                anyhow::anyhow!("{flag} {v:?}: give YYYY-MM-DD or an RFC 3339 time")
            })?;
            d.midnight().assume_offset(time::macros::offset!(+8))
        }
    };
    Ok(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    })
}

/// One command's connection, officer and output form.
struct Session {
    conn: ConnectArgs,
    channel: OfficerChannel,
    output: Output,
}

impl Session {
    /// Who made the read named `request_id` and its access-log seq, from this
    /// system's own rows: the page's footer cites what the log holds.
    async fn read_footer(
        &self,
        request_id: &str,
        d: &proto::CadreDossier,
    ) -> anyhow::Result<crate::tools::html::Footer> {
        let me = proto::system_service_client::SystemServiceClient::new(self.channel.clone())
            .who_am_i(proto::WhoAmIRequest {})
            .await
            .or_explain("WhoAmI", &self.conn)
            .await?;
        let since = d.as_of_time.as_ref().map(|t| prost_types::Timestamp {
            seconds: t.seconds - 60,
            nanos: 0,
        });
        let rows = AccessLogServiceClient::new(self.channel.clone())
            .list_access_events(proto::ListAccessEventsRequest {
                principal: me.principal.clone(),
                method: protojson::full_method("GetCadreDossier"),
                start_time: since,
                page_size: 1000,
                ..Default::default()
            })
            .await
            .or_explain("ListAccessEvents", &self.conn)
            .await?;
        let seq = rows
            .access_events
            .iter()
            .find(|e| e.request_id == request_id)
            .map(|e| e.seq);
        Ok(crate::tools::html::Footer {
            system: me.principal,
            officer: me.officer,
            seq,
        })
    }

    fn cadres(&self) -> CadreServiceClient<OfficerChannel> {
        CadreServiceClient::new(self.channel.clone())
    }

    fn records(&self) -> RecordServiceClient<OfficerChannel> {
        RecordServiceClient::new(self.channel.clone())
    }

    /// `cadres/{cadre}` for a cadre given by name or by 公民身份号码; a number
    /// is looked up with LookupCadre, so it is logged and jurisdiction
    /// applies as for any call.
    async fn cadre(&self, given: &str) -> anyhow::Result<String> {
        let given = given.trim();
        if !is_id_number(given) {
            return Ok(given.to_string());
        }
        Ok(self.lookup(given).await?.name)
    }

    async fn lookup(&self, id_number: &str) -> anyhow::Result<proto::Cadre> {
        self.cadres()
            .lookup_cadre(proto::LookupCadreRequest {
                id_number: id_number.trim().to_ascii_uppercase(),
            })
            .await
            .or_explain("LookupCadre", &self.conn)
            .await
    }

    /// Prints `text` for a person, or `message` (of protobuf type
    /// `cadrex.v1.{name}`) as canonical JSON.
    fn print(
        &self,
        text: impl FnOnce() -> String,
        message: &impl prost::Message,
        name: &str,
    ) -> anyhow::Result<()> {
        match self.output {
            Output::Text => print!("{}", text()),
            Output::Json => println!(
                "{}",
                protojson::to_json_text(message, &format!("cadrex.v1.{name}"))?
            ),
        }
        Ok(())
    }
}

/// Runs one `cadrex client` command, printing for a person at a terminal or,
/// with `--output json`, for a script.
pub async fn run(cli: ClientCli) -> anyhow::Result<()> {
    let officer = Officer::from_flag_or_env(cli.officer.as_deref())?;
    let s = Session {
        channel: cli.connect.channel_as(officer)?,
        conn: cli.connect,
        output: cli.output,
    };
    match cli.command {
        ClientCommand::Dossier {
            cadre,
            purpose,
            request,
            format,
        } => {
            let purpose = enum_value("PURPOSE_", &purpose, proto::Purpose::from_str_name)?;
            let cadre = s.cadre(&cadre).await?;
            // Names the read in the access log, so the page can cite its row.
            let request_id = uuid::Uuid::new_v4().to_string();
            let mut call = tonic::Request::new(proto::GetCadreDossierRequest {
                cadre,
                purpose: purpose as i32,
                opinion_request: request.unwrap_or_default(),
            });
            call.metadata_mut()
                .insert("x-request-id", request_id.parse()?);
            let d = DossierServiceClient::new(s.channel.clone())
                .get_cadre_dossier(call)
                .await
                .or_explain("GetCadreDossier", &s.conn)
                .await?;
            match format {
                DossierFormat::Text => {
                    s.print(|| render::render_dossier(&d), &d, "CadreDossier")?
                }
                DossierFormat::Html => {
                    let footer = s.read_footer(&request_id, &d).await?;
                    print!("{}", crate::tools::html::dossier_page(&d, &footer));
                }
            }
        }
        ClientCommand::Cadre { command } => cadre_command(&s, command).await?,
        ClientCommand::Record { command } => record_command(&s, command).await?,
        ClientCommand::Log { command } => log_command(&s, command).await?,
        ClientCommand::Opinion { command } => opinion_command(&s, command).await?,
    }
    Ok(())
}

async fn cadre_command(s: &Session, command: CadreCommand) -> anyhow::Result<()> {
    match command {
        CadreCommand::Lookup { id_number } => {
            let c = s.lookup(&id_number).await?;
            s.print(|| render::render_cadre(&c), &c, "Cadre")?;
        }
        CadreCommand::Get { cadres } => {
            for given in cadres {
                let name = s.cadre(&given).await?;
                let c = s
                    .cadres()
                    .get_cadre(proto::GetCadreRequest { name })
                    .await
                    .or_explain("GetCadre", &s.conn)
                    .await?;
                s.print(|| render::render_cadre(&c), &c, "Cadre")?;
            }
        }
        CadreCommand::List { filter, page_size } => {
            let mut all = proto::ListCadresResponse::default();
            let mut token = String::new();
            loop {
                let page = s
                    .cadres()
                    .list_cadres(proto::ListCadresRequest {
                        page_size,
                        page_token: token,
                        filter: filter.clone(),
                    })
                    .await
                    .or_explain("ListCadres", &s.conn)
                    .await?;
                all.cadres.extend(page.cadres);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || all.cadres.iter().map(render::render_cadre_line).collect(),
                &all,
                "ListCadresResponse",
            )?;
        }
    }
    Ok(())
}

/// Every record under `parent` that `filter` selects, all pages in one response.
async fn list_records(
    s: &Session,
    parent: String,
    filter: String,
) -> anyhow::Result<proto::ListRecordsResponse> {
    let mut all = proto::ListRecordsResponse::default();
    let mut token = String::new();
    loop {
        let page = s
            .records()
            .list_records(proto::ListRecordsRequest {
                parent: parent.clone(),
                page_size: 1000,
                page_token: token,
                filter: filter.clone(),
            })
            .await
            .or_explain("ListRecords", &s.conn)
            .await?;
        all.records.extend(page.records);
        if all.cursor.is_empty() {
            all.cursor = page.cursor;
        }
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
}

async fn record_command(s: &Session, command: RecordCommand) -> anyhow::Result<()> {
    match command {
        RecordCommand::Get { name } => {
            let r = s
                .records()
                .get_record(proto::GetRecordRequest { name })
                .await
                .or_explain("GetRecord", &s.conn)
                .await?;
            s.print(|| render::render_record(&r), &r, "Record")?;
        }
        RecordCommand::List { cadre, filter } => {
            let parent = match cadre {
                Some(c) => s.cadre(&c).await?,
                None => "cadres/-".into(),
            };
            let all = list_records(s, parent, filter).await?;
            s.print(
                || all.records.iter().map(render::render_record_line).collect(),
                &all,
                "ListRecordsResponse",
            )?;
        }
        RecordCommand::Retract { name, reason } => {
            let r = s
                .records()
                .retract_record(proto::RetractRecordRequest {
                    name,
                    reason,
                    etag: String::new(),
                })
                .await
                .or_explain("RetractRecord", &s.conn)
                .await?;
            s.print(|| render::render_record(&r), &r, "Record")?;
        }
    }
    Ok(())
}

async fn log_command(s: &Session, command: LogCommand) -> anyhow::Result<()> {
    let mut client = AccessLogServiceClient::new(s.channel.clone());
    match command {
        LogCommand::Events {
            cadre,
            principal,
            method,
            since,
            until,
        } => {
            let cadre = match cadre {
                Some(c) => s.cadre(&c).await?,
                None => String::new(),
            };
            let start_time = since.map(|v| instant("--since", &v)).transpose()?;
            let end_time = until.map(|v| instant("--until", &v)).transpose()?;
            let method = method
                .map(|m| protojson::full_method(&m))
                .unwrap_or_default();
            let mut all = proto::ListAccessEventsResponse::default();
            let mut token = String::new();
            loop {
                let page = client
                    .list_access_events(proto::ListAccessEventsRequest {
                        page_size: 1000,
                        page_token: token,
                        cadre: cadre.clone(),
                        start_time,
                        end_time,
                        principal: principal.clone().unwrap_or_default(),
                        method: method.clone(),
                    })
                    .await
                    .or_explain("ListAccessEvents", &s.conn)
                    .await?;
                all.access_events.extend(page.access_events);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || render::render_events(&all.access_events),
                &all,
                "ListAccessEventsResponse",
            )?;
        }
        LogCommand::Checkpoint => {
            let cp = client
                .get_checkpoint(proto::GetCheckpointRequest {})
                .await
                .or_explain("GetCheckpoint", &s.conn)
                .await?;
            // The same JSON in both forms: a checkpoint is kept as a file, and
            // `cadrex log verify --checkpoint` reads it back.
            println!("{}", protojson::to_json_text(&cp, "cadrex.v1.Checkpoint")?);
        }
    }
    Ok(())
}

async fn opinion_command(s: &Session, command: OpinionCommand) -> anyhow::Result<()> {
    let mut client = OpinionServiceClient::new(s.channel.clone());
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
            let mut names = Vec::with_capacity(cadres.len());
            for c in &cadres {
                names.push(s.cadre(c).await?);
            }
            let r = client
                .create_opinion_request(proto::CreateOpinionRequestRequest {
                    cadres: names,
                    purpose: purpose as i32,
                    due_date: due.unwrap_or_default(),
                    note: note.unwrap_or_default(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .or_explain("CreateOpinionRequest", &s.conn)
                .await?;
            s.print(|| render::render_request(&r), &r, "OpinionRequest")?;
        }
        OpinionCommand::List { filter } => {
            let mut all = proto::ListOpinionRequestsResponse::default();
            let mut token = String::new();
            loop {
                let page = client
                    .list_opinion_requests(proto::ListOpinionRequestsRequest {
                        page_size: 100,
                        page_token: token,
                        filter: filter.clone(),
                    })
                    .await
                    .or_explain("ListOpinionRequests", &s.conn)
                    .await?;
                all.opinion_requests.extend(page.opinion_requests);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            s.print(
                || {
                    let each: Vec<String> = all
                        .opinion_requests
                        .iter()
                        .map(render::render_request)
                        .collect();
                    each.join("\n")
                },
                &all,
                "ListOpinionRequestsResponse",
            )?;
        }
        OpinionCommand::Show { request } => {
            let r = client
                .get_opinion_request(proto::GetOpinionRequestRequest { name: request })
                .await
                .or_explain("GetOpinionRequest", &s.conn)
                .await?;
            s.print(|| render::render_request(&r), &r, "OpinionRequest")?;
        }
        OpinionCommand::Draft { request, cadre } => {
            let cadre = s.cadre(&cadre).await?;
            let d = client
                .draft_opinion(proto::DraftOpinionRequest {
                    name: request,
                    cadre: cadre.clone(),
                    as_of_date: String::new(),
                })
                .await
                .or_explain("DraftOpinion", &s.conn)
                .await?;
            if s.output == Output::Json {
                return s.print(String::new, &d, "OpinionDraft");
            }
            // The summaries of the cited records: one listing of the cadre's
            // records rather than one read per citation.
            let records = if d.reasons.iter().any(|r| !r.records.is_empty()) {
                list_records(s, cadre, String::new()).await?.records
            } else {
                Vec::new()
            };
            print!("{}", render::render_draft(&d, &records));
        }
        OpinionCommand::Reply {
            request,
            cadre,
            verdict: v,
            text,
            signer,
            cited,
            correction_reason,
            deviation_reason,
        } => {
            let v = enum_value("VERDICT_", &v, proto::Verdict::from_str_name)?;
            let cadre = s.cadre(&cadre).await?;
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
                    deviation_reason: deviation_reason.unwrap_or_default(),
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .or_explain("ReplyOpinion", &s.conn)
                .await?;
            s.print(|| render::render_reply(&r), &r, "OpinionReply")?;
        }
        OpinionCommand::Withdraw { request, reason } => {
            let r = client
                .withdraw_opinion_request(proto::WithdrawOpinionRequestRequest {
                    name: request,
                    reason,
                })
                .await
                .or_explain("WithdrawOpinionRequest", &s.conn)
                .await?;
            s.print(|| render::render_request(&r), &r, "OpinionRequest")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_told_from_names() {
        assert!(is_id_number("36082119750312001x"));
        assert!(is_id_number("360821197503120011"));
        assert!(!is_id_number("cadres/0193ab"));
        assert!(!is_id_number("36082119750312001"));
    }

    #[test]
    fn since_and_until_read_dates_in_shanghai() {
        let t = instant("--since", "2026-01-06").unwrap();
        assert_eq!(t.seconds, 1_767_628_800);
        assert_eq!(instant("--since", "2026-01-05T16:00:00Z").unwrap(), t);
        assert!(instant("--since", "yesterday").is_err());
    }

    #[test]
    fn cadre_lists_split_on_commas() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct T {
            #[command(subcommand)]
            c: Cmd,
        }
        #[derive(clap::Subcommand)]
        enum Cmd {
            Client(ClientCli),
        }
        let T { c: Cmd::Client(c) } = T::try_parse_from([
            "t",
            "client",
            "opinion",
            "create",
            "--cadre",
            "cadres/a,cadres/b",
            "--cadre",
            "cadres/c",
            "--purpose",
            "promotion",
        ])
        .unwrap();
        let ClientCommand::Opinion {
            command: OpinionCommand::Create { cadres, .. },
        } = c.command
        else {
            panic!("parsed as another command");
        };
        assert_eq!(cadres, ["cadres/a", "cadres/b", "cadres/c"]);
    }
}
