//! The [`ResponseFuture`] of a [`Router`](super::Router) call.

use super::error::{Ejected, EndpointError};
use super::key::Probe;
use super::service::{record, Table};
use crate::failure::BoxError;
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
    /// The table and the endpoint's index, to record the outcome.
    route: Option<(Arc<Table<S>>, usize)>,
}

#[pin_project(project = StateProj)]
enum State<S, Req>
where
    S: Service<Req>,
{
    Failed(Option<Ejected>),
    Called(#[pin] Oneshot<S, Req>),
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(super) fn new(table: Arc<Table<S>>, index: usize, service: S, request: Req) -> Self {
        ResponseFuture {
            state: State::Called(Oneshot::new(service, request)),
            route: Some((table, index)),
        }
    }

    pub(super) fn failed(ejected: Ejected) -> Self {
        ResponseFuture {
            state: State::Failed(Some(ejected)),
            route: None,
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Failed(_) => "ejected",
            State::Called(_) => "called",
        };
        f.debug_struct("ResponseFuture").field("state", &state).finish()
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: Probe + Send + 'static,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.state.project() {
            StateProj::Failed(ejected) => {
                let ejected = ejected
                    .take()
                    .expect("route::ResponseFuture polled after completion");
                return Poll::Ready(Err(ejected.into()));
            }
            StateProj::Called(call) => futures::ready!(call.poll(cx)),
        };
        let Some((table, index)) = this.route.take() else {
            return Poll::Ready(Err("route::ResponseFuture polled after completion".into()));
        };
        Poll::Ready(match result {
            Ok(response) => {
                record::<S, Req>(&table, index, Ok(()));
                Ok(response)
            }
            Err(error) => {
                let error: BoxError = error.into();
                record::<S, Req>(&table, index, Err(&*error));
                let name = table.endpoints[index].info.name.clone();
                Err(EndpointError::new(name, error).into())
            }
        })
    }
}
