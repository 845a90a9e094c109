//! The [`Router`] service and its table of endpoints.

use super::accrual::Accrual;
use super::bounds::EndpointStack;
use super::endpoint::EndpointInfo;
use super::error::RouteError;
use super::future::ResponseFuture;
use super::health::HealthConfig;
use super::key::RouteKey;
use super::placement::{Placement, Placer};
use super::stats::RouterHandle;
use crate::BoxError;
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
    pub(super) endpoints: Box<[Endpoint<S>]>,
    placement: Placer,
    /// Where the next keyless request starts looking for an endpoint.
    next: AtomicUsize,
}

/// One endpoint: its info (name, health) and its stack.
pub(super) struct Endpoint<S> {
    pub(super) info: Arc<EndpointInfo>,
    pub(super) service: S,
}

impl<S: Clone> Router<Accrual<S>> {
    /// Routes over `endpoints`, each a name (which places keys: every client
    /// given the same names places keys alike) and its stack, which it
    /// wraps in an [`Accrual`] to record each call's outcome against the
    /// endpoint. Fails if there is none or a name is listed twice.
    ///
    /// ([`ClientBuilder::route`](crate::builder::ClientBuilder::route)
    /// puts the `Accrual` under the retry layer instead, so that it records
    /// each *attempt*: a dead endpoint is ejected after K failed attempts,
    /// not K calls that each retried until their deadline.)
    pub fn new<N: Into<Arc<str>>>(
        endpoints: impl IntoIterator<Item = (N, S)>,
        config: HealthConfig,
    ) -> Result<Self, RouteError> {
        let endpoints = endpoints.into_iter().map(|(name, service)| {
            let info = EndpointInfo::new(name.into(), None);
            (info.clone(), Accrual::new(service, info, config.clone()))
        });
        Router::from_parts(endpoints)
    }
}

impl<S> Router<S> {
    /// Routes over endpoints whose stacks record their own outcomes: each
    /// has an [`Accrual`] made with its info.
    pub(crate) fn from_parts(
        endpoints: impl IntoIterator<Item = (Arc<EndpointInfo>, S)>,
    ) -> Result<Self, RouteError> {
        let mut table: Vec<Endpoint<S>> = Vec::new();
        for (info, service) in endpoints {
            if table.iter().any(|endpoint| endpoint.info.name == info.name) {
                return Err(RouteError::Duplicate(info.name.to_string()));
            }
            table.push(Endpoint { info, service });
        }
        if table.is_empty() {
            return Err(RouteError::NoEndpoints);
        }
        let placement = Placer::new(
            Placement::default(),
            table.iter().map(|endpoint| endpoint.info.name.as_bytes()),
        );
        Ok(Router {
            table: Arc::new(Table {
                endpoints: table.into_boxed_slice(),
                placement,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// This router with its keys placed by `placement` instead of the
    /// default [`Rendezvous`](super::Rendezvous) hashing: the same endpoints
    /// (their health and counters shared with this router's clones), a new
    /// table of placement. Choose it once, when the router is built: keys
    /// placed by one placement are not found by the other.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # #[cfg(feature = "ketama")] {
    /// use tower::service_fn;
    /// use wirestack::route::{Accrual, HealthConfig, Ketama, Placement, Router};
    ///
    /// let endpoint = |name: &'static str| service_fn(move |_: ()| async move { Ok::<_, wirestack::BoxError>(name) });
    /// let names = ["127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"];
    /// let router: Router<Accrual<_>> = Router::new(names.map(|name| (name, endpoint(name))), HealthConfig::default())?
    ///     .with_placement(Placement::Ketama);
    /// // Where libmemcached (and every ketama client) puts "bar".
    /// assert_eq!(router.endpoint_of(b"bar"), names[Ketama::new(names).pick(b"bar")]);
    /// assert_eq!(router.endpoint_of(b"bar"), "127.0.0.1:11212");
    /// # }
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_placement(self, placement: Placement) -> Self
    where
        S: Clone,
    {
        let endpoints: Box<[Endpoint<S>]> = self
            .table
            .endpoints
            .iter()
            .map(|endpoint| Endpoint {
                info: endpoint.info.clone(),
                service: endpoint.service.clone(),
            })
            .collect();
        let placement = Placer::new(
            placement,
            endpoints.iter().map(|endpoint| endpoint.info.name.as_bytes()),
        );
        Router {
            table: Arc::new(Table {
                endpoints,
                placement,
                next: AtomicUsize::new(self.table.next.load(Ordering::Relaxed)),
            }),
        }
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
    S: EndpointStack<Req>,
    Req: RouteKey,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    /// Always ready: the endpoint is known only at `call`, and its stack's
    /// readiness is awaited in the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    /// Fails at once, without the endpoint's stack, if the endpoint is
    /// ejected; its [`Accrual`] records the outcome otherwise.
    fn call(&mut self, request: Req) -> Self::Future {
        let endpoint = &self.table.endpoints[self.table.index(&request)];
        if !endpoint.info.health.is_up() {
            return ResponseFuture::failed(endpoint.info.refuse(1));
        }
        ResponseFuture::new(endpoint.info.name.clone(), endpoint.service.clone(), request)
    }
}
