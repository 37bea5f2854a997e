//! Indexes kept by the watch events themselves, so that a reconcile reads what concerns it
//! instead of scanning (and re-parsing) every object of a kind: `pod_index` for pods,
//! `instance_index` for Nodes.
//!
//! An index is updated before the store it sits beside (see `cli::wiring`), so whatever a
//! reconcile finds in the store, the index holds too. A relist builds a fresh index and swaps
//! it in when the list is complete, as the store does.

use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::Resource;
use kube::runtime::watcher;

/// What an index keeps of an object of kind `K`.
pub trait WatchIndex<K>: Default + Send + Sync + 'static {
    /// Adds `object`, replacing what the index held for the same uid.
    fn upsert(&mut self, object: &K);
    /// Forgets the object with `uid`.
    fn remove(&mut self, uid: &str);
}

/// An index shared between the watch that keeps it and the reconcilers that read it.
#[derive(Default)]
pub struct Shared<I> {
    live: RwLock<I>,
    /// The index a relist is building, swapped in at `InitDone`.
    building: Mutex<Option<I>>,
}

impl<I> Shared<I> {
    /// Applies one watch event.
    pub fn apply<K: Resource>(&self, event: &watcher::Event<K>)
    where
        I: WatchIndex<K>,
    {
        let uid = |o: &K| o.meta().uid.clone().unwrap_or_default();
        match event {
            watcher::Event::Apply(o) => self.write().upsert(o),
            watcher::Event::Delete(o) => self.write().remove(&uid(o)),
            watcher::Event::Init => {
                *self.building.lock().expect("not poisoned") = Some(I::default())
            }
            watcher::Event::InitApply(o) => {
                if let Some(b) = self.building.lock().expect("not poisoned").as_mut() {
                    b.upsert(o);
                }
            }
            watcher::Event::InitDone => {
                if let Some(b) = self.building.lock().expect("not poisoned").take() {
                    *self.write() = b;
                }
            }
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, I> {
        self.live.read().expect("not poisoned")
    }

    fn write(&self) -> RwLockWriteGuard<'_, I> {
        self.live.write().expect("not poisoned")
    }
}
