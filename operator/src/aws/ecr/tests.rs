//! Pure conversions, then conversations: repository operations with the in-process API
//! server (`controllers::testing`), image operations with a real registry on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::images::{ImageId, image_detail, image_ids, manifest_media_type, resolve};
use super::policies::{parse_lifecycle_policy, parse_repository_policy, repository_policy_text};
use super::registry_client::{Reply, common_error};
use super::repositories::{merge_tags, object_name, repository_json};
use super::*;
use crate::api::common::Tag;
use crate::aws::keys::{generate, service_account};
use crate::aws::registry::RegistryLink;
use crate::controllers::testing::{Call, World, failure};
use crate::registry::images::ImageEntry;
use crate::registry::{self as oci, TokenSigner};

// --- pure -------------------------------------------------------------------------------------

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

/// The members of one of the model's structures (botocore's ECR model is not read at test
/// time; these lists are copied from it).
const REPOSITORY_MEMBERS: &[&str] = &[
    "createdAt",
    "encryptionConfiguration",
    "imageScanningConfiguration",
    "imageTagMutability",
    "imageTagMutabilityExclusionFilters",
    "registryId",
    "repositoryArn",
    "repositoryName",
    "repositoryUri",
];
const IMAGE_DETAIL_MEMBERS: &[&str] = &[
    "artifactMediaType",
    "imageDigest",
    "imageManifestMediaType",
    "imagePushedAt",
    "imageScanFindingsSummary",
    "imageScanStatus",
    "imageSizeInBytes",
    "imageStatus",
    "imageTags",
    "lastActivatedAt",
    "lastArchivedAt",
    "lastRecordedPullTime",
    "registryId",
    "repositoryName",
    "subjectManifestDigest",
];

fn repo(ns: &str, object: &str, spec: Value, status: Value) -> Repository {
    serde_json::from_value(json!({
        "apiVersion": "ecr.kubecs.io/v1alpha1", "kind": "Repository",
        "metadata": {"name": object, "namespace": ns, "uid": format!("{ns}-{object}"),
                     "creationTimestamp": "2026-12-01T00:00:01Z"},
        "spec": spec, "status": status,
    }))
    .unwrap()
}

#[test]
fn repositories_answer_the_models_members_only() {
    let r = repo(
        "team-a",
        "web",
        json!({"repositoryName": "team-a/web", "imageTagMutability": "IMMUTABLE"}),
        json!({"registryId": "123456789012", "repositoryUri": "reg:5000/team-a/web"}),
    );
    let v = compact(repository_json(&r, Some("other:1")));
    assert!(
        keys(&v).iter().all(|k| REPOSITORY_MEMBERS.contains(k)),
        "{v}"
    );
    assert_eq!(v["repositoryName"], "team-a/web");
    assert_eq!(
        v["repositoryArn"],
        "arn:aws:ecr:kubecs:team-a:repository/team-a/web"
    );
    assert_eq!(v["registryId"], "123456789012");
    assert_eq!(v["repositoryUri"], "reg:5000/team-a/web", "status wins");
    assert_eq!(v["createdAt"], 1_796_083_201.0);
    assert_eq!(v["imageTagMutability"], "IMMUTABLE");
    assert_eq!(
        v["imageScanningConfiguration"],
        json!({"scanOnPush": false})
    );
    assert_eq!(
        v["encryptionConfiguration"],
        json!({"encryptionType": "AES256"})
    );
    assert!(v.get("imageTagMutabilityExclusionFilters").is_none());
    // Before the registry writes status: the default id and the API's registry host.
    let fresh = repo("team-a", "web", json!({}), Value::Null);
    let v = compact(repository_json(&fresh, Some("reg:5000")));
    assert_eq!(v["registryId"], DEFAULT_REGISTRY_ID);
    assert_eq!(v["repositoryUri"], "reg:5000/web");
}

#[test]
fn object_names_are_dns_subdomains_and_never_collide() {
    assert_eq!(object_name("web"), "web");
    assert_eq!(object_name("web.app"), "web.app");
    let a = object_name("team/web");
    let b = object_name("team-web");
    let c = object_name("team_web");
    assert!(a.starts_with("team-web-"), "{a}");
    assert_ne!(a, b);
    assert_ne!(a, c);
    for n in [&a, &c, &object_name(&"a/".repeat(120))] {
        assert!(crate::taskdef::names::is_dns_subdomain(n), "{n}");
    }
}

#[test]
fn repository_arns_name_the_account() {
    let r = RepositoryRef::from_arn("arn:aws:ecr:kubecs:team-b:repository/x/web").unwrap();
    assert_eq!((r.namespace.as_str(), r.name.as_str()), ("team-b", "x/web"));
    assert_eq!(r.arn(), "arn:aws:ecr:kubecs:team-b:repository/x/web");
    for bad in [
        "web",
        "arn:aws:ecs:kubecs:a:cluster/x",
        "arn:aws:ecr:kubecs:a:image/x",
        "arn:aws:ecr:kubecs::repository/x",
    ] {
        assert_eq!(
            RepositoryRef::from_arn(bad).unwrap_err().code,
            "InvalidParameterException",
            "{bad}"
        );
    }
}

#[test]
fn nulls_are_left_out() {
    assert_eq!(
        compact(json!({"a": null, "b": [{"c": null, "d": 1}], "e": {"f": null}})),
        json!({"b": [{"d": 1}], "e": {}})
    );
}

#[test]
fn tags_are_ecrs_key_and_value_and_merge_by_key() {
    let t: EcrTag = serde_json::from_value(json!({"Key": "team", "Value": "a"})).unwrap();
    let tags = merge_tags(
        vec![Tag {
            key: "team".into(),
            value: Some("old".into()),
        }],
        vec![
            t.into(),
            Tag {
                key: "env".into(),
                value: Some("prod".into()),
            },
        ],
    );
    let back: Vec<EcrTag> = tags.iter().map(EcrTag::from).collect();
    assert_eq!(
        serde_json::to_value(back).unwrap(),
        json!([{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "prod"}])
    );
}

const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"description":"keep 5","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;

#[test]
fn policy_texts_round_trip_and_invalid_ones_are_refused_in_ecrs_words() {
    let p = parse_lifecycle_policy(LIFECYCLE).unwrap();
    assert_eq!(super::policies::lifecycle_policy_text(&p), LIFECYCLE);
    let e = parse_lifecycle_policy(r#"{"rules":[]}"#).unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    assert_eq!(
        e.message,
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: at least one rule is required.'"
    );
    // One statement without the list, as IAM allows.
    let p = parse_repository_policy(
        r#"{"Version":"2012-10-17","Statement":{"Sid":"pull","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}}"#,
    )
    .unwrap();
    assert_eq!(p.statement.len(), 1);
    let text = repository_policy_text(&p);
    assert_eq!(parse_repository_policy(&text).unwrap(), p);
    for bad in [
        "not json",
        r#"{"Statement":[]}"#,
        r#"{"Statement":[{"Effect":"Maybe","Action":"ecr:*"}]}"#,
    ] {
        let e = parse_repository_policy(bad).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert!(
            e.message.starts_with(crate::ecr::policy::INVALID_POLICY),
            "{}",
            e.message
        );
    }
}

fn entry(n: u8, tags: &[&str]) -> ImageEntry {
    ImageEntry {
        digest: format!("sha256:{}", format!("{n:02x}").repeat(32)),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        media_type: Some(oci::manifest::OCI_MANIFEST.into()),
        artifact_type: None,
        size_in_bytes: Some(1234),
        pushed_at: Some("2026-12-01T00:00:01.5Z".into()),
        last_recorded_pull_time: (n == 1).then(|| "2026-12-02T00:00:00Z".into()),
        subject: None,
        replication_statuses: Vec::new(),
    }
}

#[test]
fn image_entries_become_image_details_and_ids() {
    let images = vec![entry(1, &["latest", "v1"]), entry(2, &[])];
    let d = compact(image_detail(&images[0], "000000000000", "web"));
    assert!(
        keys(&d).iter().all(|k| IMAGE_DETAIL_MEMBERS.contains(k)),
        "{d}"
    );
    assert_eq!(d["imageTags"], json!(["latest", "v1"]));
    assert_eq!(d["imageSizeInBytes"], 1234);
    assert_eq!(d["imagePushedAt"], 1_796_083_201.5);
    assert_eq!(d["lastRecordedPullTime"], 1_796_169_600.0);
    assert_eq!(d["imageManifestMediaType"], oci::manifest::OCI_MANIFEST);
    let untagged = compact(image_detail(&images[1], "0", "web"));
    assert!(untagged.get("imageTags").is_none(), "{untagged}");
    assert!(
        untagged.get("lastRecordedPullTime").is_none(),
        "never pulled: {untagged}"
    );
    let all = image_ids(&images, None);
    assert_eq!(all.len(), 3, "one id per tag, one for the untagged image");
    assert_eq!(image_ids(&images, Some("TAGGED")).len(), 2);
    let untagged = image_ids(&images, Some("UNTAGGED"));
    assert_eq!(
        serde_json::to_value(&untagged).unwrap(),
        json!([{"imageDigest": images[1].digest}])
    );
}

#[test]
fn image_ids_resolve_with_ecrs_failure_codes() {
    let images = vec![entry(1, &["v1"]), entry(2, &["v2"])];
    let id = |d: Option<&str>, t: Option<&str>| ImageId {
        image_digest: d.map(str::to_string),
        image_tag: t.map(str::to_string),
    };
    assert_eq!(
        resolve(&images, &id(None, Some("v2"))).unwrap().digest,
        images[1].digest
    );
    assert_eq!(
        resolve(&images, &id(Some(&images[0].digest), Some("v1")))
            .unwrap()
            .digest,
        images[0].digest
    );
    let code = |i: ImageId| resolve(&images, &i).unwrap_err().0;
    assert_eq!(code(id(None, None)), "MissingDigestAndTag");
    assert_eq!(code(id(None, Some("v3"))), "ImageNotFound");
    assert_eq!(
        code(id(Some(&images[0].digest), Some("v2"))),
        "ImageTagDoesNotMatchDigest"
    );
}

#[test]
fn manifest_media_types_come_from_the_request_or_the_manifest() {
    let m = json!({"schemaVersion": 2, "mediaType": oci::manifest::DOCKER_MANIFEST}).to_string();
    assert_eq!(
        manifest_media_type(None, &m),
        oci::manifest::DOCKER_MANIFEST
    );
    assert_eq!(manifest_media_type(Some("x/y"), &m), "x/y");
    assert_eq!(manifest_media_type(None, "{}"), oci::manifest::OCI_MANIFEST);
}

fn reply(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers: Default::default(),
        body: json!({"errors": [{"code": code, "message": message}]})
            .to_string()
            .into(),
    }
}

#[test]
fn registry_refusals_map_to_ecr_exceptions() {
    let e = common_error(&reply(403, "DENIED", "User: x is not authorized")).unwrap();
    assert_eq!(
        (e.code, e.message.as_str()),
        ("AccessDeniedException", "User: x is not authorized")
    );
    let e = common_error(&reply(
        404,
        "NAME_UNKNOWN",
        "The repository with name 'r' does not exist in the registry with id '1'",
    ))
    .unwrap();
    assert_eq!(e.code, "RepositoryNotFoundException");
    assert!(e.message.contains("'r'"));
    assert_eq!(
        common_error(&reply(401, "UNAUTHORIZED", "")).unwrap().code,
        "ServerException"
    );
    assert!(common_error(&reply(404, "MANIFEST_UNKNOWN", "")).is_none());
}

#[test]
fn authorization_data_is_ecrs() {
    let link = RegistryLink {
        url: "http://127.0.0.1:5000".into(),
        public_host: "reg.example:5000".into(),
        signer: TokenSigner::new(vec![7; 32]).unwrap(),
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let d = super::token::authorization_data(&link, "tok", now);
    assert_eq!(
        d,
        json!({"authorizationToken": "QVdTOnRvaw==", "expiresAt": 1_043_200.0,
               "proxyEndpoint": "http://reg.example:5000"})
    );
    let tls = RegistryLink {
        url: "https://registry.kubecs-system.svc".into(),
        ..link
    };
    assert_eq!(
        super::token::proxy_endpoint(&tls),
        "https://reg.example:5000"
    );
}

// --- conversations ----------------------------------------------------------------------------

const REPOS_ALL: &str = "/apis/ecr.kubecs.io/v1alpha1/repositories";

fn repos_in(ns: &str) -> String {
    format!("/apis/ecr.kubecs.io/v1alpha1/namespaces/{ns}/repositories")
}

fn list(items: Vec<Value>) -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({"apiVersion": "ecr.kubecs.io/v1alpha1", "kind": "RepositoryList",
               "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

fn caller(world: &World, ns: &str, action: &str) -> Caller {
    let (p, account) = service_account(ns, "ci");
    Caller {
        key: generate(p, account),
        client: world.ctx.client.clone(),
        action: format!("ecr:{action}"),
    }
}

async fn ecr(
    c: &Caller,
    link: Option<&RegistryLink>,
    op: &str,
    input: Value,
) -> Result<Value, AwsError> {
    let mut c = c.clone();
    c.action = format!("ecr:{op}");
    call(&c, link, op, input.to_string().as_bytes()).await
}

async fn refused(c: &Caller, link: Option<&RegistryLink>, op: &str, input: Value) -> AwsError {
    ecr(c, link, op, input).await.unwrap_err()
}

fn object(v: &Value) -> Value {
    serde_json::to_value(repo(
        v["ns"].as_str().unwrap(),
        v["object"].as_str().unwrap(),
        v["spec"].clone(),
        v["status"].clone(),
    ))
    .unwrap()
}

#[tokio::test]
async fn create_repository_makes_an_object_and_refuses_a_name_held_anywhere() {
    let held = object(
        &json!({"ns": "team-b", "object": "web", "spec": {"repositoryName": "shared/web"},
                              "status": {"registryId": "123456789012"}}),
    );
    let world = World::new(Box::new(move |call: &Call| {
        (call.method == Method::GET && call.path == REPOS_ALL).then(|| list(vec![held.clone()]))
    }));
    let c = caller(&world, "team-a", "CreateRepository");
    let out = ecr(
        &c,
        None,
        "CreateRepository",
        json!({"repositoryName": "team-a/api", "imageTagMutability": "IMMUTABLE",
               "tags": [{"Key": "team", "Value": "a"}]}),
    )
    .await
    .unwrap();
    let r = &out["repository"];
    assert_eq!(r["repositoryName"], "team-a/api");
    assert_eq!(
        r["repositoryArn"],
        "arn:aws:ecr:kubecs:team-a:repository/team-a/api"
    );
    assert_eq!(r["imageTagMutability"], "IMMUTABLE");
    let posts = world.api.all(&Method::POST, &repos_in("team-a"));
    assert_eq!(posts.len(), 1);
    let body = &posts[0].body;
    assert_eq!(body["spec"]["repositoryName"], "team-a/api");
    assert_eq!(body["spec"]["tags"], json!([{"key": "team", "value": "a"}]));
    assert_eq!(body["metadata"]["name"], object_name("team-a/api"));

    let e = refused(
        &c,
        None,
        "CreateRepository",
        json!({"repositoryName": "shared/web"}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            "RepositoryAlreadyExistsException",
            "The repository with name 'shared/web' already exists in the registry with id '123456789012'"
        )
    );
    let e = refused(
        &c,
        None,
        "CreateRepository",
        json!({"repositoryName": "Bad"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
    assert_eq!(world.api.all(&Method::POST, &repos_in("team-a")).len(), 1);
}

#[tokio::test]
async fn rbac_refusals_are_access_denied_and_a_narrow_caller_still_creates() {
    let world = World::new(Box::new(|call: &Call| {
        match (&call.method, call.path.as_str()) {
            (&Method::GET, REPOS_ALL) => Some(failure(
                403,
                "Forbidden",
                "cannot list repositories at the cluster scope",
            )),
            (&Method::GET, p) if p == repos_in("team-a") => Some(list(vec![])),
            (&Method::GET, p) if p == repos_in("team-b") => {
                Some(failure(403, "Forbidden", "repositories is forbidden"))
            }
            _ => None,
        }
    }));
    let c = caller(&world, "team-a", "CreateRepository");
    ecr(
        &c,
        None,
        "CreateRepository",
        json!({"repositoryName": "app"}),
    )
    .await
    .unwrap();
    assert_eq!(world.api.all(&Method::POST, &repos_in("team-a")).len(), 1);
    let e = refused(
        &c,
        None,
        "ListTagsForResource",
        json!({"resourceArn": "arn:aws:ecr:kubecs:team-b:repository/app"}),
    )
    .await;
    assert_eq!(e.code, "AccessDeniedException");
    assert!(
        e.message.contains(
            "ecr:ListTagsForResource on resource: arn:aws:ecr:kubecs:team-b:repository/*"
        ),
        "{}",
        e.message
    );
}

/// A world whose account `team-a` holds `web` (object `web`), as seeded and listed.
fn world_with_web(spec: Value, status: Value) -> World {
    let web = object(&json!({"ns": "team-a", "object": "web", "spec": spec, "status": status}));
    let listed = web.clone();
    let world = World::new(Box::new(move |call: &Call| {
        (call.method == Method::GET && call.path == repos_in("team-a"))
            .then(|| list(vec![listed.clone()]))
    }));
    world.api.seed(&format!("{}/web", repos_in("team-a")), web);
    world
}

#[tokio::test]
async fn describe_repositories_pages_and_names_missing_ones_in_ecrs_words() {
    let world = World::new(Box::new(|call: &Call| {
        (call.path == repos_in("team-a")).then(|| {
            list(
                ["cc", "aa", "bb"]
                    .iter()
                    .map(|n| {
                        object(&json!({"ns": "team-a", "object": n, "spec": {}, "status": null}))
                    })
                    .collect(),
            )
        })
    }));
    let c = caller(&world, "team-a", "DescribeRepositories");
    let first = ecr(&c, None, "DescribeRepositories", json!({"maxResults": 2}))
        .await
        .unwrap();
    let names = |v: &Value| -> Vec<String> {
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["repositoryName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["aa", "bb"]);
    let rest = ecr(
        &c,
        None,
        "DescribeRepositories",
        json!({"maxResults": 2, "nextToken": first["nextToken"]}),
    )
    .await
    .unwrap();
    assert_eq!(names(&rest), ["cc"]);
    let registry = ecr(&c, None, "DescribeRegistry", json!({})).await.unwrap();
    assert_eq!(
        registry,
        json!({"registryId": DEFAULT_REGISTRY_ID, "replicationConfiguration": {"rules": []}})
    );
    assert!(rest.get("nextToken").is_none());
    let e = refused(
        &c,
        None,
        "DescribeRepositories",
        json!({"repositoryNames": ["aa", "zz"]}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            "RepositoryNotFoundException",
            "The repository with name 'zz' does not exist in the registry with id '000000000000'"
        )
    );
}

#[tokio::test]
async fn policies_are_stored_typed_and_answered_as_text() {
    let world = world_with_web(json!({}), json!({"registryId": "111111111111"}));
    let c = caller(&world, "team-a", "x");
    let e = refused(
        &c,
        None,
        "GetLifecyclePolicy",
        json!({"repositoryName": "web"}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            "LifecyclePolicyNotFoundException",
            "Lifecycle policy does not exist for the repository with name 'web' in the registry with id '111111111111'"
        )
    );
    let out = ecr(
        &c,
        None,
        "PutLifecyclePolicy",
        json!({"repositoryName": "web", "lifecyclePolicyText": LIFECYCLE}),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({"registryId": "111111111111", "repositoryName": "web", "lifecyclePolicyText": LIFECYCLE})
    );
    let patch = world
        .api
        .all(&Method::PATCH, &format!("{}/web", repos_in("team-a")));
    assert_eq!(
        patch[0].body["spec"]["lifecyclePolicy"]["rules"][0]["selection"]["countNumber"],
        5
    );
    let got = refused(
        &c,
        None,
        "GetLifecyclePolicy",
        json!({"repositoryName": "web"}),
    )
    .await;
    // The scripted list still shows the object as seeded: the write went to its object.
    assert_eq!(got.code, "LifecyclePolicyNotFoundException");

    let e = refused(
        &c,
        None,
        "GetRepositoryPolicy",
        json!({"repositoryName": "web"}),
    )
    .await;
    assert_eq!(
        e.message,
        "Repository policy does not exist for the repository with name 'web' in the registry with id '111111111111'"
    );
    let text = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ci","Effect":"Allow","Principal":{"Kubernetes":{"ServiceAccount":["ci:pusher"]}},"Action":["ecr:PutImage"]}]}"#;
    let out = ecr(
        &c,
        None,
        "SetRepositoryPolicy",
        json!({"repositoryName": "web", "policyText": text}),
    )
    .await
    .unwrap();
    assert_eq!(out["policyText"], text);
    let patch = world
        .api
        .all(&Method::PATCH, &format!("{}/web", repos_in("team-a")));
    assert_eq!(
        patch[1].body["spec"]["repositoryPolicy"]["Statement"][0]["Sid"],
        "ci"
    );
    let e = refused(
        &c,
        None,
        "SetRepositoryPolicy",
        json!({"repositoryName": "web", "policyText": "{}"}),
    )
    .await;
    assert_eq!(e.code, "InvalidParameterException");
}

#[tokio::test]
async fn stored_policies_read_back_and_delete() {
    let policy: Value = serde_json::from_str(LIFECYCLE).unwrap();
    let world = world_with_web(
        json!({"lifecyclePolicy": policy,
               "repositoryPolicy": {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "ecr:*"}]}}),
        json!({"lifecyclePolicyPreview": [{"imageDigest": "sha256:aa", "imageTags": ["v1"],
               "imagePushedAt": "2026-12-01T00:00:01Z", "appliedRulePriority": 1}]}),
    );
    let c = caller(&world, "team-a", "x");
    let got = ecr(
        &c,
        None,
        "GetLifecyclePolicy",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert_eq!(got["lifecyclePolicyText"], LIFECYCLE);
    let got = ecr(
        &c,
        None,
        "GetRepositoryPolicy",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert_eq!(
        got["policyText"],
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:*"}]}"#
    );
    // The preview of the repository's own policy is the one its status holds.
    let started = ecr(
        &c,
        None,
        "StartLifecyclePolicyPreview",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert_eq!(started["status"], "IN_PROGRESS");
    let preview = ecr(
        &c,
        None,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert_eq!(preview["status"], "COMPLETE");
    assert_eq!(
        preview["previewResults"],
        json!([{"imageTags": ["v1"], "imageDigest": "sha256:aa", "imagePushedAt": 1_796_083_201.0,
                "action": {"type": "EXPIRE"}, "appliedRulePriority": 1}])
    );
    assert_eq!(preview["summary"], json!({"expiringImageTotalCount": 1}));
    let deleted = ecr(
        &c,
        None,
        "DeleteRepositoryPolicy",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert!(deleted["policyText"].as_str().unwrap().contains("Deny"));
    let patches = world
        .api
        .all(&Method::PATCH, &format!("{}/web", repos_in("team-a")));
    assert_eq!(
        patches.last().unwrap().body,
        json!({"spec": {"repositoryPolicy": null}})
    );
    let deleted = ecr(
        &c,
        None,
        "DeleteLifecyclePolicy",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert_eq!(deleted["lifecyclePolicyText"], LIFECYCLE);
    let patches = world
        .api
        .all(&Method::PATCH, &format!("{}/web", repos_in("team-a")));
    assert_eq!(
        patches.last().unwrap().body,
        json!({"spec": {"lifecyclePolicy": null}})
    );
    // StartLifecyclePolicyPreview recorded what to preview on the object.
    assert_eq!(
        patches[0].body["metadata"]["annotations"][super::policies::PREVIEW_ANNOTATION],
        LIFECYCLE
    );
}

#[tokio::test]
async fn tags_mutability_and_delete_write_the_object() {
    let world = world_with_web(
        json!({"tags": [{"key": "team", "value": "a"}]}),
        json!({"imageCount": 2, "registryId": "111111111111"}),
    );
    let c = caller(&world, "team-a", "x");
    let arn = "arn:aws:ecr:kubecs:team-a:repository/web";
    let tags = ecr(&c, None, "ListTagsForResource", json!({"resourceArn": arn}))
        .await
        .unwrap();
    assert_eq!(tags, json!({"tags": [{"Key": "team", "Value": "a"}]}));
    ecr(
        &c,
        None,
        "TagResource",
        json!({"resourceArn": arn, "tags": [{"Key": "env", "Value": "prod"}]}),
    )
    .await
    .unwrap();
    let path = format!("{}/web", repos_in("team-a"));
    assert_eq!(
        world.api.all(&Method::PATCH, &path)[0].body["spec"]["tags"],
        json!([{"key": "team", "value": "a"}, {"key": "env", "value": "prod"}])
    );
    ecr(
        &c,
        None,
        "UntagResource",
        json!({"resourceArn": arn, "tagKeys": ["team"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        world.api.all(&Method::PATCH, &path)[1].body["spec"]["tags"],
        json!([])
    );
    let out = ecr(
        &c,
        None,
        "PutImageTagMutability",
        json!({"repositoryName": "web", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
               "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "dev-*"}]}),
    )
    .await
    .unwrap();
    assert_eq!(out["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    assert_eq!(
        out["imageTagMutabilityExclusionFilters"][0]["filter"],
        "dev-*"
    );
    // Not empty (status says so, no registry here): refused in the controller's words.
    let e = refused(
        &c,
        None,
        "DeleteRepository",
        json!({"repositoryName": "web"}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            "RepositoryNotEmptyException",
            "The repository with name 'web' in registry with id '111111111111' cannot be deleted because it still contains images"
        )
    );
    assert!(world.api.all(&Method::DELETE, &path).is_empty());
    // force: the controller deletes the images once spec.force is set.
    let out = ecr(
        &c,
        None,
        "DeleteRepository",
        json!({"repositoryName": "web", "force": true}),
    )
    .await
    .unwrap();
    assert_eq!(out["repository"]["repositoryName"], "web");
    let calls = world.api.calls();
    let force = calls
        .iter()
        .position(|c| c.is(&Method::PATCH, &path) && c.body == json!({"spec": {"force": true}}))
        .expect("spec.force set");
    assert!(world.api.first(&Method::DELETE, &path).unwrap() > force);
}

#[tokio::test]
async fn image_operations_need_a_registry() {
    let world = World::plain();
    let c = caller(&world, "team-a", "x");
    for op in ["GetAuthorizationToken", "ListImages"] {
        let e = refused(&c, None, op, json!({"repositoryName": "web"})).await;
        assert_eq!(e.code, "ServerException");
        assert!(e.message.contains("--registry-url"), "{}", e.message);
    }
}

// --- with a registry ---------------------------------------------------------------------------

/// A registry on 127.0.0.1 knowing the repository `web` (images pushed through it as
/// anyone), and the link the API would have to it.
async fn registry(policy: Arc<dyn oci::AccessPolicy>) -> (RegistryLink, tempfile::TempDir) {
    let r = registry_recording_pulls(policy).await;
    (r.link, r.dir)
}

/// A test registry with what a test needs to write the pulls it noted.
struct TestRegistry {
    link: RegistryLink,
    dir: tempfile::TempDir,
    pulls: Arc<oci::pulls::PullTimes>,
    storage: Arc<dyn oci::Storage>,
}

async fn registry_recording_pulls(policy: Arc<dyn oci::AccessPolicy>) -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    let signer = TokenSigner::new(vec![9; 32]).unwrap();
    let storage: Arc<dyn oci::Storage> =
        Arc::new(oci::FsStorage::open(dir.path().join("store")).unwrap());
    let pulls = Arc::new(oci::pulls::PullTimes::default());
    let router = oci::router(Arc::new(oci::Registry {
        storage: storage.clone(),
        policy,
        auth: oci::Authenticator::new(signer.clone()),
        config: oci::RegistryConfig::default(),
        changes: None,
        uploads: Default::default(),
        pulls: pulls.clone(),
        pull_through: None,
        replication: None,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(oci::serve::serve(
        listener,
        router,
        oci::serve::ServeLimits {
            header_read_timeout: Duration::from_secs(5),
            body_idle_timeout: Duration::from_secs(5),
            max_connections: 16,
        },
        std::future::pending(),
    ));
    let link = RegistryLink {
        url: format!("http://{addr}"),
        public_host: format!("{addr}"),
        signer,
    };
    TestRegistry {
        link,
        dir,
        pulls,
        storage,
    }
}

fn web_only() -> Arc<oci::StaticPolicy> {
    Arc::new(oci::StaticPolicy::new().with_repository("web", Default::default()))
}

/// Pushes a blob as `c` (what docker push does before PutImage); returns its digest.
async fn push_blob(link: &RegistryLink, c: &Caller, content: &[u8]) -> String {
    let d = oci::digest::Digest::sha256(content).to_string();
    let r = super::registry_client::RegistryClient::new(link, c)
        .send(
            Method::POST,
            &format!("/v2/web/blobs/uploads/?digest={d}"),
            &[],
            content.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::CREATED);
    d
}

async fn manifest(link: &RegistryLink, c: &Caller, salt: &str) -> String {
    let config = format!("{{\"salt\":\"{salt}\"}}");
    let cfg = push_blob(link, c, config.as_bytes()).await;
    let layer = push_blob(link, c, format!("layer-{salt}").as_bytes()).await;
    json!({
        "schemaVersion": 2, "mediaType": oci::manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 6 + salt.len()}]
    })
    .to_string()
}

/// Pushes an image's blobs and PutImage's its manifest into `web` under `tag`; its digest.
async fn put_image(link: &RegistryLink, c: &Caller, tag: &str, salt: &str) -> String {
    let m = manifest(link, c, salt).await;
    ecr(
        c,
        Some(link),
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": m, "imageTag": tag}),
    )
    .await
    .unwrap();
    oci::digest::Digest::sha256(m.as_bytes()).to_string()
}

#[tokio::test]
async fn images_go_through_the_registry_as_the_caller() {
    let (link, _dir) = registry(web_only()).await;
    let world = World::new(Box::new(|call: &Call| {
        (call.path == repos_in("team-a")).then(|| list(vec![]))
    }));
    let c = caller(&world, "team-a", "x");
    let l = Some(&link);

    let token = ecr(&c, l, "GetAuthorizationToken", json!({}))
        .await
        .unwrap();
    let data = &token["authorizationData"][0];
    assert_eq!(
        data["proxyEndpoint"],
        format!("http://{}", link.public_host)
    );
    let basic = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        data["authorizationToken"].as_str().unwrap(),
    )
    .unwrap();
    let token = String::from_utf8(basic).unwrap();
    let verified = link
        .signer
        .verify(token.strip_prefix("AWS:").unwrap(), SystemTime::now())
        .unwrap();
    assert_eq!(verified, c.key.principal, "the caller's own token");

    let m1 = manifest(&link, &c, "one").await;
    let put = ecr(
        &c,
        l,
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": m1, "imageTag": "v1"}),
    )
    .await
    .unwrap();
    let d1 = oci::digest::Digest::sha256(m1.as_bytes()).to_string();
    assert_eq!(
        put["image"]["imageId"],
        json!({"imageDigest": d1, "imageTag": "v1"})
    );
    assert_eq!(
        put["image"]["imageManifestMediaType"],
        oci::manifest::OCI_MANIFEST
    );
    let again = refused(
        &c,
        l,
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": m1, "imageTag": "v1"}),
    )
    .await;
    assert_eq!(again.code, "ImageAlreadyExistsException");
    ecr(
        &c,
        l,
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": m1, "imageTag": "latest"}),
    )
    .await
    .unwrap();
    let m2 = manifest(&link, &c, "two").await;
    ecr(
        &c,
        l,
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": m2, "imageTag": "v2"}),
    )
    .await
    .unwrap();
    let e = refused(
        &c,
        l,
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": m2, "imageDigest": d1}),
    )
    .await;
    assert_eq!(e.code, "ImageDigestDoesNotMatchException");

    let ids = ecr(&c, l, "ListImages", json!({"repositoryName": "web"}))
        .await
        .unwrap();
    assert_eq!(ids["imageIds"].as_array().unwrap().len(), 3);
    let described = ecr(
        &c,
        l,
        "DescribeImages",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "latest"}]}),
    )
    .await
    .unwrap();
    let detail = &described["imageDetails"][0];
    assert_eq!(detail["imageDigest"], d1);
    assert_eq!(detail["imageTags"], json!(["latest", "v1"]));
    assert_eq!(detail["imageSizeInBytes"], m1.len() + 14 + 9);
    assert!(detail["imagePushedAt"].as_f64().unwrap() > 1.7e9);
    let e = refused(
        &c,
        l,
        "DescribeImages",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "nope"}]}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            "ImageNotFoundException",
            "The image with imageId {imageDigest:'null', imageTag:'nope'} does not exist within the repository with name 'web' in the registry with id '000000000000'"
        )
    );

    let got = ecr(
        &c,
        l,
        "BatchGetImage",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "v1"}, {"imageTag": "gone"},
               {"imageDigest": d1, "imageTag": "v2"}]}),
    )
    .await
    .unwrap();
    assert_eq!(got["images"][0]["imageManifest"], m1);
    assert_eq!(got["images"][0]["imageId"]["imageDigest"], d1);
    let codes: Vec<&str> = got["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["failureCode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["ImageNotFound", "ImageTagDoesNotMatchDigest"]);
    let docker_only = ecr(
        &c,
        l,
        "BatchGetImage",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "v1"}],
               "acceptedMediaTypes": [oci::manifest::DOCKER_MANIFEST]}),
    )
    .await
    .unwrap();
    assert_eq!(docker_only["images"], json!([]));
    assert_eq!(docker_only["failures"][0]["failureCode"], "ImageNotFound");

    let cfg = oci::digest::Digest::sha256(b"{\"salt\":\"one\"}").to_string();
    let missing = oci::digest::Digest::sha256(b"missing").to_string();
    let layers = ecr(
        &c,
        l,
        "BatchCheckLayerAvailability",
        json!({"repositoryName": "web", "layerDigests": [cfg, missing, "sha256:zz"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        layers["layers"],
        json!([{"layerDigest": cfg, "layerAvailability": "AVAILABLE", "layerSize": 14},
               {"layerDigest": missing, "layerAvailability": "UNAVAILABLE"}])
    );
    assert_eq!(layers["failures"][0]["failureCode"], "InvalidLayerDigest");

    // v1 goes, the image stays (tagged latest); then latest goes and so does the image.
    let out = ecr(
        &c,
        l,
        "BatchDeleteImage",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "v1"}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["imageIds"],
        json!([{"imageDigest": d1, "imageTag": "v1"}])
    );
    let untagged = ecr(
        &c,
        l,
        "ListImages",
        json!({"repositoryName": "web", "filter": {"tagStatus": "UNTAGGED"}}),
    )
    .await
    .unwrap();
    assert_eq!(untagged["imageIds"], json!([]));
    ecr(
        &c,
        l,
        "BatchDeleteImage",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "latest"}, {"imageTag": "latest"}]}),
    )
    .await
    .unwrap();
    let left = ecr(&c, l, "DescribeImages", json!({"repositoryName": "web"}))
        .await
        .unwrap();
    let digests: Vec<&str> = left["imageDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["imageDigest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [oci::digest::Digest::sha256(m2.as_bytes()).to_string()]
    );

    let e = refused(&c, l, "ListImages", json!({"repositoryName": "nope"})).await;
    assert_eq!(e.code, "RepositoryNotFoundException");
}

#[tokio::test]
async fn the_registrys_refusals_are_the_callers() {
    // A policy that lets the caller pull but not push.
    let policy = Arc::new(
        oci::StaticPolicy::new()
            .with_repository("web", Default::default())
            .grant(
                "system:serviceaccount:team-a:ci",
                &[oci::access::actions::BATCH_GET_IMAGE],
            ),
    );
    let (link, _dir) = registry(policy).await;
    let world = World::new(Box::new(|call: &Call| {
        (call.path == repos_in("team-a")).then(|| list(vec![]))
    }));
    let c = caller(&world, "team-a", "x");
    let e = refused(
        &c,
        Some(&link),
        "PutImage",
        json!({"repositoryName": "web", "imageManifest": "{}", "imageTag": "v1"}),
    )
    .await;
    assert_eq!(e.code, "AccessDeniedException");
    assert!(e.message.contains("ecr:PutImage"), "{}", e.message);
    let e = refused(
        &c,
        Some(&link),
        "ListImages",
        json!({"repositoryName": "web"}),
    )
    .await;
    assert_eq!(e.code, "AccessDeniedException");
}

/// An API server whose account team-a holds the Repository `web`.
fn web_account() -> World {
    let web = object(&json!({"ns": "team-a", "object": "web", "spec": {}, "status": null}));
    World::new(Box::new(move |call: &Call| {
        (call.path == repos_in("team-a")).then(|| list(vec![web.clone()]))
    }))
}

#[tokio::test]
async fn describe_images_reports_the_last_recorded_pull_time_of_pulled_images_only() {
    let r = registry_recording_pulls(web_only()).await;
    let world = web_account();
    let c = caller(&world, "team-a", "x");
    let l = Some(&r.link);
    for (tag, salt) in [("pulled", "one"), ("idle", "two")] {
        put_image(&r.link, &c, tag, salt).await;
    }
    let before = SystemTime::now();
    // BatchGetImage is how ECR's API pulls: the registry notes it, the flush records it.
    ecr(
        &c,
        l,
        "BatchGetImage",
        json!({"repositoryName": "web", "imageIds": [{"imageTag": "pulled"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.pulls.flush(&*r.storage, &|_| {}).await.unwrap(), 1);
    let described = ecr(&c, l, "DescribeImages", json!({"repositoryName": "web"}))
        .await
        .unwrap();
    let details = described["imageDetails"].as_array().unwrap();
    let by_tag = |t: &str| {
        details
            .iter()
            .find(|d| d["imageTags"] == json!([t]))
            .unwrap_or_else(|| panic!("{t} in {described}"))
    };
    let pulled = by_tag("pulled")["lastRecordedPullTime"]
        .as_f64()
        .expect("epoch seconds");
    let since = before.duration_since(std::time::UNIX_EPOCH).unwrap();
    assert!(pulled >= since.as_secs_f64() - 1.0, "{pulled}");
    assert!(
        by_tag("idle").get("lastRecordedPullTime").is_none(),
        "{described}"
    );
}

#[tokio::test]
async fn a_preview_of_another_policy_is_evaluated_over_the_registrys_images() {
    let (link, _dir) = registry(web_only()).await;
    let keep_one = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    // As StartLifecyclePolicyPreview leaves it.
    let mut web = object(&json!({"ns": "team-a", "object": "web", "spec": {}, "status": null}));
    web["metadata"]["annotations"] = json!({ super::policies::PREVIEW_ANNOTATION: keep_one });
    let world = World::new(Box::new(move |call: &Call| {
        (call.path == repos_in("team-a")).then(|| list(vec![web.clone()]))
    }));
    let c = caller(&world, "team-a", "x");
    let l = Some(&link);
    let mut digests = Vec::new();
    for (tag, salt) in [("old", "one"), ("new", "two")] {
        digests.push(put_image(&link, &c, tag, salt).await);
        // Push times in milliseconds: the second is the newer.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let preview = ecr(
        &c,
        l,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "web"}),
    )
    .await
    .unwrap();
    assert_eq!(preview["lifecyclePolicyText"], keep_one);
    assert_eq!(preview["status"], "COMPLETE");
    let results = preview["previewResults"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{preview}");
    assert_eq!(results[0]["imageDigest"], digests[0]);
    assert_eq!(results[0]["imageTags"], json!(["old"]));
    let none = ecr(
        &c,
        l,
        "GetLifecyclePolicyPreview",
        json!({"repositoryName": "web", "filter": {"tagStatus": "UNTAGGED"}}),
    )
    .await
    .unwrap();
    assert_eq!(none["previewResults"], json!([]));
    assert_eq!(none["summary"]["expiringImageTotalCount"], 1);
    // With images, DeleteRepository asks the registry and refuses.
    let e = refused(&c, l, "DeleteRepository", json!({"repositoryName": "web"})).await;
    assert_eq!(e.code, "RepositoryNotEmptyException");
}

// --- pull through cache rules ---------------------------------------------------------------

fn rules_in(ns: &str) -> String {
    format!("/apis/ecr.kubecs.io/v1alpha1/namespaces/{ns}/pullthroughcacherules")
}

fn rule_object(ns: &str, prefix: &str, url: &str, credential_arn: Option<&str>) -> Value {
    json!({
        "apiVersion": "ecr.kubecs.io/v1alpha1", "kind": "PullThroughCacheRule",
        "metadata": {"name": object_name(prefix), "namespace": ns,
                     "creationTimestamp": "2026-12-01T00:00:01Z"},
        "spec": {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": url,
                 "credentialArn": credential_arn},
    })
}

/// A world whose account `team-a` holds the rules `held` (listed and seeded).
fn world_with_rules(held: Vec<Value>) -> World {
    world_holding(rules_in("team-a"), "PullThroughCacheRuleList", held)
}

/// A world whose API server lists `held` at `collection` (a `kind` list) and holds each.
fn world_holding(collection: String, kind: &'static str, held: Vec<Value>) -> World {
    let listed = held.clone();
    let path = collection.clone();
    let world = World::new(Box::new(move |call: &Call| {
        (call.method == Method::GET && call.path == path).then(|| {
            (
                StatusCode::OK,
                json!({"apiVersion": "ecr.kubecs.io/v1alpha1", "kind": kind,
                       "metadata": {"resourceVersion": "1"}, "items": listed}),
            )
        })
    }));
    for r in held {
        let name = r["metadata"]["name"].as_str().unwrap().to_string();
        world.api.seed(&format!("{collection}/{name}"), r);
    }
    world
}

/// The members of botocore's PullThroughCacheRule (and of Create's answer, which lacks
/// updatedAt).
const RULE_MEMBERS: &[&str] = &[
    "createdAt",
    "credentialArn",
    "customRoleArn",
    "ecrRepositoryPrefix",
    "registryId",
    "updatedAt",
    "upstreamRegistry",
    "upstreamRegistryUrl",
    "upstreamRepositoryPrefix",
];

#[tokio::test]
async fn pull_through_cache_rules_are_objects_of_the_account() {
    let world = world_with_rules(vec![]);
    let c = caller(&world, "team-a", "CreatePullThroughCacheRule");
    let out = ecr(
        &c,
        None,
        "CreatePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": "docker-hub/", "upstreamRegistryUrl": "registry-1.docker.io",
               "upstreamRepositoryPrefix": "library"}),
    )
    .await
    .unwrap();
    assert!(keys(&out).iter().all(|k| RULE_MEMBERS.contains(k)), "{out}");
    assert_eq!(out["ecrRepositoryPrefix"], "docker-hub");
    assert_eq!(out["upstreamRegistry"], "docker-hub");
    assert_eq!(out["upstreamRepositoryPrefix"], "library");
    assert_eq!(out["registryId"], DEFAULT_REGISTRY_ID);
    let posts = world.api.all(&Method::POST, &rules_in("team-a"));
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].body["spec"],
        json!({"ecrRepositoryPrefix": "docker-hub", "upstreamRegistryUrl": "registry-1.docker.io",
               "upstreamRepositoryPrefix": "library"})
    );
    for (input, code) in [
        (
            json!({"ecrRepositoryPrefix": "a", "upstreamRegistryUrl": "quay.io"}),
            "InvalidParameterException",
        ),
        (
            json!({"ecrRepositoryPrefix": "ROOT", "upstreamRegistryUrl": "quay.io"}),
            "InvalidParameterException",
        ),
        (
            json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io",
                   "credentialArn": "arn:aws:secretsmanager:us-east-1:1:secret:quay"}),
            "InvalidParameterException",
        ),
        (
            json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io",
                   "upstreamRegistry": "docker-hub"}),
            "UnsupportedUpstreamRegistryException",
        ),
        (
            json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io",
                   "credentialArn": "arn:aws:secretsmanager:us-east-1:1:secret:ecr-pullthroughcache/quay"}),
            "SecretNotFoundException",
        ),
    ] {
        let e = refused(&c, None, "CreatePullThroughCacheRule", input.clone()).await;
        assert_eq!(e.code, code, "{input}: {}", e.message);
    }
    assert_eq!(world.api.all(&Method::POST, &rules_in("team-a")).len(), 1);

    let world = world_with_rules(vec![rule_object(
        "team-a",
        "hub",
        "registry-1.docker.io",
        None,
    )]);
    let c = caller(&world, "team-a", "CreatePullThroughCacheRule");
    let e = refused(
        &c,
        None,
        "CreatePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": "quay.io"}),
    )
    .await;
    assert_eq!(e.code, "PullThroughCacheRuleAlreadyExistsException");
    let all = ecr(&c, None, "DescribePullThroughCacheRules", json!({}))
        .await
        .unwrap();
    assert_eq!(
        all["pullThroughCacheRules"][0]["ecrRepositoryPrefix"],
        "hub"
    );
    assert_eq!(
        all["pullThroughCacheRules"][0]["upstreamRepositoryPrefix"],
        "ROOT"
    );
    let e = refused(
        &c,
        None,
        "DescribePullThroughCacheRules",
        json!({"ecrRepositoryPrefixes": ["hub", "quay"]}),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            "PullThroughCacheRuleNotFoundException",
            "The pull through cache rule with the ecrRepositoryPrefix 'quay' does not exist in the registry with id '000000000000'"
        )
    );
    let updated = ecr(
        &c,
        None,
        "UpdatePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": "hub", "upstreamRepositoryPrefix": "library"}),
    )
    .await
    .unwrap();
    assert_eq!(updated["upstreamRepositoryPrefix"], "library");
    assert!(updated.get("updatedAt").is_some(), "{updated}");
    let path = format!("{}/{}", rules_in("team-a"), object_name("hub"));
    assert_eq!(world.api.all(&Method::PATCH, &path).len(), 1);
    let deleted = ecr(
        &c,
        None,
        "DeletePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": "hub"}),
    )
    .await
    .unwrap();
    assert_eq!(deleted["upstreamRegistryUrl"], "registry-1.docker.io");
    assert_eq!(world.api.all(&Method::DELETE, &path).len(), 1);
    let e = refused(
        &c,
        None,
        "DeletePullThroughCacheRule",
        json!({"ecrRepositoryPrefix": "nope"}),
    )
    .await;
    assert_eq!(e.code, "PullThroughCacheRuleNotFoundException");
}

#[tokio::test]
async fn validation_reaches_the_upstream_with_the_rules_credentials() {
    // The upstream: a kubecs registry, which asks for Basic credentials.
    let (link, _dir) = registry(Arc::new(oci::AllowAll)).await;
    let arn = "arn:aws:secretsmanager:us-east-1:1:secret:ecr-pullthroughcache/up";
    let world = world_with_rules(vec![
        rule_object("team-a", "anon", &link.url, None),
        rule_object("team-a", "with-creds", &link.url, Some(arn)),
        rule_object("team-a", "nowhere", "http://127.0.0.1:1", None),
    ]);
    let upstream_user = oci::Principal {
        username: "upstream".into(),
        groups: vec![],
    };
    let token = link.token(&upstream_user, SystemTime::now());
    world.api.seed(
        "/api/v1/namespaces/team-a/secrets/ecr-pullthroughcache-up",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "ecr-pullthroughcache-up", "namespace": "team-a"},
               "data": {"username": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "AWS"),
                        "accessToken": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &token)}}),
    );
    let c = caller(&world, "team-a", "ValidatePullThroughCacheRule");
    let validate = |prefix: &'static str| {
        let c = c.clone();
        async move {
            ecr(
                &c,
                None,
                "ValidatePullThroughCacheRule",
                json!({"ecrRepositoryPrefix": prefix}),
            )
            .await
            .unwrap()
        }
    };
    let ok = validate("with-creds").await;
    assert_eq!(ok["isValid"], true, "{ok}");
    assert_eq!(ok["credentialArn"], arn);
    let anon = validate("anon").await;
    assert_eq!(anon["isValid"], false);
    assert!(
        anon["failure"]
            .as_str()
            .unwrap()
            .contains("asks for credentials"),
        "{anon}"
    );
    let nowhere = validate("nowhere").await;
    assert_eq!(nowhere["isValid"], false);
    assert!(
        nowhere["failure"]
            .as_str()
            .unwrap()
            .contains("cannot reach"),
        "{nowhere}"
    );
}

// --- repository creation templates ------------------------------------------------------------

fn templates_in(ns: &str) -> String {
    format!("/apis/ecr.kubecs.io/v1alpha1/namespaces/{ns}/repositorycreationtemplates")
}

fn templates_world(held: Vec<Value>) -> World {
    world_holding(
        templates_in("team-a"),
        "RepositoryCreationTemplateList",
        held,
    )
}

/// The members of botocore's RepositoryCreationTemplate.
const TEMPLATE_MEMBERS: &[&str] = &[
    "appliedFor",
    "createdAt",
    "customRoleArn",
    "description",
    "encryptionConfiguration",
    "imageTagMutability",
    "imageTagMutabilityExclusionFilters",
    "lifecyclePolicy",
    "prefix",
    "repositoryPolicy",
    "resourceTags",
    "updatedAt",
];

fn template_object(prefix: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["prefix"] = json!(prefix);
    json!({
        "apiVersion": "ecr.kubecs.io/v1alpha1", "kind": "RepositoryCreationTemplate",
        "metadata": {"name": object_name(&prefix.to_lowercase()), "namespace": "team-a",
                     "creationTimestamp": "2026-12-01T00:00:01Z"},
        "spec": spec,
    })
}

#[tokio::test]
async fn repository_creation_templates_are_objects_of_the_account() {
    let world = templates_world(vec![]);
    let c = caller(&world, "team-a", "CreateRepositoryCreationTemplate");
    let lifecycle = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
    let out = ecr(
        &c,
        None,
        "CreateRepositoryCreationTemplate",
        json!({"prefix": "prod/", "appliedFor": ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"],
               "imageTagMutability": "IMMUTABLE", "lifecyclePolicy": lifecycle,
               "resourceTags": [{"Key": "team", "Value": "a"}], "description": "prod"}),
    )
    .await
    .unwrap();
    assert_eq!(out["registryId"], DEFAULT_REGISTRY_ID);
    let t = &out["repositoryCreationTemplate"];
    assert!(keys(t).iter().all(|k| TEMPLATE_MEMBERS.contains(k)), "{t}");
    assert_eq!(t["prefix"], "prod");
    assert_eq!(
        t["appliedFor"],
        json!(["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"])
    );
    assert_eq!(t["resourceTags"], json!([{"Key": "team", "Value": "a"}]));
    let text: Value = serde_json::from_str(t["lifecyclePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(
        text["rules"][0]["selection"]["countType"],
        "sinceImagePulled"
    );
    let posts = world.api.all(&Method::POST, &templates_in("team-a"));
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["spec"]["imageTagMutability"], "IMMUTABLE");
    assert_eq!(
        posts[0].body["spec"]["resourceTags"],
        json!([{"key": "team", "value": "a"}])
    );
    for (input, code, words) in [
        (
            json!({"prefix": "Prod", "appliedFor": ["CREATE_ON_PUSH"]}),
            "InvalidParameterException",
            "Invalid parameter at 'prefix'",
        ),
        (
            json!({"prefix": "dev", "appliedFor": []}),
            "InvalidParameterException",
            "appliedFor",
        ),
        (
            json!({"prefix": "dev", "appliedFor": ["CREATE_ON_PUSH"],
                   "lifecyclePolicy": r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":1},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#}),
            "InvalidParameterException",
            "archive storage class is not supported",
        ),
    ] {
        let e = refused(&c, None, "CreateRepositoryCreationTemplate", input).await;
        assert_eq!(e.code, code);
        assert!(e.message.contains(words), "{}", e.message);
    }

    // With a template held: create again, describe, update, delete.
    let held = template_object(
        "prod",
        json!({"appliedFor": ["CREATE_ON_PUSH"], "imageTagMutability": "IMMUTABLE"}),
    );
    let world = templates_world(vec![
        held,
        template_object("ROOT", json!({"appliedFor": ["PULL_THROUGH_CACHE"]})),
    ]);
    let c = caller(&world, "team-a", "x");
    let e = refused(
        &c,
        None,
        "CreateRepositoryCreationTemplate",
        json!({"prefix": "prod", "appliedFor": ["CREATE_ON_PUSH"]}),
    )
    .await;
    assert_eq!(e.code, "TemplateAlreadyExistsException");
    let all = ecr(&c, None, "DescribeRepositoryCreationTemplates", json!({}))
        .await
        .unwrap();
    let prefixes: Vec<&str> = all["repositoryCreationTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(prefixes, ["ROOT", "prod"]);
    let some = ecr(
        &c,
        None,
        "DescribeRepositoryCreationTemplates",
        json!({"prefixes": ["prod/", "nothing"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        some["repositoryCreationTemplates"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let updated = ecr(
        &c,
        None,
        "UpdateRepositoryCreationTemplate",
        json!({"prefix": "prod", "imageTagMutability": "MUTABLE", "description": "now mutable"}),
    )
    .await
    .unwrap();
    assert_eq!(
        updated["repositoryCreationTemplate"]["imageTagMutability"],
        "MUTABLE"
    );
    assert_eq!(
        updated["repositoryCreationTemplate"]["appliedFor"],
        json!(["CREATE_ON_PUSH"])
    );
    let patch = &world
        .api
        .all(&Method::PATCH, &format!("{}/prod", templates_in("team-a")))[0];
    assert_eq!(patch.body["spec"]["description"], "now mutable");
    assert_eq!(patch.body["spec"]["imageTagMutability"], "MUTABLE");
    assert!(patch.body["metadata"]["annotations"][super::templates::UPDATED_AT].is_string());
    let deleted = ecr(
        &c,
        None,
        "DeleteRepositoryCreationTemplate",
        json!({"prefix": "ROOT"}),
    )
    .await
    .unwrap();
    assert_eq!(deleted["repositoryCreationTemplate"]["prefix"], "ROOT");
    assert_eq!(
        world
            .api
            .all(&Method::DELETE, &format!("{}/root", templates_in("team-a")))
            .len(),
        1
    );
    for op in [
        "UpdateRepositoryCreationTemplate",
        "DeleteRepositoryCreationTemplate",
    ] {
        let e = refused(&c, None, op, json!({"prefix": "dev"})).await;
        assert_eq!(e.code, "TemplateNotFoundException", "{op}");
        assert!(e.message.contains("'dev'"), "{}", e.message);
    }
}

fn replication_config_path(ns: &str) -> String {
    format!("/apis/ecr.kubecs.io/v1alpha1/namespaces/{ns}/replicationconfigurations")
}

#[tokio::test]
async fn put_replication_configuration_writes_the_rules_and_describe_registry_reads_them() {
    let world = World::new(Box::new(|call: &Call| {
        (call.path == repos_in("team-a")).then(|| list(vec![]))
    }));
    let c = caller(&world, "team-a", "x");
    let rules = json!({"rules": [{"destinations": [{"region": "kubecs-b", "registryId": "000000000002"}],
        "repositoryFilters": [{"filter": "prod", "filterType": "PREFIX_MATCH"}]}]});
    let put = |rules: &Value| {
        ecr(
            &c,
            None,
            "PutReplicationConfiguration",
            json!({"replicationConfiguration": rules}),
        )
    };
    let answer = put(&rules).await.unwrap();
    assert_eq!(answer, json!({"replicationConfiguration": rules}));
    let posted = world
        .api
        .all(&Method::POST, &replication_config_path("team-a"));
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].body["metadata"]["name"], "default");
    let described = ecr(&c, None, "DescribeRegistry", json!({})).await.unwrap();
    assert_eq!(described["replicationConfiguration"], rules);
    // Kubecs' destinationRegistries, set with kubectl, stay when the rules are replaced.
    let path = format!("{}/default", replication_config_path("team-a"));
    world.api.seed(
        &path,
        json!({"apiVersion": "ecr.kubecs.io/v1alpha1", "kind": "ReplicationConfiguration",
            "metadata": {"name": "default", "namespace": "team-a"},
            "spec": {"rules": [], "destinationRegistries": [{"region": "kubecs-b",
                "registryId": "000000000002", "url": "https://b.example"}]}}),
    );
    put(&rules).await.unwrap();
    let patches = world.api.all(&Method::PATCH, &path);
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].body, json!({"spec": {"rules": rules["rules"]}}));
    let eleven = json!({"rules": vec![rules["rules"][0].clone(); 11]});
    let e = put(&eleven).await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    assert!(
        e.message.contains("less than or equal to 10"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn image_replication_status_is_the_registrys_per_destination() {
    let r = registry_recording_pulls(web_only()).await;
    let world = web_account();
    let c = caller(&world, "team-a", "x");
    let l = Some(&r.link);
    let digest = put_image(&r.link, &c, "v1", "one").await;
    let asked = json!({"repositoryName": "web", "imageId": {"imageTag": "v1"}});
    let none = ecr(&c, l, "DescribeImageReplicationStatus", asked.clone())
        .await
        .unwrap();
    assert_eq!(none["replicationStatuses"], json!([]));
    assert_eq!(none["imageId"]["imageDigest"], digest.as_str());
    let record = json!({"destinations": [
        {"region": "kubecs-b", "registryId": "000000000002", "status": "COMPLETE", "queuedMs": 1},
        {"region": "kubecs-c", "registryId": "000000000003", "status": "FAILED",
         "failureCode": "ACCESS_DENIED", "attempts": 1, "queuedMs": 1}]});
    r.storage
        .put_replication_record(
            "web",
            &digest.parse().unwrap(),
            Some(record.to_string().into()),
        )
        .await
        .unwrap();
    let got = ecr(&c, l, "DescribeImageReplicationStatus", asked)
        .await
        .unwrap();
    assert_eq!(
        got["replicationStatuses"],
        json!([{"region": "kubecs-b", "registryId": "000000000002", "status": "COMPLETE"},
               {"region": "kubecs-c", "registryId": "000000000003", "status": "FAILED",
                "failureCode": "ACCESS_DENIED"}])
    );
    let e = refused(
        &c,
        l,
        "DescribeImageReplicationStatus",
        json!({"repositoryName": "web", "imageId": {"imageTag": "nope"}}),
    )
    .await;
    assert_eq!(e.code, "ImageNotFoundException");
}
