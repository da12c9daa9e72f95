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

mod args;
mod commands;

pub use args::{
    AuditCommand, CadreCommand, ClientCli, ClientCommand, DossierFormat, LogCommand,
    OpinionCommand, Output, RecordCommand,
};
use commands::{audit_command, cadre_command, log_command, opinion_command, record_command};

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
        ClientCommand::Audit { command } => audit_command(&s, command).await?,
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
