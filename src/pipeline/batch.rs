//! A [`Pipeline`] takes a [`Batch`] as one call: one message, one charge of
//! the in-flight limit, one completion.

use super::client::{poll_permit, Pipeline};
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

/// A batch of `n` requests is charged `n` permits of the in-flight limit
/// (at most `max_in_flight`): `poll_ready` reserves the first, `call` takes
/// the rest if they are free; otherwise it gives the first back and its
/// future waits for all of them at once (holding none while it waits, so
/// that two waiting batches cannot block each other), then sends the batch. Its requests are written back to back; it
/// completes once, with one result per request (see [`crate::batch`]).
impl<Req, Resp> Service<Batch<Req>> for Pipeline<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = BatchResponse<Resp, Error>;
    type Error = Error;
    type Future = BatchFuture<Req, Resp>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_permit(self, cx)
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        self.take_permit();
        let requests = batch.into_requests();
        let deadline = context::current();
        let status = &self.core.status;
        if requests.is_empty() {
            status.release(1);
            return BatchFuture::answered(Ok(Vec::new()));
        }
        let permits = requests.len().min(self.core.max_in_flight);
        let rest = u32::try_from(permits - 1).unwrap_or(u32::MAX);
        if rest == 0
            || status
                .semaphore
                .try_acquire_many(rest)
                .map(|p| p.forget())
                .is_ok()
        {
            return BatchFuture::sent(self, requests, deadline, permits);
        }
        // Not enough room now: wait for all of it, in line with the others.
        status.release(1);
        let all = u32::try_from(permits).unwrap_or(u32::MAX);
        let acquire = Box::pin(status.semaphore.clone().acquire_many_owned(all));
        BatchFuture {
            state: State::Waiting {
                acquire,
                pipeline: self.clone(),
                requests,
                deadline,
                permits,
            },
        }
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
    state: State<Req, Resp>,
}

enum State<Req, Resp> {
    Waiting {
        acquire: BoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>>,
        pipeline: Pipeline<Req, Resp>,
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

impl<Req, Resp> BatchFuture<Req, Resp> {
    fn answered(answers: Answers<Resp>) -> Self {
        BatchFuture {
            state: State::Answered(Some(answers)),
        }
    }

    fn sent(
        pipeline: &Pipeline<Req, Resp>,
        requests: Vec<Req>,
        deadline: Option<Instant>,
        permits: usize,
    ) -> Self {
        let (tx, rx) = oneshot::channel();
        pipeline.send(Message::Many {
            requests,
            tx,
            deadline,
            permits,
        });
        BatchFuture {
            state: State::Sent { rx, deadline },
        }
    }
}

impl<Req, Resp> fmt::Debug for BatchFuture<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting for room",
            State::Sent { .. } => "sent",
            State::Answered(_) => "answered",
        };
        f.debug_struct("BatchFuture").field("state", &state).finish()
    }
}

// Every field is `Unpin` (the acquire future is boxed).
impl<Req, Resp> Unpin for BatchFuture<Req, Resp> {}

impl<Req, Resp> Future for BatchFuture<Req, Resp> {
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
                        pipeline,
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
                            this.state = BatchFuture::sent(&pipeline, requests, deadline, permits).state;
                        }
                        Err(_) => {
                            let error = pipeline.broken().unwrap_or(Error::Closed);
                            this.state = State::Answered(Some(Err(error.not_sent())));
                        }
                    }
                }
            }
        }
    }
}
