//! [`Session`]: stamps deduplicated requests on their way down.

use super::future::{Answers, CallFuture, Held, ResponseFuture};
use super::DEFAULT_MAX_WAIT;
use super::{ClientSession, Deduplicated, NoRoom, Numbering, Stamped};
use crate::batch::Batch;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

/// Stamps each [`Deduplicated`] request with the session's next number and
/// passes every request down as a [`Stamped`] one: see the module docs.
#[derive(Debug, Clone)]
pub struct Session<S> {
    inner: S,
    session: ClientSession,
    max_wait: Duration,
}

impl<S> Session<S> {
    /// Stamps requests to `inner` in `session`; a call waits at most
    /// [`DEFAULT_MAX_WAIT`](super::DEFAULT_MAX_WAIT) for a number.
    pub fn new(inner: S, session: ClientSession) -> Self {
        Session {
            inner,
            session,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }

    /// How long a deduplicated call waits for a free number (see
    /// [`SessionLayer::max_wait`](super::SessionLayer::max_wait)).
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
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
    S: Service<Stamped<R>> + Clone,
    S::Response: Answers,
    S::Error: From<NoRoom>,
    R: Deduplicated,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CallFuture<S, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    /// A deduplicated request takes the next number; while none is free it
    /// waits (see the module docs), holding the readied service below.
    fn call(&mut self, request: R) -> Self::Future {
        let (stamped, outstanding) = if request.is_deduplicated() {
            match self.session.number() {
                Numbering::Given(outstanding) => (
                    Stamped {
                        request,
                        stamp: Some(outstanding.stamp()),
                    },
                    Some(outstanding),
                ),
                Numbering::Plain => (Stamped::plain(request), None),
                Numbering::Wait => {
                    // The readied service goes with the call; this one
                    // gets a clone, to be readied again.
                    let clone = self.inner.clone();
                    let ready = std::mem::replace(&mut self.inner, clone);
                    return CallFuture::waiting(ready, request, self.session.clone(), self.max_wait);
                }
            }
        } else {
            (Stamped::plain(request), None)
        };
        CallFuture::called(ResponseFuture::new(
            self.inner.call(stamped),
            Held::One(outstanding),
        ))
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
