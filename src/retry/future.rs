//! [`ResponseFuture`]: the one retry driver — attempt, backoff, a fresh
//! handle, attempt again — for every shape of call: one request, or a
//! [`Batch`](crate::batch::Batch) ([`BatchFuture`](super::BatchFuture)).
//!
//! As tower splits its `Retry` future from its `Policy`, the driver leaves
//! to a [`Shape`] what is kept to send again and what an attempt's outcome
//! means for it; it does the rest itself: counting, the attempt spans, the
//! backoff under the deadline, readying a handle, and giving up.

use super::classify::{Idempotent, RetryableResponse};
use super::policy::{Reason, Rules};
use super::service::{Core, Retry};
use super::tries::{Resend, Tries};
use crate::deadline::context;
use crate::BoxError;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Sleep;
use tower::Service;

/// The shape of a call that [`ResponseFuture`] retries, sending `Req` and
/// answered `Resp`: what it keeps to send again, and what an attempt's
/// outcome means for it.
pub trait Shape<Req, Resp> {
    /// Why to send again after an attempt ended with `result`, if that is
    /// safe for all that would be sent again.
    fn resend(&self, policy: &Rules, result: &Result<Resp, BoxError>) -> Option<Resend>;

    /// Why to try again after a handle failed to get ready with `error`
    /// (nothing was sent).
    fn unready(&self, policy: &Rules, error: &BoxError) -> Option<Reason>;

    /// What the next attempt sends.
    fn next(&self) -> Req;

    /// A retry after `result` is on its way: keeps what it settled.
    fn keep(&mut self, _result: Result<Resp, BoxError>) {}

    /// The call's answer, from its last attempt's `result`.
    fn finish(&mut self, result: Result<Resp, BoxError>) -> Result<Resp, BoxError> {
        result
    }
}

/// One request, kept whole to send again.
#[derive(Debug)]
pub struct One<Req>(pub(super) Req);

impl<Req: Idempotent + Clone, Resp: RetryableResponse> Shape<Req, Resp> for One<Req> {
    fn resend(&self, policy: &Rules, result: &Result<Resp, BoxError>) -> Option<Resend> {
        let outcome = result.as_ref().map_err(|error| &**error as _);
        policy.reason(&self.0, outcome).map(Resend::after)
    }

    fn unready(&self, policy: &Rules, error: &BoxError) -> Option<Reason> {
        policy.reason::<Req, Resp>(&self.0, Err(&**error))
    }

    fn next(&self) -> Req {
        self.0.clone()
    }
}

/// The response of a [`Retry`] call: the first answer that is not retried.
///
/// `C` is the shape of the call: one request (the default) or a batch (see
/// [`BatchFuture`](super::BatchFuture)).
#[pin_project]
pub struct ResponseFuture<S, Req, C = One<Req>>
where
    S: Service<Req>,
{
    #[pin]
    state: State<S, Req>,
    shape: C,
    core: Arc<Core<S>>,
    tries: Tries,
    /// The attempt under way's span, if `debug` tracing is enabled for it.
    span: Option<Box<tracing::Span>>,
}

/// The span of attempt `n` (1 for the first), when `debug` is enabled for
/// it: the layers below trace within it. Disabled, it is one check.
fn attempt_span(n: u32) -> Option<Box<tracing::Span>> {
    let span = tracing::debug_span!("attempt", n);
    (!span.is_disabled()).then(|| Box::new(span))
}

#[pin_project(project = StateProj)]
enum State<S, Req>
where
    S: Service<Req>,
{
    Attempt {
        #[pin]
        future: S::Future,
    },
    Backoff {
        sleep: Pin<Box<Sleep>>,
    },
    /// Rare: boxed, so that it does not make every future larger.
    Readying {
        service: Box<S>,
    },
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req> + Clone,
{
    /// Makes the first attempt of a call to `retry`: sends `request`, whose
    /// `shape` is kept to send it again.
    pub(super) fn start(retry: &mut Retry<S>, request: Req, shape: C) -> Self {
        let core = retry.start();
        let span = attempt_span(1);
        let future = {
            let _entered = span.as_deref().map(tracing::Span::enter);
            retry.inner_mut().call(request)
        };
        ResponseFuture {
            state: State::Attempt { future },
            shape,
            core,
            tries: Tries::default(),
            span,
        }
    }
}

impl<S, Req, C> fmt::Debug for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.tries.attempts())
            .finish_non_exhaustive()
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    C: Shape<Req, S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let policy = &*this.core.policy;
            let delay = match this.state.as_mut().project() {
                StateProj::Attempt { future } => {
                    let polled = {
                        let _entered = this.span.as_deref().map(tracing::Span::enter);
                        future.poll(cx)
                    };
                    let result = futures::ready!(polled).map_err(Into::into);
                    let resend = this.shape.resend(policy, &result);
                    // The deadline is read only when there is something to retry.
                    let retry =
                        resend.and_then(|resend| this.tries.retry(policy, resend, context::current()));
                    let Some(delay) = retry else {
                        // Nothing to retry, or out of retries, budget or time.
                        return Poll::Ready(this.tries.give_up(this.shape.finish(result)));
                    };
                    this.shape.keep(result);
                    delay
                }
                StateProj::Backoff { sleep } => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        // It ends before the deadline (or there is none).
                        context::promise_wake_by(sleep.deadline());
                        return Poll::Pending;
                    }
                    let service = Box::new(this.core.service());
                    this.state.set(State::Readying { service });
                    continue;
                }
                StateProj::Readying { service } => match futures::ready!(service.poll_ready(cx)) {
                    Ok(()) => {
                        *this.span = attempt_span(this.tries.attempts() + 1);
                        let future = {
                            let _entered = this.span.as_deref().map(tracing::Span::enter);
                            service.call(this.shape.next())
                        };
                        this.state.set(State::Attempt { future });
                        continue;
                    }
                    Err(error) => {
                        let error: BoxError = error.into();
                        // Nothing was sent: nothing more may have been applied.
                        let resend = this.shape.unready(policy, &error).map(|reason| Resend {
                            reason,
                            applied: false,
                        });
                        let retry =
                            resend.and_then(|resend| this.tries.retry(policy, resend, context::current()));
                        let Some(delay) = retry else {
                            return Poll::Ready(this.tries.give_up(Err(error)));
                        };
                        delay
                    }
                },
            };
            let sleep = Box::pin(tokio::time::sleep(delay));
            this.state.set(State::Backoff { sleep });
        }
    }
}
