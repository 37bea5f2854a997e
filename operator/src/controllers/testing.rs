//! Scenario tests of a reconciler's conversation with the API server, in the manner of
//! kube-rs's controller-rs: the `Context`'s client talks to an in-process API server (a
//! tower-test mock) that records every request and answers it, from the test's script first
//! and otherwise like a plain API server (creates get a name and uid, patches return the
//! object, gets find what was created or seeded). The stores are filled by hand, so a test
//! states the world a reconcile sees and then checks what it asked the API server to do, in
//! which order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::{Context, Stores};
use crate::api::{CapacityProvider, EcsCluster, Service, TaskDefinition};
use crate::metrics::Metrics;

/// One request the reconciler made.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    /// The URL path, without the query.
    pub path: String,
    pub query: String,
    /// The JSON body (Null when empty).
    pub body: Value,
}

impl Call {
    pub fn is(&self, method: &Method, path: &str) -> bool {
        self.method == *method && self.path == path
    }
}

/// The test's script: an answer for the calls it cares about, `None` for the plain behaviour.
pub type Script = Box<dyn Fn(&Call) -> Option<(StatusCode, Value)> + Send + Sync>;

/// A Kubernetes `Status` failure body, as the API server sends it.
pub fn failure(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).expect("a status code"),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// The in-process API server: what it was asked, and the objects it holds by path.
#[derive(Clone, Default)]
pub struct ApiServer {
    calls: Arc<Mutex<Vec<Call>>>,
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl ApiServer {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("not poisoned").clone()
    }

    /// Index of the first call with this method and path.
    pub fn first(&self, method: &Method, path: &str) -> Option<usize> {
        self.calls().iter().position(|c| c.is(method, path))
    }

    /// Every call with this method and path.
    pub fn all(&self, method: &Method, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.is(method, path))
            .collect()
    }

    /// An object the API server holds at `path` (GET finds it; PATCH merges into it).
    pub fn seed(&self, path: &str, object: Value) {
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(path.to_string(), object);
    }

    /// The object the API server holds at `path`, as the reconciler left it.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects
            .lock()
            .expect("not poisoned")
            .get(path)
            .cloned()
    }

    /// The plain behaviour: POST creates (a name from generateName, a uid), PATCH merges into
    /// the held object (a status patch into its status), GET finds, DELETE removes.
    fn answer(&self, call: &Call) -> (StatusCode, Value) {
        let mut objects = self.objects.lock().expect("not poisoned");
        let object_path = call.path.strip_suffix("/status").unwrap_or(&call.path);
        match call.method {
            Method::POST => {
                let mut obj = call.body.clone();
                let n = objects.len();
                let meta = &mut obj["metadata"];
                if meta.get("name").and_then(Value::as_str).is_none() {
                    let prefix = meta["generateName"].as_str().unwrap_or("obj-").to_string();
                    meta["name"] = json!(format!("{prefix}{n:05}"));
                }
                meta["uid"] = json!(format!("uid-{n}"));
                meta["resourceVersion"] = json!("1");
                let path = format!("{}/{}", call.path, meta["name"].as_str().expect("named"));
                if objects.contains_key(&path) {
                    return failure(409, "AlreadyExists", "already exists");
                }
                objects.insert(path, obj.clone());
                (StatusCode::CREATED, obj)
            }
            Method::PATCH => {
                let Some(held) = objects.get_mut(object_path) else {
                    return failure(404, "NotFound", "not found");
                };
                if let Value::Object(patch) = &call.body {
                    for (k, v) in patch {
                        if k != "apiVersion" && k != "kind" {
                            merge(&mut held[k], v);
                        }
                    }
                }
                (StatusCode::OK, held.clone())
            }
            Method::GET => match objects.get(object_path) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => failure(404, "NotFound", "not found"),
            },
            Method::DELETE => match objects.remove(object_path) {
                Some(o) => (StatusCode::OK, o),
                None => failure(404, "NotFound", "not found"),
            },
            _ => failure(405, "MethodNotAllowed", "not in this test's API server"),
        }
    }
}

/// JSON merge patch semantics (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// What a reconciler sees: the context (its client on the in-process API server) and the
/// stores' writers.
pub struct World {
    pub ctx: Arc<Context>,
    pub api: ApiServer,
    nodes: Writer<Node>,
    services: Writer<Service>,
    taskdefs: Writer<TaskDefinition>,
    revisions: Writer<ControllerRevision>,
    capacity_providers: Writer<CapacityProvider>,
    clusters: Writer<EcsCluster>,
}

impl World {
    /// A world whose API server answers `script` first.
    pub fn new(script: Script) -> World {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = ApiServer::default();
        let server = api.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect().await.expect("a body").to_bytes();
                let call = Call {
                    method: parts.method,
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                server
                    .calls
                    .lock()
                    .expect("not poisoned")
                    .push(call.clone());
                let (status, reply) = script(&call).unwrap_or_else(|| server.answer(&call));
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                    .expect("a response");
                respond.send_response(response);
            }
        });
        let client = Client::new(mock, "default");
        let (nodes_r, nodes) = reflector::store();
        let (services_r, services) = reflector::store();
        let (taskdefs_r, taskdefs) = reflector::store();
        let (revisions_r, revisions) = reflector::store();
        let (capacity_r, capacity_providers) = reflector::store();
        let (clusters_r, clusters) = reflector::store();
        let mut registry = prometheus_client::registry::Registry::default();
        let ctx = Context::new(
            client,
            Arc::new(Metrics::new(&mut registry)),
            Stores {
                nodes: nodes_r,
                services: services_r,
                taskdefs: taskdefs_r,
                revisions: revisions_r,
                tasks: Default::default(),
                capacity_providers: capacity_r,
                clusters: clusters_r,
                registered: Default::default(),
                instances: Default::default(),
                node_usage: Default::default(),
            },
        );
        World {
            ctx: Arc::new(ctx),
            api,
            nodes,
            services,
            taskdefs,
            revisions,
            capacity_providers,
            clusters,
        }
    }

    pub fn plain() -> World {
        World::new(Box::new(|_| None))
    }

    pub fn node(&mut self, n: Node) {
        self.ctx
            .stores
            .instances
            .apply(&watcher::Event::Apply(n.clone()));
        self.nodes.apply_watcher_event(&watcher::Event::Apply(n));
    }

    pub fn pod(&mut self, p: Pod) {
        let event = watcher::Event::Apply(p.clone());
        self.ctx.stores.node_usage.apply(&event);
        self.ctx.stores.tasks.apply(&event);
    }

    pub fn service(&mut self, s: Service) {
        self.services.apply_watcher_event(&watcher::Event::Apply(s));
    }

    pub fn taskdef(&mut self, t: TaskDefinition) {
        self.taskdefs.apply_watcher_event(&watcher::Event::Apply(t));
    }

    pub fn capacity_provider(&mut self, c: CapacityProvider) {
        self.capacity_providers
            .apply_watcher_event(&watcher::Event::Apply(c));
    }

    pub fn cluster(&mut self, c: EcsCluster) {
        self.clusters.apply_watcher_event(&watcher::Event::Apply(c));
    }

    pub fn revision(&mut self, r: ControllerRevision) {
        self.ctx
            .stores
            .registered
            .apply(&watcher::Event::Apply(r.clone()));
        self.revisions
            .apply_watcher_event(&watcher::Event::Apply(r));
    }
}

/// A KWOK-like Node: 2 vCPU, 4 GiB, in `zone`, claimed by cluster `claimed_by` (`ns/name`).
pub fn node(name: &str, zone: &str, claimed_by: Option<&str>) -> Node {
    let mut annotations = serde_json::Map::new();
    if let Some(c) = claimed_by {
        annotations.insert(
            crate::placement::instance::CLAIM_ANNOTATION.into(),
            json!(c),
        );
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "uid": format!("node-{name}"), "resourceVersion": "7",
            "labels": {"topology.kubernetes.io/zone": zone, "type": "kwok",
                       "node.kubernetes.io/instance-type": "m5.large"},
            "annotations": annotations,
        },
        "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .expect("a Node")
}
