//! [`Accrual`]: records each attempt against its endpoint's health, from
//! inside the endpoint's stack.

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
        }
    }
}

impl<S: Clone> Clone for Accrual<S> {
    fn clone(&self) -> Self {
        Accrual {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
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

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(request),
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

/// The response of an [`Accrual`] call: the inner one, recorded.
#[pin_project]
pub struct ResponseFuture<S: Service<Req>, Req> {
    #[pin]
    inner: S::Future,
    shared: Arc<Shared<S>>,
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
        let result = futures::ready!(this.inner.poll(cx)).map_err(Into::into);
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
