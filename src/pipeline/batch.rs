//! A [`Pipeline`] takes a [`Batch`] as one call: one message, one charge of
//! the in-flight limit, one completion.
//!
//! The way a batch waits for its share of the limit and then goes to the
//! connection task ([`BatchFlow`]) is the same for the tagged multiplexer:
//! it is written once, here, over a [`BatchQueue`].

use super::client::Pipeline;
use super::dispatch::Status;
use super::error::Error;
use super::message::Message;
use crate::batch::{Batch, BatchResponse};
use crate::deadline::context;
use futures::future::BoxFuture;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{oneshot, AcquireError, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::Service;

type Answers<Resp> = Result<BatchResponse<Resp, Error>, Error>;

/// Where a batch goes once it has its permits: a multiplexer's handle.
pub(crate) trait BatchQueue<Req, Resp>: Clone {
    /// The connection's status: its in-flight limit and its error.
    fn status(&self) -> &Status;
    /// Queues the batch for the connection task.
    fn queue(&self, message: Message<Req, Resp>);
}

impl<Req, Resp> BatchQueue<Req, Resp> for Pipeline<Req, Resp> {
    fn status(&self) -> &Status {
        &self.core.status
    }

    fn queue(&self, message: Message<Req, Resp>) {
        self.send(message)
    }
}

/// A batch of `n` requests is charged `n` permits of the in-flight limit
/// (at most `max_in_flight`): `poll_ready` reserves the first, `call` takes
/// the rest if they are free; otherwise it gives the first back and its
/// future waits for all of them at once (holding none while it waits, so
/// that two waiting batches cannot block each other), then sends the batch.
/// Its requests are written back to back; it completes once, with one
/// result per request (see [`crate::batch`]).
impl<Req, Resp> Service<Batch<Req>> for Pipeline<Req, Resp>
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
        self.take_permit();
        let max_in_flight = self.core.max_in_flight;
        BatchFuture {
            flow: call_batch(self, max_in_flight, batch),
        }
    }
}

/// Sends `batch` through `queue`, whose caller took one permit in
/// `poll_ready` (see the `Service<Batch>` impl of [`Pipeline`]).
pub(crate) fn call_batch<Req, Resp, Q>(
    queue: &Q,
    max_in_flight: usize,
    batch: Batch<Req>,
) -> BatchFlow<Req, Resp, Q>
where
    Q: BatchQueue<Req, Resp>,
{
    let requests = batch.into_requests();
    let deadline = context::current();
    let status = queue.status();
    if requests.is_empty() {
        status.release(1);
        return BatchFlow::answered(Ok(Vec::new()));
    }
    let permits = requests.len().min(max_in_flight);
    let rest = u32::try_from(permits - 1).unwrap_or(u32::MAX);
    if rest == 0
        || status
            .semaphore
            .try_acquire_many(rest)
            .map(|p| p.forget())
            .is_ok()
    {
        return BatchFlow::sent(queue, requests, deadline, permits);
    }
    // Not enough room now: wait for all of it, in line with the others.
    status.release(1);
    let all = u32::try_from(permits).unwrap_or(u32::MAX);
    let acquire = Box::pin(status.semaphore.clone().acquire_many_owned(all));
    BatchFlow {
        state: State::Waiting {
            acquire,
            queue: queue.clone(),
            requests,
            deadline,
            permits,
        },
    }
}

/// The response of a [`Batch`] sent on a [`Pipeline`].
///
/// `Ok` holds one result per request, in order: the answer, or — if the
/// connection failed before it — the error for that request (`NotSent` if it
/// was not written). `Err` is for the batch as a whole: the connection was
/// broken before any of it was written, or its deadline passed.
///
/// Dropping it cancels the batch: what is not written yet is never written,
/// and the answers to what was are read and discarded.
pub struct BatchFuture<Req, Resp> {
    flow: BatchFlow<Req, Resp, Pipeline<Req, Resp>>,
}

impl<Req, Resp> fmt::Debug for BatchFuture<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchFuture")
            .field("state", &self.flow.state_name())
            .finish()
    }
}

impl<Req, Resp> Future for BatchFuture<Req, Resp> {
    type Output = Answers<Resp>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().flow).poll(cx)
    }
}

/// A batch on its way: waiting for its permits, sent, or answered.
pub(crate) struct BatchFlow<Req, Resp, Q> {
    state: State<Req, Resp, Q>,
}

enum State<Req, Resp, Q> {
    Waiting {
        acquire: BoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>>,
        queue: Q,
        requests: Vec<Req>,
        deadline: Option<Instant>,
        permits: usize,
    },
    Sent {
        rx: oneshot::Receiver<Answers<Resp>>,
        deadline: Option<Instant>,
    },
    Answered(Option<Answers<Resp>>),
}

impl<Req, Resp, Q> BatchFlow<Req, Resp, Q>
where
    Q: BatchQueue<Req, Resp>,
{
    fn answered(answers: Answers<Resp>) -> Self {
        BatchFlow {
            state: State::Answered(Some(answers)),
        }
    }

    fn sent(queue: &Q, requests: Vec<Req>, deadline: Option<Instant>, permits: usize) -> Self {
        let (tx, rx) = oneshot::channel();
        queue.queue(Message::Many {
            requests,
            tx,
            deadline,
            permits,
        });
        BatchFlow {
            state: State::Sent { rx, deadline },
        }
    }
}

impl<Req, Resp, Q> BatchFlow<Req, Resp, Q> {
    pub(crate) fn state_name(&self) -> &'static str {
        match &self.state {
            State::Waiting { .. } => "waiting for room",
            State::Sent { .. } => "sent",
            State::Answered(_) => "answered",
        }
    }
}

// Every field is `Unpin` (the acquire future is boxed).
impl<Req, Resp, Q> Unpin for BatchFlow<Req, Resp, Q> {}

impl<Req, Resp, Q> Future for BatchFlow<Req, Resp, Q>
where
    Q: BatchQueue<Req, Resp>,
{
    type Output = Answers<Resp>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Answered(answers) => {
                    return Poll::Ready(answers.take().expect("BatchFuture polled after completion"));
                }
                State::Sent { rx, deadline } => {
                    return match Pin::new(rx).poll(cx) {
                        Poll::Ready(Ok(answers)) => Poll::Ready(answers),
                        Poll::Ready(Err(_)) => Poll::Ready(Err(Error::Closed)),
                        Poll::Pending => {
                            if let Some(deadline) = *deadline {
                                context::promise_wake_by(deadline);
                            }
                            Poll::Pending
                        }
                    };
                }
                State::Waiting { acquire, .. } => {
                    let acquired = futures::ready!(acquire.as_mut().poll(cx));
                    let State::Waiting {
                        queue,
                        requests,
                        deadline,
                        permits,
                        ..
                    } = std::mem::replace(&mut this.state, State::Answered(None))
                    else {
                        unreachable!("matched above");
                    };
                    match acquired {
                        Ok(permit) => {
                            permit.forget();
                            this.state = BatchFlow::sent(&queue, requests, deadline, permits).state;
                        }
                        Err(_) => {
                            let error = queue.status().error().unwrap_or(Error::Closed);
                            this.state = State::Answered(Some(Err(error.not_sent())));
                        }
                    }
                }
            }
        }
    }
}
