//! The [`Retry`] service.

use super::classify::{Idempotent, RetryableResponse};
use super::future::{One, ResponseFuture};
use super::policy::{RetryHandle, RetryPolicy, Rules};
use crate::BoxError;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use tower::Service;

/// Retries what its [`RetryPolicy`] says is safe, keeping each request's
/// deadline.
///
/// The same decisions as tower's `Retry` with the same policy, at less cost
/// per request: a call clones the request once (keep requests cheap to
/// clone — `Bytes` fields are a reference count) and one reference count,
/// not the inner service and the policy. A retry makes its own handle on
/// the inner service, from a copy kept for that.
///
/// Under a [`Deadline`](crate::deadline::Deadline) layer it never waits for
/// a backoff that would end past the request's deadline (the deadline in
/// force when its future is polled): it returns the last answer — a refusal as the refusal, an error as that error — instead
/// of letting the deadline turn it into a timeout.
///
/// It also takes a [`Batch`](crate::batch::Batch) as one unit; see
/// [`BatchFuture`](super::BatchFuture).
pub struct Retry<S> {
    inner: S,
    core: Arc<Core<S>>,
}

/// What a retry needs, rules by a service's clones and futures.
pub(super) struct Core<S> {
    pub(super) policy: Arc<Rules>,
    /// Cloned to make a handle for a retry; taken at the first call.
    template: OnceLock<Mutex<S>>,
}

impl<S: Clone> Core<S> {
    /// A handle on the inner service for one more attempt.
    pub(super) fn service(&self) -> S {
        let template = self
            .template
            .get()
            .expect("a retry follows a call, which sets the template");
        template
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl<S> Retry<S> {
    /// Retries calls to `inner` as `policy` says.
    pub fn new(policy: RetryPolicy, inner: S) -> Self {
        let core = Arc::new(Core {
            policy: policy.rules().clone(),
            template: OnceLock::new(),
        });
        Retry { inner, core }
    }
}

impl<S> Retry<S> {
    /// A handle to read the policy's counters.
    pub fn handle(&self) -> RetryHandle {
        RetryHandle::new(self.core.policy.clone())
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(super) fn start(&mut self) -> Arc<Core<S>>
    where
        S: Clone,
    {
        self.core.template.get_or_init(|| Mutex::new(self.inner.clone()));
        self.core.policy.on_request();
        self.core.clone()
    }

    pub(super) fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            core: self.core.clone(),
        }
    }
}

impl<S> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("stats", &self.handle().stats())
            .finish()
    }
}

impl<S, Req> Service<Req> for Retry<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
    S::Response: RetryableResponse,
    Req: Idempotent + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let shape = One(request.clone());
        ResponseFuture::start(self, request, shape)
    }
}
