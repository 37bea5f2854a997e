//! The Repository controller, run by the registry process because it owns the store: writes
//! Repository status (URI, ARN, image count, size, last push, lifecycle preview, Ready and
//! Degraded), applies lifecycle policies, and holds deletion of a repository that still has
//! images unless `spec.force` (ECR's RepositoryNotEmptyException), with the finalizer
//! [`FINALIZER`].
//!
//! Status is refreshed on Repository changes, after pushes and deletes (the registry's change
//! channel) and every [`REFRESH`]. Decisions (what the status says, which images are "images"
//! for ECR) are pure functions below; the reconciler only gathers and writes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::events::{Event, EventType, Recorder};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::api::repository::{Repository, RepositoryStatus};
use crate::ecr::lifecycle::{self, Expiration, ImageRecord};
use crate::registry::digest::Digest;
use crate::registry::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX, parse_manifest};
use crate::registry::repositories::{repository_arn, repository_name, shadowed_by};
use crate::registry::storage::{ImageInfo, Storage, StorageError};

use super::conditions::{condition, merge};

/// Held on every Repository whose name the registry serves, so images are never orphaned.
pub const FINALIZER: &str = "ecr.kubecs.io/images";
/// The registry's field manager for Repository status.
pub const FIELD_MANAGER: &str = "kubecs-registry";
/// Periodic status refresh (ages in the lifecycle preview move on their own).
pub const REFRESH: Duration = Duration::from_secs(300);
/// ECR's exception name, used as the condition reason.
pub const NOT_EMPTY: &str = "RepositoryNotEmptyException";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    NotEmpty(String),
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

/// What the controller needs.
pub struct Ctx {
    pub client: Client,
    pub store: Store<Repository>,
    pub storage: Arc<dyn Storage>,
    pub registry_id: String,
    /// `host[:port]` in `repositoryUri`.
    pub public_host: String,
    pub recorder: Recorder,
}

impl Ctx {
    pub fn new(
        client: Client,
        store: Store<Repository>,
        storage: Arc<dyn Storage>,
        registry_id: String,
        public_host: String,
    ) -> Ctx {
        let recorder = Recorder::new(client.clone(), FIELD_MANAGER);
        Ctx {
            client,
            store,
            storage,
            registry_id,
            public_host,
            recorder,
        }
    }
}

// --- pure decisions ---------------------------------------------------------------------------

/// ECR's message for deleting a repository that holds images without force.
pub fn not_empty_message(name: &str, registry_id: &str) -> String {
    format!(
        "The repository with name '{name}' in registry with id '{registry_id}' cannot be deleted \
         because it still contains images"
    )
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// The images as ECR lists them: manifests that are not platform manifests of an index
/// (`children`), which belong to their index.
pub fn top_level<'a>(images: &'a [ImageInfo], children: &BTreeSet<Digest>) -> Vec<&'a ImageInfo> {
    images
        .iter()
        .filter(|i| !children.contains(&i.digest))
        .collect()
}

/// Unix milliseconds, the lifecycle's clock.
fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Lifecycle input: one record per top-level image.
pub fn lifecycle_records(images: &[&ImageInfo]) -> Vec<ImageRecord> {
    images
        .iter()
        .map(|i| ImageRecord {
            digest: i.digest.to_string(),
            tags: i.tags.clone(),
            pushed_at: unix_ms(i.pushed_at),
            last_pulled_at: i.last_pulled_at.map(unix_ms),
            size_bytes: i.manifest_size + i.content_size,
        })
        .collect()
}

/// What the lifecycle policy of `r` expires now among `images` (top-level).
pub fn expirations(r: &Repository, images: &[&ImageInfo], now: SystemTime) -> Vec<Expiration> {
    match &r.spec.lifecycle_policy {
        Some(p) => lifecycle::evaluate(p, &lifecycle_records(images), unix_ms(now)),
        None => Vec::new(),
    }
}

/// The facts about one repository's content.
#[derive(Default)]
pub struct Content {
    pub images: Vec<ImageInfo>,
    /// Manifests listed by an index of the repository.
    pub children: BTreeSet<Digest>,
    /// The images' replication records.
    pub replication: Vec<crate::ecr::replication::ImageReplication>,
}

/// The status of `r`. `shadowed_by`: the object that owns the name instead (then `r` has no
/// effect and is Degraded). `deleting_blocked`: deletion waits for force.
pub fn status_for(
    r: &Repository,
    content: &Content,
    shadowed: Option<&str>,
    registry_id: &str,
    public_host: &str,
    now: SystemTime,
) -> RepositoryStatus {
    let name = repository_name(r);
    let ns = r.namespace().unwrap_or_default();
    let gen_ = r.metadata.generation;
    let images = top_level(&content.images, &content.children);
    // Sizes: each image manifest with its config and layers (shared layers counted per image,
    // as ECR's per-image sizes add up); an index adds its own bytes only.
    let size: u64 = content
        .images
        .iter()
        .map(|i| {
            i.manifest_size
                + if is_index(&i.media_type) {
                    0
                } else {
                    i.content_size
                }
        })
        .sum();
    let last = content.images.iter().map(|i| i.pushed_at).max();
    // One summary, not a time per image: a repository may hold thousands.
    let last_pull = content.images.iter().filter_map(|i| i.last_pulled_at).max();
    let mut conditions: Vec<Condition> = Vec::new();
    match shadowed {
        Some(owner) => {
            let msg = format!(
                "repository name '{name}' is already used by Repository {owner}; repository names are global across the cluster"
            );
            conditions.push(condition(
                "Ready",
                false,
                "DuplicateRepositoryName",
                &msg,
                gen_,
            ));
            conditions.push(condition(
                "Degraded",
                true,
                "DuplicateRepositoryName",
                msg,
                gen_,
            ));
        }
        None if r.metadata.deletion_timestamp.is_some()
            && !images.is_empty()
            && r.spec.force != Some(true) =>
        {
            conditions.push(condition(
                "Ready",
                false,
                NOT_EMPTY,
                not_empty_message(&name, registry_id),
                gen_,
            ));
            conditions.push(condition("Degraded", false, "AsExpected", "", gen_));
        }
        None => {
            conditions.push(condition(
                "Ready",
                true,
                "Serving",
                "the registry serves this repository",
                gen_,
            ));
            conditions.push(condition("Degraded", false, "AsExpected", "", gen_));
        }
    }
    let old = r
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[]);
    RepositoryStatus {
        repository_name: Some(name.clone()),
        repository_uri: Some(crate::ecr::repository_uri(public_host, &name)),
        repository_arn: Some(repository_arn(&ns, &name)),
        registry_id: Some(registry_id.to_string()),
        image_count: images.len() as i64,
        size_in_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        last_pushed_at: last
            .and_then(|t| Timestamp::try_from(t).ok())
            .map(|t| t.to_string()),
        last_pulled_at: last_pull
            .and_then(|t| Timestamp::try_from(t).ok())
            .map(|t| t.to_string()),
        lifecycle_policy_preview: lifecycle::preview(&expirations(r, &images, now)),
        replication: crate::ecr::replication::summarize(&content.replication),
        observed_generation: gen_,
        conditions: merge(old, conditions),
    }
}

// --- I/O ----------------------------------------------------------------------------------------

/// Lists the repository's manifests and the children of its indexes.
pub async fn gather(storage: &dyn Storage, name: &str) -> Result<Content, Error> {
    let images = storage.list_images(name).await?;
    let mut children = BTreeSet::new();
    for i in images.iter().filter(|i| is_index(&i.media_type)) {
        if let Some(m) = storage.get_manifest(name, &i.digest).await?
            && let Ok(parsed) = parse_manifest(&m.bytes, Some(&m.media_type))
        {
            children.extend(parsed.children);
        }
    }
    let replication = crate::registry::replication::records(storage, name)
        .await?
        .into_values()
        .collect();
    Ok(Content {
        images,
        children,
        replication,
    })
}

async fn write_status(ctx: &Ctx, r: &Repository, status: RepositoryStatus) -> Result<(), Error> {
    let api: Api<Repository> =
        Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": Repository::api_version(&()),
        "kind": Repository::kind(&()),
        "status": status,
    });
    api.patch_status(
        &r.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

async fn event(ctx: &Ctx, r: &Repository, type_: EventType, reason: &str, note: String) {
    let reference: ObjectReference = r.object_ref(&());
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        warn!(error = %e, "could not record a Repository event");
    }
}

async fn apply(r: &Repository, ctx: &Ctx) -> Result<Action, Error> {
    let repos = ctx.store.state();
    let shadowed = shadowed_by(&repos, r);
    let content = match shadowed {
        None => gather(&*ctx.storage, &repository_name(r)).await?,
        Some(_) => Content::default(),
    };
    let status = status_for(
        r,
        &content,
        shadowed.as_deref(),
        &ctx.registry_id,
        &ctx.public_host,
        SystemTime::now(),
    );
    write_status(ctx, r, status).await?;
    Ok(Action::requeue(REFRESH))
}

/// Deletion: a duplicate goes at once; the owner only when empty, or with force after its
/// images are deleted.
async fn cleanup(r: &Repository, ctx: &Ctx) -> Result<Action, Error> {
    let repos = ctx.store.state();
    if shadowed_by(&repos, r).is_some() {
        return Ok(Action::await_change());
    }
    let name = repository_name(r);
    let content = gather(&*ctx.storage, &name).await?;
    if content.images.is_empty() {
        return Ok(Action::await_change());
    }
    if r.spec.force == Some(true) {
        for i in &content.images {
            ctx.storage.delete_manifest(&name, &i.digest).await?;
        }
        info!(repository = %name, images = content.images.len(), "force-deleted the repository's images");
        return Ok(Action::await_change());
    }
    let status = status_for(
        r,
        &content,
        None,
        &ctx.registry_id,
        &ctx.public_host,
        SystemTime::now(),
    );
    write_status(ctx, r, status).await?;
    event(
        ctx,
        r,
        EventType::Warning,
        NOT_EMPTY,
        not_empty_message(&name, &ctx.registry_id),
    )
    .await;
    Err(Error::NotEmpty(not_empty_message(&name, &ctx.registry_id)))
}

async fn reconcile(r: Arc<Repository>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<Repository> =
        Api::namespaced(ctx.client.clone(), &r.namespace().unwrap_or_default());
    finalizer(&api, FINALIZER, r, |ev| async {
        match ev {
            Finalizer::Apply(r) => apply(&r, &ctx).await,
            Finalizer::Cleanup(r) => cleanup(&r, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_r: Arc<Repository>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    match err {
        Error::Finalizer(inner)
            if matches!(
                **inner,
                kube::runtime::finalizer::Error::CleanupFailed(Error::NotEmpty(_))
            ) =>
        {
            Action::requeue(Duration::from_secs(10))
        }
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

/// Applies every lifecycle policy once: expires the chosen images by deleting their manifests
/// (and tags); the GC frees their blobs after its grace period. Returns the repositories
/// changed.
pub async fn apply_lifecycle(ctx: &Ctx) -> Vec<String> {
    let repos = ctx.store.state();
    let mut changed = Vec::new();
    for r in repos.iter() {
        if r.spec.lifecycle_policy.is_none()
            || r.metadata.deletion_timestamp.is_some()
            || shadowed_by(&repos, r).is_some()
        {
            continue;
        }
        let name = repository_name(r);
        let content = match gather(&*ctx.storage, &name).await {
            Ok(c) => c,
            Err(e) => {
                warn!(repository = %name, error = %e, "lifecycle: cannot list images");
                continue;
            }
        };
        let images = top_level(&content.images, &content.children);
        let expired = expirations(r, &images, SystemTime::now());
        for x in &expired {
            let Ok(digest) = x.digest.parse::<Digest>() else {
                continue;
            };
            match ctx.storage.delete_manifest(&name, &digest).await {
                Ok(_) => {
                    let note = format!(
                        "expired image {} (tags: [{}]) by lifecycle rule {}",
                        x.digest,
                        x.tags.join(", "),
                        x.applied_rule_priority
                    );
                    info!(repository = %name, "{note}");
                    event(ctx, r, EventType::Normal, "ImageExpired", note).await;
                }
                Err(e) => {
                    warn!(repository = %name, digest = %x.digest, error = %e, "lifecycle: delete failed")
                }
            }
        }
        if !expired.is_empty() {
            changed.push(name);
        }
    }
    changed
}

/// Runs the controller: Repository events from the shared reflector, `changes` (repository
/// names from the registry after pushes and deletes, and from lifecycle runs) and the
/// periodic refresh; lifecycle policies every `lifecycle_interval` and at start.
/// The annotation a registry replica that is not the leader sets on a Repository after a push
/// or delete through it: the leader's watch sees the change and refreshes the status at once
/// (its own pushes reach it through the change channel).
pub const CHANGED_AT_ANNOTATION: &str = "ecr.kubecs.io/images-changed-at";

/// Runs the Repository controller and the lifecycle loop until the future is dropped (the
/// registry runs it while it holds the registry Lease, and drops it when it loses it). Every
/// Repository is reconciled at the start, then on changes, on `changes` (repository names
/// pushed to or deleted from) and every [`REFRESH`].
pub async fn run(
    ctx: Arc<Ctx>,
    events: impl futures::Stream<Item = Arc<Repository>> + Send + 'static,
    changes: tokio::sync::mpsc::UnboundedReceiver<String>,
    changes_tx: tokio::sync::mpsc::UnboundedSender<String>,
    lifecycle_interval: Duration,
) {
    let lifecycle_ctx = ctx.clone();
    let lifecycle = async move {
        let mut tick = tokio::time::interval(lifecycle_interval.max(Duration::from_secs(1)));
        loop {
            tick.tick().await;
            for name in apply_lifecycle(&lifecycle_ctx).await {
                let _ = changes_tx.send(name);
            }
        }
    };
    let store = ctx.store.clone();
    // A new term starts from what the store holds: the events stream carries changes only.
    let everything: Vec<ObjectRef<Repository>> = store
        .state()
        .iter()
        .map(|r| ObjectRef::from(r.as_ref()))
        .collect();
    let pushed = futures::stream::unfold(changes, |mut rx| async move {
        rx.recv().await.map(|name| (name, rx))
    })
    .filter_map(move |name| {
        let repos = store.state();
        let found = crate::registry::repositories::lookup(&repos, &name)
            .map(|r| ObjectRef::from(r.as_ref()));
        futures::future::ready(found)
    });
    let triggers = futures::stream::iter(everything).chain(pushed);
    let controller = Controller::for_shared_stream(events, ctx.store.clone())
        .reconcile_on(triggers)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Err(kube::runtime::controller::Error::ObjectNotFound(_)) | Ok(_) => {}
                Err(e) => warn!(error = %e, "repository reconcile failed"),
            }
        });
    tokio::select! {
        _ = controller => {}
        _ = lifecycle => {}
    }
}

/// Tells the leading replica that repository `name` changed here: an annotation on its
/// Repository object, which the leader watches. Best effort: the leader's periodic refresh
/// catches up if this fails.
pub async fn announce_change(client: &Client, store: &Store<Repository>, name: &str) {
    let repos = store.state();
    let Some(r) = crate::registry::repositories::lookup(&repos, name) else {
        return;
    };
    let api: Api<Repository> = Api::namespaced(client.clone(), &r.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {"annotations": {CHANGED_AT_ANNOTATION: Timestamp::now().to_string()}}
    });
    if let Err(e) = api
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        warn!(repository = %name, error = %e, "could not announce the change to the leading registry replica");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::repository::RepositorySpec;
    use crate::registry::digest::Digest;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    fn image(n: u8, tags: &[&str], secs: u64, media_type: &str) -> ImageInfo {
        ImageInfo {
            digest: digest(n),
            media_type: media_type.into(),
            artifact_type: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            manifest_size: 100,
            content_size: 1000,
            pushed_at: UNIX_EPOCH + Duration::from_secs(secs),
            last_pulled_at: None,
            subject: None,
        }
    }

    fn repo(spec: serde_json::Value) -> Repository {
        let mut r = Repository::new(
            "web",
            serde_json::from_value::<RepositorySpec>(spec).unwrap(),
        );
        r.metadata.namespace = Some("team".into());
        r.metadata.generation = Some(3);
        r
    }

    const IMG: &str = crate::registry::manifest::OCI_MANIFEST;

    #[test]
    fn status_counts_top_level_images_and_previews_the_lifecycle() {
        let r = repo(
            serde_json::json!({"lifecyclePolicy": {"rules": [{"rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2},
            "action": {"type": "expire"}}]}}),
        );
        let content = Content {
            replication: Vec::new(),
            images: vec![
                image(1, &["v1"], 10, IMG),
                image(2, &["v2"], 20, IMG),
                image(3, &["v3"], 30, IMG),
                image(4, &["multi"], 40, OCI_INDEX),
                // A platform manifest of the index: not an image of its own.
                image(5, &[], 40, IMG),
            ],
            children: [digest(5)].into(),
        };
        let s = status_for(
            &r,
            &content,
            None,
            "123456789012",
            "reg.example:5000",
            UNIX_EPOCH + Duration::from_secs(50),
        );
        assert_eq!(s.repository_uri.as_deref(), Some("reg.example:5000/web"));
        assert_eq!(
            s.repository_arn.as_deref(),
            Some("arn:aws:ecr:kubecs:team:repository/web")
        );
        assert_eq!(s.image_count, 4);
        assert_eq!(s.size_in_bytes, 4 * 1100 + 100);
        assert_eq!(s.last_pushed_at.as_deref(), Some("1970-01-01T00:00:40Z"));
        assert_eq!(s.last_pulled_at, None, "nothing pulled yet");
        let expired: Vec<_> = s
            .lifecycle_policy_preview
            .iter()
            .map(|p| p.image_tags.clone())
            .collect();
        // The two oldest of the four images, oldest first as ECR marks them.
        assert_eq!(
            expired,
            vec![vec!["v1".to_string()], vec!["v2".to_string()]]
        );
        assert_eq!(s.conditions[0].status, "True");
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn status_shows_the_latest_pull_and_since_image_pulled_keeps_pulled_images() {
        let r = repo(
            serde_json::json!({"lifecyclePolicy": {"rules": [{"rulePriority": 1,
            "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days",
                          "countNumber": 1},
            "action": {"type": "expire"}}]}}),
        );
        let day = 86_400;
        let mut used = image(1, &["used"], 0, IMG);
        used.last_pulled_at = Some(UNIX_EPOCH + Duration::from_secs(2 * day));
        let content = Content {
            replication: Vec::new(),
            images: vec![used, image(2, &["idle"], 0, IMG)],
            children: Default::default(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(5 * day / 2);
        let s = status_for(&r, &content, None, "0", "reg", now);
        assert_eq!(s.last_pulled_at.as_deref(), Some("1970-01-03T00:00:00Z"));
        let expired: Vec<_> = s
            .lifecycle_policy_preview
            .iter()
            .map(|p| p.image_tags.clone())
            .collect();
        assert_eq!(expired, vec![vec!["idle".to_string()]]);
    }

    #[test]
    fn deletion_without_force_is_held_with_ecr_words() {
        let mut r = repo(serde_json::json!({}));
        r.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        let content = Content {
            replication: Vec::new(),
            images: vec![image(1, &["v1"], 10, IMG)],
            children: BTreeSet::new(),
        };
        let s = status_for(&r, &content, None, "000000000000", "h", SystemTime::now());
        let ready = &s.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", NOT_EMPTY)
        );
        assert_eq!(
            ready.message,
            "The repository with name 'web' in registry with id '000000000000' cannot be deleted because it still contains images"
        );
        r.spec.force = Some(true);
        let s = status_for(&r, &content, None, "000000000000", "h", SystemTime::now());
        assert_eq!(s.conditions[0].status, "True");
    }

    #[test]
    fn duplicates_are_degraded() {
        let r = repo(serde_json::json!({}));
        let s = status_for(
            &r,
            &Content::default(),
            Some("other/web"),
            "0",
            "h",
            SystemTime::now(),
        );
        assert_eq!(s.conditions[1].type_, "Degraded");
        assert_eq!(s.conditions[1].status, "True");
        assert!(
            s.conditions[1].message.contains("other/web"),
            "{}",
            s.conditions[1].message
        );
    }
}
