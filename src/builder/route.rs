//! [`ClientBuilder::route`]: one client over several endpoints, a stack per
//! endpoint, with pools and health checks.

use super::{ClientBuilder, Multiplexer, RetrySetting, Stack, TimeoutSetting};
use crate::pool::{Pool, PoolConfig};
use crate::reconnect::{Reconnect, ReconnectConfig};
use crate::route::{Accrual, EndpointInfo, HealthConfig, RouteError, Router};
use crate::transport::Target;
use std::fmt;
use tokio::net::ToSocketAddrs;
use tower::layer::util::Identity;
use tower::Layer;

/// The builder's settings for routed clients.
#[derive(Debug, Clone, Default)]
pub(super) struct Routing {
    pub(super) pool: PoolConfig,
    health: HealthConfig,
    /// For [balanced](ClientBuilder::balance) clients.
    pub(super) balance: crate::balance::BalanceConfig,
    /// For [hedged](ClientBuilder::balance_hedged) clients.
    pub(super) hedge: crate::hedge::HedgeConfig,
}

/// The [`Router`] that [`ClientBuilder::route`] builds for requests `Req`:
/// over one stack per endpoint — the builder's deadline, retry and layers
/// over an [`Accrual`] (each attempt recorded against the endpoint's
/// health) over a [`Pool`] of [`Reconnect`]s of the connection services of
/// the builder's [`Multiplexer`] `X` over its connector `M`'s transports.
pub type Routed<Req, L, T, R, M, X> = Router<
    Stack<
        <T as TimeoutSetting>::Service<
            <R as RetrySetting>::Service<
                <L as Layer<Accrual<Pool<Reconnect<<X as Multiplexer<M, Req>>::Connection>>>>>::Service,
            >,
        >,
    >,
>;

/// The service of one endpoint of a [`Routed`] router, under its [`Stack`].
pub(crate) type EndpointService<Req, L, T, R, M, X> = <T as TimeoutSetting>::Service<
    <R as RetrySetting>::Service<
        <L as Layer<Accrual<Pool<Reconnect<<X as Multiplexer<M, Req>>::Connection>>>>>::Service,
    >,
>;

/// [`Routed`], with a layer `Y` of each endpoint's own over its stack
/// (`ClientBuilder::route_layered`).
pub(crate) type RoutedLayered<Req, L, T, R, M, X, Y> =
    Router<Stack<<Y as Layer<EndpointService<Req, L, T, R, M, X>>>::Service>>;

impl<C, L, T, R, K, M, X> ClientBuilder<C, L, T, R, K, M, X> {
    /// Connections per endpoint of a [routed](Self::route) or
    /// [balanced](Self::balance) client: a
    /// [`Pool`] that starts with one and grows under load up to
    /// `config.max_connections` (default: one connection).
    pub fn pool(mut self, config: PoolConfig) -> Self {
        self.routing.pool = config;
        self
    }

    /// When an endpoint of a [routed](Self::route) client is ejected and how
    /// it is probed back (default [`HealthConfig::default`]).
    pub fn health(mut self, config: HealthConfig) -> Self {
        self.routing.health = config;
        self
    }
}

impl<C, L, T, R, M, X> ClientBuilder<C, L, T, R, ReconnectConfig, M, X> {
    /// Builds one client over several endpoints: each request goes to the
    /// endpoint its key belongs to (see [`crate::route`]), over a stack of
    /// its own built as [`connect_lazy`](Self::connect_lazy) builds one, with a
    /// [pool](Self::pool) of connections at its bottom. An endpoint is named
    /// by its address as written (`Display`): clients given the same names
    /// place keys alike.
    ///
    /// Connects in the background, as `connect_lazy` does; an endpoint that does
    /// not answer is [ejected](Self::health) once it has failed enough calls.
    /// Fails if `targets` is empty or names one twice. Must be called within
    /// a Tokio runtime.
    pub fn route<Req, A>(
        self,
        targets: impl IntoIterator<Item = A>,
    ) -> Result<Routed<Req, L, T, R, M, X>, RouteError>
    where
        A: ToSocketAddrs + fmt::Display + Clone + Send + Sync + 'static,
        X: Multiplexer<M, Req>,
        M: Clone,
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<Accrual<Pool<Reconnect<X::Connection>>>>,
        Self: Clone,
    {
        self.route_named(targets.into_iter().map(|address| (address.to_string(), address)))
    }

    /// [`route`](Self::route), with each endpoint named apart from its
    /// address: keys are placed by the names, so placement survives a
    /// change of address, and two spellings of one address (`localhost:P`,
    /// `127.0.0.1:P`) can be one name. Fails if `targets` is empty or names
    /// one twice.
    pub fn route_named<Req, A>(
        self,
        targets: impl IntoIterator<Item = (String, A)>,
    ) -> Result<Routed<Req, L, T, R, M, X>, RouteError>
    where
        A: ToSocketAddrs + Clone + Send + Sync + 'static,
        X: Multiplexer<M, Req>,
        M: Clone,
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<Accrual<Pool<Reconnect<X::Connection>>>>,
        Self: Clone,
    {
        self.route_layered(targets, |_, builder| (builder, Identity::new()))
    }

    /// [`route_named`](Self::route_named), with each endpoint's stack made
    /// by `endpoint`: given the endpoint's name and a clone of this builder,
    /// it returns the builder to make the stack with (another handshake,
    /// say) and a layer to put over the stack — state of the endpoint's own
    /// above its retries, as KV's session per endpoint.
    #[allow(
        clippy::type_complexity,
        reason = "the builder's seven settings and the layer name the router"
    )]
    pub(crate) fn route_layered<Req, A, Y>(
        self,
        targets: impl IntoIterator<Item = (String, A)>,
        mut endpoint: impl FnMut(&str, Self) -> (Self, Y),
    ) -> Result<RoutedLayered<Req, L, T, R, M, X, Y>, RouteError>
    where
        A: ToSocketAddrs + Clone + Send + Sync + 'static,
        X: Multiplexer<M, Req>,
        M: Clone,
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<Accrual<Pool<Reconnect<X::Connection>>>>,
        Y: Layer<EndpointService<Req, L, T, R, M, X>>,
        Self: Clone,
    {
        let mut endpoints = Vec::new();
        for (name, address) in targets {
            let (builder, layer) = endpoint(&name, self.clone());
            let connector = builder.connections::<Req>();
            let config = builder.reconnect.clone();
            let pool = Pool::new(
                move || Reconnect::new(connector.clone(), Target::new(address.clone()), config.clone()),
                builder.routing.pool,
            );
            let info = EndpointInfo::new(name.into(), Some(pool.handle()));
            let recorded = Accrual::new(pool, info.clone(), builder.routing.health.clone());
            endpoints.push((info, builder.assemble((recorded, None)).layer(&layer)));
        }
        Router::from_parts(endpoints)
    }
}
