//! The access matrix as docs/reference.md §2 writes it, read by the tests that hold the policies and the server to it.
//!
//! The table users read is the one written matrix: the unit tests of the policies and the
//! integration tests of the server both derive their expectations from it. This file has
//! no crate imports so that the integration tests include this very parser
//! (`tests/it/common/matrix.rs`) instead of keeping a second one.

use std::collections::HashMap;

/// The reference document; its §2 table is the matrix.
pub const REFERENCE: &str = include_str!("../../docs/reference.md");

/// The heading the table follows.
const SECTION: &str = "## 2. Access matrix";

/// Rows that are not record kinds, by the text their first cell starts with.
pub const CADRE: &str = "cadre identity & posts";
pub const INFORMANT: &str = "petition informant identity";
pub const OPINIONS: &str = "integrity opinion request / reply";
pub const ACCESS_LOG: &str = "access log";
const NAMED_ROWS: [&str; 4] = [CADRE, INFORMANT, OPINIONS, ACCESS_LOG];

/// What a cell may grant, before its note: the legend's letters, and the access log's
/// "own calls".
const GRANTS: [&str; 5] = ["A", "F", "C", "N", OWN_CALLS];
pub const OWN_CALLS: &str = "own calls";

/// One comma-separated part of a cell: `A (those it issues)` is grant `A` with note
/// `those it issues`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub grant: String,
    pub note: String,
}

/// What a caller is shown of a record or a cadre.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `ReadFull`: everything (of a cadre, the id number too).
    Full,
    /// `ReadSummary`: a record's summary type, a cadre's masked identity.
    Summary,
}

/// One cell of the table.
#[derive(Clone, Debug)]
pub struct Cell {
    pub grants: Vec<Grant>,
    /// The cell as written, for messages.
    pub text: String,
}

impl Cell {
    /// Whether the cell grants `grant` (a letter, or [`OWN_CALLS`]).
    pub fn has(&self, grant: &str) -> bool {
        self.note(grant).is_some()
    }

    /// The note after `grant` ("" when there is none); `None` when the cell does not grant it.
    pub fn note(&self, grant: &str) -> Option<&str> {
        self.grants
            .iter()
            .find(|g| g.grant == grant)
            .map(|g| g.note.as_str())
    }

    /// Whether the note of `grant` mentions `words`.
    pub fn says(&self, grant: &str, words: &str) -> bool {
        self.note(grant).is_some_and(|n| n.contains(words))
    }

    /// The view a record kind's cell gives. A writer (A) reads what it writes in full,
    /// like F; C is the summary, and "C (own transfers: …)" only for a clue the caller's
    /// own body transferred (`own_transfer`); N is nothing.
    pub fn record_view(&self, own_transfer: bool) -> Option<View> {
        if self.has("A") || self.has("F") {
            Some(View::Full)
        } else if self.has("C") && (own_transfer || !self.says("C", "own transfers")) {
            Some(View::Summary)
        } else {
            None
        }
    }

    /// The view the cadre row's cell gives: "F (id number masked …)" is the masked
    /// identity, any other A or F the full one.
    pub fn cadre_view(&self) -> Option<View> {
        if self.says("F", "masked") {
            Some(View::Summary)
        } else if self.has("A") || self.has("F") {
            Some(View::Full)
        } else {
            None
        }
    }
}

/// The table: a cell per (row, column). A row is a record kind's name or one of the
/// named rows; a column an agency's name.
#[derive(Debug)]
pub struct Matrix {
    cells: HashMap<(String, String), Cell>,
}

impl Matrix {
    /// Reads the first table after the `## 2. Access matrix` heading of `doc`.
    ///
    /// Panics, naming what to add, when a column for one of `agencies` or a row for one of
    /// `kinds` or of the named rows is missing, and when the table has a column, a row or a
    /// grant it does not know: a new agency or kind fails every test derived from the
    /// matrix until the table, and then the policies, handle it.
    pub fn parse(doc: &str, agencies: &[&str], kinds: &[&str]) -> Matrix {
        let start = doc
            .find(SECTION)
            .unwrap_or_else(|| panic!("docs/reference.md has no {SECTION:?} section"));
        let mut lines = doc[start..]
            .lines()
            .skip_while(|l| !l.trim_start().starts_with('|'))
            .take_while(|l| l.trim_start().starts_with('|'));
        let header = split_row(
            lines
                .next()
                .unwrap_or_else(|| panic!("no table under {SECTION:?}")),
        );
        let columns: Vec<String> = header.iter().skip(1).map(|c| c.to_string()).collect();
        for column in &columns {
            assert!(
                agencies.contains(&column.as_str()),
                "the access matrix has a column {column:?}, which is no agency of Agency::ALL"
            );
        }
        for agency in agencies {
            assert!(
                columns.iter().any(|c| c == agency),
                "the access matrix in docs/reference.md §2 has no column for agency {agency:?}: \
                 add one, then its policies/{agency}.cedar"
            );
        }

        let mut cells = HashMap::new();
        for line in lines {
            let row = split_row(line);
            if row
                .iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':')))
            {
                continue;
            }
            assert_eq!(
                row.len(),
                columns.len() + 1,
                "access matrix row has the wrong number of cells: {line}"
            );
            for key in row_keys(row[0], kinds) {
                for (column, text) in columns.iter().zip(&row[1..]) {
                    let previous = cells.insert((key.clone(), column.clone()), parse_cell(text));
                    assert!(previous.is_none(), "access matrix has two rows for {key:?}");
                }
            }
        }
        for key in kinds.iter().chain(&NAMED_ROWS) {
            assert!(
                cells.contains_key(&(key.to_string(), columns[0].clone())),
                "the access matrix in docs/reference.md §2 has no row for {key:?}: add one, \
                 then what each agency may do with it in policies/<agency>.cedar"
            );
        }
        Matrix { cells }
    }

    /// The cell of `row` (a kind's name or a named row) for `agency`.
    pub fn cell(&self, row: &str, agency: &str) -> &Cell {
        self.cells
            .get(&(row.to_string(), agency.to_string()))
            .unwrap_or_else(|| panic!("no access matrix cell for {row:?} × {agency:?}"))
    }
}

/// The cells of a table line, trimmed, without the outer pipes.
fn split_row(line: &str) -> Vec<&str> {
    let line = line.trim();
    let inner = line.strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(str::trim).collect()
}

/// The rows a first cell stands for: every backticked kind it names (one row may list
/// two), else the named row it starts with.
fn row_keys(first: &str, kinds: &[&str]) -> Vec<String> {
    let ticked: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
    if ticked.is_empty() {
        let named = NAMED_ROWS
            .iter()
            .find(|n| first.starts_with(**n))
            .unwrap_or_else(|| {
                panic!("access matrix row {first:?} is neither a kind nor a known row")
            });
        return vec![named.to_string()];
    }
    for kind in &ticked {
        assert!(
            kinds.contains(kind),
            "access matrix row {first:?} names `{kind}`, which is no kind of Kind::ALL"
        );
    }
    ticked.into_iter().map(str::to_string).collect()
}

/// `A (those it issues), F` → [A with its note, F]; commas inside a note do not split.
fn parse_cell(text: &str) -> Cell {
    let plain = text.replace("**", "");
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0usize, 0);
    for (i, ch) in plain.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&plain[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&plain[from..]);
    let grants = parts
        .into_iter()
        .map(|part| {
            let part = part.trim();
            let (grant, note) = match part.split_once('(') {
                Some((grant, rest)) => (grant.trim(), rest.trim_end().trim_end_matches(')')),
                None => (part, ""),
            };
            assert!(
                GRANTS.contains(&grant),
                "access matrix cell {text:?}: {grant:?} is none of {GRANTS:?}"
            );
            Grant {
                grant: grant.to_string(),
                note: note.trim().to_string(),
            }
        })
        .collect();
    Cell {
        grants,
        text: text.to_string(),
    }
}
