//! The [`Pipeline`] service that callers hold.

use super::dispatch::{Dispatch, Status};
use super::error::Error;
use super::keepalive::{NoPing, Ping, Pinger};
use super::message::Message;
use crate::deadline::context;
use crate::keepalive::Keepalive;
use crate::transport::Transport;
use crate::BoxError;
use futures::ready;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot, Semaphore, TryAcquireError};
use tokio::time::Instant;
use tokio_util::sync::PollSemaphore;
use tower::Service;

/// How a [`Pipeline`] behaves: limits set before it is started, and its
/// keepalive (off unless [`keepalive`](Builder::keepalive) gives it a ping;
/// `P` is that ping's setting, [`NoPing`] by default).
#[derive(Debug, Clone)]
pub struct Builder<P = NoPing> {
    max_in_flight: usize,
    max_batch: usize,
    keepalive: Option<Keepalive>,
    ping: P,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            max_in_flight: 1024,
            max_batch: 512,
            keepalive: None,
            ping: NoPing,
        }
    }
}

impl Builder {
    /// A builder with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches the connection (see [`crate::keepalive`]): after
    /// `keepalive`'s interval with nothing received, the connection task
    /// writes `ping()` in line with the callers' requests and reads its
    /// answer in their place; with nothing received within the timeout
    /// after it, the connection fails with
    /// [`Error::Unresponsive`]. Any answer counts as a sign of life.
    ///
    /// ```
    /// use wirestack::keepalive::Keepalive;
    /// use wirestack::pipeline;
    ///
    /// let builder = pipeline::Builder::new().keepalive(Keepalive::default(), || "PING".to_string());
    /// # let _ = builder;
    /// ```
    pub fn keepalive<Req>(self, keepalive: Keepalive, ping: fn() -> Req) -> Builder<Ping<Req>> {
        Builder {
            max_in_flight: self.max_in_flight,
            max_batch: self.max_batch,
            keepalive: Some(keepalive),
            ping: Ping::new(ping),
        }
    }
}

impl<P> Builder<P> {
    /// The most requests that may be queued or awaiting their response at
    /// once (default 1024). Past it, `poll_ready` waits.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// The most queued requests written in one pass before the connection
    /// task turns to reading responses (default 512). Requests written in a
    /// pass are flushed together.
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.max(1);
        self
    }

    /// Makes the service and the future that drives `transport`. The future
    /// must be polled (spawned) for any request to make progress.
    pub fn build<T, Req>(self, transport: T) -> (Pipeline<Req, T::Response>, Dispatch<T, Req>)
    where
        T: Transport<Req>,
        <T as Transport<Req>>::Error: Into<BoxError>,
        P: Pinger<Req>,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let semaphore = Arc::new(Semaphore::new(self.max_in_flight));
        let status = Arc::new(Status::new(semaphore));
        let pipeline = Pipeline {
            core: Arc::new(Core {
                tx,
                status: status.clone(),
                max_in_flight: self.max_in_flight,
            }),
            permit: Permit::new(status.clone()),
        };
        let keepalive = self.ping.ping().zip(self.keepalive);
        let dispatch = Dispatch::new(transport, rx, status, self.max_batch, keepalive);
        (pipeline, dispatch)
    }

    /// Makes the service and spawns the task that drives `transport` on the
    /// current tokio runtime.
    pub fn spawn<T, Req>(self, transport: T) -> Pipeline<Req, T::Response>
    where
        T: Transport<Req> + Send + 'static,
        <T as Transport<Req>>::Error: Into<BoxError>,
        Req: Send + 'static,
        T::Response: Send + 'static,
        P: Pinger<Req>,
    {
        let (pipeline, dispatch) = self.build(transport);
        tokio::spawn(dispatch);
        pipeline
    }
}

/// A pipelining multiplexer over one connection, as a tower [`Service`].
///
/// Clone it freely: every clone shares the connection (a clone is one
/// reference count). Requests are written in the order they are called and
/// matched to responses in that order. `poll_ready` waits while
/// `max_in_flight` requests are outstanding, and fails once the connection
/// is gone — the service is then broken for good and should be dropped (the
/// reconnect layer does this).
///
/// It is also a `Service` of [`Batch`](crate::batch::Batch)es: see
/// [`BatchFuture`](super::BatchFuture).
///
/// Dropping a call's [`ResponseFuture`] cancels it: never sent if the
/// connection task had not written it yet, answered and the answer
/// discarded if it had.
pub struct Pipeline<Req, Resp> {
    pub(super) core: Arc<Core<Req, Resp>>,
    pub(super) permit: Permit,
}

/// What every clone of a [`Pipeline`] shares.
pub(super) struct Core<Req, Resp> {
    pub(super) tx: mpsc::UnboundedSender<Message<Req, Resp>>,
    pub(super) status: Arc<Status>,
    pub(super) max_in_flight: usize,
}

impl<Req, Resp> Pipeline<Req, Resp> {
    /// Spawns the connection task for `transport` with default settings.
    pub fn new<T>(transport: T) -> Self
    where
        T: Transport<Req, Response = Resp> + Send + 'static,
        <T as Transport<Req>>::Error: Into<BoxError>,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        Builder::default().spawn(transport)
    }

    /// The error that broke the connection, if it is broken.
    pub fn broken(&self) -> Option<Error> {
        self.core.status.error()
    }

    /// Takes the permit `poll_ready` reserved, for a call.
    pub(super) fn take_permit(&mut self) {
        self.permit.take("Pipeline");
    }

    /// Queues `message` for the connection task; if the task is gone, the
    /// message comes back unsent and is failed here.
    pub(super) fn send(&self, message: Message<Req, Resp>) {
        if let Err(unsent) = self.core.tx.send(message) {
            let unsent = unsent.0;
            self.core.status.release(unsent.permits());
            let failure = self.broken().unwrap_or(Error::Closed).not_sent();
            super::metrics::PipelineMetrics::failed(&failure, unsent.permits());
            unsent.fail(failure);
        }
    }
}

impl<Req, Resp> Clone for Pipeline<Req, Resp> {
    fn clone(&self) -> Self {
        Pipeline {
            core: self.core.clone(),
            permit: self.permit.clone(),
        }
    }
}

impl<Req, Resp> fmt::Debug for Pipeline<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("ready", &self.permit.is_held())
            .field("broken", &self.broken())
            .finish()
    }
}

/// A handle's share of the in-flight limit: the permit `poll_ready` took
/// and no call has used yet (given back if the handle is dropped with it),
/// and its place in line while it waits for one. Both multiplexers'
/// handles hold one; a clone of a handle starts with none.
pub(crate) struct Permit {
    status: Arc<Status>,
    /// Only made when a caller has to wait for capacity.
    waiting: Option<Box<PollSemaphore>>,
    /// `poll_ready` took a permit that no call has used yet.
    held: bool,
}

impl Permit {
    /// None held yet, of the limit `status` keeps.
    pub(crate) fn new(status: Arc<Status>) -> Self {
        Permit {
            status,
            waiting: None,
            held: false,
        }
    }

    /// `poll_ready` for one request or one batch: a permit of the in-flight
    /// limit, or the connection's error once it has one.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let status = &self.status;
        if let Some(error) = status.error() {
            return Poll::Ready(Err(error));
        }
        if self.held {
            return Poll::Ready(Ok(()));
        }
        // The fast path only while this handle is not queued for a permit: a
        // queued waiter may have been given one already, which would be lost
        // inside it if this handle took another from the counter.
        if self.waiting.is_none() {
            match status.semaphore.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    self.held = true;
                    return Poll::Ready(Ok(()));
                }
                // The connection task closes the semaphore when it fails.
                Err(TryAcquireError::Closed) => {
                    return Poll::Ready(Err(status.error().unwrap_or(Error::Closed)))
                }
                Err(TryAcquireError::NoPermits) => {}
            }
        }
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::new(PollSemaphore::new(status.semaphore.clone())));
        let acquired = ready!(waiting.poll_acquire(cx));
        // Done waiting: nothing is queued for this handle any more (the next
        // acquisition the semaphore prepared is not queued until polled).
        self.waiting = None;
        match acquired {
            Some(permit) => {
                permit.forget();
                self.held = true;
                Poll::Ready(Ok(()))
            }
            None => Poll::Ready(Err(status.error().unwrap_or(Error::Closed))),
        }
    }

    /// Takes the permit `poll_ready` reserved, for a call.
    pub(crate) fn take(&mut self, service: &str) {
        assert!(
            std::mem::take(&mut self.held),
            "{service}::call without a successful poll_ready"
        );
    }

    /// Whether a permit is held (for `Debug`).
    pub(crate) fn is_held(&self) -> bool {
        self.held
    }
}

impl Clone for Permit {
    fn clone(&self) -> Self {
        Permit::new(self.status.clone())
    }
}

impl Drop for Permit {
    /// The handle is dropped: gives back a permit no call used.
    fn drop(&mut self) {
        if self.held {
            self.status.release(1);
        }
    }
}

impl<Req, Resp> Service<Req> for Pipeline<Req, Resp> {
    type Response = Resp;
    type Error = Error;
    type Future = ResponseFuture<Resp>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.permit.poll(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.take_permit();
        let (tx, rx) = oneshot::channel();
        let deadline = context::current();
        self.send(Message::One {
            request,
            tx,
            deadline,
        });
        ResponseFuture { rx, deadline }
    }
}

/// The response of one pipelined request.
///
/// Dropping it cancels the request: if the connection task has not written
/// it yet it is never sent; if it has, the peer's answer is read in its
/// place and discarded.
#[pin_project]
pub struct ResponseFuture<Resp> {
    #[pin]
    rx: oneshot::Receiver<Result<Resp, Error>>,
    /// The connection task answers by then at the latest.
    deadline: Option<Instant>,
}

impl<Resp> fmt::Debug for ResponseFuture<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<Resp> Future for ResponseFuture<Resp> {
    type Output = Result<Resp, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.rx.poll(cx) {
            Poll::Ready(Ok(Ok(response))) => {
                tracing::debug!("answered");
                Poll::Ready(Ok(response))
            }
            Poll::Ready(Ok(Err(error))) => {
                let failure = crate::failure::Failure::of(&error).as_str();
                tracing::debug!(%error, failure, "failed");
                Poll::Ready(Err(error))
            }
            // The connection task answers everyone before it ends, even when
            // it is dropped; this is only a safety net.
            Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed)),
            Poll::Pending => {
                if let Some(deadline) = *this.deadline {
                    context::promise_wake_by(deadline);
                }
                Poll::Pending
            }
        }
    }
}
