//! AWS Signature Version 4, verified: what the aws CLI, boto3 and every SDK sign requests with.
//! Pure: the request's parts, the caller's secret and the clock in; the caller's key id or
//! AWS's refusal out.
//!
//! The server recomputes the signature from the canonical request exactly as the client did
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>) and
//! compares in constant time. A request more than 15 minutes off the server's clock is
//! refused, as AWS refuses it, so a captured request cannot be replayed later.

use std::fmt::Write as _;

use axum::http::{self, HeaderMap};
use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::fmt::strtime;
use sha2::{Digest, Sha256};

use super::error::AwsError;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `X-Amz-Date` may be from the server's clock.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The parsed `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase, in the order signed.
    pub signed_headers: Vec<String>,
    /// Lowercase hex.
    pub signature: String,
}

/// The `Authorization` header of a signed request, or AWS's refusal of an unsigned one.
pub fn authorization(headers: &HeaderMap) -> Result<Authorization, AwsError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err(AwsError::missing_authentication());
    };
    let value = value
        .to_str()
        .map_err(|_| AwsError::incomplete_signature("Authorization header is not ASCII"))?;
    parse_authorization(value)
}

fn parse_authorization(value: &str) -> Result<Authorization, AwsError> {
    let Some(rest) = value.strip_prefix(ALGORITHM) else {
        return Err(AwsError::incomplete_signature(&format!(
            "Unsupported authorization type: {}",
            value.split_whitespace().next().unwrap_or_default()
        )));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let missing = |name: &str| {
        AwsError::incomplete_signature(&format!(
            "Authorization header requires '{name}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(AwsError::incomplete_signature(&format!(
            "Credential should be scoped to a valid region, not '{}'.",
            scope.get(2).unwrap_or(&"")
        )));
    };
    if key.is_empty() || date.len() != 8 {
        return Err(AwsError::incomplete_signature(&format!(
            "Credential should be scoped correctly: {credential}"
        )));
    }
    Ok(Authorization {
        access_key_id: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// The parts of a request that were signed.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The request's `X-Amz-Date`, checked against `now` and the credential's scope date.
pub fn request_time(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    now: Timestamp,
) -> Result<Timestamp, AwsError> {
    let Some(raw) = req.headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else {
        return Err(AwsError::incomplete_signature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let at = basic_iso8601(raw)
        .ok_or_else(|| AwsError::incomplete_signature(&format!("Invalid X-Amz-Date: {raw}")))?;
    let fmt = |t: Timestamp| strtime::format("%Y%m%dT%H%M%SZ", t).unwrap_or_default();
    let skew = at.as_second() - now.as_second();
    let window = k8s_openapi::jiff::SignedDuration::from_secs(MAX_SKEW_SECONDS);
    if skew < -MAX_SKEW_SECONDS {
        return Err(AwsError::invalid_signature(format!(
            "Signature expired: {raw} is now earlier than {} ({} - 15 min.)",
            fmt(now - window),
            fmt(now)
        )));
    }
    if skew > MAX_SKEW_SECONDS {
        return Err(AwsError::invalid_signature(format!(
            "Signature not yet current: {raw} is still later than {} ({} + 15 min.)",
            fmt(now + window),
            fmt(now)
        )));
    }
    if !raw.starts_with(&auth.date) {
        return Err(AwsError::invalid_signature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{raw}'.",
            auth.date,
            &raw[..8.min(raw.len())]
        )));
    }
    Ok(at)
}

/// `20261201T172204Z` (ISO 8601 basic format, UTC).
fn basic_iso8601(raw: &str) -> Option<Timestamp> {
    let b = raw.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits =
        |r: std::ops::Range<usize>| raw.get(r).filter(|d| d.bytes().all(|c| c.is_ascii_digit()));
    let extended = format!(
        "{}-{}-{}T{}:{}:{}Z",
        digits(0..4)?,
        digits(4..6)?,
        digits(6..8)?,
        digits(9..11)?,
        digits(11..13)?,
        digits(13..15)?
    );
    extended.parse().ok()
}

/// Checks the signature of `req` with `secret`, the secret access key of
/// `auth.access_key_id`. The time must already have passed [`request_time`].
pub fn verify(req: &SignedRequest<'_>, auth: &Authorization, secret: &str) -> Result<(), AwsError> {
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(AwsError::invalid_signature(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".to_string(),
        ));
    }
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let canonical = canonical_request(req, &auth.signed_headers);
    let to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [&auth.region, &auth.service] {
        key = hmac(&key, part.as_bytes());
    }
    key = hmac(&key, b"aws4_request");
    let presented = unhex(&auth.signature).ok_or_else(signature_mismatch)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&presented)
        .map_err(|_| signature_mismatch())
}

fn signature_mismatch() -> AwsError {
    AwsError::invalid_signature(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".to_string(),
    )
}

/// The canonical request: method, URI, query, headers, signed header names, payload hash.
fn canonical_request(req: &SignedRequest<'_>, signed: &[String]) -> String {
    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed {
        let values: Vec<String> = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let _ = writeln!(out, "{name}:{}", values.join(","));
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(&hex(&Sha256::digest(req.body)));
    out
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every path segment URI-encoded once more (AWS signs the encoded path of non-S3 services
/// encoded again), after `.`/`..` normalisation.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out: String = segments
        .iter()
        .map(|s| format!("/{}", uri_encode(s.as_bytes())))
        .collect();
    if out.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    out
}

/// RFC 3986 encoding of everything but the unreserved characters, upper-case hex.
fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const BODY: &[u8] = br#"{"clusterName": "prod"}"#;

    /// A request botocore 1.43 signed (SigV4Auth, service ecs, us-east-1).
    fn botocore_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:18443"),
            (
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.CreateCluster",
            ),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-date", "20261201T172204Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAKUBECSEXAMPLE01/20261201/us-east-1/ecs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=e4d2ea669edeae0b42d4275eb6ae67cc8bdb1c228e2553e885f2336f92566713",
            ),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        h
    }

    fn request<'a>(h: &'a HeaderMap, body: &'a [u8]) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: h,
            body,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_botocore_signature_verifies() {
        let h = botocore_headers();
        let auth = authorization(&h).unwrap();
        assert_eq!(auth.access_key_id, "AKIAKUBECSEXAMPLE01");
        assert_eq!(auth.service, "ecs");
        request_time(&request(&h, BODY), &auth, at("2026-12-01T17:30:00Z")).unwrap();
        verify(&request(&h, BODY), &auth, SECRET).unwrap();
    }

    #[test]
    fn a_changed_body_header_or_secret_is_refused() {
        let h = botocore_headers();
        let auth = authorization(&h).unwrap();
        let tampered = br#"{"clusterName": "prue"}"#;
        let e = verify(&request(&h, tampered), &auth, SECRET).unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");
        assert!(e.message.starts_with("The request signature we calculated"));
        assert!(verify(&request(&h, BODY), &auth, "another-secret").is_err());
        let mut h2 = h.clone();
        h2.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonEC2ContainerServiceV20141113.DeleteCluster"),
        );
        assert!(verify(&request(&h2, BODY), &auth, SECRET).is_err());
    }

    #[test]
    fn requests_more_than_15_minutes_off_are_refused_in_aws_words() {
        let h = botocore_headers();
        let auth = authorization(&h).unwrap();
        let e = request_time(&request(&h, BODY), &auth, at("2026-12-01T17:37:05Z")).unwrap_err();
        assert_eq!(
            e.message,
            "Signature expired: 20261201T172204Z is now earlier than 20261201T172205Z (20261201T173705Z - 15 min.)"
        );
        let e = request_time(&request(&h, BODY), &auth, at("2026-12-01T17:07:03Z")).unwrap_err();
        assert!(
            e.message.starts_with("Signature not yet current"),
            "{}",
            e.message
        );
        // 15 minutes is still accepted.
        request_time(&request(&h, BODY), &auth, at("2026-12-01T17:37:04Z")).unwrap();
    }

    #[test]
    fn unsigned_and_malformed_authorizations_are_refused() {
        let e = authorization(&HeaderMap::new()).unwrap_err();
        assert_eq!(e.code, "MissingAuthenticationTokenException");
        assert_eq!(e.message, "Missing Authentication Token");
        for bad in [
            "Basic QVdTOnNlY3JldA==",
            "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/ecs/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/2026/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AKID/20261201/ecs/aws4_request, SignedHeaders=host, Signature=00",
        ] {
            let e = parse_authorization(bad).unwrap_err();
            assert_eq!(e.code, "IncompleteSignatureException", "{bad}");
        }
    }

    #[test]
    fn host_must_be_signed() {
        let h = botocore_headers();
        let mut auth = authorization(&h).unwrap();
        auth.signed_headers.retain(|s| s != "host");
        let e = verify(&request(&h, BODY), &auth, SECRET).unwrap_err();
        assert!(e.message.contains("'Host' must be a 'SignedHeader'"));
    }

    #[test]
    fn canonical_parts_follow_aws_rules() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("/a b/%41"), "/a%20b/%2541");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("x=a%20b&y"), "x=a%20b&y=");
        assert_eq!(collapse_spaces("  a   b "), "a b");
    }
}
