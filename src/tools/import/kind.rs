//! What `cadrex import --kind` names: cadres, or one record kind of `Kind::ALL`, with the columns each reads.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use anyhow::Context;

use crate::domain::agency::Agency;
use crate::domain::records::Kind;

/// What a file holds: cadres for the registry, or records of one kind. Picks
/// the columns, the RPC and the agencies that may send it.
///
/// The record kinds are [`Kind::ALL`], so a kind added in `domain` can be
/// imported once its columns and payload are written (both `match` on
/// [`Kind`] and fail to compile until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImportKind {
    Cadre,
    Record(Kind),
}

/// Shorthands for `ImportKind::Record(Kind::…)`, named as the variants were
/// before the kinds came from [`Kind::ALL`]; a kind without one is importable
/// all the same.
#[allow(non_upper_case_globals)]
impl ImportKind {
    pub const Sanction: ImportKind = ImportKind::Record(Kind::Sanction);
    pub const Admonishment: ImportKind = ImportKind::Record(Kind::Admonishment);
    pub const Clue: ImportKind = ImportKind::Record(Kind::Clue);
    pub const OrgHandling: ImportKind = ImportKind::Record(Kind::OrgHandling);
    pub const PersonalMattersCheck: ImportKind = ImportKind::Record(Kind::PersonalMattersCheck);
    pub const Evaluation: ImportKind = ImportKind::Record(Kind::Evaluation);
    pub const AuditEngagement: ImportKind = ImportKind::Record(Kind::AuditEngagement);
    pub const AuditFinding: ImportKind = ImportKind::Record(Kind::AuditFinding);
    pub const Petition: ImportKind = ImportKind::Record(Kind::Petition);
}

/// Import names of the record kinds, in the order of [`Kind::ALL`].
static RECORD_NAMES: LazyLock<[String; Kind::ALL.len()]> =
    LazyLock::new(|| Kind::ALL.map(|k| k.as_str().to_ascii_lowercase().replace('_', "-")));

/// Only the registrar's systems create cadres.
const CADRE_OWNERS: &[Agency] = &[Agency::REGISTRAR];

impl ImportKind {
    /// Cadres, then every record kind in the order of [`Kind::ALL`].
    pub const ALL: [ImportKind; 1 + Kind::ALL.len()] = {
        let mut all = [ImportKind::Cadre; 1 + Kind::ALL.len()];
        let mut i = 0;
        while i < Kind::ALL.len() {
            all[i + 1] = ImportKind::Record(Kind::ALL[i]);
            i += 1;
        }
        all
    };

    /// The name used on the command line: `cadre`, or the record kind's
    /// stored name in kebab case (`org-handling`). Request ids cover it, so
    /// it must not change for a kind that has shipped.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Cadre => "cadre",
            ImportKind::Record(k) => {
                let i = Kind::ALL
                    .iter()
                    .position(|x| *x == k)
                    .expect("Kind::ALL holds every kind");
                &RECORD_NAMES[i]
            }
        }
    }

    /// The record kind, or `None` for cadres (which go to the registry).
    pub fn record_kind(self) -> Option<Kind> {
        match self {
            ImportKind::Cadre => None,
            ImportKind::Record(k) => Some(k),
        }
    }

    /// Agencies whose systems are the authoritative source of this kind
    /// ([`Kind::owners`], [`Agency::REGISTRAR`] for cadres). Checked once
    /// before the first batch, so that a wrong certificate fails the import
    /// instead of rejecting every row.
    pub fn owners(self) -> &'static [Agency] {
        match self {
            ImportKind::Cadre => CADRE_OWNERS,
            ImportKind::Record(k) => k.owners(),
        }
    }

    /// Every column this kind reads, with whether a CSV header must have it.
    pub fn columns(self) -> Vec<(&'static str, bool)> {
        let (common, specific): (&[(&str, bool)], _) = match self {
            ImportKind::Cadre => (&[], CADRE_COLUMNS),
            // The cadre column pair is checked separately: either one will do.
            ImportKind::Record(k) => (RECORD_COLUMNS, record_columns(k)),
        };
        common.iter().chain(specific).copied().collect()
    }
}

const CADRE_COLUMNS: &[(&str, bool)] = &[
    ("display_name", true),
    ("gender", true),
    ("id_number", true),
    ("birth_date", false),
    ("managing_division", true),
    ("unit_name", false),
    ("unit_credit_code", false),
    ("title", false),
    ("rank", false),
    ("unit_head", false),
    ("start_date", false),
    ("end_date", false),
];

/// Columns every record kind reads, before its own.
const RECORD_COLUMNS: &[(&str, bool)] = &[
    ("cadre_id_number", false),
    ("cadre", false),
    ("source_record_id", true),
    ("source_version", false),
    ("classification", true),
];

/// The payload columns of each record kind, as `record_from` reads them.
fn record_columns(kind: Kind) -> &'static [(&'static str, bool)] {
    match kind {
        Kind::Sanction => &[
            ("track", true),
            ("party_type", false),
            ("state_type", false),
            ("probation_years", false),
            ("decision_number", false),
            ("decision_date", true),
            ("effective_date", true),
            ("form_of_discipline", true),
        ],
        Kind::Admonishment => &[("type", true), ("date", true), ("issuer", false)],
        Kind::Clue => &[
            ("source", true),
            ("source_record", false),
            ("disposal", true),
            ("status", true),
            ("conclusion", false),
            ("received_date", true),
            ("reply_due_date", false),
        ],
        Kind::OrgHandling => &[("type", true), ("date", true)],
        Kind::PersonalMattersCheck => &[
            ("report_year", true),
            ("result", true),
            ("check_date", true),
            ("handling", false),
        ],
        Kind::Evaluation => &[("year", true), ("kind", true), ("grade", true)],
        Kind::AuditEngagement => &[
            ("type", true),
            ("period_start", true),
            ("period_end", true),
            ("report_number", false),
            ("audited_post", false),
            ("report_date", true),
            ("audited_unit_credit_code", false),
        ],
        Kind::AuditFinding => &[
            ("engagement_source_record_id", true),
            ("problem_type", true),
            ("amount_fen", false),
            ("characterisation", false),
            ("responsibility", true),
            ("transfer", true),
            ("rectification_deadline", false),
            ("rectification_status", false),
            ("rectification_report_ref", false),
            ("finding_date", true),
        ],
        Kind::InspectionFinding => &[
            ("tour_round", true),
            ("unit_name", true),
            ("unit_credit_code", true),
            ("concerns_unit_head", false),
            ("category", true),
            ("summary", true),
            ("transfer", true),
            ("rectification_deadline", true),
            ("rectification_status", true),
            ("rectification_report_ref", false),
            ("finding_date", true),
        ],
        Kind::ArchiveReview => &[
            ("opinion_request", true),
            ("review_date", true),
            ("reviewer", true),
            ("result", true),
            ("note", false),
        ],
        Kind::Petition => &[
            ("received_date", true),
            ("channel", true),
            ("anonymous", false),
            ("category", true),
            ("specific", false),
            ("status", true),
            ("forwarded_to", false),
            ("summary", false),
            ("informant_name", false),
            ("informant_unit", false),
            ("informant_contact", false),
            ("informant_address", false),
        ],
    }
}

/// By hand rather than derived, so that the names come from [`Kind::ALL`].
impl clap::ValueEnum for ImportKind {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImportKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        ImportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .with_context(|| {
                let names: Vec<_> = ImportKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind {s:?}; expected one of {}", names.join(", "))
            })
    }
}
