//! Kubernetes Events of kubecs' objects (what `kubectl describe` and `kubectl events` show),
//! published as kube's `Recorder` publishes them (events.k8s.io/v1; the same event again
//! within six minutes is a PATCH of its series count, not a new Event), but remembering only
//! what a repeat needs: the Event's name and count, for at most [`MAX_SERIES`] events.
//!
//! kube's recorder keeps every Event it published, whole, for six minutes and scans them all
//! on each publish. At 10,000 tasks that cache was the operator's largest single allocation
//! (every service event of the last six minutes), and its scan grew with it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType};

/// How long an Event stays open to repeats (kube's and client-go's six minutes).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// The most events remembered at once; past it the oldest quarter is forgotten (a repeat of
/// a forgotten event is a new Event, as after six minutes).
pub const MAX_SERIES: usize = 4096;

/// An Event published recently: where it is and how often it happened.
struct Series {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

/// Publishes the Events of one controller (`reportingController`).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    /// By the hash of what makes two events the same (client-go's aggregation key: type,
    /// reason, action, regarding and related object, reporter).
    series: Arc<Mutex<HashMap<u64, Series>>>,
}

impl Recorder {
    pub fn new(client: Client, controller: &str) -> Self {
        Self {
            client,
            controller: controller.to_string(),
            series: Default::default(),
        }
    }

    /// Publishes `ev` about `regarding`: a new Event, or the next count of the same one.
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> kube::Result<()> {
        let key = series_key(ev, regarding);
        let now = Instant::now();
        let repeat = {
            let series = self.series.lock().expect("not poisoned");
            series
                .get(&key)
                .filter(|s| now.duration_since(s.last) < SERIES_TTL)
                .map(|s| (s.namespace.clone(), s.name.clone(), s.count + 1))
        };
        if let Some((namespace, name, count)) = repeat {
            let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({"series": {
                "count": count,
                "lastObservedTime": MicroTime(Timestamp::now()),
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.remember(key, namespace, name, count, now);
                    return Ok(());
                }
                // Gone (the API server's event TTL): a new Event instead.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.event(ev, regarding);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        let created = api.create(&PostParams::default(), &event).await?;
        let name = created.metadata.name.unwrap_or_default();
        self.remember(key, namespace, name, 1, now);
        Ok(())
    }

    fn remember(&self, key: u64, namespace: String, name: String, count: i32, now: Instant) {
        let mut series = self.series.lock().expect("not poisoned");
        if !series.contains_key(&key) && series.len() >= MAX_SERIES {
            forget_oldest(&mut series, now);
        }
        series.insert(
            key,
            Series {
                namespace,
                name,
                count,
                last: now,
            },
        );
    }

    /// The Event as kube's recorder writes it: named after its object and the time.
    fn event(&self, ev: &Event, regarding: &ObjectReference) -> KubeEvent {
        let now = Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        KubeEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(namespace),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.controller.clone()),
            type_: Some(
                match ev.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            ..Default::default()
        }
    }
}

/// What makes two events the same Event: the same type, reason and action about the same
/// object (and related object).
fn series_key(ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    matches!(ev.type_, EventType::Warning).hash(&mut h);
    ev.reason.hash(&mut h);
    ev.action.hash(&mut h);
    for r in std::iter::once(regarding).chain(ev.secondary.as_ref()) {
        r.kind.hash(&mut h);
        r.namespace.hash(&mut h);
        r.name.hash(&mut h);
        r.uid.hash(&mut h);
    }
    h.finish()
}

/// Forgets the expired events and, when that is not enough, the oldest quarter.
fn forget_oldest(series: &mut HashMap<u64, Series>, now: Instant) {
    series.retain(|_, s| now.duration_since(s.last) < SERIES_TTL);
    if series.len() < MAX_SERIES {
        return;
    }
    let mut by_age: Vec<(Instant, u64)> = series.iter().map(|(k, s)| (s.last, *k)).collect();
    by_age.sort_unstable();
    for (_, k) in by_age.into_iter().take(MAX_SERIES / 4) {
        series.remove(&k);
    }
    series.shrink_to(MAX_SERIES);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("shop".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn event(action: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "ServiceEvent".into(),
            note: Some("note".into()),
            action: action.into(),
            secondary: None,
        }
    }

    #[test]
    fn the_same_event_about_the_same_object_is_one_series() {
        let a = series_key(&event("A"), &reference("web"));
        assert_eq!(a, series_key(&event("A"), &reference("web")));
        assert_ne!(a, series_key(&event("B"), &reference("web")));
        assert_ne!(a, series_key(&event("A"), &reference("api")));
        let mut warning = event("A");
        warning.type_ = EventType::Warning;
        assert_ne!(a, series_key(&warning, &reference("web")));
    }

    #[test]
    fn a_full_memory_forgets_the_expired_then_the_oldest_quarter() {
        let start = Instant::now();
        let now = start + SERIES_TTL + Duration::from_secs(60);
        let mut series = HashMap::new();
        let entry = |last| Series {
            namespace: "shop".into(),
            name: "web.1".into(),
            count: 1,
            last,
        };
        // Half expired, half recent and ordered by age.
        for k in 0..(MAX_SERIES / 2) as u64 {
            series.insert(k, entry(start));
        }
        for k in 0..(MAX_SERIES / 2) as u64 {
            series.insert(
                1_000_000 + k,
                entry(start + Duration::from_secs(120) + Duration::from_millis(k)),
            );
        }
        forget_oldest(&mut series, now);
        assert_eq!(series.len(), MAX_SERIES / 2, "only the expired ones go");
        for k in 0..(MAX_SERIES / 2) as u64 {
            series.insert(
                2_000_000 + k,
                entry(start + Duration::from_secs(200) + Duration::from_millis(k)),
            );
        }
        forget_oldest(&mut series, now);
        assert_eq!(series.len(), MAX_SERIES - MAX_SERIES / 4);
        assert!(
            (0..(MAX_SERIES / 4) as u64).all(|k| !series.contains_key(&(1_000_000 + k))),
            "the oldest quarter is forgotten"
        );
        assert!(series.contains_key(&(1_000_000 + (MAX_SERIES / 4) as u64)));
    }

    #[tokio::test]
    async fn a_repeat_patches_the_series_of_the_event_it_repeats() {
        use crate::controllers::testing::World;
        use axum::http::Method;
        let world = World::plain();
        let recorder = &world.ctx.recorder;
        let events = "/apis/events.k8s.io/v1/namespaces/shop/events";
        for action in ["A", "A", "A", "B"] {
            recorder
                .publish(&event(action), &reference("web"))
                .await
                .unwrap();
        }
        let created = world.api.all(&Method::POST, events);
        assert_eq!(created.len(), 2, "A once, then B");
        assert_eq!(created[0].body["reason"], "ServiceEvent");
        assert_eq!(created[0].body["action"], "A");
        assert_eq!(created[0].body["regarding"]["name"], "web");
        assert_eq!(created[0].body["reportingController"], "kubecs");
        let name = created[0].body["metadata"]["name"].as_str().unwrap();
        let patches = world.api.all(&Method::PATCH, &format!("{events}/{name}"));
        let counts: Vec<_> = patches
            .iter()
            .map(|p| p.body["series"]["count"].clone())
            .collect();
        assert_eq!(counts, [2, 3]);
        assert!(patches[0].body["series"]["lastObservedTime"].is_string());
    }

    #[tokio::test]
    async fn a_repeat_of_an_event_the_api_server_dropped_is_a_new_event() {
        use crate::controllers::testing::{World, failure};
        use axum::http::Method;
        // Events live an hour in the API server: this one is gone when it repeats.
        let world = World::new(Box::new(|c| {
            (c.method == Method::PATCH).then(|| failure(404, "NotFound", "not found"))
        }));
        let recorder = &world.ctx.recorder;
        for _ in 0..2 {
            recorder
                .publish(&event("A"), &reference("web"))
                .await
                .unwrap();
        }
        let events = "/apis/events.k8s.io/v1/namespaces/shop/events";
        assert_eq!(world.api.all(&Method::POST, events).len(), 2);
    }
}
