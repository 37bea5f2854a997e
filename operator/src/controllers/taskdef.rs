//! The TaskDefinition controller: every change of `spec` registers a new immutable revision,
//! stored as a ControllerRevision numbered 1, 2, 3... like ECS. Revisions are deregistered
//! (INACTIVE) by annotating their ControllerRevision `ecs.kubecs.io/status: INACTIVE`.

use crate::api::states::RevisionState;
use std::sync::Arc;
use std::time::Duration;

use super::events::{Event, EventType};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::conditions::{condition, merge};
use super::{Context, Error, Result};
use crate::api::common::condition as cond;
use crate::api::taskdef::TaskDefinitionRevision;
use crate::api::{TaskDefinition, TaskDefinitionSpec, TaskDefinitionStatus};
use crate::arn;

const CONTROLLER: &str = "taskdefinition";
/// ECS's limit of revisions per family.
pub const MAX_REVISIONS: i64 = 1_000_000;
/// How many revisions status lists (newest first); all stay as ControllerRevisions.
const MAX_LISTED_REVISIONS: usize = 50;
/// Label on each ControllerRevision: the uid of its TaskDefinition.
pub const OWNER_UID_LABEL: &str = "ecs.kubecs.io/task-definition-uid";
/// Annotation on each ControllerRevision: the family.
pub const FAMILY_ANNOTATION: &str = "ecs.kubecs.io/family";
/// Annotation on each ControllerRevision: the content hash of the normalised definition.
pub const HASH_ANNOTATION: &str = "ecs.kubecs.io/spec-hash";
/// Annotation a user sets to `INACTIVE` on a ControllerRevision to deregister it.
pub const STATUS_ANNOTATION: &str = "ecs.kubecs.io/status";
/// Set by the controller when it sees a revision deregistered.
pub const DEREGISTERED_AT_ANNOTATION: &str = "ecs.kubecs.io/deregistered-at";

/// The family of a TaskDefinition: `spec.family`, else `metadata.name`.
pub fn family_of(td: &TaskDefinition) -> String {
    family_name(td).to_string()
}

/// The family `td` registers, borrowed: lookups scan every TaskDefinition of the store, and
/// must not copy each name to compare it.
pub fn family_name(td: &TaskDefinition) -> &str {
    td.spec
        .family
        .as_deref()
        .unwrap_or_else(|| td.metadata.name.as_deref().unwrap_or_default())
}

/// The object that owns `family` in `ns`: the oldest that claims it (then by name). Later
/// claimants are refused and register nothing.
pub fn family_owner(
    taskdefs: &Store<TaskDefinition>,
    ns: &str,
    family: &str,
) -> Option<Arc<TaskDefinition>> {
    taskdefs
        .state()
        .into_iter()
        .filter(|o| o.metadata.namespace.as_deref() == Some(ns) && family_name(o) == family)
        .min_by_key(|o| {
            (
                o.metadata.creation_timestamp.clone().map(|t| t.0),
                o.metadata.name.clone(),
            )
        })
}

/// The normalised definition a revision stores: the spec with its family filled in.
pub fn normalise(td: &TaskDefinition) -> TaskDefinitionSpec {
    let mut spec = td.spec.clone();
    spec.family = Some(family_of(td));
    spec
}

/// A stable content hash of a normalised spec (serde keeps struct order; maps are BTreeMaps).
pub fn spec_hash(spec: &TaskDefinitionSpec) -> String {
    let bytes = serde_json::to_vec(spec).expect("a spec always serializes");
    let digest = Sha256::digest(&bytes);
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// What the controller knows of one stored revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRevision {
    pub revision: i64,
    pub hash: String,
    pub active: bool,
}

/// Whether to register a new revision: only when the normalised spec differs from the
/// latest one. Returns the number to register, or an error past ECS's limit.
pub fn next_revision(stored: &[StoredRevision], hash: &str) -> Result<Option<i64>, String> {
    let latest = stored.iter().max_by_key(|r| r.revision);
    match latest {
        Some(l) if l.hash == hash => Ok(None),
        Some(l) if l.revision >= MAX_REVISIONS => Err(format!(
            "Too many revisions: a task definition family may have at most {MAX_REVISIONS} revisions."
        )),
        Some(l) => Ok(Some(l.revision + 1)),
        None => Ok(Some(1)),
    }
}

/// Sets annotation `key` of a revision with an update (PUT) of the object as read, never a
/// patch: the API server re-encodes a patched object with Go's JSON encoder, which escapes
/// `&`, `<` and `>` in strings, and then finds the immutable `data` changed ("field is
/// immutable") whenever the definition holds one of them (`sh -c "a && b"`). A PUT carries
/// `data` as it was stored.
pub async fn annotate_revision(
    api: &Api<ControllerRevision>,
    mut cr: ControllerRevision,
    key: &str,
    value: &str,
) -> Result<ControllerRevision, kube::Error> {
    cr.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(key.to_string(), value.to_string());
    api.replace(&cr.name_any(), &PostParams::default(), &cr)
        .await
}

/// `v` with every object's keys in sorted order. A ControllerRevision's `data` is immutable,
/// and the API server compares it byte for byte after applying a merge patch, which re-encodes
/// the object with sorted keys: data stored in another order would make every later patch
/// of the revision (a deregistration) fail with "field is immutable".
pub fn canonical_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical_json(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical_json).collect()),
        v => v,
    }
}

/// The ControllerRevision name of revision `n` of the TaskDefinition `name`.
pub fn revision_name(name: &str, n: i64) -> String {
    format!("{name}-{n}")
}

/// Runs on the shared TaskDefinition and ControllerRevision reflectors (one watch per kind).
pub async fn run(
    ctx: Arc<Context>,
    taskdefs: Store<TaskDefinition>,
    events: impl futures::Stream<Item = Arc<TaskDefinition>> + Send + 'static,
    revision_events: impl futures::Stream<Item = Arc<ControllerRevision>> + Send + 'static,
) {
    Controller::for_shared_stream(events, taskdefs)
        .owns_shared_stream(revision_events)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) | Ok(_) => {}
                Err(e) => warn!(error = %e, "taskdefinition reconcile failed"),
            }
        })
        .await;
}

fn error_policy(_td: Arc<TaskDefinition>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(CONTROLLER, err.kind());
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(td: Arc<TaskDefinition>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconciled(CONTROLLER);
    let ns = td.namespace().unwrap_or_default();
    let name = td.name_any();
    let uid = td.uid().unwrap_or_default();
    let family = family_of(&td);
    let generation = td.metadata.generation;
    let crs: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    // Its revisions as the store holds them. One the store has not seen yet makes the next
    // create conflict (409), which lists them from the API server below.
    let listed: Vec<ControllerRevision> = ctx
        .stores
        .revisions
        .state()
        .iter()
        .filter(|cr| {
            cr.namespace().as_deref() == Some(ns.as_str())
                && cr.labels().get(OWNER_UID_LABEL) == Some(&uid)
        })
        .map(|cr| cr.as_ref().clone())
        .collect();

    // One family, one object: a second object claiming a registered family is refused.
    let owner_of_family = family_owner(&ctx.stores.taskdefs, &ns, &family);
    if let Some(owner) = owner_of_family.filter(|o| o.uid() != td.uid()) {
        let msg = format!(
            "Family '{family}' is already registered by TaskDefinition '{}'.",
            owner.name_any()
        );
        write_status(
            &td,
            &ctx,
            &listed,
            generation,
            Some(("FamilyConflict", msg.clone())),
            &[],
        )
        .await?;
        return Ok(Action::await_change());
    }

    if let Err(errors) = crate::taskdef::validate(&td.spec) {
        let msg = errors.0.join(" ");
        publish(&ctx, &td, EventType::Warning, "InvalidTaskDefinition", &msg).await;
        write_status(
            &td,
            &ctx,
            &listed,
            generation,
            Some(("InvalidTaskDefinition", msg)),
            &[],
        )
        .await?;
        return Ok(Action::await_change());
    }

    let spec = normalise(&td);
    let hash = spec_hash(&spec);
    let stored: Vec<StoredRevision> = listed.iter().map(stored_revision).collect();
    let mut listed = listed;
    match next_revision(&stored, &hash) {
        Err(msg) => {
            write_status(
                &td,
                &ctx,
                &listed,
                generation,
                Some(("RevisionLimit", msg)),
                &[],
            )
            .await?;
            return Ok(Action::await_change());
        }
        Ok(Some(n)) => {
            let cr = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(revision_name(&name, n)),
                    namespace: Some(ns.clone()),
                    labels: Some([(OWNER_UID_LABEL.to_string(), uid.clone())].into()),
                    annotations: Some(
                        [
                            (FAMILY_ANNOTATION.to_string(), family.clone()),
                            (HASH_ANNOTATION.to_string(), hash.clone()),
                        ]
                        .into(),
                    ),
                    owner_references: Some(vec![
                        td.controller_owner_ref(&())
                            .expect("a stored object has a uid"),
                    ]),
                    ..Default::default()
                },
                revision: Some(n),
                data: RawExtension(canonical_json(
                    serde_json::to_value(&spec).expect("serializable"),
                )),
            };
            match crs.create(&PostParams::default(), &cr).await {
                Ok(created) => {
                    info!(%family, revision = n, "registered task definition revision");
                    publish(
                        &ctx,
                        &td,
                        EventType::Normal,
                        "Registered",
                        &format!("Registered task definition {family}:{n}."),
                    )
                    .await;
                    listed.push(created);
                }
                // A crash after the create and before status: the revision is there already.
                // Or the name is still taken by a revision of a deleted TaskDefinition of the
                // same name that the garbage collector has not removed yet: retry.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    listed = crs
                        .list(&ListParams::default().labels(&format!("{OWNER_UID_LABEL}={uid}")))
                        .await?
                        .items;
                    if !listed.iter().any(|cr| cr.revision == Some(n)) {
                        return Err(kube::Error::Api(s).into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None) => {}
    }
    // Stamp deregistration times the first time a revision is seen INACTIVE.
    for cr in listed.iter_mut() {
        let ann = cr.annotations();
        if ann.get(STATUS_ANNOTATION).map(String::as_str) == Some("INACTIVE")
            && !ann.contains_key(DEREGISTERED_AT_ANNOTATION)
        {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            // Read afresh: the store drops `data`, and the update must carry it as stored.
            let stored = crs.get(&cr.name_any()).await?;
            *cr = annotate_revision(&crs, stored, DEREGISTERED_AT_ANNOTATION, &now).await?;
            publish(
                &ctx,
                &td,
                EventType::Normal,
                "Deregistered",
                &format!(
                    "Deregistered task definition {family}:{}.",
                    cr.revision.unwrap_or_default()
                ),
            )
            .await;
        }
    }
    let unsupported: Vec<String> = crate::taskdef::unsupported_fields(&td.spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    write_status(&td, &ctx, &listed, generation, None, &unsupported).await?;
    Ok(Action::requeue(Duration::from_secs(600)))
}

/// A revision's ECS status: ACTIVE unless its ControllerRevision says INACTIVE
/// (deregistered) or DELETE_IN_PROGRESS (deleted once inactive; the object stays so the
/// number is never reused).
pub fn revision_state(cr: &ControllerRevision) -> RevisionState {
    match cr.annotations().get(STATUS_ANNOTATION).map(String::as_str) {
        Some("INACTIVE") => RevisionState::Inactive,
        Some("DELETE_IN_PROGRESS") => RevisionState::DeleteInProgress,
        _ => RevisionState::Active,
    }
}

pub fn stored_revision(cr: &ControllerRevision) -> StoredRevision {
    StoredRevision {
        revision: cr.revision.unwrap_or_default(),
        hash: cr
            .annotations()
            .get(HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        active: revision_state(cr) == RevisionState::Active,
    }
}

async fn publish(ctx: &Context, td: &TaskDefinition, type_: EventType, reason: &str, note: &str) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Register".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &td.object_ref(&())).await {
        warn!(error = %e, "could not publish event");
    }
}

async fn write_status(
    td: &TaskDefinition,
    ctx: &Context,
    listed: &[ControllerRevision],
    generation: Option<i64>,
    problem: Option<(&str, String)>,
    unsupported: &[String],
) -> Result<()> {
    let ns = td.namespace().unwrap_or_default();
    let family = family_of(td);
    let mut sorted: Vec<&ControllerRevision> = listed.iter().collect();
    sorted.sort_by_key(|cr| std::cmp::Reverse(cr.revision.unwrap_or_default()));
    let latest = sorted.first().map(|cr| cr.revision.unwrap_or_default());
    let revisions: Vec<TaskDefinitionRevision> = sorted
        .iter()
        .take(MAX_LISTED_REVISIONS)
        .map(|cr| TaskDefinitionRevision {
            revision: cr.revision.unwrap_or_default(),
            status: revision_state(cr),
            controller_revision: Some(cr.name_any()),
            registered_at: cr
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string()),
            deregistered_at: cr.annotations().get(DEREGISTERED_AT_ANNOTATION).cloned(),
        })
        .collect();
    let old = td.status.clone().unwrap_or_default();
    let mut conds = vec![match &problem {
        Some((reason, msg)) => condition(cond::READY, false, reason, msg.clone(), generation),
        None => condition(
            cond::READY,
            true,
            "Registered",
            format!("Revision {} is the latest.", latest.unwrap_or_default()),
            generation,
        ),
    }];
    conds.push(if unsupported.is_empty() {
        condition(
            "UnsupportedFields",
            false,
            "AllFieldsSupported",
            "",
            generation,
        )
    } else {
        condition(
            "UnsupportedFields",
            true,
            "FieldsNotHonoured",
            format!(
                "Accepted but not honoured on Kubernetes: {}.",
                unsupported.join(", ")
            ),
            generation,
        )
    });
    let status = TaskDefinitionStatus {
        family: Some(family.clone()),
        latest_revision: latest,
        task_definition_arn: latest.map(|n| arn::task_definition(&ns, &family, n)),
        revisions,
        requires_attributes: crate::taskdef::requires_attributes(&td.spec),
        compatibilities: crate::taskdef::compatibilities(&td.spec),
        unsupported_fields: unsupported.to_vec(),
        observed_generation: generation,
        conditions: merge(&old.conditions, conds),
    };
    ctx.write_status(td, td.status.as_ref(), &status).await?;
    Ok(())
}

/// `family`, `family:N` or a task definition ARN, resolved against a family's revisions:
/// `family` is the latest ACTIVE revision; `family:N` any revision (INACTIVE ones only for
/// services that already run them, which the caller decides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskDefinitionRef {
    pub family: String,
    pub revision: Option<i64>,
}

impl TaskDefinitionRef {
    pub fn parse(reference: &str) -> Result<Self, String> {
        let tail = reference
            .rsplit_once(":task-definition/")
            .map(|(_, t)| t)
            .unwrap_or(reference);
        let (family, revision) = match tail.rsplit_once(':') {
            Some((f, n)) => (
                f,
                Some(
                    n.parse::<i64>()
                        .map_err(|_| format!("Invalid revision number. Number: {n}"))?,
                ),
            ),
            None => (tail, None),
        };
        if family.is_empty()
            || family.len() > 255
            || !family
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!("Invalid family name: '{family}'."));
        }
        Ok(Self {
            family: family.to_string(),
            revision,
        })
    }

    /// Picks the revision among (revision, active) pairs.
    pub fn pick(&self, stored: &[StoredRevision]) -> Option<i64> {
        match self.revision {
            Some(n) => stored.iter().find(|r| r.revision == n).map(|r| r.revision),
            None => stored.iter().filter(|r| r.active).map(|r| r.revision).max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn revision_data_is_stored_with_sorted_keys() {
        let v = canonical_json(serde_json::json!({"b": 1, "a": {"d": [{"z": 0, "y": 1}], "c": 2}}));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"a":{"c":2,"d":[{"y":1,"z":0}]},"b":1}"#
        );
    }

    fn rev(n: i64, hash: &str, active: bool) -> StoredRevision {
        StoredRevision {
            revision: n,
            hash: hash.into(),
            active,
        }
    }

    #[test]
    fn registers_only_on_change() {
        assert_eq!(next_revision(&[], "a"), Ok(Some(1)));
        assert_eq!(next_revision(&[rev(1, "a", true)], "a"), Ok(None));
        assert_eq!(
            next_revision(&[rev(1, "a", true), rev(2, "b", true)], "a"),
            Ok(Some(3))
        );
        assert!(next_revision(&[rev(MAX_REVISIONS, "a", true)], "b").is_err());
    }

    #[test]
    fn references_resolve_like_ecs() {
        let stored = [rev(1, "a", true), rev(2, "b", true), rev(3, "c", false)];
        assert_eq!(
            TaskDefinitionRef::parse("web").unwrap().pick(&stored),
            Some(2)
        );
        assert_eq!(
            TaskDefinitionRef::parse("web:3").unwrap().pick(&stored),
            Some(3)
        );
        assert_eq!(
            TaskDefinitionRef::parse("web:9").unwrap().pick(&stored),
            None
        );
        let arn =
            TaskDefinitionRef::parse("arn:aws:ecs:us-east-1:123456789012:task-definition/web:1")
                .unwrap();
        assert_eq!((arn.family.as_str(), arn.revision), ("web", Some(1)));
        assert!(TaskDefinitionRef::parse("web:x").is_err());
        assert!(TaskDefinitionRef::parse("bad name").is_err());
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let spec: TaskDefinitionSpec = serde_json::from_value(json!({
            "family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128}]
        }))
        .unwrap();
        let mut other = spec.clone();
        other.container_definitions[0].image = Some("nginx:2".into());
        assert_eq!(spec_hash(&spec), spec_hash(&spec.clone()));
        assert_ne!(spec_hash(&spec), spec_hash(&other));
    }
}
