use super::*;
use crate::api::repository::{LifecycleAction, LifecycleSelection};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;

fn days_ago(d: i64) -> i64 {
    NOW - d * DAY
}

fn image(digest: &str, tags: &[&str], pushed_at: i64) -> ImageRecord {
    ImageRecord {
        digest: digest.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at,
        last_pulled_at: None,
        size_bytes: 1,
    }
}

fn pulled(digest: &str, pushed_at: i64, pulled_at: i64) -> ImageRecord {
    ImageRecord {
        last_pulled_at: Some(pulled_at),
        ..image(digest, &[], pushed_at)
    }
}

fn policy(json: &str) -> LifecyclePolicy {
    let p: LifecyclePolicy = serde_json::from_str(json).expect("ECR's JSON deserializes");
    assert_eq!(validate(&p), Ok(()), "ECR's documented policy is valid");
    p
}

/// (digest, rule priority), in evaluation order.
fn expired(p: &LifecyclePolicy, images: &[ImageRecord]) -> Vec<(String, i32)> {
    evaluate(p, images, NOW)
        .into_iter()
        .map(|e| (e.digest, e.applied_rule_priority))
        .collect()
}

fn ex(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
    pairs.iter().map(|(d, p)| (d.to_string(), *p)).collect()
}

// --- The ECR user guide's "Examples of lifecycle policies" ---------------------------------

#[test]
fn doc_filtering_on_image_age_untagged() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
            "selection":{"tagStatus":"untagged","countType":"sinceImagePushed",
            "countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("old", &[], days_ago(15)),
        image("exactly14", &[], days_ago(14)),
        image("young", &[], days_ago(3)),
        image("old-tagged", &["v1"], days_ago(30)),
    ];
    assert_eq!(expired(&p, &images), ex(&[("old", 1)]));
}

#[test]
fn doc_filtering_on_image_age_tag_pattern() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
            "selection":{"tagStatus":"tagged","tagPatternList":["prod*"],
            "countType":"sinceImagePushed","countUnit":"days","countNumber":14},
            "action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("prod-old", &["prod-1"], days_ago(20)),
        image("prod-bare-old", &["prod"], days_ago(21)),
        image("prod-young", &["prod-2"], days_ago(2)),
        image("beta-old", &["beta-1"], days_ago(20)),
        image("untagged-old", &[], days_ago(20)),
    ];
    assert_eq!(
        expired(&p, &images),
        ex(&[("prod-bare-old", 1), ("prod-old", 1)])
    );
}

#[test]
fn doc_filtering_on_image_count() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"Keep only one untagged image, expire all others",
            "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
            "action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("u1", &[], days_ago(3)),
        image("u2", &[], days_ago(2)),
        image("u3", &[], days_ago(1)),
        image("t", &["latest"], days_ago(9)),
    ];
    // Oldest first.
    assert_eq!(expired(&p, &images), ex(&[("u1", 1), ("u2", 1)]));
}

fn multiple_rules_repo() -> Vec<ImageRecord> {
    vec![
        image("A", &["beta-1", "prod-1"], days_ago(10)),
        image("B", &["beta-2", "prod-2"], days_ago(9)),
        image("C", &["beta-3"], days_ago(8)),
    ]
}

fn two_rules(first: &str, second: &str, key: &str) -> LifecyclePolicy {
    policy(&format!(
        r#"{{"rules":[
          {{"rulePriority":1,"description":"Rule 1","selection":{{"tagStatus":"tagged",
            "{key}":["{first}"],"countType":"imageCountMoreThan","countNumber":1}},
            "action":{{"type":"expire"}}}},
          {{"rulePriority":2,"description":"Rule 2","selection":{{"tagStatus":"tagged",
            "{key}":["{second}"],"countType":"imageCountMoreThan","countNumber":1}},
            "action":{{"type":"expire"}}}}]}}"#
    ))
}

#[test]
fn doc_multiple_rules_example_a() {
    // Rule 1 (prod) marks A and claims A and B; Rule 2 (beta) would mark A and B, but both
    // were seen by Rule 1 ("if Image B were expired it would violate Rule 1"). Result: A.
    for (first, second, key) in [
        ("prod", "beta", "tagPrefixList"),
        ("prod*", "beta*", "tagPatternList"),
    ] {
        let p = two_rules(first, second, key);
        assert_eq!(
            expired(&p, &multiple_rules_repo()),
            ex(&[("A", 1)]),
            "{key}"
        );
    }
}

#[test]
fn doc_multiple_rules_example_b() {
    // Rule 1 (beta) sees all three and marks A and B; Rule 2 (prod) sees nothing new.
    for (first, second, key) in [
        ("beta", "prod", "tagPrefixList"),
        ("beta*", "prod*", "tagPatternList"),
    ] {
        let p = two_rules(first, second, key);
        assert_eq!(
            expired(&p, &multiple_rules_repo()),
            ex(&[("A", 1), ("B", 1)]),
            "{key}"
        );
    }
}

#[test]
fn rules_apply_by_priority_not_by_position() {
    let mut p = two_rules("prod", "beta", "tagPrefixList");
    p.rules.reverse();
    assert_eq!(expired(&p, &multiple_rules_repo()), ex(&[("A", 1)]));
}

#[test]
fn doc_multiple_tags_example_a_prefixes_are_anded() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
            "tagPrefixList":["alpha","beta"],"countType":"sinceImagePushed","countNumber":5,
            "countUnit":"days"},"action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("A", &["alpha-1"], days_ago(12)),
        image("B", &["beta-1"], days_ago(11)),
        image("C", &["alpha-2", "beta-2"], days_ago(10)),
        image("D", &["alpha-3"], days_ago(4)),
        image("E", &["beta-3"], days_ago(3)),
        image("F", &["alpha-4", "beta-4"], days_ago(2)),
    ];
    assert_eq!(expired(&p, &images), ex(&[("C", 1)]));
}

#[test]
fn doc_multiple_tags_example_b_tags_are_not_exclusive() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
            "tagPrefixList":["alpha","beta"],"countType":"imageCountMoreThan","countNumber":1},
            "action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("A", &["alpha-1", "beta-1", "gamma-1"], days_ago(10)),
        image("B", &["alpha-2", "beta-2"], days_ago(9)),
        image("C", &["alpha-3", "beta-3", "gamma-2"], days_ago(8)),
    ];
    assert_eq!(expired(&p, &images), ex(&[("A", 1), ("B", 1)]));
}

#[test]
fn tag_pattern_list_is_anded_too() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged",
            "tagPatternList":["*-rc*","team-?"],"countType":"imageCountMoreThan","countNumber":1},
            "action":{"type":"expire"}}]}"#,
    );
    // `?` is not a wildcard in tag patterns: "team-?" only matches the literal tag.
    let images = [
        image("A", &["v1-rc1", "team-?"], days_ago(5)),
        image("B", &["v2-rc1", "team-x"], days_ago(4)),
        image("C", &["v3-rc1", "team-?"], days_ago(3)),
        image("D", &["v4-rc1"], days_ago(2)),
    ];
    assert_eq!(expired(&p, &images), ex(&[("A", 1)]));
}

#[test]
fn doc_all_images_example_a() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"any",
            "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("A", &["alpha-1"], days_ago(4)),
        image("B", &["beta-1"], days_ago(3)),
        image("C", &[], days_ago(2)),
        image("D", &["alpha-2"], days_ago(1)),
    ];
    assert_eq!(expired(&p, &images), ex(&[("A", 1), ("B", 1), ("C", 1)]));
}

#[test]
fn doc_all_images_example_b_every_rule_type() {
    let p = policy(
        r#"{"rules":[
          {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged",
            "tagPrefixList":["alpha"],"countType":"imageCountMoreThan","countNumber":1},
            "action":{"type":"expire"}},
          {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"untagged",
            "countType":"sinceImagePushed","countUnit":"days","countNumber":1},
            "action":{"type":"expire"}},
          {"rulePriority":3,"description":"Rule 3","selection":{"tagStatus":"any",
            "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    // The guide pushes D and E "1 day ago" and keeps E as the newest in Rule 3; E is pushed
    // a minute later here so that the order the guide implies is explicit.
    let images = [
        image("A", &["alpha-1", "beta-1"], days_ago(4)),
        image("B", &[], days_ago(3)),
        image("C", &["alpha-2"], days_ago(2)),
        image("D", &["git hash"], days_ago(1)),
        image("E", &[], days_ago(1) + 60),
    ];
    // Rule 1 marks A (keeps C); Rule 2 marks B (E is not older than a day); Rule 3 keeps E,
    // can't mark A, B, C (identified by higher rules) and marks D.
    assert_eq!(expired(&p, &images), ex(&[("A", 1), ("B", 2), ("D", 3)]));
}

#[test]
fn equal_push_times_break_ties_by_digest() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any",
            "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    let t = days_ago(1);
    let images = [image("sha256:b", &[], t), image("sha256:a", &[], t)];
    assert_eq!(expired(&p, &images), ex(&[("sha256:b", 1)]));
    let reversed = [images[1].clone(), images[0].clone()];
    assert_eq!(expired(&p, &reversed), ex(&[("sha256:b", 1)]));
}

#[test]
fn tagged_rule_never_selects_untagged_images() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["*"],
            "countType":"sinceImagePushed","countUnit":"days","countNumber":1},
            "action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("u", &[], days_ago(9)),
        image("t", &["x"], days_ago(9)),
    ];
    assert_eq!(expired(&p, &images), ex(&[("t", 1)]));
}

#[test]
fn preview_results_carry_rfc3339_times() {
    let e = Expiration {
        digest: "sha256:a".into(),
        tags: vec!["v1".into()],
        pushed_at: 1_700_000_000_000,
        applied_rule_priority: 3,
    };
    assert_eq!(
        preview(std::slice::from_ref(&e)),
        vec![LifecyclePreviewResult {
            image_digest: "sha256:a".into(),
            image_tags: vec!["v1".into()],
            image_pushed_at: Some("2023-11-14T22:13:20Z".into()),
            applied_rule_priority: 3,
        }]
    );
}

// --- Validation ------------------------------------------------------------------------------

fn rule(priority: i32, selection: LifecycleSelection) -> LifecycleRule {
    LifecycleRule {
        rule_priority: priority,
        description: None,
        selection,
        action: LifecycleAction::default(),
    }
}

fn sel(status: TagStatus, prefixes: &[&str], patterns: &[&str]) -> LifecycleSelection {
    LifecycleSelection {
        tag_status: status,
        tag_prefix_list: prefixes.iter().map(|s| s.to_string()).collect(),
        tag_pattern_list: patterns.iter().map(|s| s.to_string()).collect(),
        count_type: CountType::ImageCountMoreThan,
        storage_class: None,
        count_unit: None,
        count_number: 5,
    }
}

fn invalid(rules: Vec<LifecycleRule>) -> String {
    validate(&LifecyclePolicy { rules }).expect_err("invalid policy")
}

#[test]
fn validation_messages() {
    use TagStatus::*;
    let m = |s: &str| format!("Lifecycle policy validation failure: {s}");
    assert_eq!(invalid(vec![]), m("at least one rule is required."));
    assert_eq!(
        invalid(vec![
            rule(1, sel(Untagged, &[], &[])),
            rule(1, sel(Tagged, &["v"], &[]))
        ]),
        m("rulePriority must be unique.")
    );
    assert_eq!(
        invalid(vec![rule(0, sel(Untagged, &[], &[]))]),
        m("rulePriority must be between 1 and 999.")
    );
    assert_eq!(
        invalid(vec![
            rule(5, sel(Any, &[], &[])),
            rule(6, sel(Untagged, &[], &[]))
        ]),
        m("a rule with tagStatus 'any' must have the highest rulePriority.")
    );
    assert_eq!(
        invalid(vec![rule(1, sel(Tagged, &[], &[]))]),
        m("tagPrefixList or tagPatternList is required when tagStatus is 'tagged'.")
    );
    for status in [Untagged, Any] {
        assert_eq!(
            invalid(vec![rule(1, sel(status, &["v"], &[]))]),
            m("tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged'.")
        );
        assert_eq!(
            invalid(vec![rule(1, sel(status, &[], &["v*"]))]),
            m("tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged'.")
        );
    }
    assert_eq!(
        invalid(vec![rule(1, sel(Tagged, &["v"], &["v*"]))]),
        m("tagPrefixList and tagPatternList cannot be used together.")
    );
    // The guide's own examples: four wildcards are fine, more are not.
    assert_eq!(
        validate(&LifecyclePolicy {
            rules: vec![rule(1, sel(Tagged, &[], &["*test*1*2*3", "test*1*2*3*"]))]
        }),
        Ok(())
    );
    assert_eq!(
        invalid(vec![rule(1, sel(Tagged, &[], &["test*1*2*3*4*5*6"]))]),
        m("a tag pattern may contain at most 4 wildcards.")
    );
    let unit_msg = m(
        "countUnit is required with countType 'sinceImagePushed' or 'sinceImagePulled' and not allowed with 'imageCountMoreThan'.",
    );
    let mut s = sel(Untagged, &[], &[]);
    s.count_type = CountType::SinceImagePushed;
    assert_eq!(invalid(vec![rule(1, s.clone())]), unit_msg);
    s.count_unit = Some(CountUnit::Days);
    assert_eq!(
        validate(&LifecyclePolicy {
            rules: vec![rule(1, s.clone())]
        }),
        Ok(())
    );
    let mut c = sel(Untagged, &[], &[]);
    c.count_unit = Some(CountUnit::Days);
    assert_eq!(invalid(vec![rule(1, c)]), unit_msg);
    s.count_number = 0;
    assert_eq!(
        invalid(vec![rule(1, s)]),
        m("countNumber must be a positive integer.")
    );
    assert_eq!(
        invalid(
            (1..=51)
                .map(|p| rule(p, sel(Tagged, &["v"], &[])))
                .collect()
        ),
        m("a lifecycle policy may contain at most 50 rules.")
    );
}

#[test]
fn validation_speaks_like_the_crd() {
    // The CRD's CEL rules and validate() must reject with the same words.
    // JSON, not YAML: YAML may fold long lines or double the quotes.
    let crds = serde_json::to_string(&crate::api::all_crds()).unwrap();
    for detail in [
        "rulePriority must be unique.",
        "a rule with tagStatus 'any' must have the highest rulePriority.",
        "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'.",
        "tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged'.",
        "tagPrefixList and tagPatternList cannot be used together.",
        "countUnit is required with countType 'sinceImagePushed' or 'sinceImagePulled' and not allowed with 'imageCountMoreThan'.",
        "a tag pattern may contain at most 4 wildcards.",
        NO_ARCHIVE_ACTION,
        NO_ARCHIVE_SELECTION,
    ] {
        let msg = format!("Lifecycle policy validation failure: {detail}");
        assert!(crds.contains(&msg), "CRD lacks: {msg}");
    }
}

#[test]
fn parse_accepts_ecr_text_and_rejects_garbage() {
    let p = parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged",
            "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    )
    .unwrap();
    assert_eq!(p.rules[0].selection.tag_status, TagStatus::Untagged);
    assert!(
        parse("{")
            .unwrap_err()
            .starts_with("Lifecycle policy validation failure: ")
    );
    assert!(
        parse(
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"sometimes",
            "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#
        )
        .is_err()
    );
    assert_eq!(
        parse(r#"{"rules":[]}"#).unwrap_err(),
        "Lifecycle policy validation failure: at least one rule is required."
    );
}

// --- Properties ------------------------------------------------------------------------------

const TAGS: &[&str] = &[
    "prod-1", "prod-2", "beta-1", "beta-2", "latest", "v1", "v1-rc",
];
const PREFIXES: &[&str] = &["prod", "beta", "v", "lat", "v1-"];
const PATTERNS: &[&str] = &["prod*", "*-1", "*", "v*", "*a*", "latest"];

fn arb_images() -> impl Strategy<Value = Vec<ImageRecord>> {
    prop::collection::vec(
        (prop::collection::btree_set(0..TAGS.len(), 0..3), 0i64..40),
        0..25,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (tags, age_days))| ImageRecord {
                digest: format!("sha256:{i:03}"),
                tags: tags.into_iter().map(|t| TAGS[t].to_string()).collect(),
                // Coarse times so that ties happen.
                pushed_at: days_ago(age_days),
                // Some pulled later than pushed, some never.
                last_pulled_at: (i % 3 != 0).then(|| days_ago(age_days / (1 + (i as i64 % 4)))),
                size_bytes: 1,
            })
            .collect()
    })
}

fn arb_selection() -> impl Strategy<Value = LifecycleSelection> {
    (
        0u8..3,
        prop::collection::btree_set(0..PREFIXES.len(), 1..3),
        prop::collection::btree_set(0..PATTERNS.len(), 1..3),
        any::<bool>(),
        any::<bool>(),
        1i32..12,
    )
        .prop_map(|(status, prefixes, patterns, use_prefixes, by_count, n)| {
            let (tag_status, tag_prefix_list, tag_pattern_list) = match status {
                0 if use_prefixes => (
                    TagStatus::Tagged,
                    prefixes
                        .into_iter()
                        .map(|i| PREFIXES[i].to_string())
                        .collect(),
                    vec![],
                ),
                0 => (
                    TagStatus::Tagged,
                    vec![],
                    patterns
                        .into_iter()
                        .map(|i| PATTERNS[i].to_string())
                        .collect(),
                ),
                1 => (TagStatus::Untagged, vec![], vec![]),
                _ => (TagStatus::Any, vec![], vec![]),
            };
            LifecycleSelection {
                tag_status,
                tag_prefix_list,
                tag_pattern_list,
                count_type: match (by_count, n % 2) {
                    (true, _) => CountType::ImageCountMoreThan,
                    (false, 0) => CountType::SinceImagePushed,
                    (false, _) => CountType::SinceImagePulled,
                },
                storage_class: None,
                count_unit: (!by_count).then_some(CountUnit::Days),
                count_number: n,
            }
        })
}

fn arb_policy() -> impl Strategy<Value = LifecyclePolicy> {
    (
        prop::collection::vec(arb_selection(), 1..5),
        prop::collection::btree_set(1i32..100, 5),
        any::<bool>(),
    )
        .prop_map(|(selections, priorities, reverse)| {
            let mut rules: Vec<_> = selections
                .into_iter()
                .zip(priorities)
                .map(|(s, p)| rule(p, s))
                .collect();
            if reverse {
                rules.reverse();
            }
            LifecyclePolicy { rules }
        })
}

proptest! {
    #[test]
    fn no_image_is_expired_twice_nor_by_a_rule_that_cannot_claim_it(
        p in arb_policy(),
        images in arb_images(),
    ) {
        let out = evaluate(&p, &images, NOW);
        let mut seen = HashSet::new();
        for e in &out {
            prop_assert!(seen.insert(e.digest.clone()), "{} expired twice", e.digest);
            let img = images.iter().find(|i| i.digest == e.digest).unwrap();
            let r = p.rules.iter().find(|r| r.rule_priority == e.applied_rule_priority).unwrap();
            prop_assert!(selects(r, img));
            // No higher-priority rule's selection matched it.
            for higher in p.rules.iter().filter(|h| h.rule_priority < r.rule_priority) {
                prop_assert!(!selects(higher, img));
            }
        }
    }

    #[test]
    fn newest_n_identified_are_never_expired_by_a_count_rule(
        p in arb_policy(),
        images in arb_images(),
    ) {
        let out = evaluate(&p, &images, NOW);
        for r in p.rules.iter().filter(|r| r.selection.count_type == CountType::ImageCountMoreThan) {
            let mut identified: Vec<&ImageRecord> = images.iter().filter(|i| selects(r, i)).collect();
            identified.sort_by(|a, b| newest_first(a, b));
            let n = r.selection.count_number as usize;
            for kept in identified.iter().take(n) {
                prop_assert!(!out.iter().any(|e| e.digest == kept.digest
                    && e.applied_rule_priority == r.rule_priority));
            }
            // And nothing newer than the N-th kept image is expired by this rule.
            if let Some(nth) = identified.get(n.saturating_sub(1)).filter(|_| n > 0) {
                for e in out.iter().filter(|e| e.applied_rule_priority == r.rule_priority) {
                    prop_assert!(e.pushed_at <= nth.pushed_at);
                }
            }
        }
    }

    #[test]
    fn single_count_rule_keeps_exactly_the_newest_n(
        s in arb_selection(),
        images in arb_images(),
    ) {
        let mut s = s;
        s.count_type = CountType::ImageCountMoreThan;
        s.count_unit = None;
        let p = LifecyclePolicy { rules: vec![rule(1, s)] };
        let out = evaluate(&p, &images, NOW);
        let mut identified: Vec<&ImageRecord> = images.iter().filter(|i| selects(&p.rules[0], i)).collect();
        identified.sort_by(|a, b| newest_first(a, b));
        let n = p.rules[0].selection.count_number as usize;
        let expected: HashSet<&str> = identified.iter().skip(n).map(|i| i.digest.as_str()).collect();
        let got: HashSet<&str> = out.iter().map(|e| e.digest.as_str()).collect();
        prop_assert_eq!(got, expected);
        // Oldest first in the output.
        prop_assert!(out.windows(2).all(|w| w[0].pushed_at <= w[1].pushed_at));
    }

    #[test]
    fn age_rules_never_expire_young_images(p in arb_policy(), images in arb_images()) {
        let out = evaluate(&p, &images, NOW);
        for e in &out {
            let r = p.rules.iter().find(|r| r.rule_priority == e.applied_rule_priority).unwrap();
            let img = images.iter().find(|i| i.digest == e.digest).unwrap();
            let since = match r.selection.count_type {
                CountType::SinceImagePushed => Some(img.pushed_at),
                CountType::SinceImagePulled => Some(img.last_pulled_at.unwrap_or(img.pushed_at)),
                _ => None,
            };
            if let Some(since) = since {
                prop_assert!(NOW - since > i64::from(r.selection.count_number) * DAY);
            }
        }
    }
}

#[test]
fn pushes_within_one_second_keep_their_order() {
    // Two pushes 300 ms apart: the older expires, whatever the digests' order (a clock in
    // seconds tied them, and the digest order then expired the newer one).
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"description":"keep the newest",
            "selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},
            "action":{"type":"expire"}}]}"#,
    );
    let images = [
        image("zzz-older", &["t1"], NOW + 100),
        image("aaa-newer", &["t2"], NOW + 400),
    ];
    assert_eq!(expired(&p, &images), ex(&[("zzz-older", 1)]));
}

// --- sinceImagePulled, with the clock moved ---------------------------------------------------

fn since_pulled(days: i32) -> LifecyclePolicy {
    policy(&format!(
        r#"{{"rules":[{{"rulePriority":1,"description":"Expire images not pulled for {days} days",
            "selection":{{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days",
            "countNumber":{days}}},"action":{{"type":"expire"}}}}]}}"#
    ))
}

#[test]
fn since_image_pulled_expires_images_never_pulled_and_keeps_pulled_ones() {
    let p = since_pulled(1);
    // Pushed together at T; "used" pulled at T + 1.5 days; "idle" never pulled.
    let t = NOW;
    let images = [pulled("used", t, t + DAY + DAY / 2), image("idle", &[], t)];
    let at = |later: i64| -> Vec<(String, i32)> {
        evaluate(&p, &images, t + later)
            .into_iter()
            .map(|e| (e.digest, e.applied_rule_priority))
            .collect()
    };
    // A day after the push nothing is older than a day yet (exactly a day is kept).
    assert_eq!(at(DAY), ex(&[]));
    // Two days on: the idle image expires, counted from its push; the pulled one is kept.
    assert_eq!(at(2 * DAY), ex(&[("idle", 1)]));
    // Once its last pull is over a day old, the pulled image expires too.
    assert_eq!(at(2 * DAY + DAY / 2), ex(&[("idle", 1)]));
    // Both pushed at T: the tie goes by digest, "used" counting as the older.
    assert_eq!(at(2 * DAY + DAY / 2 + 1), ex(&[("used", 1), ("idle", 1)]));
}

#[test]
fn since_image_pushed_ignores_pulls() {
    let p = policy(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed",
            "countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    let images = [pulled("used", days_ago(3), NOW)];
    assert_eq!(expired(&p, &images), ex(&[("used", 1)]));
}

#[test]
fn since_image_pulled_needs_days_and_archive_rules_are_refused() {
    let m = |s: &str| format!("Lifecycle policy validation failure: {s}");
    let mut s = sel(TagStatus::Untagged, &[], &[]);
    s.count_type = CountType::SinceImagePulled;
    assert_eq!(
        invalid(vec![rule(1, s.clone())]),
        m(
            "countUnit is required with countType 'sinceImagePushed' or 'sinceImagePulled' and not allowed with 'imageCountMoreThan'."
        )
    );
    s.count_unit = Some(CountUnit::Days);
    assert_eq!(
        validate(&LifecyclePolicy {
            rules: vec![rule(1, s.clone())]
        }),
        Ok(())
    );
    // storageClass 'standard' is ECR's default and accepted.
    s.storage_class = Some(StorageClass::Standard);
    assert_eq!(
        validate(&LifecyclePolicy {
            rules: vec![rule(1, s.clone())]
        }),
        Ok(())
    );
    // ECR's archive rules, as its documentation writes them.
    let transition = parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled",
            "countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
    );
    assert_eq!(transition.unwrap_err(), m(NO_ARCHIVE_ACTION));
    let archived = parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","storageClass":"archive",
            "countType":"sinceImageTransitioned","countUnit":"days","countNumber":90},"action":{"type":"expire"}}]}"#,
    );
    assert_eq!(archived.unwrap_err(), m(NO_ARCHIVE_SELECTION));
    s.storage_class = Some(StorageClass::Archive);
    assert_eq!(invalid(vec![rule(1, s)]), m(NO_ARCHIVE_SELECTION));
}
