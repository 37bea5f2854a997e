//! Manifest validation: what a pushed manifest is, what it references, and its referrer
//! descriptor. Pure: the caller checks the references against storage.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type a runtime may pull, for an `Accept` header: the digest answered is
/// the one the pull gets.
pub const PULL_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest accepted (the spec's suggested floor, and ECR's limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Layer media types whose blobs are not expected in the registry (image-spec
/// "non-distributable", Docker "foreign"): a manifest may reference them without pushing.
const NONDISTRIBUTABLE_PREFIXES: [&str; 2] = [
    "application/vnd.oci.image.layer.nondistributable.",
    "application/vnd.docker.image.rootfs.foreign.",
];

/// Whether a manifest is an image (config + layers) or an index of manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

/// A content descriptor as manifests and the referrers API carry it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What the registry needs to know about a valid manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedManifest {
    pub media_type: String,
    pub kind: ManifestKind,
    /// Blobs that must be in the repository: the config and the distributable layers.
    pub blobs: Vec<Digest>,
    /// Manifests an index lists, which must be in the repository.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for an image the config media type (the referrers API's rule).
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// Config plus layer sizes (an image), or the sizes of the listed manifests (an index):
    /// what ECR reports as the image size.
    pub content_size: u64,
}

/// Why a manifest is refused (all MANIFEST_INVALID on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest must be a JSON object")]
    NotObject,
    #[error("manifest schemaVersion must be 2")]
    SchemaVersion,
    #[error("unsupported manifest media type '{0}'")]
    UnsupportedMediaType(String),
    #[error("manifest mediaType '{body}' does not match the Content-Type '{header}'")]
    MediaTypeMismatch { header: String, body: String },
    #[error("invalid descriptor at {path}: {reason}")]
    Descriptor { path: String, reason: String },
    #[error("manifest field '{0}' is missing or has the wrong type")]
    Field(&'static str),
}

/// Strips parameters from a Content-Type (`a/b; charset=x` -> `a/b`).
pub fn base_media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Validates a pushed manifest. The media type comes from the Content-Type header when one is
/// given (and must then agree with the body's `mediaType`), else from the body.
pub fn parse_manifest(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<ParsedManifest, ManifestError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
    let obj = v.as_object().ok_or(ManifestError::NotObject)?;
    let body_type = obj.get("mediaType").and_then(Value::as_str);
    let header_type = content_type
        .map(base_media_type)
        .filter(|t| !t.is_empty() && *t != "application/octet-stream" && *t != "application/json");
    let media_type = match (header_type, body_type) {
        (Some(h), Some(b)) if h != b => {
            return Err(ManifestError::MediaTypeMismatch {
                header: h.to_string(),
                body: b.to_string(),
            });
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) => b.to_string(),
        // No type anywhere: an index lists manifests, an image has a config.
        (None, None) if obj.contains_key("manifests") => OCI_INDEX.to_string(),
        (None, None) => OCI_MANIFEST.to_string(),
    };
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => ManifestKind::Image,
        OCI_INDEX | DOCKER_MANIFEST_LIST => ManifestKind::Index,
        other => return Err(ManifestError::UnsupportedMediaType(other.to_string())),
    };
    if obj.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(ManifestError::SchemaVersion);
    }
    let subject = obj
        .get("subject")
        .filter(|s| !s.is_null())
        .map(|s| descriptor(s, "subject"))
        .transpose()?
        .map(|d| d.digest);
    let annotations = string_map(obj.get("annotations"), "annotations")?;
    let artifact_type = match obj.get("artifactType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ManifestError::Field("artifactType")),
    };
    let mut parsed = ParsedManifest {
        media_type,
        kind,
        blobs: Vec::new(),
        children: Vec::new(),
        subject,
        artifact_type,
        annotations,
        content_size: 0,
    };
    // What is listed already, so that de-duplication stays linear.
    let mut seen = HashSet::new();
    match kind {
        ManifestKind::Image => {
            let config = descriptor(
                obj.get("config").ok_or(ManifestError::Field("config"))?,
                "config",
            )?;
            parsed.content_size = config.size;
            if parsed.artifact_type.is_none() {
                parsed.artifact_type = Some(config.media_type.clone());
            }
            seen.insert(config.digest.clone());
            parsed.blobs.push(config.digest);
            let layers = match obj.get("layers") {
                Some(Value::Array(a)) => a.as_slice(),
                // Docker and OCI both require the list; an artifact may leave it empty.
                _ => return Err(ManifestError::Field("layers")),
            };
            for (i, l) in layers.iter().enumerate() {
                let d = descriptor(l, &format!("layers[{i}]"))?;
                parsed.content_size = parsed.content_size.saturating_add(d.size);
                let external = NONDISTRIBUTABLE_PREFIXES
                    .iter()
                    .any(|p| d.media_type.starts_with(p))
                    || l.get("urls")
                        .and_then(Value::as_array)
                        .is_some_and(|u| !u.is_empty());
                if !external && seen.insert(d.digest.clone()) {
                    parsed.blobs.push(d.digest);
                }
            }
        }
        ManifestKind::Index => {
            let manifests = match obj.get("manifests") {
                Some(Value::Array(a)) => a.as_slice(),
                _ => return Err(ManifestError::Field("manifests")),
            };
            for (i, m) in manifests.iter().enumerate() {
                let d = descriptor(m, &format!("manifests[{i}]"))?;
                parsed.content_size = parsed.content_size.saturating_add(d.size);
                if seen.insert(d.digest.clone()) {
                    parsed.children.push(d.digest);
                }
            }
        }
    }
    Ok(parsed)
}

/// Reads a descriptor: mediaType (string), digest (valid), size (non-negative integer).
fn descriptor(v: &Value, path: &str) -> Result<Descriptor, ManifestError> {
    let bad = |reason: &str| ManifestError::Descriptor {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let o = v.as_object().ok_or_else(|| bad("not an object"))?;
    let media_type = o
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("mediaType missing"))?;
    let digest = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("digest missing"))?
        .parse::<Digest>()
        .map_err(|e| bad(&e.to_string()))?;
    let size = o
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("size must be a non-negative integer"))?;
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        artifact_type: o
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_string),
        annotations: string_map(o.get("annotations"), path)?,
    })
}

fn string_map(v: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, ManifestError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| ManifestError::Descriptor {
                        path: path.to_string(),
                        reason: format!("annotation '{k}' is not a string"),
                    })
            })
            .collect(),
        Some(_) => Err(ManifestError::Descriptor {
            path: path.to_string(),
            reason: "annotations must be an object".into(),
        }),
    }
}

impl ParsedManifest {
    /// The descriptor of this manifest in a referrers response.
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest,
            size,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        Digest::sha256(&[n]).to_string()
    }

    #[test]
    fn image_manifest_references() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(1), "size": 10},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(2), "size": 20},
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": d(3), "size": 30},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d(4), "size": 40, "urls": ["https://x"]},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(2), "size": 20}
            ],
            "annotations": {"a": "b"}
        })
        .to_string();
        let m = parse_manifest(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Image);
        assert_eq!(
            m.blobs,
            vec![d(1).parse().unwrap(), d(2).parse().unwrap()],
            "nondistributable and URL layers are not required"
        );
        assert_eq!(m.content_size, 120);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(m.annotations["a"], "b");
    }

    /// 40,000 layers (near the 4 MiB cap), every one listed twice, and an index as long:
    /// parsing is linear (a quadratic de-duplication took seconds here).
    #[test]
    fn forty_thousand_layers_parse_in_linear_time() {
        let n = 40_000u32;
        let digest = |i: u32| Digest::sha256(&i.to_be_bytes()).to_string();
        let layer = |i| serde_json::json!({"mediaType": "l", "digest": digest(i), "size": 1});
        let layers: Vec<_> = (0..2 * n).map(|i| layer(i % n)).collect();
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "c", "digest": d(0), "size": 1},
            "layers": layers,
        })
        .to_string();
        let m = parse_manifest(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.blobs.len(), n as usize + 1);
        assert_eq!(m.content_size, 2 * n as u64 + 1);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": layers,
        })
        .to_string();
        let m = parse_manifest(index.as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(m.children.len(), n as usize);
    }

    #[test]
    fn artifact_type_and_subject() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example+type",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d(1), "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d(9), "size": 5}
        })
        .to_string();
        let m = parse_manifest(body.as_bytes(), None).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.subject, Some(d(9).parse().unwrap()));
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.example+type")
        );
    }

    #[test]
    fn index_children() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d(1), "size": 100, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_INDEX, "digest": d(2), "size": 200}
            ]
        })
        .to_string();
        let m = parse_manifest(body.as_bytes(), Some(DOCKER_MANIFEST_LIST)).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.children.len(), 2);
        assert!(m.blobs.is_empty());
        assert_eq!(m.content_size, 300);
    }

    #[test]
    fn refusals() {
        let ok_cfg = serde_json::json!({"mediaType": "x", "digest": d(1), "size": 1});
        let cases: Vec<(Value, Option<&str>)> = vec![
            (serde_json::json!([1]), None),
            (
                serde_json::json!({"schemaVersion": 1, "config": ok_cfg, "layers": []}),
                None,
            ),
            (
                serde_json::json!({"schemaVersion": 2, "config": ok_cfg}),
                Some(OCI_MANIFEST),
            ),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
                Some(OCI_MANIFEST),
            ),
            (
                serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:bad", "size": 1}, "layers": []}),
                None,
            ),
            (
                serde_json::json!({"schemaVersion": 2, "config": {"mediaType": "x", "digest": d(1), "size": -1}, "layers": []}),
                None,
            ),
            (
                serde_json::json!({"schemaVersion": 2, "config": ok_cfg, "layers": []}),
                Some("application/vnd.unknown+json"),
            ),
        ];
        for (body, ct) in cases {
            assert!(
                parse_manifest(body.to_string().as_bytes(), ct).is_err(),
                "{body} accepted"
            );
        }
        assert!(matches!(
            parse_manifest(b"{not json", None),
            Err(ManifestError::Json(_))
        ));
    }
}
