//! [`execute`]: one command sent as the cluster wants it, following
//! redirects and retrying, up to [`ClusterConfig::max_attempts`].

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::node::ClusterNode;
use super::redirect::Redirect;
use super::service::{command_slot, ClusterState};
use crate::batch::Batch;
use crate::failure::Delivery;
use crate::resp::classify::is_read_only;
use crate::resp::Value;
use crate::retry::Idempotent;
use crate::BoxError;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tower::util::rng::HasherRng;
use tower::ServiceExt;

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
async fn asking<S: ClusterNode>(node: S, command: Value) -> Result<Value, BoxError> {
    let batch = Batch::new(vec![Value::command(["ASKING"]), command]);
    let mut answers = ServiceExt::<Batch<Value>>::oneshot(node, batch)
        .await
        .map_err(Into::into)?;
    match (answers.pop(), answers.pop()) {
        (Some(answer), Some(_)) => answer.map_err(Into::into),
        _ => Err("ASKING: the node did not answer both commands".into()),
    }
}

/// Sends one command as the cluster wants it: to its slot's primary,
/// following `MOVED` (and refreshing the map) and `ASK`, retrying after
/// `TRYAGAIN`/`CLUSTERDOWN` and after a connection that failed (if the
/// command was not sent, or is idempotent), up to `max_attempts`.
///
/// Every way out of the last attempt returns that attempt's own error (the
/// redirect, the uncovered slot, the node's error): the loop has no end to
/// fall out of, so no error has to be made up for one.
pub(super) async fn execute<S: ClusterNode>(
    cluster: Arc<ClusterState<S>>,
    command: Value,
) -> Result<Value, BoxError> {
    let slot = command_slot(&command)?;
    let counters = &cluster.counters;
    let mut rng = HasherRng::new();
    let mut ask: Option<String> = None;
    let mut pauses = 0u32;
    let mut attempt = 0u32;
    // A read that may go to a replica, until one such attempt went wrong:
    // then the primary.
    let mut replica_read = cluster.config.read_from_replicas && is_read_only(&command);
    loop {
        attempt += 1;
        let last_attempt = attempt >= cluster.config.max_attempts;
        let read = match (replica_read, slot, &ask) {
            (true, Some(slot), None) => cluster.route_read(slot),
            _ => None,
        };
        let from_replicas = read.is_some();
        let (from, outcome) = match (ask.take(), read) {
            (_, Some((primary, balance))) => {
                let sent = ServiceExt::<Value>::oneshot(balance, command.clone()).await;
                (primary, sent)
            }
            (Some(addr), None) => {
                let (from, node) = cluster.node(&addr);
                (from, asking(node, command.clone()).await)
            }
            (None, None) => match cluster.route(slot) {
                Ok((from, node)) => {
                    let sent = ServiceExt::<Value>::oneshot(node, command.clone()).await;
                    (from, sent.map_err(Into::into))
                }
                Err(uncovered) if last_attempt => return Err(uncovered.into()),
                Err(_) => {
                    cluster.refresh_soon();
                    pause(&cluster.config, &mut pauses, &mut rng).await;
                    continue;
                }
            },
        };
        let fell_back = from_replicas && !matches!(&outcome, Ok(reply) if Redirect::of(reply).is_none());
        if fell_back && !last_attempt {
            // The node chosen failed or redirected: the primary, at once.
            tracing::debug!(primary = %from, "a read from the replicas went wrong; falling back to the primary");
            replica_read = false;
            counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            continue;
        }
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
                    cluster.moved(slot, &resolve(&addr, &from));
                    cluster.refresh_soon();
                }
                Some(Redirect::Ask { addr }) => {
                    counters.asked.fetch_add(1, Ordering::Relaxed);
                    ask = Some(resolve(&addr, &from));
                }
                Some(Redirect::Retry) => {
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    if matches!(&reply, Value::Error(m) if m.starts_with(b"CLUSTERDOWN")) {
                        cluster.refresh_soon();
                    }
                    pause(&cluster.config, &mut pauses, &mut rng).await;
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
                cluster.refresh_soon();
                pause(&cluster.config, &mut pauses, &mut rng).await;
            }
        }
    }
}

async fn pause(config: &ClusterConfig, pauses: &mut u32, rng: &mut HasherRng) {
    tokio::time::sleep(config.backoff.delay(*pauses, rng)).await;
    *pauses = pauses.saturating_add(1);
}
