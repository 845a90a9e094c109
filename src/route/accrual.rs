//! [`Accrual`]: records each attempt against its endpoint's health, from
//! inside the endpoint's stack.

use super::error::Ejected;
use super::health::{probe, HealthConfig, Probed};
use super::key::Probe;
use super::service::EndpointInfo;
use crate::batch::Batch;
use crate::failure::BoxError;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Records the outcome of every call to `S` against an endpoint's health,
/// and starts the probe when that ejects it.
///
/// A routed client built by [`ClientBuilder::route`](crate::builder::ClientBuilder::route)
/// has it under the retry layer: a dead endpoint is then ejected after K
/// failed *attempts* (a refused connection fails at once), not after K
/// calls that each retried until their deadline; and it is probed over the
/// same connections, without the retry layer.
pub struct Accrual<S> {
    inner: S,
    shared: Arc<Shared<S>>,
    /// The endpoint was ejected when this clone was last made ready: the
    /// next call fails at once with [`Ejected`], without the inner service.
    ejected: bool,
}

struct Shared<S> {
    info: Arc<EndpointInfo>,
    config: HealthConfig,
    /// What a probe is sent on.
    template: S,
}

impl<S: Clone + Send + Sync + 'static> Probed<S> for Shared<S> {
    fn health(&self) -> &super::health::Health {
        &self.info.health
    }

    fn service(&self) -> S {
        self.template.clone()
    }

    fn name(&self) -> &str {
        &self.info.name
    }
}

impl<S: Clone> Accrual<S> {
    pub(crate) fn new(inner: S, info: Arc<EndpointInfo>, config: HealthConfig) -> Self {
        Accrual {
            shared: Arc::new(Shared {
                info,
                config,
                template: inner.clone(),
            }),
            inner,
            ejected: false,
        }
    }
}

impl<S: Clone> Clone for Accrual<S> {
    fn clone(&self) -> Self {
        Accrual {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            ejected: false,
        }
    }
}

impl<S> fmt::Debug for Accrual<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accrual")
            .field("endpoint", &self.shared.info.name)
            .field("state", &self.shared.info.health.state())
            .finish()
    }
}

impl<S, Req> Service<Req> for Accrual<S>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: Probe + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    /// Ready at once while the endpoint is ejected (the call will fail
    /// without the inner service); otherwise when the inner service is.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.ejected = !self.shared.info.health.is_up();
        if self.ejected {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// While the endpoint is ejected an attempt fails at once with
    /// [`Ejected`], so that a call already inside the endpoint's stack
    /// (in the retry layer's backoff when the endpoint was ejected) ends
    /// now instead of retrying until its deadline: the retry layer does not
    /// retry an ejection (see [`crate::failure`]).
    fn call(&mut self, request: Req) -> Self::Future {
        if std::mem::take(&mut self.ejected) {
            return ResponseFuture {
                state: State::Ejected {
                    error: Some(Ejected::new(self.shared.info.name.clone()).into()),
                },
                shared: self.shared.clone(),
            };
        }
        ResponseFuture {
            state: State::Called {
                inner: self.inner.call(request),
            },
            shared: self.shared.clone(),
        }
    }
}

/// A batch is probed with a batch of one probe.
impl<Req: Probe> Probe for Batch<Req> {
    fn probe() -> Self {
        Batch::new(vec![Req::probe()])
    }
}

/// The response of an [`Accrual`] call: the inner one, recorded; or the
/// ejection.
#[pin_project]
pub struct ResponseFuture<S: Service<Req>, Req> {
    #[pin]
    state: State<S::Future>,
    shared: Arc<Shared<S>>,
}

#[pin_project(project = StateProj)]
enum State<F> {
    Called {
        #[pin]
        inner: F,
    },
    Ejected {
        error: Option<BoxError>,
    },
}

impl<S: Service<Req>, Req> fmt::Debug for ResponseFuture<S, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
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
        let inner = match this.state.project() {
            StateProj::Called { inner } => inner,
            StateProj::Ejected { error } => {
                let error = error.take().unwrap_or_else(|| "polled after completion".into());
                return Poll::Ready(Err(error));
            }
        };
        let result = futures::ready!(inner.poll(cx)).map_err(Into::into);
        let shared = &**this.shared;
        let outcome = result.as_ref().map(drop).map_err(|error| &**error as _);
        if shared
            .info
            .health
            .record(outcome, &shared.config, &shared.info.name)
        {
            let config = shared.config.clone();
            tokio::spawn(probe::<Shared<S>, S, Req>(Arc::downgrade(this.shared), config));
        }
        Poll::Ready(result)
    }
}
