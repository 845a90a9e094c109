//! The [`ResponseFuture`] of a [`Router`](super::Router) call.

use super::bounds::EndpointStack;
use super::error::{Ejected, EndpointError};
use crate::BoxError;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::Oneshot;
use tower::Service;

/// The response of a request routed by a [`Router`](super::Router): the
/// endpoint's answer, its error wrapped in an [`EndpointError`] naming it,
/// or [`Ejected`] at once if the endpoint is ejected.
#[pin_project]
pub struct ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    #[pin]
    state: State<S, Req>,
}

#[pin_project(project = StateProj)]
enum State<S, Req>
where
    S: Service<Req>,
{
    Failed(Option<Ejected>),
    Called {
        #[pin]
        call: Oneshot<S, Req>,
        /// The endpoint's name, for its errors.
        endpoint: Arc<str>,
    },
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(super) fn new(endpoint: Arc<str>, service: S, request: Req) -> Self {
        ResponseFuture {
            state: State::Called {
                call: Oneshot::new(service, request),
                endpoint,
            },
        }
    }

    pub(super) fn failed(ejected: Ejected) -> Self {
        ResponseFuture {
            state: State::Failed(Some(ejected)),
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Failed(_) => "ejected",
            State::Called { .. } => "called",
        };
        f.debug_struct("ResponseFuture").field("state", &state).finish()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: EndpointStack<Req>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Failed(ejected) => {
                let ejected = ejected
                    .take()
                    .expect("route::ResponseFuture polled after completion");
                Poll::Ready(Err(ejected.into()))
            }
            StateProj::Called { call, endpoint } => {
                let result = futures::ready!(call.poll(cx));
                Poll::Ready(result.map_err(|error| EndpointError::new(endpoint.clone(), error.into()).into()))
            }
        }
    }
}
