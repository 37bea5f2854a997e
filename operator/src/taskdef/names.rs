//! ECS names in Kubernetes: container, volume and port names, label values, annotation keys.
//!
//! ECS allows `[a-zA-Z0-9_-]{1,255}` for container and volume names; Kubernetes wants
//! DNS-1123 labels (`[a-z0-9-]{1,63}`, alphanumeric at both ends). A name that is already
//! valid is kept; any other is lowercased, each invalid character becomes `-`, and a name
//! longer than 63 characters is cut and suffixed with a hash of the original, so distinct
//! ECS names stay distinct. The pod records the mapping (see
//! [`super::annotations::CONTAINERS`]).

use std::collections::BTreeSet;

/// FNV-1a, 64 bits: a stable short hash for shortened names.
pub fn fnv64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether `s` is a DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Lowercases `s` and turns every character outside `allowed` into `-`, collapsing runs and
/// trimming non-alphanumeric ends.
fn squash(s: &str, allowed: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if allowed(c) { c } else { '-' };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// Cuts `s` to `max` characters, replacing the tail with a hash of `original` when needed.
fn fit(s: String, original: &str, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let hash = format!("{:010x}", fnv64(original) & 0xff_ffff_ffff);
    let keep = max - hash.len() - 1;
    let head = s[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// `s` as a DNS-1123 label (container, volume and pod host names).
pub fn dns_label(s: &str) -> String {
    if is_dns_label(s) {
        return s.to_string();
    }
    let squashed = squash(s, |c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let base = if squashed.is_empty() {
        format!("x{:08x}", fnv64(s) as u32)
    } else {
        squashed
    };
    fit(base, s, 63)
}

/// `s` as a DNS-1123 subdomain (Secret, ServiceAccount and PersistentVolumeClaim names).
pub fn dns_subdomain(s: &str) -> String {
    if is_dns_subdomain(s) {
        return s.to_string();
    }
    let squashed = squash(s, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'
    });
    // No empty labels: `a..b` -> `a.b`; no label may start or end with `-`.
    let labels: Vec<String> = squashed
        .split('.')
        .map(|l| l.trim_matches('-').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let joined = labels.join(".");
    let base = if joined.is_empty() {
        format!("x{:08x}", fnv64(s) as u32)
    } else {
        joined
    };
    fit(base, s, 253)
}

/// Whether `s` is a valid label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric ends.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// `s` as a label value: kept when valid, else cut to 52 characters plus a hash.
pub fn label_value(s: &str) -> String {
    if is_label_value(s) {
        return s.to_string();
    }
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    fit(cleaned, s, 63)
}

/// Whether `s` is a valid annotation or label key: an optional DNS subdomain prefix and `/`,
/// then a name of at most 63 `[A-Za-z0-9._-]` with alphanumeric ends.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return false;
    }
    !name.is_empty() && is_label_value(name)
}

/// Whether `s` is a valid Secret / ConfigMap key: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s != "."
        && s != ".."
}

/// `s` as a Secret key: every character outside `[-._a-zA-Z0-9]` becomes `_`.
pub fn config_key(s: &str) -> String {
    if is_config_key(s) {
        return s.to_string();
    }
    let k: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if k.is_empty() || k == "." || k == ".." {
        "value".to_string()
    } else {
        k
    }
}

/// Whether `s` is a valid port name (IANA_SVC_NAME): at most 15 of `[a-z0-9-]`, at least one
/// letter, no leading, trailing or doubled `-`.
pub fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Makes `name` unique among `used` by appending `-2`, `-3`..., and records it.
pub fn unique(name: String, used: &mut BTreeSet<String>) -> String {
    if used.insert(name.clone()) {
        return name;
    }
    for i in 2.. {
        let suffix = format!("-{i}");
        let base = if name.len() + suffix.len() > 63 {
            name[..63 - suffix.len()].trim_end_matches('-').to_string()
        } else {
            name.clone()
        };
        let candidate = format!("{base}{suffix}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
    }
    unreachable!("an unused suffix always exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_names_become_dns_labels() {
        assert_eq!(dns_label("web"), "web");
        assert_eq!(dns_label("log_router"), "log-router");
        assert_eq!(dns_label("MyApp"), "myapp");
        assert_eq!(dns_label("_a__b_"), "a-b");
        assert_eq!(dns_label("__"), format!("x{:08x}", fnv64("__") as u32));
        let long = "a".repeat(255);
        let l = dns_label(&long);
        assert_eq!(l.len(), 63);
        assert!(is_dns_label(&l));
        assert_ne!(
            dns_label(&"a".repeat(200)),
            l,
            "distinct long names stay distinct"
        );
    }

    #[test]
    fn subdomains_and_label_values() {
        assert_eq!(dns_subdomain("prod/db_password"), "prod-db-password");
        assert_eq!(dns_subdomain("My.Secret"), "my.secret");
        assert_eq!(dns_subdomain("a..b"), "a.b");
        assert!(is_label_value("web-1.0_x"));
        assert!(!is_label_value("-web"));
        assert_eq!(label_value("web"), "web");
        let v = label_value(&"f".repeat(100));
        assert!(is_label_value(&v) && v.len() == 63);
    }

    #[test]
    fn keys_and_ports() {
        assert!(is_qualified_name("com.datadoghq.ad.check_names"));
        assert!(is_qualified_name("traefik.io/enable"));
        assert!(!is_qualified_name(
            "traefik.http.routers.my-router.rule with space"
        ));
        assert!(!is_qualified_name(&"x".repeat(64)));
        assert_eq!(config_key("password"), "password");
        assert_eq!(config_key("db password"), "db_password");
        assert!(is_port_name("http"));
        assert!(!is_port_name("web_http"));
        assert!(!is_port_name("8080"));
        assert!(!is_port_name("a-very-long-port-name"));
    }

    #[test]
    fn unique_names() {
        let mut used = BTreeSet::new();
        assert_eq!(unique("a".into(), &mut used), "a");
        assert_eq!(unique("a".into(), &mut used), "a-2");
        assert_eq!(unique("a".into(), &mut used), "a-3");
    }
}
