//! The [`Multiplex`] service that callers hold, its [`Builder`], and the
//! futures of its calls.

use super::dispatch::Dispatch;
use super::protocol::{Outgoing, Tag, Tagged};
use super::Error;
use crate::batch::{Batch, BatchResponse};
use crate::deadline::context;
use crate::keepalive::Keepalive;
use crate::pipeline::{call_batch, BatchFlow, BatchQueue, Message, Permit, PipelineMetrics, Status};
use crate::transport::Transport;
use crate::BoxError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tower::Service;

/// Which call a message or a drop note is about: numbered by the caller's
/// handle, so that a future that is dropped can name its call.
pub(super) type CallId = u64;

/// How a [`Multiplex`] behaves: limits set before it is started.
#[derive(Debug, Clone)]
pub struct Builder {
    max_in_flight: usize,
    max_batch: usize,
    max_tag: Tag,
    keepalive: Option<Keepalive>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            max_in_flight: 1024,
            max_batch: 512,
            max_tag: Tag::MAX,
            keepalive: None,
        }
    }
}

impl Builder {
    /// A builder with the default limits and no keepalive.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most requests that may be queued or awaiting their answer at
    /// once (default 1024). Past it, `poll_ready` waits. A request whose
    /// caller stopped waiting still counts until its answer is read.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// The most requests written in one pass before the connection task
    /// turns to reading answers (default 512). What a pass writes is
    /// flushed together.
    pub fn max_batch(mut self, max: usize) -> Self {
        self.max_batch = max.max(1);
        self
    }

    /// The largest tag the protocol can carry (default `u32::MAX`; at least
    /// 1). Tags are `1..=max_tag`. While every tag is in flight, requests
    /// wait in the connection task's queue until an answer frees one.
    pub fn max_tag(mut self, max: Tag) -> Self {
        self.max_tag = max.max(1);
        self
    }

    /// Watches the connection (see [`crate::keepalive`]): after the
    /// interval with nothing received, the connection task writes
    /// [`Outgoing::Ping`] with a tag of its own; with nothing received
    /// within the timeout after it, the connection fails with
    /// [`Error::Unresponsive`]. Off by default.
    pub fn keepalive(mut self, keepalive: Keepalive) -> Self {
        self.keepalive = Some(keepalive);
        self
    }

    /// Makes the service and the future that drives `transport`. The future
    /// must be polled (spawned) for any request to make progress.
    pub fn build<T, Req>(self, transport: T) -> (Multiplex<Req, T::Response>, Dispatch<T, Req>)
    where
        T: Transport<Outgoing<Req>>,
        <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
        T::Response: Tagged,
    {
        let (calls, calls_rx) = mpsc::unbounded_channel();
        let (drops, drops_rx) = mpsc::unbounded_channel();
        let status = Arc::new(Status::new(Arc::new(Semaphore::new(self.max_in_flight))));
        let multiplex = Multiplex {
            core: Arc::new(Core {
                calls,
                drops: Arc::new(drops),
                status: status.clone(),
                max_in_flight: self.max_in_flight,
                next_id: AtomicU64::new(0),
            }),
            permit: Permit::new(status.clone()),
        };
        let dispatch = Dispatch::new(
            transport,
            calls_rx,
            drops_rx,
            status,
            self.max_batch,
            self.max_tag,
            self.keepalive,
        );
        (multiplex, dispatch)
    }

    /// Makes the service and spawns the task that drives `transport` on the
    /// current tokio runtime.
    pub fn spawn<T, Req>(self, transport: T) -> Multiplex<Req, T::Response>
    where
        T: Transport<Outgoing<Req>> + Send + 'static,
        <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
        T::Response: Tagged + Send + 'static,
        Req: Send + 'static,
    {
        let (multiplex, dispatch) = self.build(transport);
        tokio::spawn(dispatch);
        multiplex
    }
}

/// A tagged multiplexer over one connection, as a tower [`Service`].
///
/// Clone it freely: every clone shares the connection. Each request is
/// written with a tag of its own and its answer may come in any order.
/// `poll_ready` waits while `max_in_flight` requests are outstanding, and
/// fails once the connection is unusable — failed, or told by the peer to
/// go away — so that a reconnect layer replaces it.
///
/// It is also a `Service` of [`Batch`]es: see [`BatchFuture`].
///
/// Dropping a call's [`ResponseFuture`] cancels it: never sent if the
/// connection task had not written it yet; if it had, the protocol's cancel
/// is written and the answer, when it comes, is discarded.
pub struct Multiplex<Req, Resp> {
    core: Arc<Core<Req, Resp>>,
    permit: Permit,
}

/// What every clone of a [`Multiplex`] shares.
struct Core<Req, Resp> {
    calls: mpsc::UnboundedSender<(CallId, Message<Req, Resp>)>,
    /// Behind an `Arc` of its own, so that a call's drop note takes a
    /// reference count only callers touch, not the channel's sender count,
    /// which the connection task's side of the channel shares (a cache
    /// line bounced between threads on every call).
    drops: Arc<mpsc::UnboundedSender<CallId>>,
    status: Arc<Status>,
    max_in_flight: usize,
    next_id: AtomicU64,
}

impl<Req, Resp> Core<Req, Resp> {
    fn next_id(&self) -> CallId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `message` for the connection task; if the task is gone, the
    /// message comes back unsent and is failed here.
    fn send(&self, id: CallId, message: Message<Req, Resp>) {
        if let Err(unsent) = self.calls.send((id, message)) {
            let (_, unsent) = unsent.0;
            self.status.release(unsent.permits());
            let failure = self.status.error().unwrap_or(Error::Closed).not_sent();
            PipelineMetrics::failed(&failure, unsent.permits());
            unsent.fail(failure);
        }
    }

    fn drop_note(&self, id: CallId) -> DropNote {
        DropNote {
            armed: Some((self.drops.clone(), id)),
        }
    }
}

impl<Req, Resp> Multiplex<Req, Resp> {
    /// Spawns the connection task for `transport` with default settings.
    pub fn new<T>(transport: T) -> Self
    where
        T: Transport<Outgoing<Req>, Response = Resp> + Send + 'static,
        <T as Transport<Outgoing<Req>>>::Error: Into<BoxError>,
        Resp: Tagged + Send + 'static,
        Req: Send + 'static,
    {
        Builder::default().spawn(transport)
    }

    /// Why the connection takes no new requests, if it does not: it failed,
    /// or the peer sent GOAWAY ([`Error::GoingAway`]).
    pub fn broken(&self) -> Option<Error> {
        self.core.status.error()
    }
}

impl<Req, Resp> Clone for Multiplex<Req, Resp> {
    fn clone(&self) -> Self {
        Multiplex {
            core: self.core.clone(),
            permit: self.permit.clone(),
        }
    }
}

impl<Req, Resp> fmt::Debug for Multiplex<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multiplex")
            .field("ready", &self.permit.is_held())
            .field("broken", &self.broken())
            .finish()
    }
}

impl<Req, Resp> Service<Req> for Multiplex<Req, Resp> {
    type Response = Resp;
    type Error = Error;
    type Future = ResponseFuture<Resp>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.permit.poll(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.permit.take("Multiplex");
        let id = self.core.next_id();
        let (tx, rx) = oneshot::channel();
        let deadline = context::current();
        self.core.send(
            id,
            Message::One {
                request,
                tx,
                deadline,
            },
        );
        ResponseFuture {
            rx,
            deadline,
            note: self.core.drop_note(id),
        }
    }
}

/// Tells the connection task that a call's caller stopped waiting, when
/// its future is dropped before it completed: one message, O(1).
struct DropNote {
    armed: Option<(Arc<mpsc::UnboundedSender<CallId>>, CallId)>,
}

impl DropNote {
    /// The call completed: nothing to say.
    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for DropNote {
    fn drop(&mut self) {
        if let Some((drops, id)) = self.armed.take() {
            // The task is gone only once it answered everyone.
            let _ = drops.send(id);
        }
    }
}

/// The response of one request on a [`Multiplex`].
///
/// Dropping it before it completes cancels the request: never written if
/// it was not yet; otherwise the protocol's cancel is written
/// ([`Outgoing::Cancel`]) and the answer is read in its place and dropped.
pub struct ResponseFuture<Resp> {
    rx: oneshot::Receiver<Result<Resp, Error>>,
    /// The connection task answers by then at the latest.
    deadline: Option<Instant>,
    note: DropNote,
}

impl<Resp> fmt::Debug for ResponseFuture<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<Resp> Future for ResponseFuture<Resp> {
    type Output = Result<Resp, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(Ok(result)) => result,
            // The connection task answers everyone before it ends, even when
            // it is dropped; this is only a safety net.
            Poll::Ready(Err(_)) => Err(Error::Closed),
            Poll::Pending => {
                if let Some(deadline) = this.deadline {
                    context::promise_wake_by(deadline);
                }
                return Poll::Pending;
            }
        };
        this.note.disarm();
        match &result {
            Ok(_) => tracing::debug!("answered"),
            Err(error) => {
                let failure = crate::failure::Failure::of(error).as_str();
                tracing::debug!(%error, failure, "failed");
            }
        }
        Poll::Ready(result)
    }
}

/// A batch's way to the connection task: the handle's core and the call's id.
struct BatchCall<Req, Resp> {
    core: Arc<Core<Req, Resp>>,
    id: CallId,
}

impl<Req, Resp> Clone for BatchCall<Req, Resp> {
    fn clone(&self) -> Self {
        BatchCall {
            core: self.core.clone(),
            id: self.id,
        }
    }
}

impl<Req, Resp> BatchQueue<Req, Resp> for BatchCall<Req, Resp> {
    fn status(&self) -> &Status {
        &self.core.status
    }

    fn queue(&self, message: Message<Req, Resp>) {
        self.core.send(self.id, message)
    }
}

/// A batch is one call: charged one permit of the in-flight limit per
/// request (at most `max_in_flight`), its requests written back to back,
/// each with a tag of its own and answered in any order; it completes once,
/// with one result per request, in the batch's order (as on a
/// [`Pipeline`](crate::pipeline::Pipeline)).
impl<Req, Resp> Service<Batch<Req>> for Multiplex<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = BatchResponse<Resp, Error>;
    type Error = Error;
    type Future = BatchFuture<Req, Resp>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.permit.poll(cx)
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        self.permit.take("Multiplex");
        let call = BatchCall {
            core: self.core.clone(),
            id: self.core.next_id(),
        };
        BatchFuture {
            note: self.core.drop_note(call.id),
            flow: call_batch(&call, self.core.max_in_flight, batch),
        }
    }
}

/// The response of a [`Batch`] sent on a [`Multiplex`].
///
/// `Ok` holds one result per request, in the batch's order: the answer, or
/// — if the connection failed before it — the error for that request
/// (`NotSent` if it was not written, also when the peer sent GOAWAY before
/// it was). `Err` is for the batch as a whole: the connection was unusable
/// before any of it was written, or its deadline passed.
///
/// Dropping it cancels the batch: what is not written is never written, a
/// cancel is written for each request written and not yet answered, and
/// their answers are discarded.
pub struct BatchFuture<Req, Resp> {
    flow: BatchFlow<Req, Resp, BatchCall<Req, Resp>>,
    note: DropNote,
}

impl<Req, Resp> fmt::Debug for BatchFuture<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchFuture")
            .field("state", &self.flow.state_name())
            .finish()
    }
}

impl<Req, Resp> Future for BatchFuture<Req, Resp> {
    type Output = Result<BatchResponse<Resp, Error>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let answers = futures::ready!(Pin::new(&mut this.flow).poll(cx));
        this.note.disarm();
        Poll::Ready(answers)
    }
}
