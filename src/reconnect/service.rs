//! The [`Reconnect`] service and the task that keeps it connected.

use super::error::{ConnectTimedOut, Disconnected, SharedError};
use super::future::ResponseFuture;
use super::layer::ReconnectConfig;
use super::metrics::ReconnectMetrics;
use crate::backoff::jitter_rng;
use crate::failure::Failure;
use crate::BoxError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// What the reconnect task publishes to every handle.
pub(crate) enum State<S> {
    /// A connect attempt is under way and nothing has failed since the last
    /// connection was lost: callers wait for its outcome.
    Connecting,
    /// A live connection, numbered by `generation` (1 for the first).
    Connected { generation: u64, service: S },
    /// The last connect attempt failed: callers fail fast.
    Down { cause: SharedError },
}

/// What the reconnect task and its callers tell each other: which
/// connection broke, whether one is up, and the counters.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// The newest generation a caller found broken.
    broken: AtomicU64,
    /// Wakes the task: a generation broke, or a caller needs a connection.
    wake: Notify,
    connected: AtomicBool,
    attempts: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    disconnects: AtomicU64,
}

impl Status {
    /// Records that connection `generation` failed; the first report of a
    /// generation wakes the task to replace it.
    pub(crate) fn report_broken(&self, generation: u64, error: &(dyn std::error::Error + 'static)) {
        if self.broken.fetch_max(generation, Ordering::AcqRel) < generation {
            tracing::warn!(generation, %error, "connection lost; reconnecting");
            self.wake.notify_one();
        }
    }

    fn is_broken(&self, generation: u64) -> bool {
        self.broken.load(Ordering::Acquire) >= generation
    }
}

/// What a [`Reconnect`] has done so far; see [`ReconnectHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectStats {
    /// Connect attempts made, successful or not.
    pub connect_attempts: u64,
    /// Attempts that produced a connection (the first one included).
    pub connects: u64,
    /// Attempts that failed or timed out.
    pub connect_failures: u64,
    /// Connections found broken and replaced.
    pub disconnects: u64,
}

impl ReconnectStats {
    /// Connections made after the first: how often the service reconnected.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }
}

/// A cheap handle to observe a [`Reconnect`]: its counters and whether it is
/// connected. It does not keep the reconnect task alive.
#[derive(Debug, Clone)]
pub struct ReconnectHandle {
    status: Arc<Status>,
}

impl ReconnectHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> ReconnectStats {
        let status = &self.status;
        ReconnectStats {
            connect_attempts: status.attempts.load(Ordering::Relaxed),
            connects: status.connects.load(Ordering::Relaxed),
            connect_failures: status.failures.load(Ordering::Relaxed),
            disconnects: status.disconnects.load(Ordering::Relaxed),
        }
    }

    /// `true` while a connection is up and nobody has found it broken.
    pub fn is_connected(&self) -> bool {
        self.status.connected.load(Ordering::Acquire)
    }
}

/// A service that keeps a connection service alive, replacing it when it
/// breaks; see the [module docs](super).
///
/// Clones share the connection and the reconnect task; the task ends when the
/// last clone is dropped.
pub struct Reconnect<S> {
    core: Arc<Core<S>>,
    /// This handle's clone of the live connection, with its generation.
    current: Option<(u64, S)>,
}

/// What every clone of a [`Reconnect`] shares: one reference count per
/// clone, whatever is inside.
struct Core<S> {
    status: Arc<Status>,
    /// Read only when this handle has no live connection; the task stops
    /// when the last receiver is gone.
    state: watch::Receiver<State<S>>,
}

impl<S> Reconnect<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// Spawns the task that connects `connector` to `target` and keeps it
    /// connected. Must be called within a Tokio runtime.
    ///
    /// The first attempt starts at once; calls made before it finishes wait
    /// for it (use a timeout above this service to bound that).
    pub fn new<M, T>(connector: M, target: T, config: ReconnectConfig) -> Self
    where
        M: Service<T, Response = S> + Send + 'static,
        M::Error: Into<BoxError>,
        M::Future: Send,
        T: Clone + Send + 'static,
    {
        let status = Arc::new(Status::default());
        let (tx, rx) = watch::channel(State::Connecting);
        tokio::spawn(run(connector, target, config, status.clone(), tx));
        Reconnect {
            core: Arc::new(Core { status, state: rx }),
            current: None,
        }
    }

    /// Waits for the connect attempt under way, if any: `Ok` once connected,
    /// [`Disconnected`] if the attempt failed.
    pub async fn wait_connected(&self) -> Result<(), Disconnected> {
        connected(self.core.state.clone(), self.core.status.clone())
            .await
            .map(drop)
    }
}

impl<S> Reconnect<S> {
    /// A handle to read this service's counters.
    pub fn handle(&self) -> ReconnectHandle {
        ReconnectHandle {
            status: self.core.status.clone(),
        }
    }
}

impl<S: Clone> Clone for Reconnect<S> {
    /// A new handle on the same connection, with this one's clone of the
    /// live connection: a clone costs two reference counts, and the new
    /// handle's first `poll_ready` goes straight to the connection.
    fn clone(&self) -> Self {
        Reconnect {
            core: self.core.clone(),
            current: self.current.clone(),
        }
    }
}

impl<S> fmt::Debug for Reconnect<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field(
                "generation",
                &self.current.as_ref().map(|(generation, _)| generation),
            )
            .field("stats", &self.handle().stats())
            .finish()
    }
}

impl<S, Req> Service<Req> for Reconnect<S>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    /// Ready when the live connection is ready, or at once when there is
    /// none: `call` then waits for the attempt under way or fails fast.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // A connection is replaced only after a handle found it broken, and
        // a broken connection fails its own `poll_ready`: so a handle with a
        // connection need not look at the status state at all.
        if self.current.is_none() {
            let state = self.core.state.borrow();
            self.current = match &*state {
                State::Connected { generation, service } if !self.core.status.is_broken(*generation) => {
                    Some((*generation, service.clone()))
                }
                _ => None,
            };
        }
        let Some((generation, service)) = &mut self.current else {
            return Poll::Ready(Ok(()));
        };
        match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => {
                let error: BoxError = error.into();
                self.core.status.report_broken(*generation, &*error);
                self.current = None;
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if let Some((generation, service)) = &mut self.current {
            tracing::debug!(connection = *generation, "sending");
            return ResponseFuture::called(service.call(request));
        }
        let down = match &*self.core.state.borrow() {
            State::Down { cause } => Some(cause.clone()),
            State::Connecting | State::Connected { .. } => None,
        };
        let status = &self.core.status;
        match down {
            Some(cause) => {
                // Fail fast, and let a task that gave up know it is needed.
                status.wake.notify_one();
                super::metrics::failed_fast();
                tracing::debug!(%cause, "not connected: failing fast");
                ResponseFuture::failed(Disconnected::new(Some(cause)))
            }
            None => {
                tracing::debug!("waiting for a connection");
                let wait = Box::pin(connected(self.core.state.clone(), status.clone()));
                ResponseFuture::waiting(wait, request, status.clone())
            }
        }
    }
}

/// Waits until the state shows a live connection (`Ok`) or a failed attempt.
pub(crate) async fn connected<S: Clone>(
    mut state: watch::Receiver<State<S>>,
    status: Arc<Status>,
) -> Result<(u64, S), Disconnected> {
    loop {
        {
            match &*state.borrow_and_update() {
                State::Connected { generation, service } if !status.is_broken(*generation) => {
                    return Ok((*generation, service.clone()));
                }
                State::Down { cause } => return Err(Disconnected::new(Some(cause.clone()))),
                State::Connecting | State::Connected { .. } => {}
            }
        }
        if state.changed().await.is_err() {
            return Err(Disconnected::new(None));
        }
    }
}

/// The reconnect task: connect, publish, wait for a report that the
/// connection broke, back off, repeat — until every handle is gone.
async fn run<M, T, S>(
    mut connector: M,
    target: T,
    config: ReconnectConfig,
    status: Arc<Status>,
    state: watch::Sender<State<S>>,
) where
    M: Service<T, Response = S>,
    M::Error: Into<BoxError>,
    T: Clone,
{
    let mut rng = jitter_rng();
    let mut metrics = ReconnectMetrics::new();
    // Consecutive failures: failed attempts, and connections that broke
    // before they were healthy for `backoff.cap()`.
    let mut failures: u32 = 0;
    // The last attempt's handshake was refused (a wrong credential): trying
    // again by itself would only repeat the refusal, so wait for demand.
    let mut refused = false;
    let mut generation: u64 = 0;
    loop {
        if failures > 0 {
            let exhausted = refused || config.max_attempts.is_some_and(|max| failures >= max);
            if refused {
                // Callers see the refusal; the attempt was logged.
                tracing::debug!("handshake refused: reconnecting when a request needs the connection");
            } else if exhausted {
                tracing::warn!(
                    failures,
                    "stopped reconnecting until a request needs the connection"
                );
            }
            if exhausted {
                tokio::select! {
                    () = status.wake.notified() => {}
                    () = state.closed() => return,
                }
            }
            let delay = if exhausted {
                config.backoff.cap()
            } else {
                config.backoff.delay(failures - 1, &mut rng)
            };
            metrics.backoff(delay);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = state.closed() => return,
            }
        }

        status.attempts.fetch_add(1, Ordering::Relaxed);
        metrics.attempt();
        let next = target.clone();
        let attempt = async {
            let connector = connector.ready().await.map_err(Into::into)?;
            connector.call(next).await.map_err(Into::into)
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(config.connect_timeout, attempt) => outcome,
            () = state.closed() => return,
        };
        let service = match outcome.unwrap_or_else(|_| Err(BoxError::from(ConnectTimedOut(())))) {
            Ok(service) => service,
            Err(error) => {
                refused = Failure::of(&*error) == Failure::Rejected;
                metrics.attempt_failed(refused, error.is::<ConnectTimedOut>());
                failures = failures.saturating_add(1);
                status.failures.fetch_add(1, Ordering::Relaxed);
                tracing::info!(failures, %error, "connect attempt failed");
                state.send_replace(State::Down {
                    cause: Arc::from(error),
                });
                continue;
            }
        };

        generation += 1;
        status.connects.fetch_add(1, Ordering::Relaxed);
        status.connected.store(true, Ordering::Release);
        metrics.connected(generation == 1);
        if generation == 1 {
            tracing::debug!("connected");
        } else {
            tracing::info!(generation, failures, "reconnected");
        }
        state.send_replace(State::Connected { generation, service });
        let connected_at = Instant::now();

        // Wait for a caller to find this connection broken.
        loop {
            tokio::select! {
                () = status.wake.notified() => {}
                () = state.closed() => return,
            }
            if status.is_broken(generation) {
                break;
            }
        }
        status.connected.store(false, Ordering::Release);
        status.disconnects.fetch_add(1, Ordering::Relaxed);
        metrics.disconnected();
        failures = if connected_at.elapsed() >= config.backoff.cap() {
            0
        } else {
            // It broke soon after it was made: back off as after a failed
            // attempt, so that a peer that accepts and drops cannot make
            // this loop spin.
            failures.saturating_add(1)
        };
        state.send_replace(State::Connecting);
    }
}
