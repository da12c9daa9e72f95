//! The single authorization point: Cedar policies over the caller, the action and the resource's jurisdiction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context as _, anyhow, bail};
use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet,
    Request, RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::domain::division::{self, NATIONAL};
use crate::identity::Principal;

/// Name of the schema file inside a policy directory.
pub const SCHEMA_FILE: &str = "cadrex.cedarschema";

const SHIPPED_SCHEMA: &str = include_str!("../policies/cadrex.cedarschema");

/// Shipped policy files by name; a test keeps this list equal to `policies/*.cedar`.
const SHIPPED_POLICIES: &[(&str, &str)] = &[
    (
        "access_log.cedar",
        include_str!("../policies/access_log.cedar"),
    ),
    ("cadres.cedar", include_str!("../policies/cadres.cedar")),
    ("exchange.cedar", include_str!("../policies/exchange.cedar")),
    (
        "jurisdiction.cedar",
        include_str!("../policies/jurisdiction.cedar"),
    ),
    ("opinions.cedar", include_str!("../policies/opinions.cedar")),
    ("records.cedar", include_str!("../policies/records.cedar")),
];

/// Schema text shipped in the binary.
pub fn shipped_schema() -> &'static str {
    SHIPPED_SCHEMA
}

/// Policy files shipped in the binary, as (file name, text), sorted by name.
pub fn shipped_policies() -> &'static [(&'static str, &'static str)] {
    SHIPPED_POLICIES
}

/// Every action a policy can be asked about; the names are the Cedar action ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    WhoAmI,
    AllowedMethods,
    CreateCadre,
    UpdateCadre,
    GetCadre,
    ListCadres,
    LookupCadre,
    ReadFull,
    ReadSummary,
    ListAccessEvents,
    ReadAllAccessEvents,
    GetCheckpoint,
    VerifyAccessLog,
    SubmitRecord,
    RetractRecord,
    GetRecord,
    ListRecords,
    ReadInformant,
    ReadChanges,
    RequestOpinion,
    ReadOpinions,
    DraftOpinion,
    ReplyOpinion,
    ReadDossier,
}

impl Action {
    pub const ALL: [Action; 24] = [
        Action::WhoAmI,
        Action::AllowedMethods,
        Action::CreateCadre,
        Action::UpdateCadre,
        Action::GetCadre,
        Action::ListCadres,
        Action::LookupCadre,
        Action::ReadFull,
        Action::ReadSummary,
        Action::ListAccessEvents,
        Action::ReadAllAccessEvents,
        Action::GetCheckpoint,
        Action::VerifyAccessLog,
        Action::SubmitRecord,
        Action::RetractRecord,
        Action::GetRecord,
        Action::ListRecords,
        Action::ReadInformant,
        Action::ReadChanges,
        Action::RequestOpinion,
        Action::ReadOpinions,
        Action::DraftOpinion,
        Action::ReplyOpinion,
        Action::ReadDossier,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::WhoAmI => "WhoAmI",
            Action::AllowedMethods => "AllowedMethods",
            Action::CreateCadre => "CreateCadre",
            Action::UpdateCadre => "UpdateCadre",
            Action::GetCadre => "GetCadre",
            Action::ListCadres => "ListCadres",
            Action::LookupCadre => "LookupCadre",
            Action::ReadFull => "ReadFull",
            Action::ReadSummary => "ReadSummary",
            Action::ListAccessEvents => "ListAccessEvents",
            Action::ReadAllAccessEvents => "ReadAllAccessEvents",
            Action::GetCheckpoint => "GetCheckpoint",
            Action::VerifyAccessLog => "VerifyAccessLog",
            Action::SubmitRecord => "SubmitRecord",
            Action::RetractRecord => "RetractRecord",
            Action::GetRecord => "GetRecord",
            Action::ListRecords => "ListRecords",
            Action::ReadInformant => "ReadInformant",
            Action::ReadChanges => "ReadChanges",
            Action::RequestOpinion => "RequestOpinion",
            Action::ReadOpinions => "ReadOpinions",
            Action::DraftOpinion => "DraftOpinion",
            Action::ReplyOpinion => "ReplyOpinion",
            Action::ReadDossier => "ReadDossier",
        }
    }

    /// Position in `ALL`, so per-action data can live in a plain array.
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

impl Facts {
    pub fn none() -> &'static Facts {
        static NONE: Facts = Facts {
            purpose: None,
            request: None,
        };
        &NONE
    }

    fn to_context(&self, schema: &Schema, action: &EntityUid) -> anyhow::Result<Context> {
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

/// The outcome of one authorization.
#[derive(Clone, Debug)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the policies that decided (the permit(s) that allowed, or the forbid(s) that
    /// denied; empty for default deny).
    pub policy_ids: Vec<String>,
}

impl Decision {
    fn deny() -> Self {
        Decision {
            allowed: false,
            policy_ids: Vec::new(),
        }
    }
}

/// Entity type names, parsed once instead of on every request.
struct Types {
    system: EntityTypeName,
    division: EntityTypeName,
    cadre: EntityTypeName,
    record: EntityTypeName,
    exchange: EntityTypeName,
    access_log: EntityTypeName,
}

impl Types {
    fn new() -> anyhow::Result<Self> {
        let t = |s: &str| EntityTypeName::from_str(s).map_err(|e| anyhow!("entity type {s}: {e}"));
        Ok(Types {
            system: t("Cadrex::System")?,
            division: t("Cadrex::Division")?,
            cadre: t("Cadrex::Cadre")?,
            record: t("Cadrex::Record")?,
            exchange: t("Cadrex::Exchange")?,
            access_log: t("Cadrex::AccessLog")?,
        })
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }
}

/// Validated schema and policy set, pre-built so a request only builds its few entities.
pub struct Authorizer {
    schema: Schema,
    policies: PolicySet,
    engine: cedar_policy::Authorizer,
    types: Types,
    actions: [EntityUid; Action::ALL.len()],
    /// Decisions already taken, by caller, action and resource attributes; `None`
    /// when a policy names a cadre or record by id, since a decision then
    /// depends on more than the attributes the key holds.
    cache: Option<std::sync::Mutex<HashMap<CacheKey, Decision>>>,
}

/// What a decision depends on when no policy names a cadre or record: the
/// caller's certificate URI (agency, division and system are parsed from it),
/// the action, the resource with its id left out, and the facts of the context.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    principal: String,
    action: Action,
    resource: Resource,
    facts: Facts,
}

/// Bound on remembered decisions; the map is emptied when it is reached. The
/// working set is small (callers × actions × kinds × divisions).
const CACHE_MAX: usize = 8192;

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.policies.policies().map(|p| p.id().as_ref()).collect();
        f.debug_struct("Authorizer")
            .field("policies", &ids)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Loads the shipped policies, or `dir/cadrex.cedarschema` and every `dir/*.cedar`
    /// (in name order) when a directory is given. Fails unless every policy validates
    /// strictly against the schema and carries a unique `@id`.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        match dir {
            None => Self::from_texts(
                SHIPPED_SCHEMA,
                SHIPPED_POLICIES
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.to_string())),
            ),
            Some(dir) => {
                let schema_path = dir.join(SCHEMA_FILE);
                let schema = std::fs::read_to_string(&schema_path)
                    .with_context(|| format!("reading {}", schema_path.display()))?;
                let mut files = Vec::new();
                for entry in
                    std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
                {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "cedar") && path.is_file() {
                        files.push(path);
                    }
                }
                files.sort();
                let mut texts = Vec::with_capacity(files.len());
                for path in files {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    texts.push((path.display().to_string(), text));
                }
                Self::from_texts(&schema, texts)
            }
        }
    }

    fn from_texts(
        schema_src: &str,
        files: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let (schema, warnings) =
            Schema::from_cedarschema_str(schema_src).map_err(|e| anyhow!("Cedar schema: {e:?}"))?;
        for w in warnings {
            tracing::warn!("Cedar schema: {w}");
        }

        let mut policies = PolicySet::new();
        let mut files_seen = 0;
        for (name, text) in files {
            files_seen += 1;
            let parsed = PolicySet::from_str(&text).map_err(|e| anyhow!("{name}: {e:?}"))?;
            if parsed.templates().next().is_some() {
                bail!("{name}: templates are not supported; write static policies");
            }
            for policy in parsed.policies() {
                policies
                    .add(with_annotated_id(policy).with_context(|| name.clone())?)
                    .map_err(|e| anyhow!("{name}: {e}"))?;
            }
        }
        // An empty set would deny every call; that is a broken deployment, not a policy.
        if files_seen == 0 || policies.num_of_policies() == 0 {
            bail!("no Cedar policies found");
        }

        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            let errors: Vec<String> = result.validation_errors().map(|e| format!("{e}")).collect();
            bail!(
                "Cedar policies do not validate against the schema: {}",
                errors.join("; ")
            );
        }
        for w in result.validation_warnings() {
            tracing::warn!("Cedar policy validation: {w}");
        }

        let action_type =
            EntityTypeName::from_str("Cadrex::Action").map_err(|e| anyhow!("action type: {e}"))?;
        let actions = Action::ALL.map(|a| Types::uid(&action_type, a.as_str()));
        let names_resources = names_cadre_or_record(&policies)?;
        if names_resources {
            tracing::info!(
                "a Cedar policy names a cadre or record by id; decisions are not cached"
            );
        }
        Ok(Authorizer {
            schema,
            policies,
            engine: cedar_policy::Authorizer::new(),
            types: Types::new()?,
            actions,
            cache: (!names_resources).then(|| std::sync::Mutex::new(HashMap::new())),
        })
    }

    /// Ids of the loaded policies, for startup logging.
    pub fn policy_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .policies
            .policies()
            .map(|p| p.id().to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Decides one call. Never panics: anything that keeps Cedar from giving a clean
    /// answer (a malformed division code, an action not applicable to the resource,
    /// an evaluation error) is logged and denied.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Decision {
        self.authorize_with(principal, action, resource, Facts::none())
    }

    /// Decides one call whose decision may depend on `facts` (see [`Facts`]).
    pub fn authorize_with(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: &Facts,
    ) -> Decision {
        // Cedar's entity building and schema checks cost far more than the
        // evaluation itself, and a dossier or a batch asks the same questions
        // many times; the answer is a pure function of the key.
        let key = self.cache.as_ref().map(|_| CacheKey {
            principal: principal.uri.clone(),
            action,
            resource: resource.without_id(),
            facts: facts.clone(),
        });
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(d) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(key)
        {
            return d.clone();
        }
        let decision = match self.decide(principal, action, resource, facts) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(principal = %principal.uri, action = %action, ?resource, "authorization denied on error: {e:#}");
                // Errors are not cached, so that they are logged every time.
                return Decision::deny();
            }
        };
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
            if map.len() >= CACHE_MAX {
                map.clear();
            }
            map.insert(key, decision.clone());
        }
        decision
    }

    /// The first allowed of `actions` (in order), e.g. [ReadFull, ReadSummary] → the view
    /// level; None when all denied.
    pub fn first_allowed(
        &self,
        principal: &Principal,
        actions: &[Action],
        resource: &Resource,
    ) -> Option<(Action, Decision)> {
        actions.iter().find_map(|&action| {
            let d = self.authorize(principal, action, resource);
            d.allowed.then_some((action, d))
        })
    }

    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        facts: &Facts,
    ) -> anyhow::Result<Decision> {
        let context = facts.to_context(&self.schema, &self.actions[action.index()])?;
        let mut divisions = DivisionChains::default();
        divisions.add(&principal.division)?;

        let principal_uid = Types::uid(&self.types.system, &principal.uri);
        let mut entities = vec![Entity::new(
            principal_uid.clone(),
            HashMap::from([
                (
                    "agency".to_string(),
                    RestrictedExpression::new_string(principal.agency.as_str().into()),
                ),
                (
                    "division".to_string(),
                    self.division_expr(&principal.division),
                ),
                (
                    "system".to_string(),
                    RestrictedExpression::new_string(principal.system.clone()),
                ),
                (
                    "code".to_string(),
                    RestrictedExpression::new_string(principal.division.clone()),
                ),
            ]),
            HashSet::new(),
        )?];

        let resource_uid = match resource {
            Resource::Exchange => {
                let uid = Types::uid(&self.types.exchange, "cadrex");
                entities.push(Entity::new_no_attrs(uid.clone(), HashSet::new()));
                uid
            }
            Resource::AccessLog => {
                let uid = Types::uid(&self.types.access_log, "access-log");
                entities.push(Entity::new_no_attrs(uid.clone(), HashSet::new()));
                uid
            }
            Resource::Cadre { id, division } => {
                divisions.add(division)?;
                let uid = Types::uid(&self.types.cadre, id);
                entities.push(Entity::new(
                    uid.clone(),
                    HashMap::from([("division".to_string(), self.division_expr(division))]),
                    HashSet::new(),
                )?);
                uid
            }
            Resource::Record {
                id,
                division,
                kind,
                owner_agency,
                owner_division,
                transfer_agency,
                transfer_division,
            } => {
                divisions.add(division)?;
                let uid = Types::uid(&self.types.record, id);
                let s = |v: &String| RestrictedExpression::new_string(v.clone());
                let mut attrs = HashMap::from([
                    ("division".to_string(), self.division_expr(division)),
                    ("kind".to_string(), s(kind)),
                    ("owner_agency".to_string(), s(owner_agency)),
                    ("transfer_agency".to_string(), s(transfer_agency)),
                    ("transfer_division".to_string(), s(transfer_division)),
                ]);
                // A record not yet stored has no owner; the schema makes the
                // attribute optional rather than a Division with an empty code.
                if !owner_division.is_empty() {
                    divisions.add(owner_division)?;
                    attrs.insert(
                        "owner_division".to_string(),
                        self.division_expr(owner_division),
                    );
                }
                entities.push(Entity::new(uid.clone(), attrs, HashSet::new())?);
                uid
            }
        };
        entities.extend(divisions.entities(&self.types.division));

        // The schema checks that the entities and request fit it, which catches a caller
        // pairing an action with the wrong kind of resource.
        let entities = Entities::from_entities(entities, Some(&self.schema))?;
        let request = Request::new(
            principal_uid,
            self.actions[action.index()].clone(),
            resource_uid,
            context,
            Some(&self.schema),
        )?;
        let response = self
            .engine
            .is_authorized(&request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        // Cedar skips a policy that errors; a skipped forbid must not turn into an allow.
        let errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            bail!("policy evaluation errors: {}", errors.join("; "));
        }
        let mut policy_ids: Vec<String> = diagnostics.reason().map(|id| id.to_string()).collect();
        policy_ids.sort();
        Ok(Decision {
            allowed: response.decision() == cedar_policy::Decision::Allow,
            policy_ids,
        })
    }

    fn division_expr(&self, code: &str) -> RestrictedExpression {
        RestrictedExpression::new_entity_uid(Types::uid(&self.types.division, code))
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

/// Whether any policy mentions a `Cadre` or `Record` entity literal (in its
/// scope or its conditions), found by walking the policies' JSON form.
fn names_cadre_or_record(policies: &PolicySet) -> anyhow::Result<bool> {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                let literal = map.get("id").is_some()
                    && map.get("type").and_then(|t| t.as_str()).is_some_and(|t| {
                        let name = t.rsplit("::").next().unwrap_or(t);
                        name == "Cadre" || name == "Record"
                    });
                literal || map.values().any(walk)
            }
            serde_json::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    for policy in policies.policies() {
        let json = policy
            .to_json()
            .map_err(|e| anyhow!("policy {} to JSON: {e}", policy.id()))?;
        if walk(&json) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Uses the policy's `@id` annotation as its policy id, since the access log records
/// which policies decided and Cedar's generated ids (`policy0`, …) change with file order.
fn with_annotated_id(policy: &Policy) -> anyhow::Result<Policy> {
    let id = policy
        .annotation("id")
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| anyhow!("a policy has no @id(\"…\") annotation: {policy}"))?;
    Ok(policy.new_id(PolicyId::new(id)))
}

/// The Division entities a request needs: each code named by the principal or resource
/// and its chain up to `000000`, each a member of the next.
#[derive(Default)]
struct DivisionChains(BTreeMap<String, Option<String>>);

impl DivisionChains {
    fn add(&mut self, code: &str) -> anyhow::Result<()> {
        // ancestors() slices by position, so only well-formed codes may reach it.
        if !division::is_valid(code) {
            bail!("malformed division code {code:?}");
        }
        let mut chain = vec![code.to_string()];
        chain.extend(division::ancestors(code));
        debug_assert_eq!(chain.last().map(String::as_str), Some(NATIONAL));
        for (i, c) in chain.iter().enumerate() {
            self.0
                .entry(c.clone())
                .or_insert_with(|| chain.get(i + 1).cloned());
        }
        Ok(())
    }

    fn entities<'a>(&'a self, ty: &'a EntityTypeName) -> impl Iterator<Item = Entity> + 'a {
        self.0.iter().map(move |(code, parent)| {
            Entity::new_no_attrs(
                Types::uid(ty, code),
                parent.iter().map(|p| Types::uid(ty, p)).collect(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::agency::Agency;
    use std::path::PathBuf;

    fn principal(agency: Agency, division: &str) -> Principal {
        let system = format!("{}-sys", agency.as_str());
        Principal {
            uri: format!("urn:cadrex:system:{agency}:{division}:{system}"),
            agency,
            division: division.to_string(),
            system,
            fingerprint: "00".repeat(32),
            serial: "01".into(),
            not_after: i64::MAX,
        }
    }

    fn cadre(division: &str) -> Resource {
        Resource::Cadre {
            id: "c-1".into(),
            division: division.into(),
        }
    }

    fn shipped() -> Authorizer {
        Authorizer::load(None).expect("shipped policies load")
    }

    fn policy_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    }

    #[test]
    fn authorizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Authorizer>();
    }

    #[test]
    fn shipped_policies_validate_strictly_without_warnings() {
        let (schema, warnings) = Schema::from_cedarschema_str(shipped_schema()).unwrap();
        assert_eq!(warnings.count(), 0);
        let mut set = PolicySet::new();
        for (name, text) in shipped_policies() {
            for p in PolicySet::from_str(text)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                .policies()
            {
                set.add(with_annotated_id(p).unwrap()).unwrap();
            }
        }
        let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
        let problems: Vec<String> = result
            .validation_errors()
            .map(|e| e.to_string())
            .chain(result.validation_warnings().map(|w| w.to_string()))
            .collect();
        assert!(result.validation_passed_without_warnings(), "{problems:?}");
    }

    #[test]
    fn embedded_policies_match_the_directory() {
        let mut on_disk: Vec<String> = std::fs::read_dir(policy_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cedar"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = shipped_policies().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, embedded,
            "add new policy files to SHIPPED_POLICIES"
        );
        for (name, text) in shipped_policies() {
            assert_eq!(
                std::fs::read_to_string(policy_dir().join(name)).unwrap(),
                *text
            );
        }

        let from_dir = Authorizer::load(Some(&policy_dir())).expect("policy directory loads");
        assert_eq!(from_dir.policy_ids(), shipped().policy_ids());
        assert_eq!(
            shipped().policy_ids(),
            [
                "access-log-own-calls",
                "audit-full",
                "audit-sanction-summary",
                "audit-submits",
                "cadre-full-view",
                "cadre-masked-view",
                "cadre-outside-jurisdiction",
                "cadre-read-in-jurisdiction",
                "change-feed-readers",
                "discipline-evaluation-summary",
                "discipline-full",
                "discipline-oversees-access-log",
                "discipline-submits",
                "dossier-readers",
                "exchange-introspection",
                "informant-filed-within-jurisdiction",
                "informant-protection",
                "informant-readers",
                "named-request-must-be-visible",
                "opinion-readers-discipline",
                "opinion-readers-requester",
                "opinion-repliers",
                "opinion-requesters",
                "org-writes-cadres",
                "organization-full",
                "organization-submits",
                "organization-summary",
                "own-transfer-clue-summary",
                "owner-retracts",
                "petition-full",
                "petition-submits",
                "record-outside-jurisdiction",
                "record-read-methods",
                "submit-only-over-own-records",
                "vetting-needs-an-open-request",
            ]
        );
    }

    /// Copies the shipped policy directory so a test can add or break a file.
    fn scratch_policies() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SCHEMA_FILE), shipped_schema()).unwrap();
        for (name, text) in shipped_policies() {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn invalid_or_unnamed_policies_are_refused() {
        let dir = scratch_policies();
        std::fs::write(
            dir.path().join("zz.cedar"),
            "@id(\"typo\") permit (principal, action, resource) when { principal.agnecy == \"audit\" };",
        )
        .unwrap();
        let err = Authorizer::load(Some(dir.path())).unwrap_err();
        assert!(format!("{err:#}").contains("validate"), "{err:#}");

        std::fs::write(
            dir.path().join("zz.cedar"),
            "permit (principal, action, resource);",
        )
        .unwrap();
        let err = Authorizer::load(Some(dir.path())).unwrap_err();
        assert!(format!("{err:#}").contains("@id"), "{err:#}");

        std::fs::write(
            dir.path().join("zz.cedar"),
            "@id(\"org-writes-cadres\") permit (principal, action, resource);",
        )
        .unwrap();
        let err = Authorizer::load(Some(dir.path())).unwrap_err();
        assert!(format!("{err:#}").contains("org-writes-cadres"), "{err:#}");

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join(SCHEMA_FILE), shipped_schema()).unwrap();
        assert!(
            Authorizer::load(Some(empty.path())).is_err(),
            "an empty policy set loaded"
        );
    }

    #[test]
    fn forbid_wins_over_a_broad_permit() {
        let dir = scratch_policies();
        std::fs::write(
            dir.path().join("zz.cedar"),
            "@id(\"allow-everything\") permit (principal, action, resource);",
        )
        .unwrap();
        let authz = Authorizer::load(Some(dir.path())).unwrap();
        let d = authz.authorize(
            &principal(Agency::Audit, "360821"),
            Action::UpdateCadre,
            &cadre("360802"),
        );
        assert!(!d.allowed);
        assert_eq!(d.policy_ids, ["cadre-outside-jurisdiction"]);
        let d = authz.authorize(
            &principal(Agency::Audit, "360821"),
            Action::UpdateCadre,
            &cadre("360821"),
        );
        assert!(d.allowed);
        assert_eq!(d.policy_ids, ["allow-everything"]);
    }

    #[test]
    fn decisions_are_cached_only_while_no_policy_names_a_resource() {
        let org = principal(Agency::Organization, "360821");
        let authz = shipped();
        assert!(authz.cache.is_some(), "shipped policies name no resource");
        let first = authz.authorize(&org, Action::UpdateCadre, &cadre("360821"));
        let again = authz.authorize(&org, Action::UpdateCadre, &cadre("360821"));
        assert!(first.allowed && again.allowed);
        assert_eq!(first.policy_ids, again.policy_ids);
        // Another division or another caller is another key.
        assert!(
            !authz
                .authorize(&org, Action::UpdateCadre, &cadre("360802"))
                .allowed
        );
        let audit = principal(Agency::Audit, "360821");
        assert!(
            !authz
                .authorize(&audit, Action::UpdateCadre, &cadre("360821"))
                .allowed
        );

        // A policy about one cadre makes decisions depend on the id: no cache,
        // and the two cadres of one division are decided differently.
        let dir = scratch_policies();
        std::fs::write(
            dir.path().join("zz.cedar"),
            "@id(\"freeze-one\") forbid (principal, action == Cadrex::Action::\"UpdateCadre\", resource == Cadrex::Cadre::\"c-frozen\");",
        )
        .unwrap();
        let authz = Authorizer::load(Some(dir.path())).unwrap();
        assert!(authz.cache.is_none());
        let frozen = Resource::Cadre {
            id: "c-frozen".into(),
            division: "360821".into(),
        };
        assert!(
            authz
                .authorize(&org, Action::UpdateCadre, &cadre("360821"))
                .allowed
        );
        let d = authz.authorize(&org, Action::UpdateCadre, &frozen);
        assert!(!d.allowed);
        assert_eq!(d.policy_ids, ["freeze-one"]);
    }

    const CADRE_ACTIONS: [Action; 7] = [
        Action::CreateCadre,
        Action::UpdateCadre,
        Action::GetCadre,
        Action::ListCadres,
        Action::LookupCadre,
        Action::ReadFull,
        Action::ReadSummary,
    ];

    /// What DESIGN §2 grants an agency on a cadre inside its jurisdiction.
    fn granted(agency: Agency, action: Action) -> bool {
        use Agency::*;
        match action {
            Action::CreateCadre | Action::UpdateCadre => agency == Organization,
            Action::GetCadre | Action::ListCadres | Action::LookupCadre => true,
            Action::ReadFull => matches!(agency, Discipline | Organization),
            Action::ReadSummary => matches!(agency, Audit | Petition),
            _ => unreachable!("not a cadre action"),
        }
    }

    /// Purpose of use and the named request are context, and the conditions
    /// on them policies (DESIGN §2): organization's vetting needs an open
    /// request of its own for the cadre; a named request must be one whose
    /// piece the caller sees; the opinions about a cadre that moved away stay
    /// readable to the requester and to a discipline body that replied.
    #[test]
    fn purpose_and_request_are_context() {
        let authz = shipped();
        let open = RequestFacts {
            own: true,
            names_cadre: true,
            visible: true,
            ..RequestFacts::default()
        };
        let dossier = |agency, purpose: &str, request: Option<RequestFacts>| {
            let facts = Facts {
                purpose: Some(purpose.into()),
                request,
            };
            authz
                .authorize_with(
                    &principal(agency, "360821"),
                    Action::ReadDossier,
                    &cadre("360821"),
                    &facts,
                )
                .allowed
        };
        let org = Agency::Organization;
        assert!(dossier(org, "APPOINTMENT_VETTING", Some(open)));
        assert!(!dossier(org, "APPOINTMENT_VETTING", None));
        for closed in [
            RequestFacts { own: false, ..open },
            RequestFacts {
                withdrawn: true,
                ..open
            },
            RequestFacts {
                reply_stale: true,
                ..open
            },
            RequestFacts {
                names_cadre: false,
                ..open
            },
        ] {
            assert!(
                !dossier(org, "APPOINTMENT_VETTING", Some(closed)),
                "{closed:?}"
            );
        }
        assert!(dossier(org, "ROUTINE_SUPERVISION", None));
        assert!(dossier(Agency::Discipline, "APPOINTMENT_VETTING", None));
        assert!(!dossier(
            Agency::Discipline,
            "CASE_HANDLING",
            Some(RequestFacts {
                visible: false,
                ..open
            })
        ));

        let opinions = |agency, at: &str, request: RequestFacts| {
            let facts = Facts {
                purpose: None,
                request: Some(request),
            };
            authz
                .authorize_with(
                    &principal(agency, "360821"),
                    Action::ReadOpinions,
                    &cadre(at),
                    &facts,
                )
                .allowed
        };
        let piece = RequestFacts {
            names_cadre: true,
            ..RequestFacts::default()
        };
        // Inside the jurisdiction: discipline every piece, organization its own.
        assert!(opinions(Agency::Discipline, "360821", piece));
        assert!(!opinions(org, "360821", piece));
        assert!(opinions(org, "360821", RequestFacts { own: true, ..piece }));
        // Moved away: the requester and a discipline body that replied keep theirs.
        assert!(opinions(org, "360802", RequestFacts { own: true, ..piece }));
        assert!(!opinions(Agency::Discipline, "360802", piece));
        assert!(opinions(
            Agency::Discipline,
            "360802",
            RequestFacts {
                replied_by_own: true,
                ..piece
            }
        ));
        assert!(!opinions(
            org,
            "360802",
            RequestFacts {
                replied_by_own: true,
                ..piece
            }
        ));
        for agency in [Agency::Audit, Agency::Petition] {
            assert!(!opinions(
                agency,
                "360821",
                RequestFacts {
                    own: true,
                    replied_by_own: true,
                    ..piece
                }
            ));
        }
    }

    #[test]
    fn cadre_matrix() {
        let authz = shipped();
        // (caller division, cadre division, inside jurisdiction)
        let placements = [
            ("360821", "360821", true),  // own county
            ("360821", "360802", false), // neighbouring county
            ("360802", "360821", false),
            ("360800", "360821", true), // prefecture over its county
            ("360000", "360821", true), // province over its county
            ("360000", "360000", true),
            ("360000", "110101", false), // another province
            ("360821", "360800", false), // a county does not cover its prefecture
            (NATIONAL, "360821", true),
            (NATIONAL, "110101", true),
        ];
        for agency in Agency::ALL {
            for (caller, target, inside) in placements {
                let p = principal(agency, caller);
                for action in CADRE_ACTIONS {
                    let expect = inside && granted(agency, action);
                    let d = authz.authorize(&p, action, &cadre(target));
                    assert_eq!(
                        d.allowed, expect,
                        "{agency} at {caller}, {action} on cadre at {target}: {d:?}"
                    );
                    if d.allowed {
                        let id = match action {
                            Action::CreateCadre | Action::UpdateCadre => "org-writes-cadres",
                            Action::ReadFull => "cadre-full-view",
                            Action::ReadSummary => "cadre-masked-view",
                            _ => "cadre-read-in-jurisdiction",
                        };
                        assert_eq!(d.policy_ids, [id]);
                    } else if !inside {
                        assert_eq!(d.policy_ids, ["cadre-outside-jurisdiction"]);
                    } else {
                        assert!(
                            d.policy_ids.is_empty(),
                            "default deny names no policy: {d:?}"
                        );
                    }
                }
            }
        }
    }

    fn petition_record(division: &str, owner: (&str, &str)) -> Resource {
        Resource::Record {
            id: "r-1".into(),
            division: division.into(),
            kind: "PETITION".into(),
            owner_agency: owner.0.into(),
            owner_division: owner.1.into(),
            transfer_agency: String::new(),
            transfer_division: String::new(),
        }
    }

    #[test]
    fn petition_reads_informants_filed_within_its_jurisdiction_only() {
        let authz = shipped();
        let informant = |agency, division: &str, owner: &str| {
            authz
                .authorize(
                    &principal(agency, division),
                    Action::ReadInformant,
                    &petition_record("360821", ("petition", owner)),
                )
                .allowed
        };
        assert!(informant(Agency::Petition, "360821", "360821"));
        assert!(!informant(Agency::Petition, "360821", "360000"));
        assert!(!informant(Agency::Petition, "360821", "360802"));
        assert!(informant(Agency::Petition, "360000", "360821"));
        assert!(informant(Agency::Petition, "360800", "360821"));
        assert!(informant(Agency::Discipline, "360821", "360000"));
        assert!(!informant(Agency::Organization, "360821", "360821"));
        // A petition without a stored owner is never opened for a petition system.
        assert!(
            !authz
                .authorize(
                    &principal(Agency::Petition, "360821"),
                    Action::ReadInformant,
                    &petition_record("360821", ("", "")),
                )
                .allowed
        );
    }

    #[test]
    fn view_levels() {
        let authz = shipped();
        let levels = [Action::ReadFull, Action::ReadSummary];
        for (agency, expect) in [
            (Agency::Discipline, Action::ReadFull),
            (Agency::Organization, Action::ReadFull),
            (Agency::Audit, Action::ReadSummary),
            (Agency::Petition, Action::ReadSummary),
        ] {
            let p = principal(agency, "360000");
            let (level, d) = authz
                .first_allowed(&p, &levels, &cadre("360821"))
                .expect("some view");
            assert_eq!(level, expect, "{agency}");
            assert!(d.allowed && !d.policy_ids.is_empty());
            assert!(
                authz.first_allowed(&p, &levels, &cadre("110101")).is_none(),
                "{agency}"
            );
        }
        assert!(
            authz
                .first_allowed(&principal(Agency::Audit, "360821"), &[], &cadre("360821"))
                .is_none()
        );
    }

    #[test]
    fn access_log_and_exchange() {
        let authz = shipped();
        for agency in Agency::ALL {
            for division in ["360821", NATIONAL] {
                let p = principal(agency, division);
                let discipline = agency == Agency::Discipline;
                for (action, resource, expect, id) in [
                    (
                        Action::WhoAmI,
                        Resource::Exchange,
                        true,
                        "exchange-introspection",
                    ),
                    (
                        Action::AllowedMethods,
                        Resource::Exchange,
                        true,
                        "exchange-introspection",
                    ),
                    (
                        Action::ListAccessEvents,
                        Resource::AccessLog,
                        true,
                        "access-log-own-calls",
                    ),
                    (
                        Action::GetCheckpoint,
                        Resource::AccessLog,
                        true,
                        "access-log-own-calls",
                    ),
                    (
                        Action::ReadAllAccessEvents,
                        Resource::AccessLog,
                        discipline,
                        "discipline-oversees-access-log",
                    ),
                    (
                        Action::VerifyAccessLog,
                        Resource::AccessLog,
                        discipline,
                        "discipline-oversees-access-log",
                    ),
                ] {
                    let d = authz.authorize(&p, action, &resource);
                    assert_eq!(d.allowed, expect, "{agency} at {division}: {action}");
                    if expect {
                        assert_eq!(d.policy_ids, [id]);
                    } else {
                        assert!(d.policy_ids.is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn malformed_requests_are_denied_not_panicked() {
        let authz = shipped();
        let org = principal(Agency::Organization, "360821");
        // An action paired with the wrong kind of resource fails request validation.
        assert!(
            !authz
                .authorize(&org, Action::ReadFull, &Resource::Exchange)
                .allowed
        );
        assert!(
            !authz
                .authorize(&org, Action::WhoAmI, &cadre("360821"))
                .allowed
        );
        assert!(
            !authz
                .authorize(&org, Action::GetCheckpoint, &Resource::Exchange)
                .allowed
        );
        for bad in ["", "36", "36082", "3608210", "36082x", "三六〇八二一"] {
            assert!(
                !authz.authorize(&org, Action::GetCadre, &cadre(bad)).allowed,
                "{bad:?}"
            );
            let mut p = org.clone();
            p.division = bad.into();
            assert!(
                !authz
                    .authorize(&p, Action::WhoAmI, &Resource::Exchange)
                    .allowed,
                "{bad:?}"
            );
        }
        // Ids that are not Cedar identifiers are fine as entity ids.
        let odd = Resource::Cadre {
            id: "-".into(),
            division: "360821".into(),
        };
        assert!(authz.authorize(&org, Action::ListCadres, &odd).allowed);
        let odd = Resource::Cadre {
            id: "\"\\ ::".into(),
            division: "360821".into(),
        };
        assert!(authz.authorize(&org, Action::GetCadre, &odd).allowed);
    }

    #[test]
    fn action_names_are_unique_and_in_order() {
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(a.index(), i);
        }
        let names: HashSet<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Action::ALL.len());
    }
}
