use super::*;
use proptest::prelude::*;
use serde_json::json;

fn policy(v: Value) -> RepositoryPolicy {
    serde_json::from_value(v).expect("policy deserializes")
}

fn alice() -> Principal {
    Principal::new("alice", &["dev", "system:authenticated"])
}

fn ci() -> Principal {
    Principal::service_account("team-a", "ci")
}

const PULL: &str = "ecr:BatchGetImage";
const PUSH: &str = "ecr:PutImage";

#[test]
fn no_policy_leaves_the_decision_to_the_caller() {
    assert_eq!(evaluate(None, &alice(), PULL), Decision::NoPolicy);
    assert!(Decision::NoPolicy.allows(true));
    assert!(!Decision::NoPolicy.allows(false));
    assert!(Decision::Allow.allows(false));
    assert!(!Decision::ImplicitDeny.allows(true));
    assert!(!Decision::ExplicitDeny { sid: None }.allows(true));
}

#[test]
fn star_principal_and_aws_star_allow_everyone() {
    for principal in [json!("*"), json!({"AWS": "*"}), json!({"AWS": ["*"]})] {
        let p = policy(json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Pull", "Effect": "Allow", "Principal": principal, "Action": [PULL, "ecr:GetDownloadUrlForLayer"]}
        ]}));
        assert_eq!(validate(&p), Ok(()));
        assert_eq!(evaluate(Some(&p), &alice(), PULL), Decision::Allow);
        assert_eq!(
            evaluate(Some(&p), &ci(), "ecr:GetDownloadUrlForLayer"),
            Decision::Allow
        );
        assert_eq!(evaluate(Some(&p), &alice(), PUSH), Decision::ImplicitDeny);
    }
}

#[test]
fn kubernetes_principals() {
    let p = policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": {"Kubernetes": {
            "User": "alice",
            "Group": ["ops"],
            "ServiceAccount": ["team-a:ci", "team-b:*"]
        }}, "Action": "ecr:*"}
    ]}));
    assert_eq!(validate(&p), Ok(()));
    assert_eq!(evaluate(Some(&p), &alice(), PUSH), Decision::Allow);
    assert_eq!(
        evaluate(Some(&p), &Principal::new("bob", &["ops"]), PUSH),
        Decision::Allow
    );
    assert_eq!(
        evaluate(Some(&p), &Principal::new("bob", &["dev"]), PUSH),
        Decision::ImplicitDeny
    );
    assert_eq!(evaluate(Some(&p), &ci(), PUSH), Decision::Allow);
    assert_eq!(
        evaluate(Some(&p), &Principal::service_account("team-a", "web"), PUSH),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate(
            Some(&p),
            &Principal::service_account("team-b", "anything"),
            PUSH
        ),
        Decision::Allow
    );
    // A user *named* like a namespace is no ServiceAccount of it.
    assert_eq!(
        evaluate(Some(&p), &Principal::new("team-b", &[]), PUSH),
        Decision::ImplicitDeny
    );
    // Nor is a user whose name merely starts like a ServiceAccount's.
    assert_eq!(
        evaluate(
            Some(&p),
            &Principal::new("system:serviceaccount:team-b", &[]),
            PUSH
        ),
        Decision::ImplicitDeny
    );
}

#[test]
fn aws_arns_map_to_kubernetes_identities() {
    let p = policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::team-a:role/ci",
            "arn:aws:iam::team-c:root",
            "210987654321",
            "arn:aws:sts::team-d:assumed-role/builder/session-1",
            "arn:aws:iam::team-e:user/path/to/carol"
        ]}, "Action": PULL}
    ]}));
    assert_eq!(validate(&p), Ok(()));
    let allowed = [
        alice(),
        ci(),
        Principal::service_account("team-c", "anyone"),
        Principal::service_account("210987654321", "x"),
        Principal::service_account("team-d", "builder"),
        Principal::new("carol", &[]),
    ];
    for who in &allowed {
        assert_eq!(evaluate(Some(&p), who, PULL), Decision::Allow, "{who:?}");
    }
    let denied = [
        Principal::new("bob", &[]),
        Principal::service_account("team-a", "web"),
        Principal::service_account("team-d", "other"),
        // root of an account is its namespace's ServiceAccounts, not every user.
        Principal::new("team-c", &["system:authenticated"]),
    ];
    for who in &denied {
        assert_eq!(
            evaluate(Some(&p), who, PULL),
            Decision::ImplicitDeny,
            "{who:?}"
        );
    }
}

#[test]
fn actions_are_case_insensitive_with_wildcards() {
    for (pattern, action, hit) in [
        ("ecr:*", PUSH, true),
        ("ECR:putimage", PUSH, true),
        ("ecr:Batch*", PULL, true),
        ("ecr:Batch*", "ecr:BatchDeleteImage", true),
        ("ecr:Batch*", PUSH, false),
        ("ecr:Put?mage", PUSH, true),
        ("ecr:Put?mage", "ecr:PutImages", false),
        ("*", PUSH, true),
        ("ecr:PutImage", "ecr:PutImageX", false),
        ("s3:*", PUSH, false),
    ] {
        let p = policy(
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": pattern}]}),
        );
        let want = if hit {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        };
        assert_eq!(
            evaluate(Some(&p), &alice(), action),
            want,
            "{pattern} vs {action}"
        );
    }
}

#[test]
fn not_action_covers_everything_else() {
    let p = policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "NotAction": ["ecr:BatchDeleteImage", "ecr:Put*"]}
    ]}));
    assert_eq!(validate(&p), Ok(()));
    assert_eq!(evaluate(Some(&p), &alice(), PULL), Decision::Allow);
    assert_eq!(evaluate(Some(&p), &alice(), PUSH), Decision::ImplicitDeny);
    assert_eq!(
        evaluate(Some(&p), &alice(), "ecr:BatchDeleteImage"),
        Decision::ImplicitDeny
    );
}

#[test]
fn explicit_deny_wins_and_names_its_sid() {
    let p = policy(json!({"Statement": [
        {"Sid": "AllowAll", "Effect": "Allow", "Principal": "*", "Action": "ecr:*"},
        {"Sid": "NoDeleteForDevs", "Effect": "Deny", "Principal": {"Kubernetes": {"Group": "dev"}},
         "Action": ["ecr:BatchDeleteImage"]},
        {"Sid": "AllowAliceDelete", "Effect": "Allow", "Principal": {"Kubernetes": {"User": "alice"}},
         "Action": "ecr:BatchDeleteImage"}
    ]}));
    assert_eq!(
        evaluate(Some(&p), &alice(), "ecr:BatchDeleteImage"),
        Decision::ExplicitDeny {
            sid: Some("NoDeleteForDevs".into())
        }
    );
    assert_eq!(evaluate(Some(&p), &alice(), PULL), Decision::Allow);
    assert_eq!(
        evaluate(Some(&p), &ci(), "ecr:BatchDeleteImage"),
        Decision::Allow
    );
}

#[test]
fn conditions_fail_closed() {
    let p = policy(json!({"Statement": [
        {"Sid": "IfFromVpc", "Effect": "Allow", "Principal": "*", "Action": PULL,
         "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}}
    ]}));
    assert_eq!(evaluate(Some(&p), &alice(), PULL), Decision::ImplicitDeny);
    let p = policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": PULL},
        {"Sid": "DenyUnlessVpc", "Effect": "Deny", "Principal": "*", "Action": PULL,
         "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}}
    ]}));
    assert_eq!(
        evaluate(Some(&p), &alice(), PULL),
        Decision::ExplicitDeny {
            sid: Some("DenyUnlessVpc".into())
        }
    );
}

#[test]
fn unreadable_statements_never_allow_and_deny_widely() {
    let p = policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": PULL},
        {"Effect": "Allow", "Principal": "*", "Action": 42}
    ]}));
    assert_eq!(evaluate(Some(&p), &alice(), PULL), Decision::ImplicitDeny);
    let p = policy(json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": PULL},
        {"Sid": "Odd", "Effect": "Deny", "Principal": {"Federated": "x"}, "Action": PULL}
    ]}));
    assert_eq!(
        evaluate(Some(&p), &alice(), PULL),
        Decision::ExplicitDeny {
            sid: Some("Odd".into())
        }
    );
}

#[test]
fn empty_statement_list_allows_nobody() {
    let p = RepositoryPolicy {
        version: None,
        statement: vec![],
    };
    assert_eq!(evaluate(Some(&p), &alice(), PULL), Decision::ImplicitDeny);
}

#[test]
fn validation_messages() {
    let prefix = "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided': ";
    let err = |v: Value| validate(&policy(v)).unwrap_err();
    let cases = [
        (
            json!({"Statement": []}),
            "Statement must contain at least one statement",
        ),
        (
            json!({"Version": "2020-01-01", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": PULL}]}),
            "Version '2020-01-01' is not 2012-10-17 or 2008-10-17",
        ),
        (
            json!({"Statement": [{"Sid": "S", "Effect": "Allow", "Action": PULL}]}),
            "statement 'S': Principal is required",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "alice", "Action": PULL}]}),
            "statement 1: Principal must be \"*\" or an object such as {\"AWS\": ...} or {\"Kubernetes\": ...}",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": PULL}]}),
            "statement 1: unsupported principal type 'Service' (kubecs knows AWS and Kubernetes)",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123:*"}, "Action": PULL}]}),
            "statement 1: unsupported AWS principal 'arn:aws:iam::123:*'",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Kubernetes": {"ServiceAccount": "ci"}}, "Action": PULL}]}),
            "statement 1: ServiceAccount principal 'ci' must be 'namespace:name' or 'namespace:*'",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Kubernetes": {"Role": "x"}}, "Action": PULL}]}),
            "statement 1: unsupported Kubernetes principal type 'Role' (User, Group or ServiceAccount)",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": {"Kubernetes": {"User": []}}, "Action": PULL}]}),
            "statement 1: Principal Kubernetes User must be a string or a non-empty list of strings",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]}),
            "statement 1: Action 's3:GetObject' is not an ecr: action",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "ecr:"}]}),
            "statement 1: NotAction 'ecr:' is not an ecr: action",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*"}]}),
            "statement 1: Action or NotAction is required",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": PULL, "NotAction": PUSH}]}),
            "statement 1: Action and NotAction cannot be used together",
        ),
    ];
    for (v, detail) in cases {
        assert_eq!(err(v), format!("{prefix}{detail}"));
    }
    // ECR's own actions that kubecs does not check are still valid in a policy.
    let p = policy(json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": ["ecr:GetRepositoryPolicy", "ECR:describe*", "*"]}]}));
    assert_eq!(validate(&p), Ok(()));
}

#[test]
fn known_actions_are_ecr_actions() {
    assert_eq!(KNOWN_ACTIONS.len(), 12);
    let p = policy(
        json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": KNOWN_ACTIONS}]}),
    );
    assert_eq!(validate(&p), Ok(()));
    for a in KNOWN_ACTIONS {
        assert_eq!(evaluate(Some(&p), &alice(), a), Decision::Allow);
    }
}

#[test]
fn access_denied_wording() {
    let arn = "arn:aws:ecr:kubecs:team-a:repository/web";
    assert_eq!(
        access_denied_message(&Decision::ImplicitDeny, "alice", PULL, arn).unwrap(),
        "User: alice is not authorized to perform: ecr:BatchGetImage on resource: \
         arn:aws:ecr:kubecs:team-a:repository/web because no resource-based policy allows the \
         ecr:BatchGetImage action"
    );
    assert_eq!(
        access_denied_message(&Decision::ExplicitDeny { sid: None }, "alice", PULL, arn).unwrap(),
        "User: alice is not authorized to perform: ecr:BatchGetImage on resource: \
         arn:aws:ecr:kubecs:team-a:repository/web with an explicit deny in a resource-based policy"
    );
    assert_eq!(
        access_denied_message(&Decision::Allow, "alice", PULL, arn),
        None
    );
    assert_eq!(
        access_denied_message(&Decision::NoPolicy, "alice", PULL, arn),
        None
    );
}

// --- Properties ------------------------------------------------------------------------------

fn arb_principal_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": "*"})),
        prop::sample::select(vec!["alice", "bob"]).prop_map(|u| json!({"Kubernetes": {"User": u}})),
        prop::sample::select(vec!["dev", "ops"])
            .prop_map(|g| json!({"Kubernetes": {"Group": [g]}})),
        prop::sample::select(vec!["team-a:ci", "team-a:*", "team-b:*"])
            .prop_map(|s| json!({"Kubernetes": {"ServiceAccount": s}})),
        Just(json!({"AWS": "arn:aws:iam::team-a:root"})),
        Just(json!({"Service": "ecs.amazonaws.com"})),
    ]
}

fn arb_statement() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        arb_principal_value(),
        prop::collection::vec(
            prop::sample::select(vec!["ecr:*", "ecr:Batch*", PULL, PUSH, "ecr:Put?mage", "*"]),
            1..3,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(deny, principal, actions, not_action, condition)| {
            let mut st = json!({
                "Effect": if deny { "Deny" } else { "Allow" },
                "Principal": principal,
            });
            st[if not_action { "NotAction" } else { "Action" }] = json!(actions);
            if condition {
                st["Condition"] = json!({"Bool": {"aws:SecureTransport": "true"}});
            }
            st
        })
}

fn arb_caller() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(alice()),
        Just(Principal::new("bob", &["ops"])),
        Just(ci()),
        Just(Principal::service_account("team-b", "web")),
    ]
}

proptest! {
    /// Adding an applying Deny to any policy makes the answer ExplicitDeny, wherever it goes.
    #[test]
    fn an_applying_deny_always_wins(
        statements in prop::collection::vec(arb_statement(), 0..6),
        position in 0usize..7,
        caller in arb_caller(),
        action in prop::sample::select(KNOWN_ACTIONS.to_vec()),
    ) {
        let mut statements = statements;
        let deny = json!({"Sid": "TheDeny", "Effect": "Deny", "Principal": "*", "Action": action});
        let at = position.min(statements.len());
        statements.insert(at, deny);
        let p = policy(json!({"Statement": statements}));
        let d = evaluate(Some(&p), &caller, action);
        prop_assert!(matches!(d, Decision::ExplicitDeny { .. }), "got {:?}", d);
    }

    /// Allow comes only from a statement that applies, and never alongside an applying Deny.
    #[test]
    fn decision_is_monotone_in_denies(
        statements in prop::collection::vec(arb_statement(), 1..6),
        caller in arb_caller(),
        action in prop::sample::select(KNOWN_ACTIONS.to_vec()),
    ) {
        let p = policy(json!({"Statement": statements.clone()}));
        let d = evaluate(Some(&p), &caller, action);
        // Dropping every Deny can only turn a refusal into an Allow, never the reverse.
        let allows_only: Vec<Value> = statements.into_iter().filter(|s| s["Effect"] == "Allow").collect();
        let p2 = policy(json!({"Statement": allows_only}));
        let d2 = evaluate(Some(&p2), &caller, action);
        prop_assert!(!matches!(d2, Decision::ExplicitDeny { .. }), "got {:?}", d2);
        if d == Decision::Allow {
            prop_assert_eq!(d2, Decision::Allow);
        }
    }
}
