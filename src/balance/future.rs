//! The [`ResponseFuture`] of a [`Balance`](super::Balance) call.

use super::error::BalanceError;
use super::load::InFlight;
use crate::route::{Ejected, EndpointError, EndpointInfo};
use crate::BoxError;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::Oneshot;
use tower::Service;

/// The response of a call a [`Balance`](super::Balance) sent: the chosen
/// endpoint's answer, or its error wrapped in an [`EndpointError`] naming
/// it (the [failure rule](crate::failure) looks through it), or
/// [`BalanceError::NoEndpoints`] at once. The call counts as in flight on
/// the endpoint, and its latency is observed, until this completes or is
/// dropped.
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
    Failed(Option<BalanceError>),
    Called {
        #[pin]
        call: Oneshot<S, Req>,
        endpoint: Arc<EndpointInfo>,
        in_flight: Option<InFlight>,
    },
}

impl<S: Service<Req>, Req> ResponseFuture<S, Req> {
    pub(super) fn new(endpoint: Arc<EndpointInfo>, service: S, request: Req, in_flight: InFlight) -> Self {
        ResponseFuture {
            state: State::Called {
                call: Oneshot::new(service, request),
                endpoint,
                in_flight: Some(in_flight),
            },
        }
    }

    pub(super) fn failed(error: BalanceError) -> Self {
        ResponseFuture {
            state: State::Failed(Some(error)),
        }
    }

    /// Another copy answered first and this one is about to be dropped.
    pub(super) fn lost(self: Pin<&mut Self>) {
        if let StateProj::Called {
            endpoint, in_flight, ..
        } = self.project().state.project()
        {
            if let Some(in_flight) = in_flight.take() {
                in_flight.failed();
            }
            endpoint.health.lost_race(&endpoint.name);
        }
    }
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Failed(error) => f.debug_struct("ResponseFuture").field("failed", error).finish(),
            State::Called { endpoint, .. } => f
                .debug_struct("ResponseFuture")
                .field("endpoint", &endpoint.name)
                .finish(),
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Failed(error) => {
                Poll::Ready(Err(error.take().unwrap_or(BalanceError::NoEndpoints).into()))
            }
            StateProj::Called {
                call,
                endpoint,
                in_flight,
            } => {
                let result = futures::ready!(call.poll(cx));
                let in_flight = in_flight.take();
                Poll::Ready(result.map_err(|error| {
                    if let Some(in_flight) = in_flight {
                        in_flight.failed();
                    }
                    let error = error.into();
                    if error.is::<Ejected>() {
                        return BalanceError::Ejected(endpoint.name.to_string()).into();
                    }
                    EndpointError::new(endpoint.name.clone(), error).into()
                }))
            }
        }
    }
}
