//! What an import writes beside its input: the rejected rows, and on request the rows the exchange holds with the names they became.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::Code;

use super::parse::Pending;
use super::send::Stored;
use crate::proto;
use crate::tools::connect::code_name;

/// Header of the rejected-rows report.
pub const REPORT_HEADER: [&str; 6] = [
    "line",
    "source_record_id",
    "code",
    "reason",
    "message",
    "fields",
];

/// Reason for local rejections: the row never reached the server.
pub(super) const REASON_INVALID_ROW: &str = "INVALID_ROW";

/// One rejected row as the report writes it.
pub(super) struct Rejection {
    pub(super) line: u64,
    pub(super) id: String,
    pub(super) code: i32,
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) fields: Vec<(String, String)>,
}

impl Rejection {
    pub(super) fn local(
        line: u64,
        id: &str,
        message: String,
        fields: Vec<(String, String)>,
    ) -> Self {
        Self {
            line,
            id: id.to_string(),
            code: Code::InvalidArgument as i32,
            reason: REASON_INVALID_ROW.into(),
            message,
            fields,
        }
    }

    pub(super) fn from_item(p: &Pending, e: proto::ItemError) -> Self {
        Self {
            line: p.line,
            id: p.id.clone(),
            code: e.code,
            reason: e.reason,
            message: e.message,
            fields: e
                .field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect(),
        }
    }
}

/// `--accepted-report`: a CSV mapping every row the exchange holds after
/// this run to what it became — `line,id,outcome,name,revision`, with
/// outcome ACCEPTED (stored by this run), UNCHANGED (already held, the same
/// content) or STALE (an older version than the one held). Written per
/// batch, so an interrupted run leaves the rows decided so far.
pub(super) struct AcceptedReport(Option<csv::Writer<File>>);

impl AcceptedReport {
    pub(super) fn create(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self(None));
        };
        let mut w = csv::Writer::from_path(path)
            .with_context(|| format!("cannot write the accepted report {}", path.display()))?;
        w.write_record(["line", "id", "outcome", "name", "revision"])?;
        Ok(Self(Some(w)))
    }

    pub(super) fn write(&mut self, p: &Pending, outcome: &str, s: &Stored) -> anyhow::Result<()> {
        if let Some(w) = &mut self.0 {
            let revision = s.revision.map(|r| r.to_string()).unwrap_or_default();
            w.write_record([
                p.line.to_string().as_str(),
                &p.id,
                outcome,
                &s.name,
                &revision,
            ])?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(w) = &mut self.0 {
            w.flush()?;
        }
        Ok(())
    }
}

/// The rejected-rows CSV, created with the first rejection so that a clean
/// import leaves no file behind. A report left by an earlier run is removed at
/// the start, so whatever is at the path describes the latest run.
pub(super) struct Report {
    path: Option<PathBuf>,
    writer: Option<csv::Writer<File>>,
}

impl Report {
    pub(super) fn new(path: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(p) = path {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot replace the report {}", p.display())));
                }
            }
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            writer: None,
        })
    }

    fn write(&mut self, r: &Rejection) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let w = match &mut self.writer {
            Some(w) => w,
            None => {
                let mut w = csv::Writer::from_path(path)
                    .with_context(|| format!("cannot write the report {}", path.display()))?;
                w.write_record(REPORT_HEADER)?;
                self.writer.insert(w)
            }
        };
        let fields = r
            .fields
            .iter()
            .map(|(path, description)| format!("{path}: {description}"))
            .collect::<Vec<_>>()
            .join("; ");
        w.write_record([
            r.line.to_string().as_str(),
            &r.id,
            code_name(r.code),
            &r.reason,
            &r.message,
            &fields,
        ])?;
        Ok(())
    }

    /// Writes and drains `rejected` in file order, then flushes.
    pub(super) fn write_all(&mut self, rejected: &mut Vec<Rejection>) -> anyhow::Result<()> {
        rejected.sort_by_key(|r| r.line);
        for r in rejected.drain(..) {
            self.write(&r)?;
        }
        if let Some(w) = &mut self.writer {
            w.flush()?;
        }
        Ok(())
    }
}
