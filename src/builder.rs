//! [`ClientBuilder`]: the whole client stack over any codec, with defaults.
//!
//! ```text
//!   Client ── handles: reconnect_stats(), retry_stats()
//!     │
//!   Timeout          the request's deadline, retries included    → tower::timeout::error::Elapsed
//!     │
//!   Retry            RetryPolicy: safe requests, backoff, budget → the last attempt's error
//!     │
//!   your layers      .layer(..): ConcurrencyLimit, LoadShed, ...
//!     │
//!   Reconnect        one live connection, replaced when broken   → reconnect::error::Disconnected
//!     │
//!   Pipeline         many callers, one connection, in order      → pipeline::Error
//!     │
//!   Framed<TcpStream, codec>
//! ```
//!
//! Every layer is usable alone (see [`reconnect`](crate::reconnect),
//! [`retry`](crate::retry) and tower's [`timeout`](tower::timeout)); the
//! builder only stacks them in the order that makes each one's promise hold:
//! the timeout bounds everything, including retries and the wait for a
//! reconnect; a retry sees the error of one attempt and retries on a fresh
//! connection.
//!
//! ## Your own layers
//!
//! [`ClientBuilder::layer`] inserts any tower [`Layer`] between the retry and
//! the reconnect layer, so it applies to each attempt. The service it makes
//! must be `Clone` with `Error = BoxError` (every tower middleware over a
//! boxed-error service is). The builder builds the stack once and every
//! clone of the [`Client`] clones it: `ConcurrencyLimit` clones share one
//! semaphore, so its limit holds across clones, and `LoadShed` is
//! stateless. `RateLimit` is not `Clone` (a per-clone rate would not limit
//! anything): put it behind a `Buffer`, which is `Clone` and makes one worker
//! task own the single rate limiter that every clone feeds:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use tower::ServiceBuilder;
//! use wirestack::builder::ClientBuilder;
//! use wirestack::kv::{self, ClientCodec, KvClient, Request};
//!
//! let server = kv::spawn_server("127.0.0.1:0", kv::ServerConfig::default()).await?;
//! let stack = ClientBuilder::new(ClientCodec::new())
//!     .timeout(Duration::from_secs(2))
//!     .layer(
//!         ServiceBuilder::new()
//!             .load_shed()
//!             .buffer(1024)
//!             .rate_limit(10_000, Duration::from_secs(1))
//!             .concurrency_limit(64)
//!             .into_inner(),
//!     )
//!     .connect::<Request>(server.local_addr())
//!     .await?;
//! let client = KvClient::new(stack);
//! client.put("k", "v").await?;
//! assert_eq!(client.get("k").await?.as_deref(), Some(&b"v"[..]));
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! An error from a layer of yours (`Overloaded` from `LoadShed`, say) is not
//! retried: only a request that was not sent or lost with its connection is.

use crate::pipeline::{self, Pipeline};
use crate::reconnect::error::Disconnected;
use crate::reconnect::{Reconnect, ReconnectConfig, ReconnectHandle, ReconnectStats, TcpConnector};
use crate::retry::{Idempotent, RetryConfig, RetryHandle, RetryPolicy, RetryStats, RetryableResponse};
use crate::transport::BoxError;
use std::fmt;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::ToSocketAddrs;
use tokio_util::codec::{Decoder, Encoder};
use tower::layer::util::{Identity, Stack};
use tower::retry::Retry;
use tower::timeout::Timeout;
use tower::{Layer, Service};

/// The layers the builder puts above yours: a deadline over retries.
pub type Outer<S> = Timeout<Retry<RetryPolicy, S>>;

/// The stack [`ClientBuilder`] builds when you add no layer of your own.
pub type DefaultStack<Req, Resp> = Outer<Reconnect<Pipeline<Req, Resp>>>;

/// Builds a [`Client`]: timeout → retry → your layers → reconnect → pipeline,
/// over TCP and `codec`.
///
/// Defaults: a 5 s deadline per request ([`timeout`](Self::timeout)),
/// [`RetryConfig::default`], [`ReconnectConfig::default`] and
/// [`pipeline::Builder::default`].
#[derive(Debug, Clone)]
pub struct ClientBuilder<C, L = Identity> {
    codec: C,
    timeout: Duration,
    retry: RetryConfig,
    reconnect: ReconnectConfig,
    pipeline: pipeline::Builder,
    layer: L,
}

impl<C> ClientBuilder<C> {
    /// A builder for clients that frame their connections with `codec`.
    pub fn new(codec: C) -> Self {
        ClientBuilder {
            codec,
            timeout: Duration::from_secs(5),
            retry: RetryConfig::default(),
            reconnect: ReconnectConfig::default(),
            pipeline: pipeline::Builder::default(),
            layer: Identity::new(),
        }
    }
}

impl<C, L> ClientBuilder<C, L> {
    /// The deadline of one request, from the call until its response,
    /// retries and any wait for a connection included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How requests are retried.
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.retry = config;
        self
    }

    /// How the connection is made and remade.
    pub fn reconnect(mut self, config: ReconnectConfig) -> Self {
        self.reconnect = config;
        self
    }

    /// The limits of each connection's [`Pipeline`].
    pub fn pipeline(mut self, pipeline: pipeline::Builder) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Adds a layer between the retry and the reconnect layer; layers added
    /// first are outermost, as with `tower::ServiceBuilder`.
    pub fn layer<T>(self, layer: T) -> ClientBuilder<C, Stack<T, L>> {
        ClientBuilder {
            codec: self.codec,
            timeout: self.timeout,
            retry: self.retry,
            reconnect: self.reconnect,
            pipeline: self.pipeline,
            layer: Stack::new(layer, self.layer),
        }
    }

    /// Builds the stack for `target` and starts connecting in the
    /// background; calls made before the first connection is up wait for it
    /// (within their deadline). Must be called within a Tokio runtime.
    ///
    /// `Req` is the request type the codec encodes.
    pub fn build<Req>(self, target: impl ToSocketAddrs + Clone + Send + 'static) -> Client<Outer<L::Service>>
    where
        C: Encoder<Req, Error = <C as Decoder>::Error> + Decoder + Clone + Send + 'static,
        C::Item: RetryableResponse + Send + 'static,
        <C as Decoder>::Error: From<io::Error> + Into<BoxError>,
        Req: Idempotent + Clone + Send + 'static,
        L: Layer<Reconnect<Pipeline<Req, C::Item>>>,
        L::Service: Service<Req, Response = C::Item, Error = BoxError> + Clone,
    {
        let reconnect = self.reconnect_to::<Req, _>(target);
        self.assemble(reconnect)
    }

    /// Like [`build`](Self::build), but waits for the first connect attempt
    /// and fails with its error if it does not connect.
    pub async fn connect<Req>(
        self,
        target: impl ToSocketAddrs + Clone + Send + 'static,
    ) -> Result<Client<Outer<L::Service>>, Disconnected>
    where
        C: Encoder<Req, Error = <C as Decoder>::Error> + Decoder + Clone + Send + 'static,
        C::Item: RetryableResponse + Send + 'static,
        <C as Decoder>::Error: From<io::Error> + Into<BoxError>,
        Req: Idempotent + Clone + Send + 'static,
        L: Layer<Reconnect<Pipeline<Req, C::Item>>>,
        L::Service: Service<Req, Response = C::Item, Error = BoxError> + Clone,
    {
        let reconnect = self.reconnect_to::<Req, _>(target);
        reconnect.wait_connected().await?;
        Ok(self.assemble(reconnect))
    }

    /// Resolves `addr` once and connects to the first of its addresses that
    /// answers; the stack then reconnects to that address only. Fails with
    /// the last attempt's error if none answers.
    pub async fn connect_first<Req>(
        self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> Result<Client<Outer<L::Service>>, Disconnected>
    where
        C: Encoder<Req, Error = <C as Decoder>::Error> + Decoder + Clone + Send + 'static,
        C::Item: RetryableResponse + Send + 'static,
        <C as Decoder>::Error: From<io::Error> + Into<BoxError>,
        Req: Idempotent + Clone + Send + 'static,
        L: Layer<Reconnect<Pipeline<Req, C::Item>>>,
        L::Service: Service<Req, Response = C::Item, Error = BoxError> + Clone,
    {
        let addrs = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| Disconnected::because(e.into()))?;
        let mut last_error = Disconnected::because("the address resolved to nothing".into());
        for addr in addrs {
            let reconnect = self.reconnect_to::<Req, _>(addr);
            match reconnect.wait_connected().await {
                Ok(()) => return Ok(self.assemble(reconnect)),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Starts a reconnecting connection to `target` with this builder's
    /// codec, pipeline and reconnect settings.
    fn reconnect_to<Req, T>(&self, target: T) -> Reconnect<Pipeline<Req, C::Item>>
    where
        C: Encoder<Req, Error = <C as Decoder>::Error> + Decoder + Clone + Send + 'static,
        C::Item: Send + 'static,
        <C as Decoder>::Error: From<io::Error> + Into<BoxError>,
        Req: Send + 'static,
        T: ToSocketAddrs + Clone + Send + 'static,
    {
        let connector = TcpConnector::<C, Req>::with_pipeline(self.codec.clone(), self.pipeline.clone());
        Reconnect::new(connector, target, self.reconnect.clone())
    }

    fn assemble<S>(self, reconnect: Reconnect<S>) -> Client<Outer<L::Service>>
    where
        L: Layer<Reconnect<S>>,
    {
        let reconnect_handle = reconnect.handle();
        let policy = RetryPolicy::new(self.retry);
        let retry_handle = policy.handle();
        let service = Timeout::new(Retry::new(policy, self.layer.layer(reconnect)), self.timeout);
        Client {
            service,
            reconnect: reconnect_handle,
            retry: retry_handle,
        }
    }
}

/// A client stack built by [`ClientBuilder`]: a `Service` (delegating to the
/// stack `S`) that also reads the reconnect and retry counters.
///
/// Cheap to clone; clones share the connection, the reconnect task, the retry
/// budget and the counters.
#[derive(Clone)]
pub struct Client<S> {
    service: S,
    reconnect: ReconnectHandle,
    retry: RetryHandle,
}

impl<S> Client<S> {
    /// What the reconnect layer has done.
    pub fn reconnect_stats(&self) -> ReconnectStats {
        self.reconnect.stats()
    }

    /// What the retry layer has done.
    pub fn retry_stats(&self) -> RetryStats {
        self.retry.stats()
    }

    /// A handle on the reconnect layer's counters and state.
    pub fn reconnect_handle(&self) -> &ReconnectHandle {
        &self.reconnect
    }

    /// A handle on the retry layer's counters.
    pub fn retry_handle(&self) -> &RetryHandle {
        &self.retry
    }

    /// The stack.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// The stack, without the handles.
    pub fn into_inner(self) -> S {
        self.service
    }
}

impl<S> fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("reconnect", &self.reconnect.stats())
            .field("retry", &self.retry.stats())
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Client<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> S::Future {
        self.service.call(request)
    }
}
