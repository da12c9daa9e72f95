//! Paging and cursors: opaque page tokens, page sizes, change-feed cursors, and a batch item's error as its own status would carry it.

use crate::error::{Error, Result};

/// Opaque page tokens: a tagged cursor, base64url so clients do not parse them.
pub mod page_token {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::error::{Error, Result};

    pub fn encode(tag: &str, cursor: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{tag}:{cursor}"))
    }

    /// The cursor inside `token`, `None` for an empty token.
    pub fn decode(tag: &str, token: &str) -> Result<Option<String>> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || Error::invalid("page_token", "not a page token returned by this method");
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let cursor = s
            .strip_prefix(tag)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(bad)?;
        Ok(Some(cursor.to_string()))
    }
}

/// Page size within [1, max], `default` for 0; negative is invalid.
pub fn page_size(requested: i32, default: i64, max: i64) -> Result<i64> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok(i64::from(n).min(max)),
    }
}

/// A batch item's failure, carrying what its own status would have carried.
pub fn item_error(e: &Error) -> crate::proto::ItemError {
    e.log_fault();
    let field_violations = match e {
        Error::InvalidArgument { violations } => violations
            .iter()
            .map(|v| crate::proto::FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    crate::proto::ItemError {
        code: e.code() as i32,
        reason: e.reason().as_str().to_string(),
        message: e.public_message(),
        field_violations,
    }
}

/// Opaque change-feed cursors: the store's epoch and a change seq, so a cursor
/// from another database (or from before a restore) is recognised as such.
pub mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(epoch: &str, seq: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("c1:{epoch}:{seq}"))
    }

    /// (epoch, seq), or `None` when the text is not a cursor.
    pub fn decode(cursor: &str) -> Option<(String, i64)> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let rest = s.strip_prefix("c1:")?;
        let (epoch, seq) = rest.rsplit_once(':')?;
        Some((epoch.to_string(), seq.parse().ok()?))
    }
}
