//! [`RouterHandle`]: each endpoint's state and counters.

use super::endpoint::EndpointInfo;
use super::health::EndpointState;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A cheap handle on a [`Router`](super::Router)'s endpoints: their state
/// and counters. It does not keep the router alive.
#[derive(Debug, Clone)]
pub struct RouterHandle {
    endpoints: Arc<[Arc<EndpointInfo>]>,
}

/// One endpoint's state and counters; see [`RouterHandle::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint's name.
    pub name: String,
    /// Up, ejected or being probed.
    pub state: EndpointState,
    /// Calls that reached its stack (a batch's part is one).
    pub requests: u64,
    /// Calls that failed in a way that counts against it.
    pub failures: u64,
    /// Times it was ejected.
    pub ejections: u64,
    /// Probes sent while it was ejected.
    pub probes: u64,
    /// Probes that failed.
    pub probe_failures: u64,
    /// Its pool's connections, if the stack has a [pool](crate::pool).
    pub connections: Option<usize>,
}

impl RouterHandle {
    pub(super) fn new(endpoints: Vec<Arc<EndpointInfo>>) -> Self {
        RouterHandle {
            endpoints: endpoints.into(),
        }
    }

    /// A snapshot of every endpoint, in the order given to the router.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.endpoints
            .iter()
            .map(|info| {
                let health = &info.health;
                EndpointStats {
                    name: info.name.to_string(),
                    state: health.state(),
                    requests: health.requests.load(Ordering::Relaxed),
                    failures: health.failures.load(Ordering::Relaxed),
                    ejections: health.ejections.load(Ordering::Relaxed),
                    probes: health.probes.load(Ordering::Relaxed),
                    probe_failures: health.probe_failures.load(Ordering::Relaxed),
                    connections: info.pool.as_ref().map(|pool| pool.stats().connections),
                }
            })
            .collect()
    }

    /// The state of the endpoint named `name`, if there is one.
    pub fn state(&self, name: &str) -> Option<EndpointState> {
        self.endpoints
            .iter()
            .find(|info| &*info.name == name)
            .map(|info| info.health.state())
    }
}
