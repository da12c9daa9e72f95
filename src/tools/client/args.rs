//! The arguments of `cadrex client`: its subcommands and their flags, as clap reads them.

use super::*;

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
        /// AUDIT_PLANNING, PETITION_HANDLING or PRE_INSPECTION_BRIEFING (any case, `-` for `_`).
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
    /// The audit office's economic-responsibility audits of unit heads.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// The worklist (audit only): unit heads owed a departure audit (离任必审) or a term audit
    /// (任职满三年), and those leaving a unit-head post soon, with the engagements already on record.
    Candidates,
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
        /// e.g. `managing_division = "3608*"`, `display_name = "张*"` or
        /// `unit_credit_code = "9136…"` (who holds a post in that unit), joined by AND.
        #[arg(long, default_value = "")]
        filter: String,
        /// With a unit_credit_code filter: also those whose post there has ended.
        #[arg(long)]
        include_past_posts: bool,
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
    /// 凡提四必 for one cadre of one of your requests (organization): archive review,
    /// personal-matters check, the discipline commission's opinion, specific petitions —
    /// each SATISFIED, MISSING or BLOCKING with the records that decide it.
    Readiness {
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
