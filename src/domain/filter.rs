//! A small AIP-160 subset for list filters: `field OP "value"` terms (OP one of = > >= < <=) joined by `AND`.

use crate::error::{Error, Result};

/// Comparison of a term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One `field OP "value"` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub field: String,
    pub op: Op,
    pub value: String,
}

/// Parses `a = "x" AND b = "y"`; values are double-quoted with `\"` and `\\`
/// escapes. Anything else is INVALID_ARGUMENT on `filter`.
pub fn parse(input: &str) -> Result<Vec<Term>> {
    let bad = |why: &str| Error::invalid("filter", why.to_string());
    let mut terms = Vec::new();
    // A filter is one line of text; PostgreSQL cannot even store NUL, and
    // refusing it here keeps both backends' answers the same.
    if let Some(why) = crate::domain::text_fault(input, crate::domain::Text::Line) {
        return Err(bad(why));
    }
    let mut rest = input.trim();
    if rest.is_empty() {
        return Ok(terms);
    }
    loop {
        let field_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if field_len == 0 {
            return Err(bad("expected a field name"));
        }
        let field = rest[..field_len].to_string();
        rest = rest[field_len..].trim_start();
        let op = if let Some(r) = rest.strip_prefix(">=") {
            rest = r;
            Op::Ge
        } else if let Some(r) = rest.strip_prefix("<=") {
            rest = r;
            Op::Le
        } else if let Some(r) = rest.strip_prefix('>') {
            rest = r;
            Op::Gt
        } else if let Some(r) = rest.strip_prefix('<') {
            rest = r;
            Op::Lt
        } else if let Some(r) = rest.strip_prefix('=') {
            rest = r;
            Op::Eq
        } else {
            return Err(bad("expected =, >, >=, < or <= after the field name"));
        };
        rest = rest.trim_start();
        let mut chars = rest.char_indices();
        if !matches!(chars.next(), Some((_, '"'))) {
            return Err(bad("values must be double-quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in chars {
            match (escaped, c) {
                (true, _) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, _) => value.push(c),
            }
        }
        let end = end.ok_or_else(|| bad("unterminated string"))?;
        terms.push(Term { field, op, value });
        rest = rest[end + 1..].trim_start();
        if rest.is_empty() {
            return Ok(terms);
        }
        rest = rest
            .strip_prefix("AND")
            .filter(|r| r.starts_with(char::is_whitespace))
            .ok_or_else(|| bad("terms must be joined by AND"))?
            .trim_start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terms() {
        let t = parse(r#"managing_division = "3608*" AND display_name="张\"三""#).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].value, "张\"三");
        assert!(parse("a = b").is_err());
        assert!(parse(r#"a = "b" OR c = "d""#).is_err());
        assert!(parse(r#"a = "b"#).is_err());
        assert!(parse("").unwrap().is_empty());
        let t = parse(r#"update_time >= "2026-01-01T00:00:00Z""#).unwrap();
        assert_eq!(t[0].op, Op::Ge);
    }
}
