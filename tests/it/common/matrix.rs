//! The access matrix of docs/reference.md §2 for the integration tests: the unit tests' parser itself, and what each agency is shown of a record.

use std::sync::OnceLock;

use cadrex::domain::agency::Agency;
use cadrex::domain::records::Kind;
use cadrex::proto;

// The very file the unit tests use, so that there is one reading of the table.
#[path = "../../../src/authz/matrix.rs"]
mod table;

use table::View;
pub use table::{ACCESS_LOG, CADRE, Matrix};

/// Every agency's name, in the order of `Agency::ALL`: the columns of the matrix.
pub fn agencies() -> Vec<&'static str> {
    Agency::ALL.map(Agency::as_str).to_vec()
}

/// The matrix as docs/reference.md writes it, read once; panics when an agency or kind
/// has no column or row.
pub fn matrix() -> &'static Matrix {
    static TABLE: OnceLock<Matrix> = OnceLock::new();
    TABLE.get_or_init(|| {
        Matrix::parse(
            table::REFERENCE,
            &Agency::ALL.map(Agency::as_str),
            &Kind::ALL.map(Kind::as_str),
        )
    })
}

/// The view `agency` gets of a record of `kind` (see `Cell::record_view` in the parser);
/// `own_transfer` when the record is a clue the caller's own body transferred.
pub fn expected_view(agency: &str, kind: &str, own_transfer: bool) -> Option<proto::RecordView> {
    matrix()
        .cell(kind, agency)
        .record_view(own_transfer)
        .map(|v| match v {
            View::Full => proto::RecordView::Full,
            View::Summary => proto::RecordView::Summary,
        })
}
