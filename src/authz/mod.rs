//! The single authorization point: Cedar policies over the caller, the action and the resource's jurisdiction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context as _, anyhow, bail};
use cedar_policy::{
    Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::domain::division::{self, NATIONAL};
use crate::identity::Principal;

mod action;
mod resource;

pub use action::Action;
pub use resource::{Facts, RequestFacts, Resource};

/// Name of the schema file inside a policy directory.
pub const SCHEMA_FILE: &str = "cadrex.cedarschema";

const SHIPPED_SCHEMA: &str = include_str!("../../policies/cadrex.cedarschema");

/// Shipped policy files by name, sorted: every `policies/*.cedar`, listed by build.rs so
/// that a new file (a new agency's) needs no edit here.
const SHIPPED_POLICIES: &[(&str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/shipped_policies.rs"));

/// Schema text shipped in the binary.
pub fn shipped_schema() -> &'static str {
    SHIPPED_SCHEMA
}

/// Policy files shipped in the binary, as (file name, text), sorted by name.
pub fn shipped_policies() -> &'static [(&'static str, &'static str)] {
    SHIPPED_POLICIES
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
mod matrix;
#[cfg(test)]
mod tests;
