//! LINEAR and CANARY deployments move production traffic through a Gateway API HTTPRoute:
//! the route named by `loadBalancers[].advancedConfiguration.productionListenerRule` has
//! backendRefs to the production target group's Service (blue) and the alternate one
//! (green), and their weights follow the green deployment's share step by step. Without a
//! route there are no weights to set: traffic moves all at once, as BLUE_GREEN.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use super::service::target_group_name;
use crate::api::service::LoadBalancer;

/// The total of a route's two weights (so a share of 0.1% is a whole weight).
pub const TOTAL_WEIGHT: i64 = 10_000;

fn routes(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// Where the weights are: the route's name, and the blue and green Services' names and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTarget {
    pub route: String,
    pub blue: String,
    pub green: String,
    pub port: i32,
}

/// The first load balancer that names a route and an alternate target group.
pub fn route_target(lbs: &[LoadBalancer]) -> Option<RouteTarget> {
    lbs.iter().find_map(|lb| {
        let a = lb.advanced_configuration.as_ref()?;
        let rule = a.production_listener_rule.as_deref()?;
        Some(RouteTarget {
            route: rule.rsplit('/').next().unwrap_or(rule).to_string(),
            blue: target_group_name(lb.target_group_arn.as_deref()?),
            green: target_group_name(a.alternate_target_group_arn.as_deref()?),
            port: lb.container_port.unwrap_or(80),
        })
    })
}

/// Whether the route exists (an absent Gateway API, or no such route, is "no").
pub async fn route_exists(client: &kube::Client, ns: &str, t: &RouteTarget) -> bool {
    matches!(routes(client, ns).get_opt(&t.route).await, Ok(Some(_)))
}

/// `rules` with every rule's backendRefs weighted: blue `TOTAL - green`, green `green` (a
/// green ref is added where a rule lacks one). Other refs are left as they are.
pub fn weighted_rules(rules: &Value, t: &RouteTarget, green: i64) -> Value {
    let mut rules = rules.clone();
    for rule in rules.as_array_mut().into_iter().flatten() {
        let refs = rule
            .as_object_mut()
            .map(|r| r.entry("backendRefs").or_insert_with(|| json!([])));
        let Some(refs) = refs.and_then(Value::as_array_mut) else {
            continue;
        };
        let mut has_green = false;
        for r in refs.iter_mut() {
            match r.get("name").and_then(Value::as_str) {
                Some(n) if n == t.blue => r["weight"] = json!(TOTAL_WEIGHT - green),
                Some(n) if n == t.green => {
                    r["weight"] = json!(green);
                    has_green = true;
                }
                _ => {}
            }
        }
        if !has_green {
            refs.push(json!({"name": t.green, "port": t.port, "weight": green}));
        }
    }
    rules
}

/// Sets the route's weights for a green share of `percent` (updates only on a change).
pub async fn set_weights(
    client: &kube::Client,
    ns: &str,
    t: &RouteTarget,
    percent: f64,
) -> Result<(), kube::Error> {
    let api = routes(client, ns);
    let Some(mut route) = api.get_opt(&t.route).await? else {
        return Ok(());
    };
    let green = ((percent / 100.0) * TOTAL_WEIGHT as f64).round() as i64;
    let rules = route
        .data
        .pointer("/spec/rules")
        .cloned()
        .unwrap_or(json!([]));
    let weighted = weighted_rules(&rules, t, green.clamp(0, TOTAL_WEIGHT));
    if weighted == rules {
        return Ok(());
    }
    route.data["spec"]["rules"] = weighted;
    // A replace carries the resourceVersion read: a concurrent edit makes it fail and the
    // next pass tries again.
    api.replace(&t.route, &PostParams::default(), &route)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_split_blue_and_green_and_leave_other_backends_alone() {
        let t = RouteTarget {
            route: "shop".into(),
            blue: "shop-prod".into(),
            green: "shop-test".into(),
            port: 80,
        };
        let rules = json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
             "backendRefs": [{"name": "shop-prod", "port": 80}, {"name": "legacy", "port": 8080, "weight": 5}]}
        ]);
        let w = weighted_rules(&rules, &t, 2500);
        assert_eq!(
            w[0]["backendRefs"],
            json!([
                {"name": "shop-prod", "port": 80, "weight": 7500},
                {"name": "legacy", "port": 8080, "weight": 5},
                {"name": "shop-test", "port": 80, "weight": 2500}
            ])
        );
        assert_eq!(w[0]["matches"], rules[0]["matches"]);
        let back = weighted_rules(&w, &t, 0);
        assert_eq!(back[0]["backendRefs"][0]["weight"], 10_000);
        assert_eq!(back[0]["backendRefs"][2]["weight"], 0);
    }
}
