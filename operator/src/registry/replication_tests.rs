//! Replication into a real destination: a second in-process kubecs registry served on a
//! 127.0.0.1 listener (Basic ECR tokens, create on push of IMMUTABLE repositories), fed by a [`Replicator`] over a
//! source store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use serde_json::json;
use tokio::net::TcpListener;

use super::digest::Digest;
use super::manifest::{OCI_INDEX, OCI_MANIFEST, parse_manifest};
use super::replication::{Replicator, StaticConfig, StaticDestination, records};
use super::storage::ManifestRecord;
use super::tests::CreatesImmutable;
use super::*;
use crate::api::replication_configuration::{
    ReplicationDestination, ReplicationRule, RepositoryFilter, RepositoryFilterType,
};
use crate::api::repository_creation_template::RctAppliedFor;
use crate::ecr::replication::ReplicationStatus;

/// The destination: a kubecs registry on a listener, its store and what it created.
struct Destination {
    url: String,
    storage: Arc<dyn Storage>,
    created: Arc<CreatesImmutable>,
    token_file: tempfile::NamedTempFile,
    _dir: tempfile::TempDir,
}

async fn destination() -> Destination {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path()).unwrap());
    let signer = TokenSigner::new(vec![5u8; 32]).unwrap();
    let created = Arc::new(CreatesImmutable::default());
    // It replicates everything pushed to it on (its worker never runs: only its queue is
    // looked at), except what is replicated to it.
    let onward = StaticConfig {
        rules: vec![ReplicationRule {
            destinations: vec![west()],
            repository_filters: vec![],
        }],
        destination_registries: vec![],
    };
    let app = router(Arc::new(Registry {
        storage: storage.clone(),
        policy: created.clone(),
        auth: Authenticator::new(signer.clone()),
        config: RegistryConfig {
            create_on_push: true,
            ..Default::default()
        },
        changes: None,
        uploads: Default::default(),
        pulls: Default::default(),
        pull_through: None,
        replication: Some(Replicator::new(
            Arc::new(onward),
            storage.clone(),
            "2".into(),
            None,
        )),
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let limits = serve::ServeLimits {
        header_read_timeout: Duration::from_secs(5),
        body_idle_timeout: Duration::from_secs(5),
        max_connections: 64,
    };
    tokio::spawn(serve::serve(listener, app, limits, std::future::pending()));
    let replicator = Principal {
        username: "replicator".into(),
        groups: vec![],
    };
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        token_file.path(),
        signer.issue(&replicator, SystemTime::now()),
    )
    .unwrap();
    Destination {
        url,
        storage,
        created,
        token_file,
        _dir: dir,
    }
}

fn west() -> ReplicationDestination {
    ReplicationDestination {
        region: "kubecs-west".into(),
        registry_id: "000000000002".into(),
    }
}

fn config(d: &Destination) -> StaticConfig {
    StaticConfig {
        rules: vec![ReplicationRule {
            destinations: vec![west()],
            repository_filters: vec![RepositoryFilter {
                filter: "app".into(),
                filter_type: RepositoryFilterType::PrefixMatch,
            }],
        }],
        destination_registries: vec![StaticDestination {
            region: west().region,
            registry_id: west().registry_id,
            url: d.url.clone(),
            username: Some("AWS".into()),
            password_file: Some(d.token_file.path().to_path_buf()),
        }],
    }
}

async fn put_blob(s: &Arc<dyn Storage>, repo: &str, bytes: &[u8]) -> serde_json::Value {
    let bytes = Bytes::copy_from_slice(bytes);
    let body: storage::ByteStream = Box::pin(futures::stream::iter([Ok::<_, std::io::Error>(
        bytes.clone(),
    )]));
    let d = Digest::sha256(&bytes);
    s.put_blob(repo, &d, body, u64::MAX).await.unwrap();
    json!({"mediaType": "application/octet-stream", "digest": d.to_string(), "size": bytes.len()})
}

async fn put_manifest(s: &Arc<dyn Storage>, repo: &str, m: serde_json::Value) -> Digest {
    let bytes = Bytes::from(m.to_string());
    let media_type = m["mediaType"].as_str().unwrap().to_string();
    let d = Digest::sha256(&bytes);
    let parsed = parse_manifest(&bytes, Some(&media_type)).unwrap();
    let record = ManifestRecord::of(&parsed, &d, bytes.len());
    s.put_manifest(repo, &d, bytes, record).await.unwrap();
    d
}

/// An image manifest of two fresh blobs.
async fn image(s: &Arc<dyn Storage>, repo: &str, salt: &str) -> (Digest, serde_json::Value) {
    let config = put_blob(s, repo, format!("{{\"salt\":\"{salt}\"}}").as_bytes()).await;
    let layer = put_blob(s, repo, format!("layer {salt}").as_bytes()).await;
    let m =
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]});
    let d = put_manifest(s, repo, m.clone()).await;
    let size = m.to_string().len();
    (
        d.clone(),
        json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": size}),
    )
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn an_index_its_platform_images_tag_and_referrers_reach_the_destination_in_order() {
    let dest = destination().await;
    let dir = tempfile::tempdir().unwrap();
    let src: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path()).unwrap());
    let repo = "app/web";
    let (amd, amd_desc) = image(&src, repo, "amd64").await;
    let (arm, arm_desc) = image(&src, repo, "arm64").await;
    let index =
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [amd_desc, arm_desc]});
    let index_size = index.to_string().len();
    let index = put_manifest(&src, repo, index).await;
    src.put_tag(repo, "v1", &index, true).await.unwrap();
    // A signature of the index, pushed before any rule matched (never queued itself).
    let sig_layer = put_blob(&src, repo, b"signature").await;
    let empty = put_blob(&src, repo, b"{}").await;
    let signature = put_manifest(
        &src,
        repo,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.cosign",
            "config": empty, "layers": [sig_layer],
            "subject": {"mediaType": OCI_INDEX, "digest": index.to_string(), "size": index_size}}),
    )
    .await;
    // Another repository, no rule: not copied.
    let (other, _) = image(&src, "other", "x").await;
    let r = Replicator::new(Arc::new(config(&dest)), src.clone(), "1".into(), None);
    r.pushed(repo, &index).await.unwrap();
    r.pushed("other", &other).await.unwrap();
    let worker = tokio::spawn(r.clone().run());
    let dst = dest.storage.clone();
    eventually("the signature at the destination", || {
        let dst = dst.clone();
        let signature = signature.clone();
        async move { matches!(dst.get_manifest(repo, &signature).await, Ok(Some(_))) }
    })
    .await;
    for d in [&amd, &arm, &index] {
        assert!(dst.get_manifest(repo, d).await.unwrap().is_some(), "{d}");
    }
    assert_eq!(
        dst.resolve_tag(repo, "v1").await.unwrap(),
        Some(index.clone())
    );
    assert!(
        records(&*dst, repo).await.unwrap().is_empty(),
        "what is replicated to a registry is not replicated on"
    );
    let referrers = dst.referrers(repo, &index).await.unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, signature);
    assert!(dst.list_tags("other").await.unwrap().is_empty());
    // The destination created the repository with its REPLICATION templates.
    let created = dest.created.0.lock().unwrap().clone();
    assert!(!created.is_empty());
    assert!(
        created
            .iter()
            .all(|(n, s)| n == repo && *s == RctAppliedFor::Replication),
        "{created:?}"
    );
    eventually("both records COMPLETE", || {
        let src = src.clone();
        async move {
            let recs = records(&*src, repo).await.unwrap();
            recs.len() == 2
                && recs.values().all(|r| {
                    r.destinations
                        .iter()
                        .all(|s| s.status == ReplicationStatus::Complete)
                })
        }
    })
    .await;
    // A new tag on the same image is pushed again: only the tag moves.
    src.put_tag(repo, "stable", &index, true).await.unwrap();
    r.pushed(repo, &index).await.unwrap();
    eventually("the new tag at the destination", || {
        let dst = dst.clone();
        let index = index.clone();
        async move { dst.resolve_tag(repo, "stable").await.unwrap() == Some(index) }
    })
    .await;
    worker.abort();
}

#[tokio::test]
async fn an_unreachable_destination_leaves_the_image_in_progress_with_its_failure_code() {
    let mut dest = destination().await;
    // Nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    dest.url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let src: Arc<dyn Storage> = Arc::new(FsStorage::open(dir.path()).unwrap());
    let (d, _) = image(&src, "app", "down").await;
    let r = Replicator::new(Arc::new(config(&dest)), src.clone(), "1".into(), None);
    r.pushed("app", &d).await.unwrap();
    let worker = tokio::spawn(r.clone().run());
    eventually("a failed attempt", || {
        let src = src.clone();
        async move {
            records(&*src, "app").await.unwrap().values().any(|r| {
                r.destinations[0].attempts >= 1
                    && r.destinations[0].status == ReplicationStatus::InProgress
                    && r.destinations[0].failure_code
                        == Some(crate::ecr::replication::FailureCode::DestinationUnavailable)
            })
        }
    })
    .await;
    worker.abort();
}
