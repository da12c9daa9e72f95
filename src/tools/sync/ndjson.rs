//! The NDJSON copy: one line per item, fsynced before the cursor file beside it is replaced.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::item::{Checkpoint, Item, Stored, Written};

/// Appends one JSON line per item and keeps the cursor in `FILE.cursor`.
///
/// Lines are fsynced before the cursor file is replaced, so a crash in between
/// re-appends the same events on the next run: at-least-once, and consumers
/// dedupe by (resource, revision).
pub(super) struct NdjsonOut {
    path: PathBuf,
    cursor_path: PathBuf,
    file: Option<File>,
    /// Kinds of the checkpoint, kept across plain cursor updates.
    kinds: String,
}

impl NdjsonOut {
    pub(super) fn open(path: &Path) -> anyhow::Result<NdjsonOut> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot open --out {}", path.display()))?;
        drop_partial_line(&mut file)
            .with_context(|| format!("cannot repair the end of {}", path.display()))?;
        let mut cursor_path = path.as_os_str().to_owned();
        cursor_path.push(".cursor");
        Ok(NdjsonOut {
            path: path.to_path_buf(),
            cursor_path: PathBuf::from(cursor_path),
            file: Some(file),
            kinds: String::new(),
        })
    }

    pub(super) fn load(&mut self) -> anyhow::Result<Stored> {
        let text = match std::fs::read_to_string(&self.cursor_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {}", self.cursor_path.display()));
            }
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a cursor file", self.cursor_path.display()))?;
        self.kinds = v["kinds"].as_str().unwrap_or_default().to_string();
        Ok(Stored {
            cursor: v["cursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            kinds: self.kinds.clone(),
        })
    }

    pub(super) async fn write(
        &mut self,
        items: &[Item],
        snapshot: bool,
        checkpoint: Checkpoint<'_>,
    ) -> anyhow::Result<Written> {
        let lines: String = items.iter().map(|i| i.json_line(snapshot)).collect();
        let cursor = match checkpoint {
            Checkpoint::Keep => None,
            Checkpoint::Cursor(c) => Some(Some(c)),
            Checkpoint::SnapshotStart { kinds } => {
                self.kinds = kinds.to_string();
                Some(None)
            }
            Checkpoint::SnapshotDone { cursor, kinds, .. } => {
                self.kinds = kinds.to_string();
                Some(Some(cursor))
            }
        };
        let state = cursor.map(|c| serde_json::json!({ "cursor": c, "kinds": self.kinds }));
        let mut file = self.file.take().context("the NDJSON file is closed")?;
        let cursor_path = self.cursor_path.clone();
        let path = self.path.clone();
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = (|| -> anyhow::Result<()> {
                if !lines.is_empty() {
                    file.write_all(lines.as_bytes())?;
                    file.sync_data()?;
                }
                if let Some(state) = state {
                    replace_file(&cursor_path, state.to_string().as_bytes())?;
                }
                Ok(())
            })()
            .with_context(|| format!("cannot append to {}", path.display()));
            (file, result)
        })
        .await?;
        self.file = Some(file);
        result?;
        Ok(Written {
            applied: items.len() as u64,
            unchanged: 0,
        })
    }
}

/// Cuts an unfinished last line (a crash mid-append): it was never
/// checkpointed, so the next run writes it again in full.
fn drop_partial_line(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let window = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - window))?;
    let mut tail = Vec::with_capacity(window as usize);
    file.read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => len - window + i as u64 + 1,
        None if window == len => 0,
        None => return Ok(()),
    };
    file.set_len(keep)?;
    file.sync_data()
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.ndjson");
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        drop_partial_line(&mut f).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        std::fs::write(&path, "{\"b\":").unwrap();
        drop_partial_line(&mut f).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
