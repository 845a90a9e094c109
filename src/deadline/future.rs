//! The [`ResponseFuture`] of [`Deadline`](super::Deadline).

use super::context::{self, Scope};
use super::error::Elapsed;
use crate::failure::Failure;
use crate::BoxError;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// The response of a [`Deadline`](super::Deadline) call: the inner
/// response, or [`Elapsed`] once the deadline has passed.
#[pin_project]
pub struct ResponseFuture<F> {
    #[pin]
    inner: F,
    deadline: Instant,
    /// Armed only while nothing below has promised to wake this task by the
    /// deadline.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The request's span, if `debug` tracing was enabled for it.
    span: Option<Box<tracing::Span>>,
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, deadline: Instant, span: Option<Box<tracing::Span>>) -> Self {
        ResponseFuture {
            inner,
            deadline,
            sleep: None,
            span,
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.deadline)
            .field("own_timer", &self.sleep.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        let deadline = *this.deadline;
        let scope = Scope::enter(deadline);
        let polled = this.inner.poll(cx);
        let promised = scope.end();
        match polled {
            Poll::Ready(Ok(response)) => return Poll::Ready(Ok(response)),
            Poll::Ready(Err(error)) => {
                let error: BoxError = error.into();
                // Whatever layer below noticed the deadline first, the caller
                // learns it as this layer's error.
                if Failure::of(&*error) == Failure::TimedOut {
                    super::metrics::deadline_expired();
                    tracing::debug!("deadline passed");
                    return Poll::Ready(Err(Elapsed::new().into()));
                }
                return Poll::Ready(Err(error));
            }
            Poll::Pending => {}
        }
        if let Some(at) = promised.filter(|&at| at <= deadline) {
            // Something below wakes this task by the deadline: no timer.
            *this.sleep = None;
            context::promise_wake_by(at);
            return Poll::Pending;
        }
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            super::metrics::deadline_expired();
            tracing::debug!("deadline passed");
            return Poll::Ready(Err(Elapsed::new().into()));
        }
        context::promise_wake_by(deadline);
        Poll::Pending
    }
}
