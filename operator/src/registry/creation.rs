//! Repositories the registry creates itself (a push with `--create-on-push`, including one by
//! another registry's replication, a pull through cache's first pull) become `Repository` objects with the settings of the repository
//! creation template that applies (`ecr::creation_templates`), so `kubectl` shows them and
//! the Repository controller runs their lifecycle like any other's.
//!
//! The namespace (account) of the object: the cache rule's for a pull through cache; on
//! push, the template's, else the pusher's if a ServiceAccount, else `--create-on-push-namespace`.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{ObjectMeta, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};

use super::access::RepositorySettings;
use super::auth::Principal;
use super::repositories::{claim_key, object_name, settings};
use crate::api::repository::{Repository, RepositorySpec};
use crate::api::repository_creation_template::{RctAppliedFor, RepositoryCreationTemplate};
use crate::ecr::creation_templates;

/// The annotation on a Repository created with a template: the template's prefix.
pub const CREATED_WITH_TEMPLATE: &str = "ecr.kubecs.io/repository-creation-template";

/// What a repository created for `scenario` is: its namespace and its object.
pub fn plan(
    templates: &[Arc<RepositoryCreationTemplate>],
    scenario: RctAppliedFor,
    repo: &str,
    namespace: impl FnOnce(Option<&RepositoryCreationTemplate>) -> String,
    mut annotations: BTreeMap<String, String>,
) -> Repository {
    let mut sorted: Vec<&Arc<RepositoryCreationTemplate>> = templates.iter().collect();
    sorted.sort_by_key(|t| claim_key(&***t));
    let spec = creation_templates::select(sorted.iter().map(|t| &t.spec), scenario, repo);
    let template = spec.and_then(|s| sorted.iter().find(|t| std::ptr::eq(&t.spec, s)));
    if let Some(t) = template {
        annotations.insert(CREATED_WITH_TEMPLATE.to_string(), t.spec.prefix.clone());
    }
    let spec: RepositorySpec = creation_templates::repository_spec(spec, repo);
    Repository {
        metadata: ObjectMeta {
            name: Some(object_name(repo)),
            namespace: Some(namespace(template.map(|t| &***t))),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// The namespace of a ServiceAccount principal.
fn service_account_namespace(p: &Principal) -> Option<&str> {
    p.username
        .strip_prefix("system:serviceaccount:")?
        .split_once(':')
        .map(|(ns, _)| ns)
}

/// Writes Repository objects for the registry, from a reflector of templates.
pub struct Creator {
    pub client: Client,
    pub templates: Store<RepositoryCreationTemplate>,
    /// Where a repository created on push lives when neither a template nor the pusher names
    /// a namespace.
    pub default_namespace: String,
}

impl Creator {
    /// Creates `object` (already there: fine, another request or replica won).
    async fn create(&self, object: &Repository) -> Result<(), String> {
        let ns = object.namespace().unwrap_or_default();
        match Api::<Repository>::namespaced(self.client.clone(), &ns)
            .create(&PostParams::default(), object)
            .await
        {
            Ok(_) => {
                tracing::info!(repository = ?object.spec.repository_name, namespace = %ns, "created the repository");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(format!("creating the Repository object: {e}")),
        }
    }

    /// Creates `repo` for a push by `principal`; the settings it has from its template.
    pub async fn create_on_push(
        &self,
        principal: &Principal,
        repo: &str,
    ) -> Result<RepositorySettings, String> {
        self.create_for_push(principal, repo, RctAppliedFor::CreateOnPush)
            .await
    }

    /// Creates `repo` for a push by `principal` with the template for `scenario`
    /// (CREATE_ON_PUSH, or REPLICATION when another registry's replication pushes).
    pub async fn create_for_push(
        &self,
        principal: &Principal,
        repo: &str,
        scenario: RctAppliedFor,
    ) -> Result<RepositorySettings, String> {
        let object = plan(
            &self.templates.state(),
            scenario,
            repo,
            |t| {
                t.and_then(|t| t.namespace())
                    .or_else(|| service_account_namespace(principal).map(str::to_string))
                    .unwrap_or_else(|| self.default_namespace.clone())
            },
            BTreeMap::new(),
        );
        self.create(&object).await?;
        Ok(settings(&object))
    }

    /// Creates `repo` for a pull through cache rule of `namespace`.
    pub async fn create_for_cache(
        &self,
        namespace: &str,
        repo: &str,
        annotations: BTreeMap<String, String>,
    ) -> Result<(), String> {
        let object = plan(
            &self.templates.state(),
            RctAppliedFor::PullThroughCache,
            repo,
            |_| namespace.to_string(),
            annotations,
        );
        self.create(&object).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::repository::ImageTagMutability;
    use crate::api::repository_creation_template::RepositoryCreationTemplateSpec;
    use crate::controllers::testing::World;
    use axum::http::Method;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::{reflector, watcher};

    fn template(
        ns: &str,
        name: &str,
        age_s: i64,
        spec: serde_json::Value,
    ) -> RepositoryCreationTemplate {
        let spec: RepositoryCreationTemplateSpec = serde_json::from_value(spec).unwrap();
        let mut t = RepositoryCreationTemplate::new(name, spec);
        t.metadata.namespace = Some(ns.into());
        let at = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - age_s).unwrap();
        t.metadata.creation_timestamp = Some(Time(at));
        t
    }

    fn creator(world: &World, templates: Vec<RepositoryCreationTemplate>) -> Creator {
        let (store, mut writer) = reflector::store();
        for t in templates {
            writer.apply_watcher_event(&watcher::Event::Apply(t));
        }
        Creator {
            client: world.ctx.client.clone(),
            templates: store,
            default_namespace: "kubecs-system".into(),
        }
    }

    /// The bodies of the Repository creations in `ns`.
    fn posts(world: &World, ns: &str) -> Vec<serde_json::Value> {
        let path = format!("/apis/ecr.kubecs.io/v1alpha1/namespaces/{ns}/repositories");
        world
            .api
            .all(&Method::POST, &path)
            .into_iter()
            .map(|c| c.body)
            .collect()
    }

    /// A creator with one template, `platform/t`.
    fn creator_with(world: &World, spec: serde_json::Value) -> Creator {
        creator(world, vec![template("platform", "t", 1, spec)])
    }

    fn sa(ns: &str) -> Principal {
        Principal {
            username: format!("system:serviceaccount:{ns}:ci"),
            groups: vec![],
        }
    }

    #[tokio::test]
    async fn a_push_creates_the_repository_with_the_longest_matching_templates_settings() {
        let world = World::plain();
        let c = creator(
            &world,
            vec![
                template(
                    "platform",
                    "root",
                    50,
                    serde_json::json!({"prefix": "ROOT",
                    "appliedFor": ["CREATE_ON_PUSH"]}),
                ),
                template(
                    "team-a",
                    "prod",
                    10,
                    serde_json::json!({"prefix": "prod",
                    "appliedFor": ["CREATE_ON_PUSH"], "imageTagMutability": "IMMUTABLE",
                    "resourceTags": [{"key": "env", "value": "prod"}]}),
                ),
                // A younger claim of the same prefix in another namespace has no effect.
                template(
                    "team-b",
                    "prod",
                    5,
                    serde_json::json!({"prefix": "prod",
                    "appliedFor": ["CREATE_ON_PUSH"]}),
                ),
            ],
        );
        let s = c.create_on_push(&sa("ci"), "prod/web").await.unwrap();
        assert_eq!(s.tag_mutability, ImageTagMutability::Immutable);
        let posted = posts(&world, "team-a");
        assert_eq!(posted.len(), 1, "{:?}", world.api.calls());
        let body = &posted[0];
        assert_eq!(body["metadata"]["name"], object_name("prod/web"));
        assert_eq!(body["spec"]["repositoryName"], "prod/web");
        assert_eq!(body["spec"]["imageTagMutability"], "IMMUTABLE");
        assert_eq!(body["spec"]["tags"][0]["key"], "env");
        assert_eq!(
            body["metadata"]["annotations"][CREATED_WITH_TEMPLATE],
            "prod"
        );
        // ROOT's namespace for a name under no other prefix.
        c.create_on_push(&sa("ci"), "dev/web").await.unwrap();
        assert_eq!(posts(&world, "platform").len(), 1);
    }

    #[tokio::test]
    async fn without_a_template_a_push_creates_a_default_repository_in_the_pushers_account() {
        let world = World::plain();
        let c = creator_with(
            &world,
            serde_json::json!({"prefix": "ROOT",
                "appliedFor": ["PULL_THROUGH_CACHE"]}),
        );
        let s = c.create_on_push(&sa("ci"), "web").await.unwrap();
        assert_eq!(s, RepositorySettings::default());
        let body = &posts(&world, "ci")[0];
        assert_eq!(body["spec"], serde_json::json!({"repositoryName": "web"}));
        let alice = Principal {
            username: "alice".into(),
            groups: vec![],
        };
        c.create_on_push(&alice, "other").await.unwrap();
        assert_eq!(posts(&world, "kubecs-system").len(), 1);
    }

    #[tokio::test]
    async fn a_cache_repository_takes_the_pull_through_cache_template_in_the_rules_namespace() {
        let world = World::plain();
        let c = creator_with(
            &world,
            serde_json::json!({"prefix": "docker-hub",
                "appliedFor": ["PULL_THROUGH_CACHE"], "lifecyclePolicy": {"rules": [{"rulePriority": 1,
                "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days",
                "countNumber": 30}, "action": {"type": "expire"}}]}}),
        );
        let annotations = BTreeMap::from([("a".to_string(), "b".to_string())]);
        c.create_for_cache("cache", "docker-hub/library/busybox", annotations)
            .await
            .unwrap();
        let body = &posts(&world, "cache")[0];
        assert_eq!(
            body["spec"]["lifecyclePolicy"]["rules"][0]["selection"]["countType"],
            "sinceImagePulled"
        );
        assert_eq!(body["metadata"]["annotations"]["a"], "b");
        assert_eq!(
            body["metadata"]["annotations"][CREATED_WITH_TEMPLATE],
            "docker-hub"
        );
    }
}
