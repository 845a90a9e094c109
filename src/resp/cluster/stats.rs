//! What a cluster client has done: [`ClusterStats`] through a [`ClusterHandle`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a [`Cluster`](super::Cluster) has done; see [`ClusterHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Slot maps loaded (the first included).
    pub refreshes: u64,
    /// `MOVED` replies followed.
    pub moved: u64,
    /// `ASK` replies followed.
    pub asked: u64,
    /// Commands sent again after `TRYAGAIN`, `CLUSTERDOWN`, `LOADING` or a
    /// lost connection.
    pub retries: u64,
    /// Reads sent to a shard's replicas that failed or were redirected,
    /// and were sent to its primary instead.
    pub fallbacks: u64,
}

/// A cheap handle on a [`Cluster`](super::Cluster)'s counters.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    pub(super) counters: Arc<Counters>,
}

impl ClusterHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.counters;
        ClusterStats {
            refreshes: c.refreshes.load(Ordering::Relaxed),
            moved: c.moved.load(Ordering::Relaxed),
            asked: c.asked.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) refreshes: AtomicU64,
    pub(super) moved: AtomicU64,
    pub(super) asked: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) fallbacks: AtomicU64,
}
