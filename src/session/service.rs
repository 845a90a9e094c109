//! [`Session`]: stamps deduplicated requests on their way down.

use super::future::{Answers, Held, ResponseFuture};
use super::{ClientSession, Deduplicated, Stamped};
use crate::batch::Batch;
use std::task::{Context, Poll};
use tower::Service;

/// Stamps each [`Deduplicated`] request with the session's next number and
/// passes every request down as a [`Stamped`] one: see the module docs.
#[derive(Debug, Clone)]
pub struct Session<S> {
    inner: S,
    session: ClientSession,
}

impl<S> Session<S> {
    /// Stamps requests to `inner` in `session`.
    pub fn new(inner: S, session: ClientSession) -> Self {
        Session { inner, session }
    }

    /// The session.
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The service under this one.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, R> Service<R> for Session<S>
where
    S: Service<Stamped<R>>,
    S::Response: Answers,
    R: Deduplicated,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let (stamped, outstanding) = self.session.stamped(request);
        ResponseFuture::new(self.inner.call(stamped), Held::One(outstanding))
    }
}

impl<S, R> Service<Batch<R>> for Session<S>
where
    S: Service<Batch<Stamped<R>>>,
    S::Response: Answers,
    R: Deduplicated,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// Each request of the batch is stamped as a call of its own would be.
    fn call(&mut self, batch: Batch<R>) -> Self::Future {
        let mut outstanding = Vec::new();
        let stamped: Batch<Stamped<R>> = batch
            .into_requests()
            .into_iter()
            .map(|request| {
                let (stamped, given) = self.session.stamped(request);
                outstanding.extend(given);
                stamped
            })
            .collect();
        ResponseFuture::new(self.inner.call(stamped), Held::Many(outstanding))
    }
}
