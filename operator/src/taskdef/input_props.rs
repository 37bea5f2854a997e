//! Property tests of the task-definition input a user hands kubecs (`kubecs render`, the
//! API's RegisterTaskDefinition): whatever the JSON, parsing, validation and rendering never
//! panic, and what is refused is refused with an error, not accepted half-read.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::input::{InputError, parse_task_definition};
use super::{PodIdentity, RenderOptions, render_pod};

/// Field names a task definition uses, so generated documents reach deep into the parser.
const KEYS: &[&str] = &[
    "family",
    "containerDefinitions",
    "name",
    "image",
    "cpu",
    "memory",
    "memoryReservation",
    "essential",
    "portMappings",
    "containerPort",
    "hostPort",
    "protocol",
    "environment",
    "value",
    "secrets",
    "valueFrom",
    "dependsOn",
    "containerName",
    "condition",
    "healthCheck",
    "command",
    "interval",
    "timeout",
    "retries",
    "startPeriod",
    "links",
    "hostname",
    "volumes",
    "mountPoints",
    "sourceVolume",
    "containerPath",
    "volumesFrom",
    "networkMode",
    "requiresCompatibilities",
    "placementConstraints",
    "type",
    "expression",
    "taskDefinition",
    "kind",
    "spec",
    "metadata",
    "stopTimeout",
    "ulimits",
    "linuxParameters",
    "tags",
    "key",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        "[a-zA-Z0-9:/._ -]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "EC2",
            "FARGATE",
            "awsvpc",
            "bridge",
            "host",
            "START",
            "HEALTHY",
            "tcp",
            "CMD-SHELL",
            "0.25 vCPU",
            "512",
            "2GB"
        ])
        .prop_map(|s| Value::String(s.into())),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// A task definition with generated values under its real field names.
fn near_task_definition() -> impl Strategy<Value = Value> {
    (document(), prop::collection::vec(document(), 1..4)).prop_map(|(extra, containers)| {
        let mut td = json!({"family": "web", "containerDefinitions": containers});
        if let (Some(o), Value::Object(e)) = (td.as_object_mut(), extra) {
            for (k, v) in e {
                if k != "containerDefinitions" {
                    o.insert(k, v);
                }
            }
        }
        td
    })
}

fn render(text: &str) {
    if let Ok(input) = parse_task_definition(text) {
        let identity = PodIdentity {
            name: Some("web-1".into()),
            namespace: Some("prod".into()),
            ..Default::default()
        };
        // Valid or not, it is answered.
        let _ = render_pod(&input.spec, &identity, &RenderOptions::default());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text_is_parsed_or_refused(text in "\\PC{0,200}") {
        if let Err(e) = parse_task_definition(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
        render(&text);
    }

    #[test]
    fn any_json_document_is_parsed_or_refused(doc in document()) {
        let text = doc.to_string();
        match parse_task_definition(&text) {
            Ok(_) | Err(InputError::NotATaskDefinition) | Err(InputError::Shape(_)) => {}
            Err(InputError::Syntax(e)) => prop_assert!(false, "valid JSON refused as syntax: {e}"),
        }
        render(&text);
    }

    #[test]
    fn a_task_definition_of_any_values_renders_or_is_refused(td in near_task_definition()) {
        render(&td.to_string());
    }
}
