//! Where secrets, pull credentials and roles come from: ECS `valueFrom`,
//! `credentialsParameter` and role ARNs mapped to Kubernetes object names.
//!
//! # The `valueFrom` mapping rule
//!
//! Every form names one key of one Kubernetes Secret in the task's namespace:
//!
//! | `valueFrom` | Secret | key |
//! |---|---|---|
//! | `db-credentials:password` (kubecs form `secret-name:key`) | `db-credentials` | `password` |
//! | `arn:aws:secretsmanager:R:A:secret:NAME` | NAME (see below) | `value` |
//! | `arn:aws:secretsmanager:R:A:secret:NAME:json-key:stage:id` | NAME | `json-key` (or `value` when empty) |
//! | `arn:aws:ssm:R:A:parameter/NAME` or bare `NAME` | NAME | `value` |
//! | `arn:aws:ssm:R:A:parameter/a/b/c` or bare `/a/b/c` | `a-b` | `c` |
//!
//! A Secrets Manager NAME loses the random suffix Secrets Manager appends to full ARNs (`-`
//! and six alphanumerics with at least one capital or digit, e.g. `db-AbC123`), so both the
//! full and the partial ARN name the same Secret. Names become DNS-1123 subdomains
//! (lowercased, `/`, `_`, `+`, `=`, `@` -> `-`); keys keep `[-._a-zA-Z0-9]` and turn other
//! characters into `_`. Kubernetes Secrets have no versions: a version stage other than
//! `AWSCURRENT`, or a version id, is reported as unsupported and the current value is used.

use super::names::{config_key, dns_subdomain};

/// The key read when `valueFrom` names no key (a whole Secrets Manager secret or an SSM
/// parameter): create such Secrets with `kubectl create secret generic NAME --from-literal=value=...`.
pub const DEFAULT_SECRET_KEY: &str = "value";

/// Where a `valueFrom` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret-name:key`.
    Kubernetes,
    /// A Secrets Manager ARN.
    SecretsManager,
    /// An SSM parameter ARN or name.
    Ssm,
}

/// One key of one Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key in the Secret.
    pub key: String,
    pub source: SecretSource,
    /// Parts of `valueFrom` that cannot be honoured (version stage / id), if any.
    pub unsupported: Option<String>,
}

/// Parses an ECS `valueFrom` into the Secret key it names, or says why it cannot.
pub fn parse_value_from(value_from: &str) -> Result<SecretRef, String> {
    let v = value_from.trim();
    if v.is_empty() {
        return Err("valueFrom should not be null or empty.".into());
    }
    if let Some(rest) = v.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.split(':').collect();
        // partition, service, region, account, resource...
        if parts.len() < 5 {
            return Err(format!("Invalid valueFrom '{v}': not a valid ARN."));
        }
        return match parts[1] {
            "secretsmanager" => secrets_manager(v, &parts[4..]),
            "ssm" => {
                let resource = parts[4..].join(":");
                let name = resource.strip_prefix("parameter").unwrap_or_default();
                if name.trim_matches('/').is_empty() {
                    return Err(format!(
                        "Invalid valueFrom '{v}': an SSM ARN must name a parameter (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)."
                    ));
                }
                Ok(ssm_parameter(name))
            }
            other => Err(format!(
                "Invalid valueFrom '{v}': '{other}' ARNs are not supported; use a Secrets Manager or SSM parameter ARN, or secret-name:key."
            )),
        };
    }
    if let Some((name, key)) = v.split_once(':') {
        if name.is_empty() || key.is_empty() || key.contains(':') {
            return Err(format!(
                "Invalid valueFrom '{v}': expected secret-name:key."
            ));
        }
        return Ok(SecretRef {
            name: dns_subdomain(name),
            key: config_key(key),
            source: SecretSource::Kubernetes,
            unsupported: None,
        });
    }
    Ok(ssm_parameter(v))
}

/// `secret:NAME[:json-key[:version-stage[:version-id]]]`
fn secrets_manager(full: &str, resource: &[&str]) -> Result<SecretRef, String> {
    if resource.first() != Some(&"secret") || resource.len() < 2 || resource[1].is_empty() {
        return Err(format!(
            "Invalid valueFrom '{full}': a Secrets Manager ARN must name a secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)."
        ));
    }
    if resource.len() > 5 {
        return Err(format!(
            "Invalid valueFrom '{full}': expected secret:NAME[:json-key[:version-stage[:version-id]]]."
        ));
    }
    let name = secret_name(resource[1]);
    let json_key = resource.get(2).copied().unwrap_or_default();
    let stage = resource.get(3).copied().unwrap_or_default();
    let id = resource.get(4).copied().unwrap_or_default();
    let mut unsupported = Vec::new();
    if !stage.is_empty() && stage != "AWSCURRENT" {
        unsupported.push(format!("version stage '{stage}'"));
    }
    if !id.is_empty() {
        unsupported.push(format!("version id '{id}'"));
    }
    Ok(SecretRef {
        name,
        key: if json_key.is_empty() {
            DEFAULT_SECRET_KEY.to_string()
        } else {
            config_key(json_key)
        },
        source: SecretSource::SecretsManager,
        unsupported: (!unsupported.is_empty()).then(|| {
            format!(
                "{}: Kubernetes Secrets have no versions, the current value is used",
                unsupported.join(" and ")
            )
        }),
    })
}

/// An SSM parameter name (`NAME` or a path `/a/b/c`).
fn ssm_parameter(name: &str) -> SecretRef {
    let name = name.trim_matches('/');
    let (secret, key) = match name.rsplit_once('/') {
        Some((dir, last)) => (dns_subdomain(dir), config_key(last)),
        None => (dns_subdomain(name), DEFAULT_SECRET_KEY.to_string()),
    };
    SecretRef {
        name: secret,
        key,
        source: SecretSource::Ssm,
        unsupported: None,
    }
}

/// A Secrets Manager secret name as a Kubernetes Secret name: the random `-XXXXXX` suffix of
/// full ARNs removed, then made a DNS-1123 subdomain.
pub fn secret_name(name: &str) -> String {
    dns_subdomain(strip_random_suffix(name))
}

/// Removes Secrets Manager's random suffix: `-` and six ASCII alphanumerics, not all
/// lowercase letters (so `db-secret` or `api-backup` keep their last word).
pub fn strip_random_suffix(name: &str) -> &str {
    if let Some((base, suffix)) = name.rsplit_once('-')
        && !base.is_empty()
        && suffix.len() == 6
        && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        && !suffix.bytes().all(|b| b.is_ascii_lowercase())
    {
        return base;
    }
    name
}

/// The Kubernetes Secret (of type kubernetes.io/dockerconfigjson) a `credentialsParameter`
/// names: a Secrets Manager ARN by its secret name, anything else as is.
pub fn pull_secret_name(credentials_parameter: &str) -> String {
    let p = credentials_parameter.trim();
    if let Some(rest) = p.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.split(':').collect();
        if parts.len() >= 6 && parts[1] == "secretsmanager" && parts[4] == "secret" {
            return secret_name(parts[5]);
        }
        return dns_subdomain(parts.last().copied().unwrap_or(p));
    }
    dns_subdomain(p)
}

/// The ServiceAccount a role means: `arn:aws:iam::ACCOUNT:role/[path/]NAME` or a plain `NAME`.
pub fn service_account_name(role: &str) -> String {
    let role = role.trim();
    let name = if role.starts_with("arn:") {
        let resource = role.splitn(6, ':').nth(5).unwrap_or(role);
        resource.rsplit('/').next().unwrap_or(resource)
    } else {
        role.rsplit('/').next().unwrap_or(role)
    };
    dns_subdomain(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, key: &str, source: SecretSource) -> SecretRef {
        SecretRef {
            name: name.into(),
            key: key.into(),
            source,
            unsupported: None,
        }
    }

    #[test]
    fn kubecs_form() {
        assert_eq!(
            parse_value_from("db-credentials:password").unwrap(),
            r("db-credentials", "password", SecretSource::Kubernetes)
        );
        assert!(parse_value_from("db:").is_err());
        assert!(parse_value_from(":key").is_err());
        assert!(parse_value_from("").is_err());
    }

    #[test]
    fn secrets_manager_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db:password::";
        assert_eq!(
            parse_value_from(arn).unwrap(),
            r("db", "password", SecretSource::SecretsManager)
        );
        let full = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123";
        assert_eq!(
            parse_value_from(full).unwrap(),
            r("prod-db", DEFAULT_SECRET_KEY, SecretSource::SecretsManager)
        );
        let keyed = "arn:aws:secretsmanager:eu-west-1:1:secret:api-key-x9Y8z7:token:AWSCURRENT:";
        assert_eq!(
            parse_value_from(keyed).unwrap(),
            r("api-key", "token", SecretSource::SecretsManager)
        );
        let versioned = "arn:aws:secretsmanager:eu-west-1:1:secret:api:token:AWSPREVIOUS:";
        let parsed = parse_value_from(versioned).unwrap();
        assert_eq!(parsed.key, "token");
        assert!(parsed.unsupported.unwrap().contains("AWSPREVIOUS"));
        let id = "arn:aws:secretsmanager:eu-west-1:1:secret:api:::6aa3d5a8-1111";
        assert!(
            parse_value_from(id)
                .unwrap()
                .unsupported
                .unwrap()
                .contains("version id")
        );
        assert!(parse_value_from("arn:aws:secretsmanager:us-east-1:1:secret:").is_err());
        assert!(parse_value_from("arn:aws:secretsmanager:us-east-1:1:secret:a:b:c:d:e").is_err());
    }

    #[test]
    fn ssm_parameters() {
        assert_eq!(
            parse_value_from("arn:aws:ssm:us-east-1:123456789012:parameter/DB_PASSWORD").unwrap(),
            r("db-password", DEFAULT_SECRET_KEY, SecretSource::Ssm)
        );
        assert_eq!(
            parse_value_from("arn:aws:ssm:us-east-1:123456789012:parameter/prod/db/password")
                .unwrap(),
            r("prod-db", "password", SecretSource::Ssm)
        );
        assert_eq!(
            parse_value_from("/prod/api/TOKEN").unwrap(),
            r("prod-api", "TOKEN", SecretSource::Ssm)
        );
        assert_eq!(
            parse_value_from("api-token").unwrap(),
            r("api-token", DEFAULT_SECRET_KEY, SecretSource::Ssm)
        );
        assert!(parse_value_from("arn:aws:ssm:us-east-1:1:parameter/").is_err());
        assert!(parse_value_from("arn:aws:s3:::bucket/key").is_err());
    }

    #[test]
    fn random_suffix() {
        assert_eq!(strip_random_suffix("db-AbC123"), "db");
        assert_eq!(strip_random_suffix("db-secret"), "db-secret");
        assert_eq!(strip_random_suffix("api-backup"), "api-backup");
        assert_eq!(strip_random_suffix("-AbC123"), "-AbC123");
        assert_eq!(strip_random_suffix("plain"), "plain");
    }

    #[test]
    fn pull_secrets_and_roles() {
        assert_eq!(
            pull_secret_name("arn:aws:secretsmanager:us-east-1:1:secret:dockerhub-Xy12Ab"),
            "dockerhub"
        );
        assert_eq!(pull_secret_name("regcred"), "regcred");
        assert_eq!(
            service_account_name("arn:aws:iam::123456789012:role/ecsTaskRole"),
            "ecstaskrole"
        );
        assert_eq!(
            service_account_name("arn:aws:iam::123456789012:role/service/web_task"),
            "web-task"
        );
        assert_eq!(service_account_name("web"), "web");
    }
}
