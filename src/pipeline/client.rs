//! The [`Pipeline`] service that callers hold.

use super::dispatch::{Dispatch, Message, Shared};
use super::error::Error;
use crate::failure::BoxError;
use crate::transport::Transport;
use futures::ready;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;
use tower::Service;

/// How a [`Pipeline`] behaves: limits set before it is started.
#[derive(Debug, Clone)]
pub struct Builder {
    max_in_flight: usize,
    max_batch: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            max_in_flight: 1024,
            max_batch: 512,
        }
    }
}

impl Builder {
    /// A builder with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

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
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let semaphore = Arc::new(Semaphore::new(self.max_in_flight));
        let shared = Arc::new(Shared::new(semaphore.clone()));
        let pipeline = Pipeline {
            tx,
            semaphore: PollSemaphore::new(semaphore),
            permit: None,
            shared: shared.clone(),
        };
        let dispatch = Dispatch::new(transport, rx, shared, self.max_batch);
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
    {
        let (pipeline, dispatch) = self.build(transport);
        tokio::spawn(dispatch);
        pipeline
    }
}

/// A pipelining multiplexer over one connection, as a tower [`Service`].
///
/// Clone it freely: every clone shares the connection. Requests are written
/// in the order they are called and matched to responses in that order.
/// `poll_ready` waits while `max_in_flight` requests are outstanding, and
/// fails once the connection is gone — the service is then broken for good
/// and should be dropped (the reconnect layer does this).
///
/// Dropping a call's [`ResponseFuture`] cancels it: never sent if the
/// connection task had not written it yet, answered and the answer
/// discarded if it had.
pub struct Pipeline<Req, Resp> {
    tx: mpsc::UnboundedSender<Message<Req, Resp>>,
    semaphore: PollSemaphore,
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
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
        self.shared.error()
    }
}

impl<Req, Resp> Clone for Pipeline<Req, Resp> {
    fn clone(&self) -> Self {
        Pipeline {
            tx: self.tx.clone(),
            semaphore: self.semaphore.clone(),
            permit: None,
            shared: self.shared.clone(),
        }
    }
}

impl<Req, Resp> fmt::Debug for Pipeline<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("ready", &self.permit.is_some())
            .field("broken", &self.shared.error())
            .finish()
    }
}

impl<Req, Resp> Service<Req> for Pipeline<Req, Resp> {
    type Response = Resp;
    type Error = Error;
    type Future = ResponseFuture<Resp>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(error) = self.shared.error() {
            return Poll::Ready(Err(error));
        }
        if self.permit.is_none() {
            match ready!(self.semaphore.poll_acquire(cx)) {
                Some(permit) => self.permit = Some(permit),
                // The connection task closes the semaphore when it fails.
                None => return Poll::Ready(Err(self.shared.error().unwrap_or(Error::Closed))),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(permit) = self.permit.take() else {
            panic!("Pipeline::call without a successful poll_ready");
        };
        let (tx, rx) = oneshot::channel();
        let message = Message {
            request,
            tx,
            _permit: permit,
        };
        // If the connection task is gone the message comes back unsent.
        if let Err(unsent) = self.tx.send(message) {
            let failure = self.shared.error().unwrap_or(Error::Closed);
            let _ = unsent.0.tx.send(Err(failure.not_sent()));
        }
        ResponseFuture {
            rx,
            shared: self.shared.clone(),
        }
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
    shared: Arc<Shared>,
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
        match ready!(this.rx.poll(cx)) {
            Ok(result) => Poll::Ready(result),
            // The connection task dropped the request without answering: it
            // has failed or stopped, and recorded why first.
            Err(_) => Poll::Ready(Err(this.shared.error().unwrap_or(Error::Closed))),
        }
    }
}
