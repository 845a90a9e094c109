//! [`ClientBuilder`]: a client stack over any codec, as thick or thin as you
//! need, with defaults.
//!
//! ```text
//!   Stack ── handles: reconnect_stats(), retry_stats()
//!     │
//!   Deadline         the request's deadline, retries included    → deadline::Elapsed
//!     │              (.timeout(d) / .no_timeout())
//!   Retry            RetryPolicy: safe requests, backoff, budget → the last attempt's error
//!     │              (.retry(config) / .no_retry())
//!   your layers      .layer(..): ConcurrencyLimit, LoadShed, ...
//!     │
//!   Reconnect        one live connection, replaced when broken   → reconnect::error::Disconnected
//!     │              (.reconnect(config) / .no_reconnect())
//!   Pipeline         many callers, one connection, in order      → pipeline::Error
//!    or Multiplex    ... answers by tag, in any order            → the same type
//!     │              (.pipeline(b) / .multiplex(b): limits, keepalive)
//!   on-connect       a handshake on every new connection          → HandshakeError
//!     │              (.on_connect(h): AUTH, SELECT, ...)
//!   Framed<TcpStream | TlsStream<TcpStream>, codec>
//!                    (.tls(config, name) with the `tls` feature, or .connector(m))
//! ```
//!
//! Every layer is usable alone (see [`deadline`](crate::deadline),
//! [`retry`](crate::retry) and [`reconnect`](crate::reconnect)); the
//! builder only stacks them in the order that makes each one's promise hold:
//! the deadline bounds everything, including retries and the wait for a
//! reconnect; a retry sees the error of one attempt and retries on a fresh
//! connection. A layer you turn off is not in the stack at all: its type is
//! gone from the [`Stack`] and it costs nothing.
//!
//! | builder | stack |
//! | --- | --- |
//! | `ClientBuilder::new(codec)` | deadline → retry → reconnect → pipeline |
//! | `.no_timeout().no_retry()` | reconnect → pipeline |
//! | `.no_timeout().no_retry().no_reconnect()` | the bare [`Pipeline`] |
//! | `.multiplex(multiplex::Builder::new())` | deadline → retry → reconnect → multiplex |
//!
//! The retry layer needs two answers from the protocol: is a request
//! [`Idempotent`](crate::retry::Idempotent), is a response a
//! [refusal](crate::retry::RetryableResponse). Here a tiny line protocol
//! gives them (its codec is hidden; `examples/custom_protocol.rs` in the
//! repository has a whole one):
//!
//! ```
//! # mod lines {
//! #     use bytes::BytesMut;
//! #     use tokio_util::codec::{Decoder, Encoder, LinesCodec, LinesCodecError};
//! #     #[derive(Debug, Clone, PartialEq)]
//! #     pub struct Line(pub String);
//! #     impl wirestack::retry::Idempotent for Line { fn is_idempotent(&self) -> bool { true } }
//! #     impl wirestack::retry::RetryableResponse for Line { fn is_retryable(&self) -> bool { self.0 == "BUSY" } }
//! #     #[derive(Debug, Clone, Default)]
//! #     pub struct Codec(LinesCodec);
//! #     impl Decoder for Codec {
//! #         type Item = Line;
//! #         type Error = LinesCodecError;
//! #         fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Line>, LinesCodecError> { Ok(self.0.decode(src)?.map(Line)) }
//! #     }
//! #     impl Encoder<Line> for Codec {
//! #         type Error = LinesCodecError;
//! #         fn encode(&mut self, line: Line, dst: &mut BytesMut) -> Result<(), LinesCodecError> { self.0.encode(line.0, dst) }
//! #     }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use lines::{Codec, Line};
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//! use wirestack::builder::ClientBuilder;
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let echo = tower::service_fn(|line: Line| async move { Ok::<_, std::convert::Infallible>(line) });
//! # tokio::spawn(wirestack::server::Server::new(Codec::default()).serve(listener, tower::make::Shared::new(echo), std::future::pending()));
//!
//! // A line-echo server listens on `addr`.
//! let client = ClientBuilder::new(Codec::default())
//!     .timeout(Duration::from_secs(2))
//!     .layer(ServiceBuilder::new().concurrency_limit(64).into_inner())
//!     .connect::<Line>(addr)
//!     .await?;
//! let answer = client.clone().oneshot(Line("hello".into())).await?;
//! assert_eq!(answer, Line("hello".into()));
//! assert_eq!(client.retry_stats().retries, 0);
//! # Ok(())
//! # }
//! ```
//!
//! ## Your own layers
//!
//! [`ClientBuilder::layer`] inserts any tower [`Layer`] between the retry and
//! the reconnect layer, so it applies to each attempt. The builder builds
//! the stack once and every clone of the [`Stack`] clones it:
//! `ConcurrencyLimit` clones share one semaphore, so its limit holds across
//! clones, and `LoadShed` is stateless. `RateLimit` is not `Clone` (a
//! per-clone rate would not limit anything): put it behind a `Buffer`, which
//! is `Clone` and makes one worker task own the single rate limiter that
//! every clone feeds. Under the retry layer your layers' service must be
//! `Clone` with `Error = BoxError`, as every tower middleware over a
//! boxed-error service is.
//!
//! An error from a layer of yours (`Overloaded` from `LoadShed`, say) is not
//! retried: only a request that was not sent or lost with its connection is
//! (see [`failure`](crate::failure)).

mod balance;
mod builds;
mod multiplexer;
mod route;
mod settings;
mod stack;

pub use balance::{Balanced, BalancedEndpoint, Hedged};
pub use builds::Builds;
pub use multiplexer::Multiplexer;
pub use route::Routed;
pub use settings::{NoReconnect, NoRetry, NoTimeout, ReconnectSetting, RetrySetting, TimeoutSetting};
pub use stack::Stack;

use crate::deadline::Deadline;
use crate::multiplex;
use crate::pipeline::{self, Pipeline};
use crate::reconnect::error::Disconnected;
use crate::reconnect::{Reconnect, ReconnectConfig};
use crate::retry::{Retry, RetryConfig};
use crate::transport::{OnConnect, Target, TcpConnector};
use std::time::Duration;
use tokio::net::ToSocketAddrs;
use tower::layer::util::{Identity, Stack as LayerStack};
use tower::Layer;

/// The service a builder in state `T`, `R`, `K` with layers `L` makes, for
/// pipelines `P`: `T`'s wrapper around `R`'s around `L`'s around `K`'s.
pub type Layered<T, R, L, K, P> = <T as TimeoutSetting>::Service<
    <R as RetrySetting>::Service<<L as Layer<<K as ReconnectSetting>::Service<P>>>::Service>,
>;

/// The [`Stack`] that a `ClientBuilder<C, L, T, R, K, M, X>` builds for
/// requests `Req`: its [`Layered`] service over the connection services of
/// its [`Multiplexer`] `X` (pipelines, by default).
pub type Built<Req, L, T, R, K, M, X> = Stack<Layered<T, R, L, K, <X as Multiplexer<M, Req>>::Connection>>;

/// The stack [`ClientBuilder`] builds with its defaults and no layer of
/// yours: deadline → retry → reconnect → pipeline.
pub type DefaultStack<Req, Resp> = Deadline<Retry<Reconnect<Pipeline<Req, Resp>>>>;

/// Builds a [`Stack`]: deadline → retry → your layers → reconnect → pipeline,
/// over TCP and `codec`.
///
/// Defaults: a 5 s deadline per request ([`timeout`](Self::timeout)),
/// [`RetryConfig::default`], [`ReconnectConfig::default`] and
/// [`pipeline::Builder::default`]. The type parameters are the builder's
/// state: `L` your layers, `T` the timeout ([`Duration`] or [`NoTimeout`]),
/// `R` the retries ([`RetryConfig`] or [`NoRetry`]), `K` the reconnection
/// ([`ReconnectConfig`] or [`NoReconnect`]).
///
/// `M` is the connector every connection is made with:
/// [`TcpConnector`] by default, a `tls::TlsConnector` after `.tls(..)`
/// (feature `tls`), an [`OnConnect`] after [`on_connect`](Self::on_connect),
/// or any [`MakeTransport`](crate::transport::MakeTransport) of yours ([`connector`](Self::connector)).
#[derive(Debug, Clone)]
pub struct ClientBuilder<
    C,
    L = Identity,
    T = Duration,
    R = RetryConfig,
    K = ReconnectConfig,
    M = TcpConnector<C>,
    X = pipeline::Builder,
> {
    codec: C,
    timeout: T,
    retry: R,
    reconnect: K,
    multiplexer: X,
    layer: L,
    connector: M,
    routing: route::Routing,
}

impl<C: Clone> ClientBuilder<C> {
    /// A builder for clients that frame their connections with `codec`.
    pub fn new(codec: C) -> Self {
        ClientBuilder {
            connector: TcpConnector::new(codec.clone()),
            codec,
            timeout: Duration::from_secs(5),
            retry: RetryConfig::default(),
            reconnect: ReconnectConfig::default(),
            multiplexer: pipeline::Builder::default(),
            layer: Identity::new(),
            routing: route::Routing::default(),
        }
    }
}

impl<C, L, T, R, K, X> ClientBuilder<C, L, T, R, K, TcpConnector<C>, X> {
    /// Connects over TLS: every connection (the first and each reconnect)
    /// is a TCP connection, a TLS handshake with `config` that checks the
    /// server's certificate against `server_name`, then the codec.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(
        self,
        config: std::sync::Arc<crate::tls::rustls::ClientConfig>,
        server_name: crate::tls::rustls::pki_types::ServerName<'static>,
    ) -> ClientBuilder<C, L, T, R, K, crate::tls::TlsConnector<C>, X>
    where
        C: Clone,
    {
        let connector = crate::tls::TlsConnector::new(config, server_name, self.codec.clone());
        self.connector(connector)
    }
}

impl<C, L, T, R, K, M, X> ClientBuilder<C, L, T, R, K, M, X> {
    /// This builder with its timeout, retry and reconnect settings mapped
    /// by `f` (the other settings kept).
    fn settings<T2, R2, K2>(
        self,
        f: impl FnOnce(T, R, K) -> (T2, R2, K2),
    ) -> ClientBuilder<C, L, T2, R2, K2, M, X> {
        let (timeout, retry, reconnect) = f(self.timeout, self.retry, self.reconnect);
        ClientBuilder {
            codec: self.codec,
            timeout,
            retry,
            reconnect,
            multiplexer: self.multiplexer,
            layer: self.layer,
            connector: self.connector,
            routing: self.routing,
        }
    }

    /// This builder with its layers mapped by `layer` and its connector by
    /// `connector` (the other settings kept).
    fn stack<L2, M2>(
        self,
        layer: impl FnOnce(L) -> L2,
        connector: impl FnOnce(M) -> M2,
    ) -> ClientBuilder<C, L2, T, R, K, M2, X> {
        ClientBuilder {
            codec: self.codec,
            timeout: self.timeout,
            retry: self.retry,
            reconnect: self.reconnect,
            multiplexer: self.multiplexer,
            layer: layer(self.layer),
            connector: connector(self.connector),
            routing: self.routing,
        }
    }

    /// Makes every connection with `connector` instead: any
    /// [`MakeTransport`](crate::transport::MakeTransport) of [`Target`]s whose transports speak this
    /// builder's codec's requests and responses (another socket type, a
    /// proxy, a handshake of yours).
    pub fn connector<M2>(self, connector: M2) -> ClientBuilder<C, L, T, R, K, M2, X> {
        self.stack(|layer| layer, |_| connector)
    }

    /// Runs `handshake` on every new connection, before any request is
    /// written to it — the first connection and every reconnect — so that
    /// a reconnect authenticates (or selects, or negotiates) again by
    /// itself. Until it succeeds, calls wait for the connection as they do
    /// for a connect. A handshake the peer
    /// [rejects](crate::transport::HandshakeError::Rejected) fails the
    /// calls with an error that is never retried.
    pub fn on_connect<H>(self, handshake: H) -> ClientBuilder<C, L, T, R, K, OnConnect<M, H>, X> {
        self.stack(|layer| layer, |connector| OnConnect::new(connector, handshake))
    }

    /// The deadline of one request, from the call until its response,
    /// retries and any wait for a connection included (default 5 s).
    pub fn timeout(self, timeout: Duration) -> ClientBuilder<C, L, Duration, R, K, M, X> {
        self.settings(|_, retry, reconnect| (timeout, retry, reconnect))
    }

    /// No deadline per request: a call waits as long as its retries and the
    /// connection take. Bound it yourself (a `tokio::time::timeout` around
    /// the call, or a layer of yours) if a lost peer must not hang a caller.
    pub fn no_timeout(self) -> ClientBuilder<C, L, NoTimeout, R, K, M, X> {
        self.settings(|_, retry, reconnect| (NoTimeout, retry, reconnect))
    }

    /// How requests are retried (default [`RetryConfig::default`]).
    pub fn retry(self, retry: RetryConfig) -> ClientBuilder<C, L, T, RetryConfig, K, M, X> {
        self.settings(|timeout, _, reconnect| (timeout, retry, reconnect))
    }

    /// No retry layer: every failure reaches the caller as it happened, and
    /// requests need not be `Clone` or [`Idempotent`](crate::retry::Idempotent).
    pub fn no_retry(self) -> ClientBuilder<C, L, T, NoRetry, K, M, X> {
        self.settings(|timeout, _, reconnect| (timeout, NoRetry, reconnect))
    }

    /// How the connection is made and remade (default
    /// [`ReconnectConfig::default`]).
    pub fn reconnect(self, reconnect: ReconnectConfig) -> ClientBuilder<C, L, T, R, ReconnectConfig, M, X> {
        self.settings(|timeout, retry, _| (timeout, retry, reconnect))
    }

    /// One connection, never replaced: the stack's bottom is the bare
    /// [`Pipeline`], which fails every call once its connection is gone.
    /// Such a builder can only [`connect`](Self::connect).
    pub fn no_reconnect(self) -> ClientBuilder<C, L, T, R, NoReconnect, M, X> {
        self.settings(|timeout, retry, _| (timeout, retry, NoReconnect))
    }

    /// An in-order [`Pipeline`] over each connection, with these limits
    /// and keepalive (the default: [`pipeline::Builder::default`]).
    pub fn pipeline<P>(
        self,
        pipeline: pipeline::Builder<P>,
    ) -> ClientBuilder<C, L, T, R, K, M, pipeline::Builder<P>> {
        self.multiplexer(pipeline)
    }

    /// A tagged [`Multiplex`](crate::multiplex::Multiplex) over each
    /// connection instead of a pipeline: answers in any order, matched by
    /// tag. The codec must encode [`Outgoing`](crate::multiplex::Outgoing)
    /// requests and its responses say which request they answer
    /// ([`Tagged`](crate::multiplex::Tagged)).
    pub fn multiplex(
        self,
        multiplex: multiplex::Builder,
    ) -> ClientBuilder<C, L, T, R, K, M, multiplex::Builder> {
        self.multiplexer(multiplex)
    }

    /// The multiplexer over each connection: a [`pipeline::Builder`] or a
    /// [`multiplex::Builder`].
    fn multiplexer<X2>(self, multiplexer: X2) -> ClientBuilder<C, L, T, R, K, M, X2> {
        ClientBuilder {
            codec: self.codec,
            timeout: self.timeout,
            retry: self.retry,
            reconnect: self.reconnect,
            multiplexer,
            layer: self.layer,
            connector: self.connector,
            routing: self.routing,
        }
    }

    /// Adds a layer between the retry and the reconnect layer; layers added
    /// first are outermost, as with `tower::ServiceBuilder`.
    pub fn layer<N>(self, layer: N) -> ClientBuilder<C, LayerStack<N, L>, T, R, K, M, X> {
        self.stack(|inner| LayerStack::new(layer, inner), |connector| connector)
    }

    /// Connects to `target` now and builds the stack over that connection;
    /// fails with the connect attempt's error if it does not connect. Every
    /// reconnect resolves `target` again (a name that moves is followed).
    ///
    /// `Req` is the request type the codec encodes.
    pub async fn connect<Req>(
        self,
        target: impl ToSocketAddrs + Clone + Send + 'static,
    ) -> Result<<Self as Builds<Req>>::Stack, Disconnected>
    where
        Self: Builds<Req>,
    {
        let connection = self.connection(Target::new(target)).await?;
        Ok(self.finish(connection))
    }

    /// Resolves `addr` once and [connects](Self::connect) to the first of its
    /// addresses that answers (`localhost` may be `::1` and `127.0.0.1`);
    /// the stack is pinned to that address: every reconnect goes to it
    /// again. Fails with the last attempt's error if none answers.
    pub async fn connect_pinned<Req>(
        self,
        addr: impl ToSocketAddrs,
    ) -> Result<<Self as Builds<Req>>::Stack, Disconnected>
    where
        Self: Builds<Req>,
    {
        let addrs = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| Disconnected::because(e.into()))?;
        let mut last_error = Disconnected::because("the address resolved to nothing".into());
        for addr in addrs {
            match self.connection(Target::from(addr)).await {
                Ok(connection) => return Ok(self.finish(connection)),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The connector of this builder's connection services: the transport
    /// connector (TCP or TLS, the handshake, the codec) under the
    /// multiplexer with its limits.
    fn connections<Req>(&self) -> X::Connector
    where
        X: Multiplexer<M, Req>,
        M: Clone,
    {
        self.multiplexer.connector(self.connector.clone())
    }

    /// Stacks the layers over a connection service.
    fn assemble<S>(
        self,
        (connection, reconnect): (S, Option<crate::reconnect::ReconnectHandle>),
    ) -> Stack<T::Service<R::Service<L::Service>>>
    where
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<S>,
    {
        let (retried, retry) = self.retry.wrap(self.layer.layer(connection));
        Stack::new(self.timeout.wrap(retried), reconnect, retry)
    }
}

impl<C, L, T, R, M, X> ClientBuilder<C, L, T, R, ReconnectConfig, M, X> {
    /// Builds the stack for `target` at once and connects in the
    /// background; calls made before the first connection is up wait for it
    /// (within their deadline). Every reconnect resolves `target` again, as
    /// with [`connect`](Self::connect). Must be called within a Tokio
    /// runtime.
    ///
    /// `Req` is the request type the codec encodes.
    pub fn connect_lazy<Req>(
        self,
        target: impl ToSocketAddrs + Clone + Send + 'static,
    ) -> Built<Req, L, T, R, ReconnectConfig, M, X>
    where
        X: Multiplexer<M, Req>,
        M: Clone,
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<Reconnect<X::Connection>>,
    {
        let reconnect = Reconnect::new(self.connections(), Target::new(target), self.reconnect.clone());
        let handle = reconnect.handle();
        self.assemble((reconnect, Some(handle)))
    }
}
