//! [`BalanceHandle`]: each endpoint's state, load and counters, and adding
//! and removing endpoints at run time.

use super::error::BalanceError;
use super::service::Shared;
use crate::route::EndpointState;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A handle on a [`Balance`](super::Balance)'s endpoints: read their
/// state and load, add and remove them. It keeps the endpoints alive.
#[derive(Clone)]
pub struct BalanceHandle {
    members: Arc<dyn Members>,
}

/// What a handle does, over a balancer of any stack.
trait Members: Send + Sync {
    fn stats(&self) -> Vec<EndpointLoad>;
    fn add(&self, address: &str) -> Result<(), BalanceError>;
    fn remove(&self, name: &str) -> bool;
}

impl<S: Send + Sync + 'static> Members for Shared<S> {
    fn stats(&self) -> Vec<EndpointLoad> {
        self.snapshot()
            .iter()
            .map(|endpoint| {
                let health = &endpoint.info.health;
                EndpointLoad {
                    name: endpoint.info.name.to_string(),
                    state: health.state(),
                    in_flight: endpoint.load.in_flight(),
                    latency: endpoint.load.estimate(),
                    chosen: endpoint.load.chosen.load(Ordering::Relaxed),
                    failures: health.failures.load(Ordering::Relaxed),
                    ejections: health.ejections.load(Ordering::Relaxed),
                    connections: endpoint.info.pool.as_ref().map(|pool| pool.stats().connections),
                }
            })
            .collect()
    }

    fn add(&self, address: &str) -> Result<(), BalanceError> {
        Shared::add(self, address)
    }

    fn remove(&self, name: &str) -> bool {
        Shared::remove(self, name)
    }
}

/// One endpoint of a balancer; see [`BalanceHandle::stats`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EndpointLoad {
    /// The endpoint's name.
    pub name: String,
    /// Up, ejected or being probed.
    pub state: EndpointState,
    /// Calls in flight on it now.
    pub in_flight: usize,
    /// Its peak-EWMA latency estimate now (kept whatever the chooser).
    pub latency: Duration,
    /// Calls the balancer sent it (each copy of a hedged call is one).
    pub chosen: u64,
    /// Calls that failed in a way that counts against it.
    pub failures: u64,
    /// Times it was ejected.
    pub ejections: u64,
    /// Its pool's connections, if its stack has a [pool](crate::pool).
    pub connections: Option<usize>,
}

impl BalanceHandle {
    pub(super) fn new<S: Send + Sync + 'static>(shared: Arc<Shared<S>>) -> Self {
        BalanceHandle { members: shared }
    }

    /// A snapshot of every endpoint, in the order they were added.
    pub fn stats(&self) -> Vec<EndpointLoad> {
        self.members.stats()
    }

    /// Adds an endpoint at run time, made from its address as the
    /// balancer's others were — for a balancer built by
    /// [`ClientBuilder::balance`](crate::builder::ClientBuilder::balance);
    /// one made with [`Balance::new`](super::Balance::new) answers
    /// [`BalanceError::CannotMake`]. Fails if it is there already.
    pub fn add(&self, address: &str) -> Result<(), BalanceError> {
        self.members.add(address)
    }

    /// Removes the endpoint named `name`: no new call goes to it, and those
    /// in flight on it finish there. `false` if there is none.
    pub fn remove(&self, name: &str) -> bool {
        self.members.remove(name)
    }
}

impl fmt::Debug for BalanceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceHandle")
            .field("endpoints", &self.stats())
            .finish()
    }
}
