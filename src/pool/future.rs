//! The [`ResponseFuture`] of a [`Pool`](super::Pool) call, and the count of
//! calls in flight on a member.

use super::service::Member;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::Oneshot;
use tower::Service;

/// One call in flight on a member, until dropped.
pub(super) struct InFlight<S> {
    member: Arc<Member<S>>,
}

impl<S> InFlight<S> {
    pub(super) fn new(member: Arc<Member<S>>) -> Self {
        member.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { member }
    }
}

impl<S> Drop for InFlight<S> {
    fn drop(&mut self) {
        self.member.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The response of a [`Pool`](super::Pool) call: the member's readiness,
/// then its answer. The call counts as in flight on the member until this
/// completes or is dropped.
#[pin_project]
pub struct ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    #[pin]
    call: Oneshot<S, Req>,
    in_flight: Option<InFlight<S>>,
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(super) fn new(service: S, request: Req, in_flight: InFlight<S>) -> Self {
        ResponseFuture {
            call: Oneshot::new(service, request),
            in_flight: Some(in_flight),
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S: Service<Req>, Req> Future for ResponseFuture<S, Req> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = futures::ready!(this.call.poll(cx));
        this.in_flight.take();
        Poll::Ready(result)
    }
}
