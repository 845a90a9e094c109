//! The [`Cluster`] service: each command to the primary of its slot, with
//! redirects followed and the slot map kept fresh.

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::keys::keys;
use super::map::SlotMap;
use super::redirect::Redirect;
use super::slot::slot;
use super::stats::{ClusterHandle, Counters};
use crate::batch::{Batch, BatchResponse};
use crate::failure::{BoxError, Delivery};
use crate::resp::Value;
use crate::retry::Idempotent;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::util::rng::HasherRng;
use tower::{Service, ServiceExt};

type MakeNode<S> = Box<dyn Fn(&str) -> S + Send + Sync>;

/// A Redis Cluster client service; see the [module docs](super).
///
/// Cheap to clone: clones share the slot map and the node connections.
pub struct Cluster<S> {
    pub(super) shared: Arc<Shared<S>>,
}

pub(super) struct Shared<S> {
    map: RwLock<Arc<SlotMap>>,
    /// One stack per node, by address.
    nodes: RwLock<HashMap<Arc<str>, S>>,
    make: MakeNode<S>,
    seeds: Vec<String>,
    refreshing: AtomicBool,
    last_refresh: Mutex<Option<Instant>>,
    pub(super) config: ClusterConfig,
    counters: Arc<Counters>,
}

impl<S> Clone for Cluster<S> {
    fn clone(&self) -> Self {
        Cluster {
            shared: self.shared.clone(),
        }
    }
}

impl<S> fmt::Debug for Cluster<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.shared.map().nodes())
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

impl<S> Cluster<S>
where
    S: Service<Value, Response = Value> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    /// Loads the slot map from the first of `seeds` that answers
    /// `CLUSTER SLOTS`; `make` builds the stack of each node it names (and
    /// of nodes named later), from its address `ip:port`.
    pub async fn connect<A: fmt::Display>(
        seeds: impl IntoIterator<Item = A>,
        make: impl Fn(&str) -> S + Send + Sync + 'static,
        config: ClusterConfig,
    ) -> Result<Self, ClusterError> {
        let shared = Arc::new(Shared {
            map: RwLock::new(Arc::new(SlotMap::parse(&Value::Array(Vec::new()), "")?)),
            nodes: RwLock::new(HashMap::new()),
            make: Box::new(make),
            seeds: seeds.into_iter().map(|seed| seed.to_string()).collect(),
            refreshing: AtomicBool::new(false),
            last_refresh: Mutex::new(None),
            config,
            counters: Arc::default(),
        });
        shared.refresh().await?;
        Ok(Cluster { shared })
    }
}

impl<S> Cluster<S> {
    /// A handle on the counters.
    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle {
            counters: self.shared.counters.clone(),
        }
    }

    /// The address of the primary serving `key`'s slot, as the client's
    /// map has it now.
    pub fn node_of(&self, key: &[u8]) -> Option<String> {
        self.shared.map().primary(slot(key)).map(String::from)
    }
}

impl<S> Shared<S> {
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

    /// Records a `MOVED`: the slot is served at `addr` from now on.
    fn moved(&self, slot: u16, addr: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.primary(slot) != Some(addr) {
            Arc::make_mut(&mut map).moved(slot, addr);
        }
    }

    /// Loads the slot map again, in the background, unless a load is under
    /// way or one finished less than 50 ms ago.
    pub(super) fn refresh_soon(self: &Arc<Self>)
    where
        S: Service<Value, Response = Value> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send,
    {
        let recent = self
            .last_refresh
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < Duration::from_millis(50));
        if recent || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            if let Err(error) = shared.refresh().await {
                tracing::warn!(%error, "cluster slot map refresh failed");
            }
            shared.refreshing.store(false, Ordering::Release);
        });
    }

    /// Asks the known primaries, then the seeds, for `CLUSTER SLOTS`, and
    /// installs the first answer; forgets the nodes it no longer names.
    async fn refresh(&self) -> Result<(), ClusterError>
    where
        S: Service<Value, Response = Value> + Clone,
        S::Error: Into<BoxError>,
    {
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
            let keep: Vec<String> = map.nodes().iter().chain(&self.seeds).cloned().collect();
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

/// `addr` from a redirect, with the host of the node that sent it when it
/// names only a port (`:6379`).
fn resolve(addr: &str, from: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => {
            let host = from.rsplit_once(':').map_or(from, |(host, _)| host);
            format!("{host}:{port}")
        }
        None => addr.to_string(),
    }
}

/// Sends `command` to the node at `addr` right after `ASKING`, as one batch
/// (one connection, back to back).
async fn asking<S, E>(node: S, command: Value) -> Result<Value, BoxError>
where
    S: Service<Batch<Value>, Response = BatchResponse<Value, E>>,
    S::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let batch = Batch::new(vec![Value::command(["ASKING"]), command]);
    let mut answers = node.oneshot(batch).await.map_err(Into::into)?;
    match (answers.pop(), answers.pop()) {
        (Some(answer), Some(_)) => answer.map_err(Into::into),
        _ => Err("ASKING: the node did not answer both commands".into()),
    }
}

/// Sends one command as the cluster wants it: to its slot's primary,
/// following `MOVED` (and refreshing the map) and `ASK`, retrying after
/// `TRYAGAIN`/`CLUSTERDOWN` and after a connection that failed (if the
/// command was not sent, or is idempotent), up to `max_attempts`.
pub(super) async fn execute<S, E>(shared: Arc<Shared<S>>, command: Value) -> Result<Value, BoxError>
where
    S: Service<Value, Response = Value>
        + Service<Batch<Value>, Response = BatchResponse<Value, E>>
        + Clone
        + Send
        + Sync
        + 'static,
    <S as Service<Value>>::Error: Into<BoxError>,
    <S as Service<Value>>::Future: Send,
    <S as Service<Batch<Value>>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let slot = command_slot(&command)?;
    let counters = &shared.counters;
    let mut rng = HasherRng::new();
    let mut ask: Option<String> = None;
    let mut pauses = 0u32;
    for attempt in 1..=shared.config.max_attempts.max(1) {
        let last_attempt = attempt >= shared.config.max_attempts;
        let (from, outcome) = match ask.take() {
            Some(addr) => {
                let (from, node) = shared.node(&addr);
                (from, asking(node, command.clone()).await)
            }
            None => match shared.route(slot) {
                Ok((from, node)) => {
                    let sent = ServiceExt::<Value>::oneshot(node, command.clone()).await;
                    (from, sent.map_err(Into::into))
                }
                Err(uncovered) if last_attempt => return Err(uncovered.into()),
                Err(_) => {
                    shared.refresh_soon();
                    pause(&shared.config, &mut pauses, &mut rng).await;
                    continue;
                }
            },
        };
        match outcome {
            Ok(reply) => match Redirect::of(&reply) {
                None => return Ok(reply),
                Some(_) if last_attempt => {
                    let last = match &reply {
                        Value::Error(message) => String::from_utf8_lossy(message).into_owned(),
                        _ => String::new(),
                    };
                    return Err(ClusterError::TooManyRedirects {
                        attempts: attempt,
                        last,
                    }
                    .into());
                }
                Some(Redirect::Moved { slot, addr }) => {
                    counters.moved.fetch_add(1, Ordering::Relaxed);
                    shared.moved(slot, &resolve(&addr, &from));
                    shared.refresh_soon();
                }
                Some(Redirect::Ask { addr }) => {
                    counters.asked.fetch_add(1, Ordering::Relaxed);
                    ask = Some(resolve(&addr, &from));
                }
                Some(Redirect::Retry) => {
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    if matches!(&reply, Value::Error(m) if m.starts_with(b"CLUSTERDOWN")) {
                        shared.refresh_soon();
                    }
                    pause(&shared.config, &mut pauses, &mut rng).await;
                }
            },
            Err(error) => {
                let safe = match Delivery::of(&*error) {
                    Some(Delivery::NotSent) => true,
                    Some(Delivery::MaybeSent) => command.is_idempotent(),
                    None => false,
                };
                if !safe || last_attempt {
                    return Err(error);
                }
                tracing::debug!(node = %from, %error, "cluster node failed; refreshing the slot map");
                counters.retries.fetch_add(1, Ordering::Relaxed);
                shared.refresh_soon();
                pause(&shared.config, &mut pauses, &mut rng).await;
            }
        }
    }
    Err(ClusterError::TooManyRedirects {
        attempts: shared.config.max_attempts,
        last: String::from("no attempt made"),
    }
    .into())
}

async fn pause(config: &ClusterConfig, pauses: &mut u32, rng: &mut HasherRng) {
    tokio::time::sleep(config.backoff.delay(*pauses, rng)).await;
    *pauses = pauses.saturating_add(1);
}

impl<S, E> Service<Value> for Cluster<S>
where
    S: Service<Value, Response = Value>
        + Service<Batch<Value>, Response = BatchResponse<Value, E>>
        + Clone
        + Send
        + Sync
        + 'static,
    <S as Service<Value>>::Error: Into<BoxError>,
    <S as Service<Value>>::Future: Send,
    <S as Service<Batch<Value>>>::Error: Into<BoxError>,
    <S as Service<Batch<Value>>>::Future: Send,
    E: Into<BoxError> + Send + 'static,
{
    type Response = Value;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Value, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, command: Value) -> Self::Future {
        Box::pin(execute(self.shared.clone(), command))
    }
}
