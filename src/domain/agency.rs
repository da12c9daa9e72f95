//! The kinds of supervisory body that hold certificates, named as in URIs, Cedar and the access log.

use std::fmt;

use crate::proto;

/// The five kinds of supervisory body that hold certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Agency {
    /// 纪检监察机关: discipline inspection and supervision commission.
    Discipline,
    /// 组织部门: organization department.
    Organization,
    /// 审计机关: audit office.
    Audit,
    /// 信访部门: letters and visits bureau.
    Petition,
    /// 巡视巡察机构: a party committee's inspection office or its tour groups.
    Inspection,
}

impl Agency {
    /// Every agency kind, in the order of DESIGN §1.
    pub const ALL: [Agency; 5] = [
        Agency::Discipline,
        Agency::Organization,
        Agency::Audit,
        Agency::Petition,
        Agency::Inspection,
    ];

    /// The lowercase name used in URIs, Cedar attributes and the access log.
    pub fn as_str(self) -> &'static str {
        match self {
            Agency::Discipline => "discipline",
            Agency::Organization => "organization",
            Agency::Audit => "audit",
            Agency::Petition => "petition",
            Agency::Inspection => "inspection",
        }
    }

    /// The agency whose systems register and update cadres (informational;
    /// Cedar decides, `policies/organization.cedar`).
    pub const REGISTRAR: Agency = Agency::Organization;

    /// The wire enum of this agency.
    pub fn to_proto(self) -> proto::Agency {
        match self {
            Agency::Discipline => proto::Agency::Discipline,
            Agency::Organization => proto::Agency::Organization,
            Agency::Audit => proto::Agency::Audit,
            Agency::Petition => proto::Agency::Petition,
            Agency::Inspection => proto::Agency::Inspection,
        }
    }

    /// The agency a wire value names; `None` for UNSPECIFIED.
    pub fn from_proto(a: proto::Agency) -> Option<Self> {
        Agency::ALL.into_iter().find(|x| x.to_proto() == a)
    }

    /// The agency named `s` (lowercase, as in [`Agency::as_str`]); `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        Agency::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Agency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
