//! What a decision is about: the `Resource` and the context `Facts` that enter it.

use cedar_policy::{Context, EntityUid, RestrictedExpression, Schema};

/// The resource a decision is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Exchange,
    AccessLog,
    Cadre {
        /// May be "-" for lists or cadres not yet created.
        id: String,
        /// Managing division code.
        division: String,
    },
    /// A record, placed by its cadre's managing division.
    Record {
        /// May be "-" for lists or records not yet stored.
        id: String,
        /// The cadre's managing division code.
        division: String,
        /// Record kind, e.g. `AUDIT_FINDING`.
        kind: String,
        /// Agency and division code of the owner system ("" for a new record).
        owner_agency: String,
        owner_division: String,
        /// For a clue: the agency and division that transferred it ("" when none).
        transfer_agency: String,
        transfer_division: String,
    },
}

/// What a decision may depend on besides the caller and the resource (the
/// Cedar *context*, DESIGN §2): the purpose of use a dossier is read for, and
/// the facts of the integrity-opinion request a call names, as the caller
/// may know them. Empty for most actions; a policy reads only what the
/// schema declares for its action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Facts {
    /// `APPOINTMENT_VETTING`, `CASE_HANDLING`, … (ReadDossier).
    pub purpose: Option<String>,
    /// The opinion request named, about the resource cadre (ReadDossier,
    /// ReadOpinions).
    pub request: Option<RequestFacts>,
}

/// One integrity-opinion request, about one cadre, as its facts enter a
/// decision. A request that does not exist has every fact false.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestFacts {
    /// Made by a system of the caller's agency and division.
    pub own: bool,
    /// Withdrawn.
    pub withdrawn: bool,
    /// It names the resource cadre.
    pub names_cadre: bool,
    /// The reply in force for the cadre is STALE as the caller sees it (false
    /// when there is none).
    pub reply_stale: bool,
    /// A system of the caller's agency and division replied for the cadre.
    pub replied_by_own: bool,
    /// The caller sees the request's piece about the cadre.
    pub visible: bool,
    /// The reply in question was given by a system of the caller's agency in
    /// the caller's division or below (ReadDeviation).
    pub reply_within: bool,
}

impl Facts {
    pub fn none() -> &'static Facts {
        static NONE: Facts = Facts {
            purpose: None,
            request: None,
        };
        &NONE
    }

    pub(super) fn to_context(
        &self,
        schema: &Schema,
        action: &EntityUid,
    ) -> anyhow::Result<Context> {
        let mut pairs: Vec<(String, RestrictedExpression)> = Vec::new();
        if let Some(p) = &self.purpose {
            pairs.push((
                "purpose".into(),
                RestrictedExpression::new_string(p.clone()),
            ));
        }
        if let Some(r) = &self.request {
            let b = RestrictedExpression::new_bool;
            pairs.push((
                "request".into(),
                RestrictedExpression::new_record([
                    ("own".to_string(), b(r.own)),
                    ("withdrawn".to_string(), b(r.withdrawn)),
                    ("names_cadre".to_string(), b(r.names_cadre)),
                    ("reply_stale".to_string(), b(r.reply_stale)),
                    ("replied_by_own".to_string(), b(r.replied_by_own)),
                    ("visible".to_string(), b(r.visible)),
                    ("reply_within".to_string(), b(r.reply_within)),
                ])?,
            ));
        }
        if pairs.is_empty() {
            return Ok(Context::empty());
        }
        let context = Context::from_pairs(pairs)?;
        context.validate(schema, action)?;
        Ok(context)
    }
}

impl Resource {
    /// The resource with its id blanked: what a decision depends on when no
    /// policy names an individual cadre or record. Every attribute passed to
    /// Cedar stays in it, so a cache keyed by it cannot forget one.
    pub fn without_id(&self) -> Resource {
        let mut r = self.clone();
        match &mut r {
            Resource::Cadre { id, .. } | Resource::Record { id, .. } => id.clear(),
            Resource::Exchange | Resource::AccessLog => {}
        }
        r
    }
}
