//! Rows to messages: the typed values of each column, a cadre or a record with its kind's payload, every bad column collected.

use std::str::FromStr;

use super::ImportKind;
use super::read::Row;
use super::report::Rejection;
use crate::domain::records::Kind;
use crate::proto;

/// A row ready to send.
pub(super) struct Pending {
    pub(super) line: u64,
    /// Source record id, or the id number for cadres: what the report names.
    pub(super) id: String,
    pub(super) item: Item,
}

pub(super) enum Item {
    Record(Box<proto::Record>),
    Cadre(Box<proto::Cadre>),
}

/// Reads typed values out of a row, collecting every bad column.
struct Cols<'a> {
    row: &'a Row,
    bad: Vec<(String, String)>,
}

impl Cols<'_> {
    fn text(&self, column: &str) -> String {
        self.row.get(column).to_string()
    }

    fn int<T: FromStr + Copy>(&mut self, column: &str, empty: T) -> T {
        let v = self.row.get(column);
        if v.is_empty() {
            return empty;
        }
        match v.parse() {
            Ok(n) => n,
            Err(_) => {
                self.bad
                    .push((column.into(), format!("{v:?} is not a whole number")));
                empty
            }
        }
    }

    fn flag(&mut self, column: &str) -> bool {
        match self.row.get(column).to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "no" | "n" | "否" => false,
            "true" | "1" | "yes" | "y" | "是" => true,
            v => {
                self.bad
                    .push((column.into(), format!("{v:?} is not true or false")));
                false
            }
        }
    }

    /// An enum column written as the value's suffix (`PARTY`) or in full
    /// (`SANCTION_TRACK_PARTY`); empty is the zero value, which the server
    /// refuses where the field is required.
    fn enumeration(
        &mut self,
        column: &str,
        prefix: &str,
        parse: impl Fn(&str) -> Option<i32>,
        name: impl Fn(i32) -> Option<&'static str>,
    ) -> i32 {
        let v = self.row.get(column);
        if v.is_empty() {
            return 0;
        }
        let upper = v.to_ascii_uppercase().replace(['-', ' '], "_");
        let full = if upper.starts_with(prefix) {
            upper
        } else {
            format!("{prefix}{upper}")
        };
        if let Some(n) = parse(&full) {
            return n;
        }
        let allowed: Vec<&str> = (1..64)
            .filter_map(&name)
            .map(|n| n.strip_prefix(prefix).unwrap_or(n))
            .collect();
        self.bad.push((
            column.into(),
            format!(
                "unknown value {v:?}; expected one of {}",
                allowed.join(", ")
            ),
        ));
        0
    }
}

macro_rules! enum_col {
    ($cols:expr, $column:literal, $ty:ident, $prefix:literal) => {
        $cols.enumeration(
            $column,
            $prefix,
            |s| proto::$ty::from_str_name(s).map(|e| e as i32),
            |n| proto::$ty::try_from(n).ok().map(|e| e.as_str_name()),
        )
    };
}

/// 公民身份号码 as the registry stores them: trimmed, check character `X` upper case.
fn id_number(s: &str) -> String {
    crate::domain::ids::canonical_id_number(s.trim())
}

pub(super) fn parse_row(kind: ImportKind, row: &Row) -> Result<Pending, Rejection> {
    let mut c = Cols {
        row,
        bad: Vec::new(),
    };
    let (id, item) = match kind {
        ImportKind::Cadre => {
            let cadre = cadre_from(&mut c);
            (cadre.id_number.clone(), Item::Cadre(Box::new(cadre)))
        }
        ImportKind::Record(record_kind) => {
            let record = record_from(record_kind, &mut c);
            (
                record.source_record_id.clone(),
                Item::Record(Box::new(record)),
            )
        }
    };
    if c.bad.is_empty() {
        Ok(Pending {
            line: row.line,
            id,
            item,
        })
    } else {
        Err(Rejection::local(
            row.line,
            &id,
            "row not sent: some columns could not be read".into(),
            c.bad,
        ))
    }
}

fn cadre_from(c: &mut Cols) -> proto::Cadre {
    let post_columns = [
        "unit_name",
        "unit_credit_code",
        "title",
        "rank",
        "unit_head",
        "start_date",
        "end_date",
    ];
    let has_post = post_columns.iter().any(|col| !c.row.get(col).is_empty());
    let posts = if has_post {
        vec![proto::Post {
            unit_name: c.text("unit_name"),
            unit_credit_code: c.text("unit_credit_code").to_ascii_uppercase(),
            title: c.text("title"),
            rank: c.text("rank"),
            unit_head: c.flag("unit_head"),
            start_date: c.text("start_date"),
            end_date: c.text("end_date"),
        }]
    } else {
        Vec::new()
    };
    proto::Cadre {
        display_name: c.text("display_name"),
        gender: enum_col!(c, "gender", Gender, "GENDER_"),
        id_number: id_number(c.row.get("id_number")),
        birth_date: c.text("birth_date"),
        managing_division: c.text("managing_division"),
        posts,
        ..Default::default()
    }
}

fn record_from(kind: Kind, c: &mut Cols) -> proto::Record {
    use proto::record::Payload;
    let payload = match kind {
        Kind::Sanction => Payload::Sanction(proto::Sanction {
            track: enum_col!(c, "track", SanctionTrack, "SANCTION_TRACK_"),
            party_type: enum_col!(c, "party_type", PartySanctionType, "PARTY_SANCTION_TYPE_"),
            state_type: enum_col!(c, "state_type", StateSanctionType, "STATE_SANCTION_TYPE_"),
            probation_years: c.int("probation_years", 0),
            decision_number: c.text("decision_number"),
            decision_date: c.text("decision_date"),
            effective_date: c.text("effective_date"),
            form_of_discipline: c.int("form_of_discipline", 0),
        }),
        Kind::Admonishment => Payload::Admonishment(proto::Admonishment {
            r#type: enum_col!(c, "type", AdmonishmentType, "ADMONISHMENT_TYPE_"),
            date: c.text("date"),
            issuer: c.text("issuer"),
        }),
        Kind::Clue => Payload::Clue(proto::Clue {
            source: enum_col!(c, "source", ClueSource, "CLUE_SOURCE_"),
            source_record: c.text("source_record"),
            disposal: enum_col!(c, "disposal", ClueDisposal, "CLUE_DISPOSAL_"),
            status: enum_col!(c, "status", ClueStatus, "CLUE_STATUS_"),
            conclusion: c.text("conclusion"),
            received_date: c.text("received_date"),
            reply_due_date: c.text("reply_due_date"),
        }),
        Kind::OrgHandling => Payload::OrgHandling(proto::OrgHandling {
            r#type: enum_col!(c, "type", OrgHandlingType, "ORG_HANDLING_TYPE_"),
            date: c.text("date"),
        }),
        Kind::PersonalMattersCheck => Payload::PersonalMattersCheck(proto::PersonalMattersCheck {
            report_year: c.int("report_year", 0),
            result: enum_col!(
                c,
                "result",
                PersonalMattersResult,
                "PERSONAL_MATTERS_RESULT_"
            ),
            check_date: c.text("check_date"),
            handling: c.text("handling"),
        }),
        Kind::Evaluation => Payload::Evaluation(proto::Evaluation {
            year: c.int("year", 0),
            kind: enum_col!(c, "kind", EvaluationKind, "EVALUATION_KIND_"),
            grade: enum_col!(c, "grade", EvaluationGrade, "EVALUATION_GRADE_"),
        }),
        Kind::AuditEngagement => Payload::AuditEngagement(proto::AuditEngagement {
            r#type: enum_col!(c, "type", AuditEngagementType, "AUDIT_ENGAGEMENT_TYPE_"),
            period_start: c.text("period_start"),
            period_end: c.text("period_end"),
            report_number: c.text("report_number"),
            audited_post: c.text("audited_post"),
            report_date: c.text("report_date"),
            audited_unit_credit_code: c.text("audited_unit_credit_code"),
        }),
        Kind::AuditFinding => Payload::AuditFinding(proto::AuditFinding {
            engagement_source_record_id: c.text("engagement_source_record_id"),
            problem_type: enum_col!(c, "problem_type", ProblemType, "PROBLEM_TYPE_"),
            amount_fen: c.int("amount_fen", 0),
            characterisation: c.text("characterisation"),
            responsibility: enum_col!(c, "responsibility", Responsibility, "RESPONSIBILITY_"),
            transfer: enum_col!(c, "transfer", Transfer, "TRANSFER_"),
            rectification: Some(proto::Rectification {
                deadline: c.text("rectification_deadline"),
                status: enum_col!(
                    c,
                    "rectification_status",
                    RectificationStatus,
                    "RECTIFICATION_STATUS_"
                ),
                report_ref: c.text("rectification_report_ref"),
            }),
            finding_date: c.text("finding_date"),
            engagement: String::new(),
        }),
        Kind::InspectionFinding => Payload::InspectionFinding(proto::InspectionFinding {
            tour_round: c.text("tour_round"),
            unit_name: c.text("unit_name"),
            unit_credit_code: c.text("unit_credit_code"),
            concerns_unit_head: c.flag("concerns_unit_head"),
            category: enum_col!(c, "category", InspectionCategory, "INSPECTION_CATEGORY_"),
            summary: c.text("summary"),
            transfer: enum_col!(c, "transfer", Transfer, "TRANSFER_"),
            rectification: Some(proto::Rectification {
                deadline: c.text("rectification_deadline"),
                status: enum_col!(
                    c,
                    "rectification_status",
                    RectificationStatus,
                    "RECTIFICATION_STATUS_"
                ),
                report_ref: c.text("rectification_report_ref"),
            }),
            finding_date: c.text("finding_date"),
        }),
        Kind::ArchiveReview => Payload::ArchiveReview(proto::ArchiveReview {
            opinion_request: c.text("opinion_request"),
            review_date: c.text("review_date"),
            reviewer: c.text("reviewer"),
            result: enum_col!(c, "result", ArchiveReviewResult, "ARCHIVE_REVIEW_RESULT_"),
            note: c.text("note"),
        }),
        Kind::Petition => {
            let informant = proto::Informant {
                name: c.text("informant_name"),
                unit: c.text("informant_unit"),
                contact: c.text("informant_contact"),
                address: c.text("informant_address"),
            };
            // An absent block, not an empty one, so that an anonymous petition
            // is not refused for carrying informant fields.
            let informant = (informant != proto::Informant::default()).then_some(informant);
            Payload::Petition(proto::Petition {
                received_date: c.text("received_date"),
                channel: enum_col!(c, "channel", PetitionChannel, "PETITION_CHANNEL_"),
                anonymous: c.flag("anonymous"),
                category: enum_col!(c, "category", PetitionCategory, "PETITION_CATEGORY_"),
                specific: c.flag("specific"),
                status: enum_col!(c, "status", PetitionStatus, "PETITION_STATUS_"),
                forwarded_to: c.text("forwarded_to"),
                summary: c.text("summary"),
                informant,
            })
        }
    };
    let cadre = match c.row.get("cadre") {
        "" => String::new(),
        v if v.starts_with("cadres/") => v.to_string(),
        v => format!("cadres/{v}"),
    };
    proto::Record {
        cadre,
        cadre_id_number: id_number(c.row.get("cadre_id_number")),
        kind: kind.to_proto() as i32,
        source_record_id: c.text("source_record_id"),
        // A source record's first version is 1; most first loads leave it out.
        source_version: c.int("source_version", 1),
        classification: enum_col!(c, "classification", Classification, "CLASSIFICATION_"),
        payload: Some(payload),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::agency::Agency;
    use crate::tools::import::read::row;
    use crate::tools::import::report::REASON_INVALID_ROW;

    #[test]
    fn enum_suffixes_map_to_prost_values() {
        let r = row(&[
            ("cadre_id_number", "36082119750312001x"),
            ("source_record_id", "AF-1"),
            ("classification", "INTERNAL"),
            ("engagement_source_record_id", "AE-1"),
            ("problem_type", "IRREGULAR_FUNDS"),
            ("amount_fen", "125000"),
            ("responsibility", "direct"),
            ("transfer", "TRANSFER_DISCIPLINE"),
            ("rectification_status", "in-progress"),
            ("finding_date", "2025-03-01"),
        ]);
        let p = parse_row(ImportKind::AuditFinding, &r).unwrap_or_else(|_| panic!("parses"));
        let Item::Record(rec) = p.item else {
            panic!("a record")
        };
        assert_eq!(rec.cadre_id_number, "36082119750312001X");
        assert_eq!(rec.source_version, 1);
        assert_eq!(rec.kind, proto::RecordKind::AuditFinding as i32);
        let Some(proto::record::Payload::AuditFinding(f)) = rec.payload else {
            panic!("a finding")
        };
        assert_eq!(f.problem_type, proto::ProblemType::IrregularFunds as i32);
        assert_eq!(f.responsibility, proto::Responsibility::Direct as i32);
        assert_eq!(f.transfer, proto::Transfer::Discipline as i32);
        assert_eq!(
            f.rectification.unwrap().status,
            proto::RectificationStatus::InProgress as i32
        );
        assert_eq!(f.amount_fen, 125_000);
    }

    #[test]
    fn bad_columns_are_all_reported() {
        let r = row(&[
            ("source_record_id", "AF-2"),
            ("classification", "INTERNAL"),
            ("problem_type", "EMBEZZLEMENT"),
            ("amount_fen", "12.5"),
        ]);
        let Err(rej) = parse_row(ImportKind::AuditFinding, &r) else {
            panic!("rejected")
        };
        assert_eq!(rej.reason, REASON_INVALID_ROW);
        assert_eq!(rej.id, "AF-2");
        let cols: Vec<&str> = rej.fields.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(cols, ["problem_type", "amount_fen"]);
        assert!(rej.fields[0].1.contains("IRREGULAR_FUNDS"));
    }

    #[test]
    fn anonymous_petition_has_no_informant_block() {
        let r = row(&[
            ("source_record_id", "P-1"),
            ("anonymous", "true"),
            ("channel", "ONLINE"),
        ]);
        let Ok(p) = parse_row(ImportKind::Petition, &r) else {
            panic!("parses")
        };
        let Item::Record(rec) = p.item else {
            panic!("a record")
        };
        let Some(proto::record::Payload::Petition(pet)) = rec.payload else {
            panic!("a petition")
        };
        assert!(pet.anonymous && pet.informant.is_none());
    }

    /// Every record kind of the domain is importable: its name round-trips on
    /// the command line, its owners are the domain's, and a row parses to a
    /// record of that kind. Walks `Kind::ALL`, so a new kind is checked here
    /// without editing this test.
    #[test]
    fn every_domain_kind_is_importable() {
        assert_eq!(ImportKind::ALL[0], ImportKind::Cadre);
        assert_eq!(ImportKind::Cadre.owners(), [Agency::REGISTRAR]);
        let names: BTreeSet<&str> = ImportKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names.len(),
            ImportKind::ALL.len(),
            "import names are distinct"
        );
        for kind in Kind::ALL {
            let ik = ImportKind::Record(kind);
            assert!(ImportKind::ALL.contains(&ik), "{kind:?}");
            assert_eq!(ik.as_str().parse::<ImportKind>().unwrap(), ik);
            assert_eq!(
                <ImportKind as clap::ValueEnum>::from_str(ik.as_str(), false),
                Ok(ik)
            );
            assert_eq!(ik.record_kind(), Some(kind));
            assert!(!ik.owners().is_empty());
            assert_eq!(ik.owners(), kind.owners());
            assert!(ik.columns().iter().any(|(c, _)| *c == "source_record_id"));
            let Ok(p) = parse_row(ik, &row(&[("source_record_id", "X-1")])) else {
                panic!("{kind:?}: an empty row parses")
            };
            let Item::Record(rec) = p.item else {
                panic!("{kind:?}: a record")
            };
            assert_eq!(rec.kind, kind.to_proto() as i32);
            assert_eq!(rec.payload.as_ref().and_then(Kind::of), Some(kind));
        }
        // The preflight reads the caller's agency off the wire.
        for agency in Agency::ALL {
            assert_eq!(Agency::from_proto(agency.to_proto()), Some(agency));
        }
    }
}
