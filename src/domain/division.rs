//! GB/T 2260 division codes and the jurisdiction hierarchy (按干部管理权限) built from them.

/// The code that covers every division (the national exchange operator).
pub const NATIONAL: &str = "000000";

/// True when `code` is six ASCII digits. GB/T 2260 assigns codes sparsely, so the
/// exchange checks the form only; whether the code is currently assigned is the
/// registry owner's business.
pub fn is_valid(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// The level a code names, read from its trailing zeros as GB/T 2260 lays them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    National,
    Province,
    Prefecture,
    County,
}

/// Level of a valid code.
pub fn level(code: &str) -> Level {
    if code == NATIONAL {
        Level::National
    } else if code.ends_with("0000") {
        Level::Province
    } else if code.ends_with("00") {
        Level::Prefecture
    } else {
        Level::County
    }
}

/// The prefix every code under `code`'s jurisdiction starts with: `PP` for a
/// province, `PPCC` for a prefecture, the whole code for a county, empty for `000000`.
pub fn jurisdiction_prefix(code: &str) -> &str {
    match level(code) {
        Level::National => "",
        Level::Province => &code[..2],
        Level::Prefecture => &code[..4],
        Level::County => code,
    }
}

/// True when a caller at `caller` may act on a cadre managed at `target`.
pub fn covers(caller: &str, target: &str) -> bool {
    target.starts_with(jurisdiction_prefix(caller))
}

/// The chain from `code` up to `000000`, nearest first, excluding `code` itself.
/// A county's parent is its prefecture, a prefecture's its province.
pub fn ancestors(code: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    match level(code) {
        Level::National => {}
        Level::Province => out.push(NATIONAL.to_string()),
        Level::Prefecture => {
            out.push(format!("{}0000", &code[..2]));
            out.push(NATIONAL.to_string());
        }
        Level::County => {
            out.push(format!("{}00", &code[..4]));
            out.push(format!("{}0000", &code[..2]));
            out.push(NATIONAL.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jurisdiction() {
        assert!(covers("360000", "360821"));
        assert!(covers("360800", "360821"));
        assert!(!covers("360802", "360821"));
        assert!(covers("360821", "360821"));
        assert!(covers("000000", "110101"));
        assert!(!covers("360000", "110101"));
        assert_eq!(ancestors("360821"), ["360800", "360000", "000000"]);
        assert_eq!(ancestors("360000"), ["000000"]);
        assert!(is_valid("360821"));
        assert!(!is_valid("36082"));
        assert!(!is_valid("36082a"));
    }
}
