//! The [`ResponseFuture`] of [`Retry`](super::Retry), for one request.

use super::classify::{Idempotent, RetryableResponse};
use super::error::MaybeApplied;
use super::policy::Reason;
use super::service::Core;
use crate::deadline::context;
use crate::failure::{BoxError, Delivery};
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Sleep;
use tower::Service;

/// The response of a [`Retry`](super::Retry) call: the first answer that
/// is not retried.
#[pin_project]
pub struct ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    #[pin]
    state: State<S, Req>,
    /// Kept to send again.
    request: Req,
    core: Arc<Core<S>>,
    attempts: u32,
    /// An earlier attempt was lost after it may have been written.
    maybe_applied: bool,
    /// The attempt under way's span, if `debug` tracing is enabled for it.
    span: Option<Box<tracing::Span>>,
}

/// The span of attempt `n` (1 for the first), when `debug` is enabled for
/// it: the layers below trace within it. Disabled, it is one check.
pub(super) fn attempt_span(n: u32) -> Option<Box<tracing::Span>> {
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

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(super) fn new(
        future: S::Future,
        request: Req,
        core: Arc<Core<S>>,
        span: Option<Box<tracing::Span>>,
    ) -> Self {
        ResponseFuture {
            state: State::Attempt { future },
            request,
            core,
            attempts: 0,
            maybe_applied: false,
            span,
        }
    }
}

impl<S, Req> fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: RetryableResponse,
    Req: Idempotent + Clone,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Attempt { future } => {
                    let polled = {
                        let _entered = this.span.as_deref().map(tracing::Span::enter);
                        future.poll(cx)
                    };
                    let result = futures::ready!(polled).map_err(Into::into);
                    let policy = &this.core.policy;
                    let outcome = result.as_ref().map_err(|error| &**error as _);
                    let Some(reason) = policy.reason(&*this.request, outcome) else {
                        return Poll::Ready(give_up(result, *this.maybe_applied));
                    };
                    *this.maybe_applied |= matches!(reason, Reason::LostIdempotent);
                    let Some(delay) = policy.allow(*this.attempts, reason, context::current()) else {
                        // Out of retries, budget or time: the last answer.
                        return Poll::Ready(give_up(result, *this.maybe_applied));
                    };
                    *this.attempts += 1;
                    State::Backoff {
                        sleep: Box::pin(tokio::time::sleep(delay)),
                    }
                }
                StateProj::Backoff { sleep } => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        // It ends before the deadline (or there is none).
                        context::promise_wake_by(sleep.deadline());
                        return Poll::Pending;
                    }
                    State::Readying {
                        service: Box::new(this.core.service()),
                    }
                }
                StateProj::Readying { service } => match futures::ready!(service.poll_ready(cx)) {
                    Ok(()) => {
                        *this.span = attempt_span(*this.attempts + 1);
                        let _entered = this.span.as_deref().map(tracing::Span::enter);
                        State::Attempt {
                            future: service.call(this.request.clone()),
                        }
                    }
                    Err(error) => {
                        let error: BoxError = error.into();
                        let policy = &this.core.policy;
                        let retry = policy
                            .reason::<Req, S::Response>(&*this.request, Err(&*error))
                            .and_then(|reason| policy.allow(*this.attempts, reason, context::current()));
                        let Some(delay) = retry else {
                            return Poll::Ready(give_up(Err(error), *this.maybe_applied));
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

/// The answer a request that is not retried again ends with: as it is,
/// unless it is an error saying "not sent" while an earlier attempt may have
/// been applied — then that is what the caller must learn.
fn give_up<Resp>(result: Result<Resp, BoxError>, maybe_applied: bool) -> Result<Resp, BoxError> {
    match result {
        Err(error) if maybe_applied && Delivery::of(&*error) == Some(Delivery::NotSent) => {
            Err(MaybeApplied::new(error).into())
        }
        result => result,
    }
}
