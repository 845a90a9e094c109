//! The [`Deadline`] service.

use super::context::Scope;
use super::future::ResponseFuture;
use crate::BoxError;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;

/// Ends every request that is not answered within `timeout` of its call with
/// [`Elapsed`](super::Elapsed); see the [module docs](super).
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Deadline<S> {
    /// Wraps `inner`: each request gets `timeout` from its call.
    pub fn new(inner: S, timeout: Duration) -> Self {
        Deadline { inner, timeout }
    }

    /// The time each request gets.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for Deadline<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let deadline = Instant::now() + self.timeout;
        // The request's span, when `debug` is enabled for it: the layers
        // below trace within it. Disabled, it is one check and no field.
        let span = tracing::debug_span!("request", timeout_ms = self.timeout.as_millis() as u64);
        let span = (!span.is_disabled()).then(|| Box::new(span));
        let future = {
            let _entered = span.as_deref().map(tracing::Span::enter);
            let scope = Scope::enter(deadline);
            let future = self.inner.call(request);
            // Nothing is pending yet, so nothing was promised.
            let _ = scope.end();
            future
        };
        ResponseFuture::new(future, deadline, span)
    }
}
