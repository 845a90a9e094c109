//! The [`Router`] service and its table of endpoints.

use super::error::{Ejected, RouteError};
use super::future::ResponseFuture;
use super::hash::Rendezvous;
use super::health::{Health, HealthConfig, Probed};
use super::key::{Probe, RouteKey};
use super::stats::RouterHandle;
use crate::failure::BoxError;
use crate::pool::PoolHandle;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Routes each request to one of several endpoints by its
/// [key](RouteKey), over one stack per endpoint; see the [module docs](super).
///
/// Cheap to clone: clones share the endpoints, their health and counters.
pub struct Router<S> {
    pub(super) table: Arc<Table<S>>,
}

/// What every clone of a [`Router`] shares.
pub(super) struct Table<S> {
    pub(super) endpoints: Box<[Arc<Endpoint<S>>]>,
    placement: Rendezvous,
    pub(super) config: HealthConfig,
    /// Where the next keyless request starts looking for an endpoint.
    next: AtomicUsize,
}

/// One endpoint: its name, its stack, its health.
pub(crate) struct Endpoint<S> {
    pub(super) info: Arc<EndpointInfo>,
    pub(super) service: S,
    /// An [`Accrual`](super::Accrual) inside the stack records each
    /// attempt: the router only checks the endpoint's state.
    observed: bool,
}

/// What a [`RouterHandle`] reads of an endpoint.
#[derive(Debug)]
pub(crate) struct EndpointInfo {
    pub(crate) name: Arc<str>,
    pub(crate) health: Health,
    pub(crate) pool: Option<PoolHandle>,
}

impl EndpointInfo {
    pub(crate) fn new(name: Arc<str>, pool: Option<PoolHandle>) -> Arc<Self> {
        Arc::new(EndpointInfo {
            name,
            health: Health::default(),
            pool,
        })
    }
}

impl<S: Clone + Send + Sync + 'static> Probed<S> for Endpoint<S> {
    fn health(&self) -> &Health {
        &self.info.health
    }

    fn service(&self) -> S {
        self.service.clone()
    }

    fn name(&self) -> &str {
        &self.info.name
    }
}

impl<S> Router<S> {
    /// Routes over `endpoints`, each a name (which places keys: every client
    /// given the same names places keys alike) and its stack. Fails if
    /// there is none or a name is listed twice.
    ///
    /// The router records the outcome of each call against its endpoint.
    /// ([`ClientBuilder::route`](crate::builder::ClientBuilder::route)
    /// records each *attempt* instead, under the retry layer, so that a dead
    /// endpoint is ejected after K failed attempts, not K calls that each
    /// retried until their deadline.)
    pub fn new<N: Into<Arc<str>>>(
        endpoints: impl IntoIterator<Item = (N, S)>,
        config: HealthConfig,
    ) -> Result<Self, RouteError> {
        let endpoints = endpoints
            .into_iter()
            .map(|(name, service)| (EndpointInfo::new(name.into(), None), service, false));
        Self::from_parts(endpoints, config)
    }

    /// Routes over endpoints whose info was made beforehand, and whose
    /// stacks record their own outcomes if `observed`.
    pub(crate) fn from_parts(
        endpoints: impl IntoIterator<Item = (Arc<EndpointInfo>, S, bool)>,
        config: HealthConfig,
    ) -> Result<Self, RouteError> {
        let mut table: Vec<Arc<Endpoint<S>>> = Vec::new();
        for (info, service, observed) in endpoints {
            if table.iter().any(|endpoint| endpoint.info.name == info.name) {
                return Err(RouteError::Duplicate(info.name.to_string()));
            }
            table.push(Arc::new(Endpoint {
                info,
                service,
                observed,
            }));
        }
        if table.is_empty() {
            return Err(RouteError::NoEndpoints);
        }
        let placement = Rendezvous::new(table.iter().map(|endpoint| endpoint.info.name.as_bytes()));
        Ok(Router {
            table: Arc::new(Table {
                endpoints: table.into_boxed_slice(),
                placement,
                config,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// A handle on the endpoints' state and counters.
    pub fn handle(&self) -> RouterHandle {
        RouterHandle::new(self.table.endpoints.iter().map(|e| e.info.clone()).collect())
    }

    /// The endpoints' names, in the order given.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.table.endpoints.iter().map(|endpoint| &*endpoint.info.name)
    }

    /// The name of the endpoint `key` is placed on.
    pub fn endpoint_of(&self, key: &[u8]) -> &str {
        &self.table.endpoints[self.table.placement.pick(key)].info.name
    }
}

impl<S> Table<S> {
    /// The endpoint a request goes to: its key's, or for a keyless one the
    /// next endpoint that is up (round robin), or the next one if none is.
    pub(super) fn index<Req: RouteKey>(&self, request: &Req) -> usize {
        match request.route_key() {
            Some(key) => self.placement.pick(key),
            None => {
                let count = self.endpoints.len();
                let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
                (0..count)
                    .map(|offset| (start + offset) % count)
                    .find(|&index| self.endpoints[index].info.health.is_up())
                    .unwrap_or(start)
            }
        }
    }
}

impl<S> Clone for Router<S> {
    fn clone(&self) -> Self {
        Router {
            table: self.table.clone(),
        }
    }
}

impl<S> fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("endpoints", &self.handle().stats())
            .finish()
    }
}

impl<S, Req> Service<Req> for Router<S>
where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: RouteKey + Probe + Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    /// Always ready: the endpoint is known only at `call`, and its stack's
    /// readiness is awaited in the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let index = self.table.index(&request);
        let endpoint = &self.table.endpoints[index];
        if !endpoint.info.health.is_up() {
            endpoint.info.health.failed_fast(1);
            return ResponseFuture::failed(Ejected::new(endpoint.info.name.clone()));
        }
        ResponseFuture::new(self.table.clone(), index, endpoint.service.clone(), request)
    }
}

/// Records a call's outcome against endpoint `index`; starts the probe if
/// it ejected the endpoint.
pub(super) fn record<S, Req>(
    table: &Arc<Table<S>>,
    index: usize,
    outcome: Result<(), &(dyn std::error::Error + 'static)>,
) where
    S: Service<Req> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    Req: Probe + Send + 'static,
{
    let endpoint = &table.endpoints[index];
    if endpoint.observed {
        return;
    }
    if endpoint
        .info
        .health
        .record(outcome, &table.config, &endpoint.info.name)
    {
        let probe =
            super::health::probe::<Endpoint<S>, S, Req>(Arc::downgrade(endpoint), table.config.clone());
        tokio::spawn(probe);
    }
}
