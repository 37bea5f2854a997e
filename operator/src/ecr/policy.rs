//! Repository policies: IAM-style statements evaluated for Kubernetes identities.
//!
//! Semantics (IAM's, restricted to what a repository policy can say):
//! - a statement applies when its Principal names the caller and its Action (or NotAction)
//!   covers the action;
//! - an applying Deny wins over any Allow ([`Decision::ExplicitDeny`]); with no applying
//!   statement the answer is [`Decision::ImplicitDeny`];
//! - no policy at all is [`Decision::NoPolicy`]: the caller decides. kubecs lets the
//!   namespace's RBAC decide then, as ECR lets identity policies decide for a repository
//!   without a policy.
//!
//! Principals:
//! - `"*"` and `{"AWS": "*"}`: every caller;
//! - `{"Kubernetes": {"User": ..., "Group": ..., "ServiceAccount": ...}}`, each a string or a
//!   list: user names, group names, and `NAMESPACE:NAME` or `NAMESPACE:*` service accounts;
//! - `{"AWS": ARN | [ARNs]}`, mapped through DESIGN.md's "account = namespace":
//!   `arn:aws:iam::ACCOUNT:user/[PATH/]NAME` is the Kubernetes user `NAME` (users are
//!   cluster-wide, so the account is not checked); `arn:aws:iam::ACCOUNT:role/[PATH/]NAME` and
//!   `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` are the ServiceAccount `ACCOUNT:NAME`
//!   (a task role is a ServiceAccount); `arn:aws:iam::ACCOUNT:root` and a bare 12-digit account
//!   id are every ServiceAccount of namespace `ACCOUNT` (ECR's "the whole account"). Mapping
//!   `root` to everyone on the cluster would turn a policy copied from AWS, granting pull to a
//!   partner account, into a grant to all tenants; this mapping fails closed instead.
//!
//! What kubecs cannot evaluate fails closed: a statement with a `Condition` never allows and
//! always denies when its principal and action match; an unparseable principal never allows
//! and a Deny with one denies everyone. [`validate`] rejects such principals up front.

use crate::api::repository::{PolicyEffect, PolicyStatement, RepositoryPolicy};
use serde_json::Value;

use super::wildcard;

/// The ECR actions the kubecs registry checks.
pub const KNOWN_ACTIONS: &[&str] = &[
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchDeleteImage",
    "ecr:ListImages",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:BatchImportUpstreamImage",
];

/// A Kubernetes identity, as TokenReview or the registry's token reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// ServiceAccounts are `system:serviceaccount:NAMESPACE:NAME`.
    pub username: String,
    pub groups: Vec<String>,
}

impl Principal {
    pub fn new(username: impl Into<String>, groups: &[&str]) -> Self {
        Principal {
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    /// The identity of ServiceAccount `namespace/name`, with the groups Kubernetes gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Principal {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// `(namespace, name)` when this is a ServiceAccount.
    fn service_account_parts(&self) -> Option<(&str, &str)> {
        let rest = self.username.strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty()).then_some((ns, name))
    }
}

/// The outcome of evaluating a repository policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement applies and no Deny does.
    Allow,
    /// A Deny statement applies (the first one, by position); it wins over any Allow.
    ExplicitDeny { sid: Option<String> },
    /// The repository has a policy, but no statement applies.
    ImplicitDeny,
    /// The repository has no policy: the caller decides (kubecs: the namespace's RBAC).
    NoPolicy,
}

impl Decision {
    /// Whether the request may proceed; `without_policy` is the answer for [`Decision::NoPolicy`].
    pub fn allows(&self, without_policy: bool) -> bool {
        match self {
            Decision::Allow => true,
            Decision::NoPolicy => without_policy,
            Decision::ExplicitDeny { .. } | Decision::ImplicitDeny => false,
        }
    }
}

/// IAM's AccessDenied wording for a refusal by the repository policy, or `None` if the
/// decision does not refuse. `who` is the caller as shown to it (a user name or an ARN).
pub fn access_denied_message(
    decision: &Decision,
    who: &str,
    action: &str,
    repository_arn: &str,
) -> Option<String> {
    let why = match decision {
        Decision::ExplicitDeny { .. } => "with an explicit deny in a resource-based policy".into(),
        Decision::ImplicitDeny => {
            format!("because no resource-based policy allows the {action} action")
        }
        Decision::Allow | Decision::NoPolicy => return None,
    };
    Some(format!(
        "User: {who} is not authorized to perform: {action} on resource: {repository_arn} {why}"
    ))
}

/// One parsed principal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    Everyone,
    User(String),
    Group(String),
    /// `(namespace, Some(name))`, or `(namespace, None)` for every ServiceAccount there.
    ServiceAccount(String, Option<String>),
}

impl Who {
    fn matches(&self, p: &Principal) -> bool {
        match self {
            Who::Everyone => true,
            Who::User(u) => &p.username == u,
            Who::Group(g) => p.groups.iter().any(|x| x == g),
            Who::ServiceAccount(ns, name) => match p.service_account_parts() {
                Some((pns, pname)) => pns == ns && name.as_deref().is_none_or(|n| n == pname),
                None => false,
            },
        }
    }
}

/// A string or a list of strings (IAM's shorthand), else an error naming `what`.
fn strings<'a>(v: &'a Value, what: &str) -> Result<Vec<&'a str>, String> {
    match v {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| format!("{what} must be a string or a list of strings"))
            })
            .collect(),
        _ => Err(format!(
            "{what} must be a string or a non-empty list of strings"
        )),
    }
}

fn parse_aws(id: &str) -> Result<Who, String> {
    if id == "*" {
        return Ok(Who::Everyone);
    }
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Who::ServiceAccount(id.into(), None));
    }
    let bad = || format!("unsupported AWS principal '{id}'");
    // arn:PARTITION:SERVICE::ACCOUNT:RESOURCE
    let parts: Vec<&str> = id.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(bad());
    };
    if arn != "arn" || !partition.starts_with("aws") || !region.is_empty() || account.is_empty() {
        return Err(bad());
    }
    let last = |path: &str| {
        path.rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(String::from)
    };
    match (service, resource.split_once('/')) {
        ("iam", None) if resource == "root" => Ok(Who::ServiceAccount(account.into(), None)),
        ("iam", Some(("user", path))) => last(path).map(Who::User).ok_or_else(bad),
        ("iam", Some(("role", path))) => last(path)
            .map(|n| Who::ServiceAccount(account.into(), Some(n)))
            .ok_or_else(bad),
        ("sts", Some(("assumed-role", rest))) => match rest.split_once('/') {
            Some((role, _session)) if !role.is_empty() => {
                Ok(Who::ServiceAccount(account.into(), Some(role.into())))
            }
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn parse_service_account(s: &str) -> Result<Who, String> {
    match s.split_once(':') {
        Some((ns, "*")) if !ns.is_empty() => Ok(Who::ServiceAccount(ns.into(), None)),
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains(':') => {
            Ok(Who::ServiceAccount(ns.into(), Some(name.into())))
        }
        _ => Err(format!(
            "ServiceAccount principal '{s}' must be 'namespace:name' or 'namespace:*'"
        )),
    }
}

fn parse_principal(v: &Value) -> Result<Vec<Who>, String> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![Who::Everyone]),
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (kind, ids) in map {
                match kind.as_str() {
                    "AWS" => {
                        for id in strings(ids, "Principal AWS")? {
                            out.push(parse_aws(id)?);
                        }
                    }
                    "Kubernetes" => {
                        let Value::Object(k8s) = ids else {
                            return Err("Principal Kubernetes must be an object with User, Group or ServiceAccount".into());
                        };
                        if k8s.is_empty() {
                            return Err(
                                "Principal Kubernetes names no User, Group or ServiceAccount"
                                    .into(),
                            );
                        }
                        for (field, names) in k8s {
                            let names = strings(names, &format!("Principal Kubernetes {field}"))?;
                            for n in names {
                                if n.is_empty() {
                                    return Err(format!(
                                        "Principal Kubernetes {field} has an empty name"
                                    ));
                                }
                                out.push(match field.as_str() {
                                    "User" => Who::User(n.into()),
                                    "Group" => Who::Group(n.into()),
                                    "ServiceAccount" => parse_service_account(n)?,
                                    other => {
                                        return Err(format!(
                                            "unsupported Kubernetes principal type '{other}' (User, Group or ServiceAccount)"
                                        ));
                                    }
                                });
                            }
                        }
                    }
                    other => {
                        return Err(format!(
                            "unsupported principal type '{other}' (kubecs knows AWS and Kubernetes)"
                        ));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(
            "Principal must be \"*\" or an object such as {\"AWS\": ...} or {\"Kubernetes\": ...}"
                .into(),
        ),
    }
}

/// Whether an action pattern covers `action`: case-insensitive (IAM action names are), with
/// `*` and `?` wildcards, anchored.
fn action_matches(pattern: &str, action: &str) -> bool {
    wildcard::matches(
        &pattern.to_ascii_lowercase(),
        &action.to_ascii_lowercase(),
        true,
    )
}

fn has_condition(st: &PolicyStatement) -> bool {
    match &st.condition {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

/// Whether the statement's Action / NotAction covers `action` (false when neither is there).
fn covers(st: &PolicyStatement, action: &str) -> Option<bool> {
    let list = |v: &Value| -> Option<bool> {
        let patterns = strings(v, "Action").ok()?;
        Some(patterns.iter().any(|p| action_matches(p, action)))
    };
    match (&st.action, &st.not_action) {
        (Some(a), None) => list(a),
        (None, Some(na)) => list(na).map(|hit| !hit),
        _ => None,
    }
}

/// Evaluates `policy` for `principal` doing `action` (e.g. `ecr:BatchGetImage`).
pub fn evaluate(
    policy: Option<&RepositoryPolicy>,
    principal: &Principal,
    action: &str,
) -> Decision {
    let Some(policy) = policy else {
        return Decision::NoPolicy;
    };
    let mut allowed = false;
    for st in &policy.statement {
        let deny = st.effect == PolicyEffect::Deny;
        // Unreadable parts count against the caller: they widen a Deny, never an Allow.
        let who = match st.principal.as_ref().map(parse_principal) {
            Some(Ok(who)) => who.iter().any(|w| w.matches(principal)),
            _ => deny,
        };
        let what = covers(st, action).unwrap_or(deny);
        if !(who && what) {
            continue;
        }
        if deny {
            return Decision::ExplicitDeny {
                sid: st.sid.clone(),
            };
        }
        if !has_condition(st) {
            allowed = true;
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// ECR's prefix for an invalid repository policy.
pub const INVALID_POLICY: &str = "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided'";

fn validate_actions(v: &Value, field: &str) -> Result<(), String> {
    for a in strings(v, field)? {
        let ok = a == "*"
            || a.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("ecr:"))
                && a.len() > 4
                && a[4..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?');
        if !ok {
            return Err(format!("{field} '{a}' is not an ecr: action"));
        }
    }
    Ok(())
}

fn validate_statement(st: &PolicyStatement) -> Result<(), String> {
    match &st.principal {
        None => return Err("Principal is required".into()),
        Some(p) => {
            parse_principal(p)?;
        }
    }
    match (&st.action, &st.not_action) {
        (Some(a), None) => validate_actions(a, "Action"),
        (None, Some(na)) => validate_actions(na, "NotAction"),
        (Some(_), Some(_)) => Err("Action and NotAction cannot be used together".into()),
        (None, None) => Err("Action or NotAction is required".into()),
    }
}

/// Checks a repository policy as SetRepositoryPolicy does; the error is ECR's message followed
/// by what is wrong.
pub fn validate(policy: &RepositoryPolicy) -> Result<(), String> {
    let fail = |detail: String| Err(format!("{INVALID_POLICY}: {detail}"));
    if let Some(v) = &policy.version
        && v != "2012-10-17"
        && v != "2008-10-17"
    {
        return fail(format!("Version '{v}' is not 2012-10-17 or 2008-10-17"));
    }
    if policy.statement.is_empty() {
        return fail("Statement must contain at least one statement".into());
    }
    for (i, st) in policy.statement.iter().enumerate() {
        if let Err(detail) = validate_statement(st) {
            let name = st.sid.as_deref().map_or_else(
                || format!("statement {}", i + 1),
                |s| format!("statement '{s}'"),
            );
            return fail(format!("{name}: {detail}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
