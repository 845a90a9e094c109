//! [`Retry`] takes a [`Batch`] as one unit: one budget deposit, one
//! deadline, and retries of the remainder from the first request that
//! failed, when that is safe request by request.

use super::classify::{Idempotent, RetryableResponse};
use super::service::{Core, Retry};
use crate::batch::{Batch, BatchResponse};
use crate::deadline::context;
use crate::failure::BoxError;
use pin_project::pin_project;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Sleep;
use tower::Service;

/// A batch is retried from its first request that failed — refused, or
/// lost with its connection — to its end, if every request in that
/// remainder may be sent again: refused or never sent, or idempotent. The
/// answers before it are kept. Otherwise (or out of retries, budget or
/// time) the last answers are returned as they are.
impl<S, Req, Resp, E> Service<Batch<Req>> for Retry<S>
where
    S: Service<Batch<Req>, Response = BatchResponse<Resp, E>> + Clone,
    S::Error: Into<BoxError>,
    Req: Idempotent + Clone,
    Resp: RetryableResponse,
    E: Error + 'static,
{
    type Response = BatchResponse<Resp, E>;
    type Error = BoxError;
    type Future = BatchFuture<S, Req, Resp, E>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner_mut().poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        let core = self.start();
        let requests = batch.requests().to_vec();
        let future = self.inner_mut().call(batch);
        BatchFuture {
            state: State::Attempt { future },
            requests,
            offset: 0,
            answers: Vec::new(),
            core,
            attempts: 0,
        }
    }
}

/// The response of a [`Batch`] sent through a [`Retry`].
#[pin_project]
pub struct BatchFuture<S, Req, Resp, E>
where
    S: Service<Batch<Req>>,
{
    #[pin]
    state: State<S, Req>,
    /// The whole batch, kept to send its remainder again.
    requests: Vec<Req>,
    /// Where the attempt under way starts in `requests`.
    offset: usize,
    /// The answers to the requests before `offset`.
    answers: BatchResponse<Resp, E>,
    core: Arc<Core<S>>,
    attempts: u32,
}

#[pin_project(project = StateProj)]
enum State<S, Req>
where
    S: Service<Batch<Req>>,
{
    Attempt {
        #[pin]
        future: S::Future,
    },
    Backoff {
        sleep: Pin<Box<Sleep>>,
    },
    Readying {
        service: Box<S>,
    },
}

impl<S, Req, Resp, E> fmt::Debug for BatchFuture<S, Req, Resp, E>
where
    S: Service<Batch<Req>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchFuture")
            .field("len", &self.requests.len())
            .field("offset", &self.offset)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Where the remainder to send again starts, if one should be.
fn first_failed<Resp: RetryableResponse, E>(answers: &[Result<Resp, E>]) -> Option<usize> {
    answers.iter().position(|answer| match answer {
        Ok(response) => response.is_retryable(),
        Err(_) => true,
    })
}

impl<S, Req, Resp, E> Future for BatchFuture<S, Req, Resp, E>
where
    S: Service<Batch<Req>, Response = BatchResponse<Resp, E>> + Clone,
    S::Error: Into<BoxError>,
    Req: Idempotent + Clone,
    Resp: RetryableResponse,
    E: Error + 'static,
{
    type Output = Result<BatchResponse<Resp, E>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Attempt { future } => {
                    let result = futures::ready!(future.poll(cx)).map_err(Into::into);
                    let remainder = &this.requests[*this.offset..];
                    let policy = &this.core.policy;
                    let retry =
                        match &result {
                            Ok(answers) => first_failed(answers).and_then(|first| {
                                // Each request from the first failed one on must
                                // be safe to send again.
                                let mut reasons = remainder[first..].iter().zip(&answers[first..]).map(
                                    |(request, answer)| match answer {
                                        Ok(response) if !response.is_retryable() => {
                                            request.is_idempotent().then_some(None)
                                        }
                                        answer => policy
                                            .reason(request, answer.as_ref().map_err(|e| e as _))
                                            .map(Some),
                                    },
                                );
                                let reason = reasons.next()??;
                                reasons.all(|safe| safe.is_some()).then_some((first, reason?))
                            }),
                            Err(error) => {
                                let mut reasons = remainder
                                    .iter()
                                    .map(|request| policy.reason::<Req, Resp>(request, Err(&**error)));
                                let reason = reasons.next().flatten();
                                reason.filter(|_| reasons.all(|r| r.is_some())).map(|r| (0, r))
                            }
                        };
                    let delay = retry.and_then(|(first, reason)| {
                        let delay = policy.allow(*this.attempts, reason, context::current())?;
                        Some((first, delay))
                    });
                    let Some((first, delay)) = delay else {
                        return Poll::Ready(result.map(|answers| {
                            let mut all = std::mem::take(this.answers);
                            all.extend(answers);
                            all
                        }));
                    };
                    if let Ok(mut answers) = result {
                        this.answers.extend(answers.drain(..first));
                    }
                    *this.offset += first;
                    *this.attempts += 1;
                    State::Backoff {
                        sleep: Box::pin(tokio::time::sleep(delay)),
                    }
                }
                StateProj::Backoff { sleep } => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        context::promise_wake_by(sleep.deadline());
                        return Poll::Pending;
                    }
                    State::Readying {
                        service: Box::new(this.core.service()),
                    }
                }
                StateProj::Readying { service } => match futures::ready!(service.poll_ready(cx)) {
                    Ok(()) => {
                        let remainder = Batch::new(this.requests[*this.offset..].to_vec());
                        State::Attempt {
                            future: service.call(remainder),
                        }
                    }
                    // Not connected: the remainder was not sent; the same
                    // rules as for an attempt decide.
                    Err(error) => {
                        let error: BoxError = error.into();
                        let policy = &this.core.policy;
                        let retry = this.requests[*this.offset..]
                            .first()
                            .and_then(|request| policy.reason::<Req, Resp>(request, Err(&*error)))
                            .and_then(|reason| policy.allow(*this.attempts, reason, context::current()));
                        let Some(delay) = retry else {
                            return Poll::Ready(Err(error));
                        };
                        *this.attempts += 1;
                        State::Backoff {
                            sleep: Box::pin(tokio::time::sleep(delay)),
                        }
                    }
                },
            };
            this.state.set(next);
        }
    }
}
