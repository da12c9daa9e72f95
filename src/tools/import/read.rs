//! Reading an import file: CSV or NDJSON rows as column → text, header checks, and the progress bar sized from the file.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::report::Rejection;
use super::{ImportArgs, ImportKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub(super) fn of(path: &Path) -> anyhow::Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            _ => bail!(
                "{}: cannot tell the format; name the file .csv or .ndjson",
                path.display()
            ),
        }
    }
}

/// One data row: its line in the file and its values by column name.
pub(super) struct Row {
    pub(super) line: u64,
    pub(super) values: HashMap<String, String>,
}

impl Row {
    pub(super) fn get(&self, column: &str) -> &str {
        self.values.get(column).map(|v| v.trim()).unwrap_or("")
    }
}

pub(super) enum RowReader {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        headers: Vec<String>,
        record: csv::StringRecord,
    },
    Ndjson {
        lines: std::io::Lines<BufReader<File>>,
        line: u64,
    },
}

impl RowReader {
    pub(super) fn open(path: &Path, format: Format) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let buf = BufReader::with_capacity(1 << 16, file);
        Ok(match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(buf);
                let headers = reader
                    .headers()
                    .with_context(|| format!("{}: cannot read the header row", path.display()))?
                    .iter()
                    // Spreadsheet exports often start with a byte-order mark.
                    .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
                    .collect();
                RowReader::Csv {
                    reader,
                    headers,
                    record: csv::StringRecord::new(),
                }
            }
            Format::Ndjson => RowReader::Ndjson {
                lines: buf.lines(),
                line: 0,
            },
        })
    }

    pub(super) fn headers(&self) -> Option<&[String]> {
        match self {
            RowReader::Csv { headers, .. } => Some(headers),
            RowReader::Ndjson { .. } => None,
        }
    }

    /// The next row, a row that could not be read (reported, not fatal), or
    /// `None` at the end. Blank rows are skipped.
    pub(super) fn next_row(&mut self) -> anyhow::Result<Option<Result<Row, Rejection>>> {
        match self {
            RowReader::Csv {
                reader,
                headers,
                record,
            } => loop {
                match reader.read_record(record) {
                    Ok(false) => return Ok(None),
                    Ok(true) => {
                        if record.iter().all(|v| v.trim().is_empty()) {
                            continue;
                        }
                        let line = record.position().map_or(0, |p| p.line());
                        let values = headers
                            .iter()
                            .cloned()
                            .zip(record.iter().map(str::to_string))
                            .collect();
                        return Ok(Some(Ok(Row { line, values })));
                    }
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        let message = match e.kind() {
                            csv::ErrorKind::Utf8 { .. } => {
                                "row is not UTF-8 text; save the file as UTF-8 CSV".to_string()
                            }
                            csv::ErrorKind::UnequalLengths {
                                expected_len, len, ..
                            } => format!("row has {len} fields, the header has {expected_len}"),
                            _ => return Err(anyhow::Error::new(e).context("reading CSV")),
                        };
                        return Ok(Some(Err(Rejection::local(line, "", message, Vec::new()))));
                    }
                }
            },
            RowReader::Ndjson { lines, line } => loop {
                let Some(text) = lines.next() else {
                    return Ok(None);
                };
                *line += 1;
                let text = match text {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return Ok(Some(Err(Rejection::local(
                            *line,
                            "",
                            "line is not UTF-8 text".into(),
                            Vec::new(),
                        ))));
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("reading NDJSON")),
                };
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return Ok(Some(ndjson_row(*line, text)));
            },
        }
    }
}

/// A flat JSON object as a row: strings as written, numbers and booleans in
/// their JSON spelling, null as empty.
fn ndjson_row(line: u64, text: &str) -> Result<Row, Rejection> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Rejection::local(line, "", format!("not a JSON object: {e}"), Vec::new()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(Rejection::local(
            line,
            "",
            "each line must be one JSON object".into(),
            Vec::new(),
        ));
    };
    let mut values = HashMap::with_capacity(map.len());
    let mut nested = Vec::new();
    for (k, v) in map {
        let s = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => String::new(),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                nested.push((
                    k,
                    "nested values are not supported; use flat columns".into(),
                ));
                continue;
            }
        };
        values.insert(k, s);
    }
    let row = Row { line, values };
    if !nested.is_empty() {
        let id = row.get("source_record_id").to_string();
        return Err(Rejection::local(
            line,
            &id,
            "row has nested values".into(),
            nested,
        ));
    }
    Ok(row)
}

/// Refuses a CSV whose header lacks a required column (every row would fail),
/// and warns about columns it would ignore (most likely misspelt).
pub(super) fn check_headers(
    kind: ImportKind,
    headers: &[String],
    file: &Path,
) -> anyhow::Result<()> {
    let columns = kind.columns();
    let has = |c: &str| headers.iter().any(|h| h == c);
    let mut missing: Vec<&str> = columns
        .iter()
        .filter(|(c, required)| *required && !has(c))
        .map(|(c, _)| *c)
        .collect();
    if kind != ImportKind::Cadre && !has("cadre_id_number") && !has("cadre") {
        missing.push("cadre_id_number (or cadre)");
    }
    let unknown: Vec<&str> = headers
        .iter()
        .filter(|h| !columns.iter().any(|(c, _)| c == h))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let misspelt = if unknown.is_empty() {
            String::new()
        } else {
            format!("; columns it does not read: {}", unknown.join(","))
        };
        bail!(
            "{}: no column {} (needed for --kind {kind}){misspelt}",
            file.display(),
            missing.join(", "),
        );
    }
    if !unknown.is_empty() {
        tracing::warn!(
            file = %file.display(),
            columns = %unknown.join(","),
            "ignoring columns that --kind {kind} does not read"
        );
    }
    Ok(())
}

/// Warns once per NDJSON key that the kind does not read (most likely misspelt).
pub(super) fn note_unknown_keys(
    kind: ImportKind,
    known: &[(&str, bool)],
    row: &Row,
    seen: &mut BTreeSet<String>,
    bar: &indicatif::ProgressBar,
) {
    for key in row.values.keys() {
        if !known.iter().any(|(c, _)| c == key) && seen.insert(key.clone()) {
            bar.suspend(|| {
                tracing::warn!(line = row.line, key = %key, "ignoring a key that --kind {kind} does not read");
            });
        }
    }
}

pub(super) fn progress_bar(
    args: &ImportArgs,
    format: Format,
) -> anyhow::Result<indicatif::ProgressBar> {
    if !args.progress {
        return Ok(indicatif::ProgressBar::hidden());
    }
    // Lines, not records: exact unless a quoted CSV value spans lines, and
    // good enough for a bar and an ETA.
    let mut lines = count_lines(&args.file)?;
    if format == Format::Csv {
        lines = lines.saturating_sub(1);
    }
    let bar = indicatif::ProgressBar::new(lines);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {wide_bar} {human_pos}/{human_len} rows  {rate}  {elapsed_precise} eta {eta}  {msg}",
    )?
    .with_key(
        "rate",
        |s: &indicatif::ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{:.0} rows/s", s.per_sec());
        },
    );
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// A row at line 2 holding `pairs`.
#[cfg(test)]
pub(super) fn row(pairs: &[(&str, &str)]) -> Row {
    Row {
        line: 2,
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_numbers_and_nesting() {
        let row = ndjson_row(3, r#"{"source_version": 2, "specific": true, "x": null}"#)
            .unwrap_or_else(|_| panic!("parses"));
        assert_eq!(row.get("source_version"), "2");
        assert_eq!(row.get("specific"), "true");
        assert_eq!(row.get("x"), "");
        assert!(ndjson_row(4, r#"{"informant": {"name": "x"}}"#).is_err());
        assert!(ndjson_row(5, "[1]").is_err());
    }
}
