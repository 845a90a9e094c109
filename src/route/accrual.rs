//! [`Accrual`]: records each call against its endpoint's health, from
//! inside the endpoint's stack; the one recorder of an endpoint's outcomes.

use super::bounds::EndpointStack;
use super::endpoint::{EndpointInfo, EndpointWatch};
use super::health::HealthConfig;
use super::key::Probe;
use super::recorded::{Batched, Recorded, Single};
use crate::batch::{Batch, BatchResponse};
use crate::BoxError;
use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Records the outcome of every call to `S` against an endpoint's health,
/// and starts probing the endpoint when that ejects it.
///
/// Every endpoint of a [`Router`](super::Router) has one: [`Router::new`](super::Router::new)
/// wraps each stack it is given in one, and a routed client built by
/// [`ClientBuilder::route`](crate::builder::ClientBuilder::route) has it
/// under the retry layer, where a dead endpoint is ejected after K failed
/// *attempts* (a refused connection fails at once), not after K calls that
/// each retried until their deadline; it is probed over the same
/// connections, without the retry layer.
///
/// A [`Batch`] counts once: as failed if it failed as a whole, or if any
/// of its requests failed (the first such failure is the one recorded).
/// It is probed with a single [`Probe::probe`] request.
pub struct Accrual<S> {
    inner: S,
    watch: Arc<EndpointWatch<S>>,
    /// The endpoint was ejected when this clone was last made ready: the
    /// next call fails at once with [`Ejected`](super::Ejected), without
    /// the inner service.
    ejected: bool,
}

impl<S: Clone> Accrual<S> {
    /// Records the calls to `inner` against the endpoint of `info`.
    pub(crate) fn new(inner: S, info: Arc<EndpointInfo>, config: HealthConfig) -> Self {
        Accrual {
            watch: EndpointWatch::new(info, config, inner.clone()),
            inner,
            ejected: false,
        }
    }
}

impl<S> Accrual<S> {
    /// Ready at once while the endpoint is ejected (the call will fail
    /// without the inner service); otherwise when the inner service is.
    fn poll_endpoint<Req>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>
    where
        S: EndpointStack<Req>,
    {
        self.ejected = !self.watch.info.health.is_up();
        if self.ejected {
            return Poll::Ready(Ok(()));
        }
        Service::<Req>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    /// Sends `n` requests with `call`, unless the endpoint was ejected when
    /// this clone was made ready: then they fail at once, so that a call
    /// already inside the endpoint's stack (in the retry layer's backoff
    /// when the endpoint was ejected) ends now instead of retrying until
    /// its deadline; the retry layer does not retry an ejection (see
    /// [`crate::failure`]).
    fn start<F, Req, R>(&mut self, n: usize, call: impl FnOnce(&mut S) -> F) -> Recorded<F, S, Req, R> {
        if std::mem::take(&mut self.ejected) {
            return Recorded::refused(self.watch.info.refuse(n), self.watch.clone());
        }
        Recorded::called(call(&mut self.inner), self.watch.clone())
    }
}

impl<S: Clone> Clone for Accrual<S> {
    fn clone(&self) -> Self {
        Accrual {
            inner: self.inner.clone(),
            watch: self.watch.clone(),
            ejected: false,
        }
    }
}

impl<S> fmt::Debug for Accrual<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accrual")
            .field("endpoint", &self.watch.info.name)
            .field("state", &self.watch.info.health.state())
            .finish()
    }
}

/// A request counts as failed if its call failed.
impl<S, Req> Service<Req> for Accrual<S>
where
    S: EndpointStack<Req>,
    Req: Probe + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Recorded<S::Future, S, Req, Single>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_endpoint::<Req>(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.start(1, |inner| inner.call(request))
    }
}

/// A batch counts once, as failed if it failed as a whole or any of its
/// requests failed; the endpoint is probed with a single request.
impl<S, Req, Resp, E> Service<Batch<Req>> for Accrual<S>
where
    S: EndpointStack<Batch<Req>, Response = BatchResponse<Resp, E>> + EndpointStack<Req>,
    Req: Probe + Send + 'static,
    E: Error + 'static,
{
    type Response = BatchResponse<Resp, E>;
    type Error = BoxError;
    type Future = Recorded<<S as Service<Batch<Req>>>::Future, S, Req, Batched>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.poll_endpoint::<Batch<Req>>(cx)
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        self.start(batch.len(), |inner| Service::<Batch<Req>>::call(inner, batch))
    }
}
