//! What the long-running commands share: shared reflectors whose watch errors surface in
//! readiness, the admin server (/live, /ready, /metrics), the shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use prometheus_client::registry::Registry;
use tracing::info;

use crate::controllers::WatchHealth;

/// Every failure that ends a command: printed by main, exit status 1.
pub type Fatal = Box<dyn std::error::Error + Send + Sync>;

/// What a shared reflector can watch: a kind of the API server, decoded into `K`.
pub trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A reflector whose store the reconcilers read and whose events can trigger controllers.
/// The watch runs in its own task so the store stays current whoever polls the events.
/// Watch errors (an RBAC 403, a dropped connection) are logged and make `/ready` fail until
/// the watch lists again; the watcher's backoff retries them.
pub fn shared_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    health: &Arc<WatchHealth>,
) -> (Store<K>, Subscribers<K>)
where
    K: Watched,
{
    indexed_reflector(
        api,
        config,
        health,
        |_: &watcher::Event<K>| {},
        |_: &mut K| {},
    )
}

/// A shared reflector whose every watch event is first given to `index` (see
/// `controllers::pod_index`): before the store applies it, so what the store holds, the index
/// holds too. The store keeps each object less its managed fields (nobody reads them; they
/// are often a third of an object) and less what `trim` removes.
pub fn indexed_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    health: &Arc<WatchHealth>,
    index: impl Fn(&watcher::Event<K>) + Send + 'static,
    trim: impl Fn(&mut K) + Send + 'static,
) -> (Store<K>, Subscribers<K>)
where
    K: Watched,
{
    let (reader, writer) = reflector::store();
    let subscribers = Subscribers::of_store(reader.clone());
    let (fan_out, store) = (subscribers.clone(), reader.clone());
    let kind = format!("{}.{}", K::plural(&()), K::group(&()));
    let health = health.clone();
    let watch = watcher(api, config.any_semantic())
        .default_backoff()
        .map_ok(move |event| {
            index(&event);
            event
        })
        .modify(move |obj| {
            obj.meta_mut().managed_fields = None;
            trim(obj);
        })
        .reflect(writer)
        .for_each(move |event| {
            if let Some(event) = checked(&health, &kind, event) {
                fan_out.dispatch(&store, &event);
            }
            futures::future::ready(())
        });
    tokio::spawn(watch);
    (reader, subscribers)
}

/// A watch that keeps an index and no store: for a kind whose objects no reconciler reads
/// one by one (every pod of the cluster, foreign ones too: placement needs what runs on each
/// Node, not the pods). The receiver turns true once the first list is complete; errors
/// surface in readiness as a reflector's do.
pub fn index_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    health: &Arc<WatchHealth>,
    index: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> tokio::sync::watch::Receiver<bool>
where
    K: Watched,
{
    let (listed, ready) = tokio::sync::watch::channel(false);
    let kind = format!("{}.{}", K::plural(&()), K::group(&()));
    let health = health.clone();
    let watch = watcher(api, config.any_semantic())
        .default_backoff()
        .for_each(move |event| {
            if let Some(event) = checked(&health, &kind, event) {
                index(&event);
                if matches!(event, watcher::Event::InitDone) {
                    listed.send_replace(true);
                }
            }
            futures::future::ready(())
        });
    tokio::spawn(watch);
    ready
}

/// A watch's event, or its error logged and shown in readiness until the watch recovers
/// (the watcher's backoff retries it).
fn checked<K>(
    health: &WatchHealth,
    kind: &str,
    event: Result<watcher::Event<K>, watcher::Error>,
) -> Option<watcher::Event<K>> {
    match event {
        Err(e) => {
            tracing::warn!(watch = %kind, error = %e, "watch failed; retrying");
            health.failing(kind, e.to_string());
            None
        }
        Ok(event) => {
            health.recovered(kind);
            Some(event)
        }
    }
}

/// What a watch applied, passed on to each subscriber (the controllers it triggers) as the
/// store or index beside the watch holds it: a reflector's objects, or task pods as
/// `pod_index::TaskPods` keeps them.
///
/// Not kube's shared-store dispatcher: its subscriber stream answers `Pending` without a
/// waker when the object it was told of has left the store by the time it reads (a pod
/// deleted a moment after its update), so a subscriber whose task nothing else wakes (the
/// RunTask controller when no Task changes) stops reading; its bounded buffer then fills
/// and holds the reflector, and every store of that kind goes stale (services saw none of
/// their new tasks and started more). Here each subscriber has an unbounded channel: the
/// watch never waits for a reader, and a reader is only ever late.
pub struct Subscribers<T> {
    senders: Arc<std::sync::Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Arc<T>>>>>,
    /// Everything the store or index holds now.
    held: Arc<dyn Fn() -> Vec<Arc<T>> + Send + Sync>,
}

impl<T> Clone for Subscribers<T> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
            held: self.held.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> Subscribers<T> {
    /// Subscribers of what `held` answers from.
    pub fn new(held: impl Fn() -> Vec<Arc<T>> + Send + Sync + 'static) -> Self {
        Self {
            senders: Default::default(),
            held: Arc::new(held),
        }
    }

    /// A stream of the objects applied from now on, starting with every object held: a
    /// subscriber that comes late (a controller started on gaining a lease) still sees each
    /// object once.
    pub fn subscribe(&self) -> impl futures::Stream<Item = Arc<T>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Under the lock: an object applied after this snapshot is sent to `tx` too.
        let mut senders = self.senders.lock().expect("not poisoned");
        for obj in (self.held)() {
            let _ = tx.send(obj);
        }
        senders.push(tx);
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) })
    }

    /// Passes `objects` on to every subscriber.
    pub fn send(&self, objects: Vec<Arc<T>>) {
        if objects.is_empty() {
            return;
        }
        let mut senders = self.senders.lock().expect("not poisoned");
        // A subscriber that has gone (its stream dropped) is forgotten.
        senders.retain(|tx| objects.iter().all(|o| tx.send(o.clone()).is_ok()));
    }
}

impl<K: Watched> Subscribers<K> {
    /// Subscribers of a reflector's store.
    fn of_store(store: Store<K>) -> Self {
        Self::new(move || store.state())
    }

    /// Passes on what a watch event put in `store`: the object applied, or after a (re)list
    /// every object.
    fn dispatch(&self, store: &Store<K>, event: &watcher::Event<K>) {
        self.send(match event {
            watcher::Event::Apply(obj) => store
                .get(&reflector::ObjectRef::from_obj(obj))
                .into_iter()
                .collect(),
            watcher::Event::InitDone => store.state(),
            _ => return,
        });
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

struct Admin {
    registry: Registry,
    ready: Arc<AtomicBool>,
    watches: Arc<WatchHealth>,
}

/// `/live`, `/ready` (once `ready` is set, while every watch works) and `/metrics`.
pub async fn admin_server(
    addr: SocketAddr,
    registry: Registry,
    ready: Arc<AtomicBool>,
    watches: Arc<WatchHealth>,
) {
    let state = Arc::new(Admin {
        registry,
        ready,
        watches,
    });
    let app = Router::new()
        .route("/live", get(|| async { "ok" }))
        .route(
            "/ready",
            get(|State(s): State<Arc<Admin>>| async move {
                if !s.ready.load(Ordering::SeqCst) {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string())
                } else if let Some(why) = s.watches.first_failure() {
                    (StatusCode::SERVICE_UNAVAILABLE, why)
                } else {
                    (StatusCode::OK, "ok".to_string())
                }
            }),
        )
        .route("/metrics", get(metrics_handler))
        .with_state(state);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            info!(%addr, "admin server listening");
            let _ = axum::serve(listener, app).await;
        }
        Err(e) => tracing::error!(%addr, error = %e, "admin server could not bind"),
    }
}

async fn metrics_handler(State(s): State<Arc<Admin>>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            String::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector::{self, ObjectRef};
    use kube::runtime::watcher::Event;

    use super::Subscribers;

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("shop".into());
        p
    }

    fn names(objects: &[std::sync::Arc<Pod>]) -> Vec<String> {
        let mut n: Vec<String> = objects
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        n.sort();
        n
    }

    #[tokio::test]
    async fn a_subscriber_never_holds_the_watch_and_a_late_one_sees_the_store() {
        let (store, mut writer) = reflector::store::<Pod>();
        let subs = Subscribers::of_store(store.clone());
        // A subscriber nobody polls while thousands of events go by: dispatching never
        // waits for it (kube's dispatcher would stop at its buffer of 1,024).
        let idle = subs.subscribe();
        for i in 0..3000 {
            let ev = Event::Apply(pod(&format!("t{i}")));
            writer.apply_watcher_event(&ev);
            subs.dispatch(&store, &ev);
        }
        // An object gone from the store by the time it is read is simply not in the stream.
        let gone = Event::Delete(pod("t0"));
        writer.apply_watcher_event(&gone);
        subs.dispatch(&store, &gone);
        let first: Vec<_> = idle.take(3000).collect().await;
        assert_eq!(first.len(), 3000);

        // A late subscriber starts with every object the store holds, then what follows.
        let late = subs.subscribe();
        let next = Event::Apply(pod("new"));
        writer.apply_watcher_event(&next);
        subs.dispatch(&store, &next);
        let seen: Vec<_> = late.take(3000).collect().await;
        assert!(names(&seen).contains(&"new".to_string()) && !names(&seen).contains(&"t0".into()));
        assert!(store.get(&ObjectRef::new("new").within("shop")).is_some());
        // Both subscriptions were dropped: they are forgotten on the next dispatch.
        subs.dispatch(&store, &next);
        assert!(subs.senders.lock().unwrap().is_empty());
    }
}
