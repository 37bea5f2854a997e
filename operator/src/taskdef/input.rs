//! What `kubecs render` reads: an ECS task definition as users have it.
//!
//! - the JSON of `aws ecs register-task-definition --cli-input-json` (the RegisterTaskDefinition
//!   input);
//! - the output of `aws ecs describe-task-definition` (`{"taskDefinition": {...}}`), whose
//!   read-only fields (`taskDefinitionArn`, `revision`, `status`, `registeredAt`,
//!   `requiresAttributes`, `compatibilities`...) are ignored;
//! - a TaskDefinition object (`kind: TaskDefinition`) in YAML or JSON, whose `metadata.name`
//!   is the family when `spec.family` is not set.
//!
//! A field kubecs does not know is reported as a warning, never dropped silently.

use serde_json::Value;

use crate::api::taskdef::TaskDefinitionSpec;

/// Fields of DescribeTaskDefinition's output that are not RegisterTaskDefinition input.
pub const READ_ONLY_FIELDS: [&str; 8] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

/// A parsed task definition and what was noticed on the way.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub spec: TaskDefinitionSpec,
    /// The revision, when the input was describe-task-definition output.
    pub revision: Option<i64>,
    /// Unknown fields, ignored.
    pub warnings: Vec<String>,
}

/// Why the input is not a task definition.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("cannot parse the input as JSON or YAML: {0}")]
    Syntax(String),
    #[error(
        "the input is not an ECS task definition (no containerDefinitions, taskDefinition or kind: TaskDefinition)"
    )]
    NotATaskDefinition,
    #[error("invalid task definition: {0}")]
    Shape(String),
}

fn documents(text: &str) -> Result<Vec<Value>, InputError> {
    let json_err = match serde_json::from_str::<Value>(text) {
        Ok(v) => return Ok(vec![v]),
        Err(e) => e,
    };
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match serde::Deserialize::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(v) => docs.push(v),
            Err(_) if text.trim_start().starts_with('{') => {
                return Err(InputError::Syntax(json_err.to_string()));
            }
            Err(e) => return Err(InputError::Syntax(e.to_string())),
        }
    }
    Ok(docs)
}

/// The task definition object inside a document, the family default and the revision.
fn task_definition(doc: &Value) -> Option<(Value, Option<String>, Option<i64>)> {
    let obj = doc.as_object()?;
    if obj.get("kind").and_then(Value::as_str) == Some("TaskDefinition") {
        let mut spec = obj.get("spec")?.clone();
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if let (Some(s), Some(n)) = (spec.as_object_mut(), &name)
            && !s.contains_key("family")
        {
            s.insert("family".into(), Value::String(n.clone()));
        }
        return Some((spec, name, None));
    }
    if let Some(inner) = obj.get("taskDefinition").filter(|v| v.is_object()) {
        let mut inner = inner.clone();
        if let (Some(tags), Some(i)) = (obj.get("tags"), inner.as_object_mut())
            && !i.contains_key("tags")
        {
            i.insert("tags".into(), tags.clone());
        }
        let revision = inner.get("revision").and_then(Value::as_i64);
        return Some((inner, None, revision));
    }
    if obj.contains_key("containerDefinitions") {
        let revision = obj.get("revision").and_then(Value::as_i64);
        return Some((doc.clone(), None, revision));
    }
    None
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Fields of `input` that did not survive deserialization.
fn unknown_fields(input: &Value, parsed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, parsed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if is_empty(v) {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => unknown_fields(v, bv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Reads a task definition from JSON or YAML text (see the module docs for the forms).
pub fn parse_task_definition(text: &str) -> Result<Input, InputError> {
    let docs = documents(text)?;
    let (mut value, _name, revision) = docs
        .iter()
        .find_map(task_definition)
        .ok_or(InputError::NotATaskDefinition)?;
    if let Some(obj) = value.as_object_mut() {
        for f in READ_ONLY_FIELDS {
            obj.remove(f);
        }
    }
    let spec: TaskDefinitionSpec =
        serde_json::from_value(value.clone()).map_err(|e| InputError::Shape(e.to_string()))?;
    let parsed = serde_json::to_value(&spec).map_err(|e| InputError::Shape(e.to_string()))?;
    let mut unknown = Vec::new();
    unknown_fields(&value, &parsed, "", &mut unknown);
    Ok(Input {
        spec,
        revision,
        warnings: unknown
            .into_iter()
            .map(|f| format!("unknown field '{f}' is ignored"))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_input_json() {
        let i = parse_task_definition(
            r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128, "links": []}]}"#,
        )
        .unwrap();
        assert_eq!(i.spec.family.as_deref(), Some("web"));
        assert!(i.warnings.is_empty());
        assert_eq!(i.revision, None);
    }

    #[test]
    fn describe_output_ignores_read_only_fields() {
        let i = parse_task_definition(
            r#"{"taskDefinition": {"taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/web:7",
                "family": "web", "revision": 7, "status": "ACTIVE",
                "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
                "compatibilities": ["EC2"], "registeredAt": "2024-01-01T00:00:00Z", "registeredBy": "arn:aws:iam::1:root",
                "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128, "mountPoints": [], "volumesFrom": []}]},
               "tags": [{"key": "team", "value": "web"}]}"#,
        )
        .unwrap();
        assert_eq!(i.revision, Some(7));
        assert_eq!(i.spec.tags.len(), 1);
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    #[test]
    fn task_definition_yaml() {
        let i = parse_task_definition(
            "apiVersion: ecs.kubecs.io/v1alpha1\nkind: TaskDefinition\nmetadata:\n  name: web\nspec:\n  cpu: 256\n  containerDefinitions:\n  - name: web\n    image: nginx\n    memory: 128\n",
        )
        .unwrap();
        assert_eq!(i.spec.family.as_deref(), Some("web"));
        assert_eq!(i.spec.container_definitions[0].memory, Some(128));
    }

    #[test]
    fn unknown_fields_are_reported() {
        let i = parse_task_definition(
            r#"{"family": "web", "colour": "blue", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128, "memorySwap": 5}]}"#,
        )
        .unwrap();
        assert_eq!(
            i.warnings,
            [
                "unknown field 'colour' is ignored",
                "unknown field 'containerDefinitions[0].memorySwap' is ignored"
            ]
        );
    }

    #[test]
    fn not_a_task_definition() {
        assert_eq!(
            parse_task_definition("{\"kind\": \"Pod\"}").unwrap_err(),
            InputError::NotATaskDefinition
        );
        assert!(matches!(
            parse_task_definition("{ nope").unwrap_err(),
            InputError::Syntax(_)
        ));
        assert!(matches!(
            parse_task_definition(r#"{"containerDefinitions": [{"image": "x"}]}"#).unwrap_err(),
            InputError::Shape(_)
        ));
    }
}
