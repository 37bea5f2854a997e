//! `kubecs registry fsck`: checks what a store promises, after a disk fault or a crash. Every
//! blob hashes to its name; every stored manifest hashes to its name and its blobs exist and
//! are linked into its repository; every index's child manifests are stored; every tag points
//! at a stored manifest. Read-only: it reports, it repairs nothing.

use std::fmt;
use std::io;

use futures::StreamExt;

use super::backend::Backend;
use super::layout;
use super::storage::Storage;
use super::store::{Store, digest_of_blob_key, digest_of_key};

/// What is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A blob's content does not hash to its name.
    CorruptBlob { key: String, actual: String },
    /// A manifest's bytes do not hash to its name, or cannot be read.
    CorruptManifest { key: String, detail: String },
    /// A manifest references a blob the store does not hold, or its repository does not link.
    MissingBlob {
        repository: String,
        manifest: String,
        blob: String,
    },
    /// An index lists a manifest its repository does not hold.
    MissingChild {
        repository: String,
        manifest: String,
        child: String,
    },
    /// A tag points at a manifest its repository does not hold, or cannot be read.
    DanglingTag {
        repository: String,
        tag: String,
        detail: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::CorruptBlob { key, actual } => {
                write!(f, "corrupt blob {key}: its content hashes to {actual}")
            }
            Finding::CorruptManifest { key, detail } => {
                write!(f, "corrupt manifest {key}: {detail}")
            }
            Finding::MissingBlob {
                repository,
                manifest,
                blob,
            } => write!(
                f,
                "{repository}@{manifest} references {blob}, which the repository does not hold"
            ),
            Finding::MissingChild {
                repository,
                manifest,
                child,
            } => write!(
                f,
                "{repository}@{manifest} lists {child}, which the repository does not hold"
            ),
            Finding::DanglingTag {
                repository,
                tag,
                detail,
            } => write!(f, "{repository}:{tag} {detail}"),
        }
    }
}

/// What was checked and what was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
    pub tags: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks the whole store.
pub async fn check<B: Backend>(store: &Store<B>) -> io::Result<Report> {
    let backend = store.backend();
    let mut report = Report::default();
    for (key, _) in backend.list(layout::BLOBS).await? {
        let Some(digest) = digest_of_blob_key(&key) else {
            continue;
        };
        let Some(read) = backend.get(&key, None).await? else {
            continue;
        };
        let mut hasher = digest.algorithm().hasher();
        let mut body = read.stream;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            report.bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        report.blobs += 1;
        let actual = hasher.finish();
        if actual != digest {
            report.findings.push(Finding::CorruptBlob {
                key,
                actual: actual.to_string(),
            });
        }
    }
    for repo in store.list_repositories().await.map_err(io::Error::other)? {
        for (key, _) in backend.list(&layout::manifests(&repo)).await? {
            let Some(digest) = digest_of_key(&key) else {
                continue;
            };
            report.manifests += 1;
            let manifest = match store.get_manifest(&repo, &digest).await {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    report.findings.push(Finding::CorruptManifest {
                        key,
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            let mut hasher = digest.algorithm().hasher();
            hasher.update(&manifest.bytes);
            let actual = hasher.finish();
            if actual != digest {
                report.findings.push(Finding::CorruptManifest {
                    key: key.clone(),
                    detail: format!("its bytes hash to {actual}"),
                });
            }
            let meta = match backend.read(&key).await? {
                Some(v) => layout::decode_manifest(v.bytes).map(|(m, _)| m),
                None => continue,
            };
            let Ok(meta) = meta else {
                continue;
            };
            for blob in &meta.blobs {
                let linked = store
                    .blob_size(&repo, blob)
                    .await
                    .map_err(io::Error::other)?;
                if linked.is_none() {
                    report.findings.push(Finding::MissingBlob {
                        repository: repo.clone(),
                        manifest: digest.to_string(),
                        blob: blob.to_string(),
                    });
                }
            }
            for child in &meta.children {
                if store
                    .get_manifest(&repo, child)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                {
                    report.findings.push(Finding::MissingChild {
                        repository: repo.clone(),
                        manifest: digest.to_string(),
                        child: child.to_string(),
                    });
                }
            }
        }
        for tag in store.list_tags(&repo).await.map_err(io::Error::other)? {
            report.tags += 1;
            let detail = match store.resolve_tag(&repo, &tag).await {
                Ok(Some(d)) => match store.get_manifest(&repo, &d).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => format!("points at {d}, which the repository does not hold"),
                    Err(e) => format!("points at {d}, which cannot be read: {e}"),
                },
                Ok(None) => continue,
                Err(e) => format!("cannot be read: {e}"),
            };
            report.findings.push(Finding::DanglingTag {
                repository: repo.clone(),
                tag,
                detail,
            });
        }
    }
    Ok(report)
}
