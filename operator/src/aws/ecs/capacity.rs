//! DescribeCapacityProviders: the account's CapacityProvider objects (named groups of
//! container instances) and ECS's built-in FARGATE and FARGATE_SPOT.

use kube::ResourceExt;
use kube::api::ListParams;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Caller;
use crate::api::capacity_provider::{CapacityProvider, FARGATE, FARGATE_SPOT};
use crate::aws::AwsError;
use crate::aws::page::page;

fn arn(ns: &str, name: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{ns}:capacity-provider/{name}",
        crate::arn::REGION
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DescribeCapacityProviders {
    #[serde(default)]
    capacity_providers: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    max_results: Option<i32>,
    next_token: Option<String>,
}

pub async fn describe(c: &Caller, i: DescribeCapacityProviders) -> Result<Value, AwsError> {
    let ns = c.account().to_string();
    let objects = c
        .api::<CapacityProvider>(&ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| c.kube_error(e, &arn(&ns, "*")))?
        .items;
    let tags = i.include.iter().any(|x| x == "TAGS");
    let mut all: Vec<(String, Value)> = [FARGATE, FARGATE_SPOT]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                json!({ "capacityProviderArn": arn(&ns, n), "name": n, "status": "ACTIVE", "type": n }),
            )
        })
        .collect();
    for cp in &objects {
        let mut v = json!({ "capacityProviderArn": arn(&ns, &cp.name_any()), "name": cp.name_any(), "status": "ACTIVE" });
        if tags {
            v["tags"] = json!(cp.spec.tags);
        }
        all.push((cp.name_any(), v));
    }
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    if i.capacity_providers.is_empty() {
        let names: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
        let (names, next) = page(names, i.max_results, i.next_token.as_deref(), 10)?;
        found = names
            .iter()
            .filter_map(|n| all.iter().find(|(m, _)| m == n).map(|(_, v)| v.clone()))
            .collect();
        return Ok(json!({ "capacityProviders": found, "failures": [], "nextToken": next }));
    }
    for want in &i.capacity_providers {
        let name = want.rsplit('/').next().unwrap_or(want);
        match all.iter().find(|(n, _)| n == name) {
            Some((_, v)) => found.push(v.clone()),
            None => failures.push(json!({ "arn": arn(&ns, name), "reason": "MISSING" })),
        }
    }
    Ok(json!({ "capacityProviders": found, "failures": failures }))
}
