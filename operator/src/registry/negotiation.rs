//! HTTP caching and content negotiation of content-addressed responses: pure decisions on
//! request headers, for the manifest and blob handlers.
//!
//! - A blob (or a manifest fetched by digest) never changes: `Cache-Control` lets clients and
//!   proxies keep it for a year. Not `public`: requests carry credentials, so a shared cache
//!   must not serve it to others.
//! - The ETag is the quoted digest; `If-None-Match` naming it (quoted or not, as distribution
//!   accepts, weak or strong, or `*`) is 304 Not Modified.
//! - A manifest GET honours `Accept` as distribution does: a stored OCI manifest or index, or
//!   a Docker manifest list, whose media type the client did not list is MANIFEST_UNKNOWN (the
//!   registry converts nothing). A Docker schema 2 manifest is always served (distribution
//!   serves it to clients that predate `Accept`). Without `Accept` at all, or with a wildcard
//!   that covers the type, the stored manifest is served.

use axum::http::{HeaderMap, header};

use super::digest::Digest;
use super::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// For immutable, content-addressed responses.
pub const IMMUTABLE: &str = "max-age=31536000, immutable";

/// Whether `If-None-Match` matches the resource whose ETag is `"<digest>"`.
pub fn not_modified(headers: &HeaderMap, digest: &Digest) -> bool {
    let want = digest.to_string();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| {
            let tag = tag.trim();
            // Weak comparison (RFC 9110 13.1.2): W/ does not matter for If-None-Match.
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(tag)
        })
        .any(|tag| tag == "*" || tag == want)
}

/// Media types whose absence from `Accept` makes a stored manifest unacceptable: the ones
/// distribution checks (it rewrites a Docker manifest list into a schema 1 manifest, which
/// this registry does not have, so that is unacceptable too).
const NEGOTIATED: [&str; 3] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST];

/// Whether a manifest of `media_type` may answer a request with these headers.
pub fn acceptable(headers: &HeaderMap, media_type: &str) -> bool {
    if media_type == DOCKER_MANIFEST || !NEGOTIATED.contains(&media_type) {
        return true;
    }
    let mut listed = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|r| {
            r.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|r| !r.is_empty())
        .peekable();
    if listed.peek().is_none() {
        return true;
    }
    let (kind, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    listed.any(|r| r == media_type || r == "*/*" || r == format!("{kind}/*"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_forms() {
        let d = Digest::sha256(b"x");
        let inm = |v: &str| not_modified(&headers(&[(header::IF_NONE_MATCH, v)]), &d);
        assert!(inm(&format!("\"{d}\"")));
        assert!(inm(&d.to_string()), "unquoted, as distribution accepts");
        assert!(inm(&format!("W/\"{d}\"")));
        assert!(inm(&format!("\"sha256:other\", \"{d}\"")));
        assert!(inm("*"));
        assert!(!inm("\"sha256:other\""));
        assert!(!not_modified(&HeaderMap::new(), &d));
    }

    #[test]
    fn accept_decides_oci_types_only() {
        let accept = |v: &str, t: &str| acceptable(&headers(&[(header::ACCEPT, v)]), t);
        assert!(
            acceptable(&HeaderMap::new(), OCI_MANIFEST),
            "no Accept: as stored"
        );
        assert!(accept(OCI_MANIFEST, OCI_MANIFEST));
        assert!(accept(
            &format!("{OCI_INDEX}, {OCI_MANIFEST};q=0.5"),
            OCI_MANIFEST
        ));
        assert!(!accept(OCI_INDEX, OCI_MANIFEST));
        assert!(!accept(OCI_MANIFEST, OCI_INDEX));
        assert!(!accept(DOCKER_MANIFEST, DOCKER_MANIFEST_LIST));
        assert!(
            accept(OCI_MANIFEST, DOCKER_MANIFEST),
            "schema 2 is always served"
        );
        assert!(accept("*/*", OCI_INDEX));
        assert!(accept("application/*", OCI_INDEX));
        assert!(!accept("text/*", OCI_INDEX));
        assert!(
            accept(OCI_INDEX, "application/vnd.example+json"),
            "not negotiated"
        );
        // Several headers count together.
        let two = headers(&[
            (header::ACCEPT, DOCKER_MANIFEST),
            (header::ACCEPT, OCI_INDEX),
        ]);
        assert!(acceptable(&two, OCI_INDEX));
    }
}
