//! Software version consistency (`versionConsistency`, ECS's container image resolution): at
//! a deployment's start each container's tag resolves to a digest, the deployment records it
//! (`containerImages`), and every task of that deployment, scale-outs and replacements
//! included, runs `image@digest`. A tag moved later changes nothing until the next deployment.
//!
//! Resolution is a manifest HEAD: for the kubecs registry with the namespace's task pull
//! identity (so its repository policies decide, as for the pull itself); for any other
//! registry anonymously or with the task's `repositoryCredentials` Secret when the operator
//! may read it, following the registry's `WWW-Authenticate` challenge (Bearer token or Basic).
//! When a tag cannot be resolved, the deployment's tasks use the image as written (the pull
//! then fails in ECS's words if the image is missing) and an event says why.

use std::time::{Duration, SystemTime};

use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::Full;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

use super::pullsecret::{RegistryPull, image_in_registry, task_principal};
use crate::api::TaskDefinitionSpec;
use crate::api::service::ContainerImage;
use crate::api::taskdef::VersionConsistency;
use crate::challenge::{Unanswered, basic};
use crate::registry::auth::TOKEN_USERNAME;

/// How long one registry request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An image reference taken apart as Docker normalises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry as the image names it (`docker.io` when it names none).
    pub registry: String,
    /// The repository inside it (`library/busybox` for `busybox`).
    pub repository: String,
    /// The tag (`latest` when the image names neither tag nor digest).
    pub tag: String,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(image: &str) -> Option<ImageRef> {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (image, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest)
            }
            _ => ("docker.io".to_string(), name),
        };
        // A tag is after the last ':' of the last path component (a port is in the first).
        let last = path.rsplit('/').next().unwrap_or(path);
        let (path, tag) = match last.rsplit_once(':') {
            Some((_, t)) => (&path[..path.len() - t.len() - 1], t.to_string()),
            None => (path, "latest".to_string()),
        };
        if path.is_empty() || tag.is_empty() {
            return None;
        }
        let repository = if registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Some(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Where its registry API answers: Docker Hub's API host for `docker.io`.
    fn api_base(&self, kubecs: Option<(&str, &str)>) -> String {
        match kubecs {
            Some((host, url)) if self.registry == host => url.trim_end_matches('/').to_string(),
            _ if self.registry == "docker.io" => "https://registry-1.docker.io".into(),
            _ => format!("https://{}", self.registry),
        }
    }
}

/// `image` pinned to `digest`, the tag kept for people (`repo:tag@sha256:...`): what a task
/// of a resolved deployment runs.
pub fn pinned(image: &str, digest: &str) -> String {
    match image.split_once('@') {
        Some(_) => image.to_string(),
        None => format!("{image}@{digest}"),
    }
}

/// What ECS shows as a task container's `image`: the task definition's, so a pinned
/// `repo:tag@digest` shows as `repo:tag` (the digest is `imageDigest`).
pub fn unpinned(image: &str) -> &str {
    match image.split_once('@') {
        Some((name, _)) if name.rsplit('/').next().is_some_and(|l| l.contains(':')) => name,
        _ => image,
    }
}

/// The digest a container runs: the runtime's image id (`repo@sha256:...`), else the digest
/// its image names.
pub fn running_digest(image_id: Option<&str>, image: Option<&str>) -> Option<String> {
    image_id
        .and_then(|i| i.rsplit_once('@'))
        .or_else(|| image?.rsplit_once('@'))
        .map(|(_, d)| d.to_string())
        .filter(|d| d.contains(':'))
}

/// Sets every container of `pod` that has a recorded digest to its pinned image.
pub fn pin_pod(pod: &mut Pod, images: &[ContainerImage]) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        if let Some(ci) = images.iter().find(|i| i.container_name == c.name)
            && let Some(d) = &ci.image_digest
        {
            c.image = Some(pinned(&ci.image, d));
        }
    }
}

/// The user and password a `.dockerconfigjson` holds for `registry`.
pub fn docker_config_credentials(json: &[u8], registry: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let auths = v.get("auths")?.as_object()?;
    let keys = [
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    let docker_hub = ["https://index.docker.io/v1/", "index.docker.io"];
    let entry = keys.iter().find_map(|k| auths.get(k)).or_else(|| {
        (registry == "docker.io")
            .then(|| docker_hub.iter().find_map(|k| auths.get(*k)))
            .flatten()
    })?;
    if let (Some(u), Some(p)) = (entry.get("username"), entry.get("password")) {
        return Some((u.as_str()?.to_string(), p.as_str()?.to_string()));
    }
    let auth = STANDARD.decode(entry.get("auth")?.as_str()?).ok()?;
    let (u, p) = std::str::from_utf8(&auth).ok()?.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Where the kubecs registry is: its host as images name it, and the URL the operator uses.
pub struct KubecsRegistry<'a> {
    pub pull: &'a RegistryPull,
    pub url: &'a str,
}

/// Resolves one image: its digest, or why not (a sentence ending without a period).
pub async fn resolve(
    image: &str,
    ns: &str,
    kubecs: Option<&KubecsRegistry<'_>>,
    credentials: Option<(String, String)>,
) -> Result<String, String> {
    let r = ImageRef::parse(image).ok_or_else(|| format!("'{image}' is not an image reference"))?;
    if let Some(d) = r.digest {
        return Ok(d);
    }
    let ours = kubecs.filter(|k| image_in_registry(image, &k.pull.host));
    let base = r.api_base(ours.map(|k| (k.pull.host.as_str(), k.url)));
    let url = format!("{base}/v2/{}/manifests/{}", r.repository, r.tag);
    let first = match ours {
        Some(k) => {
            let token = k.pull.signer.issue(&task_principal(ns), SystemTime::now());
            Some(basic(TOKEN_USERNAME, &token))
        }
        None => None,
    };
    let answer = head(&url, first.as_deref()).await?;
    let answer = if answer.status == StatusCode::UNAUTHORIZED && ours.is_none() {
        let challenge = answer
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok());
        let authorization =
            crate::challenge::answer(challenge, Some(&r.repository), credentials.as_ref())
                .await
                .map_err(|e| match e {
                    Unanswered::NeedsCredentials => format!(
                        "{} asks for credentials and the task has none the operator may read",
                        r.registry
                    ),
                    Unanswered::Token(e) => e,
                })?;
        match authorization {
            Some(a) => head(&url, Some(&a)).await?,
            None => answer,
        }
    } else {
        answer
    };
    match answer.status {
        s if s.is_success() => answer
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:") || d.starts_with("sha512:"))
            .map(str::to_string)
            .ok_or_else(|| format!("{} sent no Docker-Content-Digest for {image}", r.registry)),
        StatusCode::NOT_FOUND => Err(format!("{image}: not found")),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(format!("{image}: access denied ({})", answer.status))
        }
        s => Err(format!("{} answered {s} for {image}", r.registry)),
    }
}

async fn head(url: &str, authorization: Option<&str>) -> Result<crate::http::Answer, String> {
    let mut b = Request::builder()
        .method(Method::HEAD)
        .uri(url)
        .header(header::ACCEPT, crate::registry::manifest::PULL_ACCEPT);
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    let req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
    crate::http::send(req, "the registry", TIMEOUT)
        .await
        .map_err(|e| e.to_string())
}

/// A container whose tag could not be resolved, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unresolved {
    pub container: String,
    pub image: String,
    pub reason: String,
}

/// The images of a deployment of `spec` in `ns`: each container's image with its digest when
/// version consistency applies and resolution succeeded.
pub async fn resolve_task_definition(
    client: &kube::Client,
    ns: &str,
    spec: &TaskDefinitionSpec,
    kubecs: Option<&KubecsRegistry<'_>>,
) -> (Vec<ContainerImage>, Vec<Unresolved>) {
    let mut images = Vec::new();
    let mut problems = Vec::new();
    for c in &spec.container_definitions {
        let Some(image) = c.image.clone() else {
            continue;
        };
        let mut ci = ContainerImage {
            container_name: c.name.clone(),
            image: image.clone(),
            image_digest: None,
        };
        if c.version_consistency != Some(VersionConsistency::Disabled) {
            let credentials = match &c.repository_credentials {
                Some(rc) => read_credentials(client, ns, &rc.credentials_parameter, &image).await,
                None => None,
            };
            match resolve(&image, ns, kubecs, credentials).await {
                Ok(d) => ci.image_digest = Some(d),
                Err(reason) => problems.push(Unresolved {
                    container: c.name.clone(),
                    image: image.clone(),
                    reason,
                }),
            }
        }
        images.push(ci);
    }
    (images, problems)
}

/// The task's pull credentials for `image`'s registry, if the operator may read their Secret
/// (the chart grants that only when asked: reading Secrets is a power it otherwise lacks).
async fn read_credentials(
    client: &kube::Client,
    ns: &str,
    parameter: &str,
    image: &str,
) -> Option<(String, String)> {
    let name = crate::taskdef::secrets::pull_secret_name(parameter);
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(&name)
        .await
        .ok()??;
    let json = secret.data?.get(".dockerconfigjson")?.0.clone();
    docker_config_credentials(&json, &ImageRef::parse(image)?.registry)
}

/// The service event of a tag left unresolved, in the words of ECS's image resolution.
pub fn unresolved_event(service: &str, u: &Unresolved) -> String {
    format!(
        "(service {service}) was unable to resolve the image digest of container {} ({}): {}. Its tasks use the image as written.",
        u.container, u.image, u.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(registry: &str, repository: &str, tag: &str, digest: Option<&str>) -> ImageRef {
        ImageRef {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: digest.map(String::from),
        }
    }

    #[test]
    fn references_are_normalised_as_docker_does() {
        assert_eq!(
            ImageRef::parse("busybox"),
            Some(r("docker.io", "library/busybox", "latest", None))
        );
        assert_eq!(
            ImageRef::parse("nginx:1.27"),
            Some(r("docker.io", "library/nginx", "1.27", None))
        );
        assert_eq!(
            ImageRef::parse("bitnami/redis:7"),
            Some(r("docker.io", "bitnami/redis", "7", None))
        );
        assert_eq!(
            ImageRef::parse("127.0.0.1:15000/team/app:v2"),
            Some(r("127.0.0.1:15000", "team/app", "v2", None))
        );
        assert_eq!(
            ImageRef::parse("localhost/app"),
            Some(r("localhost", "app", "latest", None))
        );
        assert_eq!(
            ImageRef::parse("ghcr.io/o/app:v1@sha256:abc"),
            Some(r("ghcr.io", "o/app", "v1", Some("sha256:abc")))
        );
        assert_eq!(ImageRef::parse("app:"), None);
        assert_eq!(
            ImageRef::parse("docker.io/busybox").unwrap().api_base(None),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            ImageRef::parse("127.0.0.1:15000/app")
                .unwrap()
                .api_base(Some(("127.0.0.1:15000", "http://127.0.0.1:15000/"))),
            "http://127.0.0.1:15000"
        );
    }

    #[test]
    fn pinning_keeps_the_tag_and_never_pins_twice() {
        assert_eq!(pinned("h/app:v1", "sha256:1"), "h/app:v1@sha256:1");
        assert_eq!(pinned("h/app@sha256:0", "sha256:1"), "h/app@sha256:0");
        assert_eq!(unpinned("h:5000/app:v1@sha256:1"), "h:5000/app:v1");
        assert_eq!(unpinned("h:5000/app@sha256:1"), "h:5000/app@sha256:1");
        assert_eq!(
            running_digest(Some("docker.io/library/x@sha256:9"), Some("x:v1@sha256:1")),
            Some("sha256:9".into())
        );
        assert_eq!(
            running_digest(None, Some("x:v1@sha256:1")),
            Some("sha256:1".into())
        );
        assert_eq!(running_digest(Some(""), Some("x:v1")), None);
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "web", "image": "h/web:v1"}, {"name": "log", "image": "h/log:v1"}],
                     "initContainers": [{"name": "init", "image": "h/init:v1"}]}
        }))
        .unwrap();
        let images = vec![
            ContainerImage {
                container_name: "web".into(),
                image: "h/web:v1".into(),
                image_digest: Some("sha256:aa".into()),
            },
            ContainerImage {
                container_name: "log".into(),
                image: "h/log:v1".into(),
                image_digest: None,
            },
            ContainerImage {
                container_name: "init".into(),
                image: "h/init:v1".into(),
                image_digest: Some("sha256:bb".into()),
            },
        ];
        pin_pod(&mut pod, &images);
        let spec = pod.spec.unwrap();
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some("h/web:v1@sha256:aa")
        );
        assert_eq!(spec.containers[1].image.as_deref(), Some("h/log:v1"));
        assert_eq!(
            spec.init_containers.unwrap()[0].image.as_deref(),
            Some("h/init:v1@sha256:bb")
        );
    }

    #[test]
    fn docker_configs_are_read() {
        let cfg = serde_json::json!({"auths": {
            "ghcr.io": {"username": "u", "password": "p"},
            "https://index.docker.io/v1/": {"auth": STANDARD.encode("hub:secret")},
        }})
        .to_string();
        assert_eq!(
            docker_config_credentials(cfg.as_bytes(), "ghcr.io"),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(
            docker_config_credentials(cfg.as_bytes(), "docker.io"),
            Some(("hub".into(), "secret".into()))
        );
        assert_eq!(docker_config_credentials(cfg.as_bytes(), "quay.io"), None);
    }
}
