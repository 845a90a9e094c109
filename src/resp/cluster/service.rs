//! The [`Cluster`] service: each command to the primary of its slot, with
//! redirects followed and the slot map kept fresh.

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::execute::execute;
use super::keys::keys;
use super::map::SlotMap;
use super::node::ClusterNode;
use super::slot::slot;
use super::stats::{ClusterHandle, Counters};
use crate::balance::{Balance, BalanceConfig};
use crate::resp::Value;
use crate::route::Accrual;
use crate::BoxError;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

type MakeNode<S> = Box<dyn Fn(&str) -> S + Send + Sync>;

/// A Redis Cluster client service; see the [module docs](super).
///
/// Cheap to clone: clones share the slot map and the node connections.
pub struct Cluster<S> {
    pub(super) state: Arc<ClusterState<S>>,
}

/// What every clone of a [`Cluster`] shares: the slot map, the node
/// stacks, how to make one, and the counters.
pub(super) struct ClusterState<S> {
    map: RwLock<Arc<SlotMap>>,
    /// One stack per node, by address.
    nodes: RwLock<HashMap<Arc<str>, S>>,
    /// For reads from replicas: a balancer over each shard's primary and
    /// replicas, by the primary's address; made at the shard's first read,
    /// forgotten when the slot map is loaded again.
    reads: RwLock<HashMap<Arc<str>, Balance<Accrual<S>>>>,
    make: MakeNode<S>,
    seeds: Vec<String>,
    refreshing: AtomicBool,
    last_refresh: Mutex<Option<Instant>>,
    pub(super) config: ClusterConfig,
    pub(super) counters: Arc<Counters>,
}

impl<S> Clone for Cluster<S> {
    fn clone(&self) -> Self {
        Cluster {
            state: self.state.clone(),
        }
    }
}

impl<S> fmt::Debug for Cluster<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.state.map().nodes())
            .field("stats", &self.handle().stats())
            .finish()
    }
}

/// The slot of a command's keys: `None` for a keyless command, an error if
/// they are in different slots.
pub(super) fn command_slot(command: &Value) -> Result<Option<u16>, ClusterError> {
    let mut slots = keys(command).map(slot);
    let Some(first) = slots.next() else {
        return Ok(None);
    };
    match slots.find(|&other| other != first) {
        Some(other) => Err(ClusterError::CrossSlot { first, other }),
        None => Ok(Some(first)),
    }
}

impl<S: ClusterNode> Cluster<S> {
    /// Loads the slot map from the first of `seeds` that answers
    /// `CLUSTER SLOTS`; `make` builds the stack of each node it names (and
    /// of nodes named later), from its address `ip:port`.
    pub async fn connect<A: fmt::Display>(
        seeds: impl IntoIterator<Item = A>,
        make: impl Fn(&str) -> S + Send + Sync + 'static,
        config: ClusterConfig,
    ) -> Result<Self, ClusterError> {
        let cluster = Arc::new(ClusterState {
            map: RwLock::new(Arc::new(SlotMap::parse(&Value::Array(Vec::new()), "")?)),
            nodes: RwLock::new(HashMap::new()),
            reads: RwLock::new(HashMap::new()),
            make: Box::new(make),
            seeds: seeds.into_iter().map(|seed| seed.to_string()).collect(),
            refreshing: AtomicBool::new(false),
            last_refresh: Mutex::new(None),
            config,
            counters: Arc::default(),
        });
        cluster.refresh().await?;
        Ok(Cluster { state: cluster })
    }
}

impl<S> Cluster<S> {
    /// A handle on the counters.
    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle {
            counters: self.state.counters.clone(),
        }
    }

    /// The address of the primary serving `key`'s slot, as the client's
    /// map has it now.
    pub fn node_of(&self, key: &[u8]) -> Option<String> {
        self.state.map().primary(slot(key)).map(String::from)
    }
}

impl<S> ClusterState<S> {
    fn map(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The stack of the node at `addr`, made if it is new.
    pub(super) fn node(&self, addr: &str) -> (Arc<str>, S)
    where
        S: Clone,
    {
        if let Some((addr, node)) = self
            .nodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get_key_value(addr)
        {
            return (addr.clone(), node.clone());
        }
        let mut nodes = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        let addr: Arc<str> = Arc::from(addr);
        let node = nodes
            .entry(addr.clone())
            .or_insert_with(|| (self.make)(&addr))
            .clone();
        (addr, node)
    }

    /// The node that serves `slot` (any node for a keyless command).
    pub(super) fn route(&self, slot: Option<u16>) -> Result<(Arc<str>, S), ClusterError>
    where
        S: Clone,
    {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let addr = match slot {
            Some(slot) => map.primary(slot).ok_or(ClusterError::Uncovered(slot))?,
            None => map.nodes().first().ok_or(ClusterError::Uncovered(0))?,
        };
        Ok(self.node(addr))
    }

    /// For a read that may go to a replica: the balancer over the primary
    /// and replicas of `slot`'s shard, and the primary's address; `None` if
    /// the shard has no replica known (then the read goes to the primary).
    pub(super) fn route_read(&self, slot: u16) -> Option<(Arc<str>, Balance<Accrual<S>>)>
    where
        S: Clone,
    {
        let map = self.map();
        let primary = map.primary(slot)?;
        let replicas = map.replicas(slot);
        if replicas.is_empty() {
            return None;
        }
        if let Some((addr, balance)) = self
            .reads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get_key_value(primary)
        {
            return Some((addr.clone(), balance.clone()));
        }
        let (addr, _) = self.node(primary);
        // Each node's accrual ejects it from the shard's reads when it
        // fails (a dead replica), and probes it back.
        let balance = Balance::empty(BalanceConfig::default(), None);
        for node in std::iter::once(primary).chain(replicas.iter().map(String::as_str)) {
            let (name, stack) = self.node(node);
            // Each address once: a duplicate is not added twice.
            let _ = balance.insert(name, stack);
        }
        let mut reads = self.reads.write().unwrap_or_else(|p| p.into_inner());
        let balance = reads.entry(addr.clone()).or_insert(balance).clone();
        Some((addr, balance))
    }

    /// Records a `MOVED`: the slot is served at `addr` from now on.
    pub(super) fn moved(&self, slot: u16, addr: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.primary(slot) != Some(addr) {
            Arc::make_mut(&mut map).moved(slot, addr);
        }
    }
}

impl<S: ClusterNode> ClusterState<S> {
    /// Loads the slot map again, in the background, unless a load is under
    /// way or one finished less than 50 ms ago.
    pub(super) fn refresh_soon(self: &Arc<Self>) {
        let recent = self
            .last_refresh
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < Duration::from_millis(50));
        if recent || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            if let Err(error) = cluster.refresh().await {
                tracing::warn!(%error, "cluster slot map refresh failed");
            }
            cluster.refreshing.store(false, Ordering::Release);
        });
    }

    /// Asks the known primaries, then the seeds, for `CLUSTER SLOTS`, and
    /// installs the first answer; forgets the nodes it no longer names.
    async fn refresh(&self) -> Result<(), ClusterError> {
        let mut candidates: Vec<String> = self.map().nodes().to_vec();
        for seed in &self.seeds {
            if !candidates.contains(seed) {
                candidates.push(seed.clone());
            }
        }
        let mut last = String::from("no node to ask");
        for addr in candidates {
            let (_, node) = self.node(&addr);
            let asked = node.oneshot(Value::command(["CLUSTER", "SLOTS"]));
            let reply = match tokio::time::timeout(self.config.refresh_timeout, asked).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(error)) => {
                    last = format!("{addr}: {}", error.into());
                    continue;
                }
                Err(_) => {
                    last = format!("{addr}: no answer within {:?}", self.config.refresh_timeout);
                    continue;
                }
            };
            let map = match SlotMap::parse(&reply, &addr) {
                Ok(map) if !map.nodes().is_empty() => map,
                Ok(_) => {
                    last = format!("{addr}: no slot is served");
                    continue;
                }
                Err(error) => {
                    last = format!("{addr}: {error}");
                    continue;
                }
            };
            let replicas = map.all_replicas();
            let keep: Vec<String> = map
                .nodes()
                .iter()
                .chain(&self.seeds)
                .chain(replicas)
                .cloned()
                .collect();
            self.reads.write().unwrap_or_else(|p| p.into_inner()).clear();
            *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
            self.nodes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|addr, _| keep.iter().any(|known| **known == **addr));
            *self.last_refresh.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(from = %addr, "cluster slot map loaded");
            return Ok(());
        }
        Err(ClusterError::NoSlotMap(last))
    }
}

impl<S: ClusterNode> Service<Value> for Cluster<S> {
    type Response = Value;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Value, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, command: Value) -> Self::Future {
        Box::pin(execute(self.state.clone(), command))
    }
}
