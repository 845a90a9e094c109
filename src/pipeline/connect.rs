//! [`MakePipeline`]: a connector of pipelines, from a connector of
//! transports — and [`MakeMultiplexer`], the one connector both
//! multiplexers share, over any builder that can [`Spawn`] one.

use super::client::{Builder, Pipeline};
use super::keepalive::{NoPing, Pinger};
use crate::transport::Transport;
use crate::BoxError;
use futures::ready;
use pin_project::pin_project;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::Service;

/// A multiplexer's builder: starts one on a transport `T` that sends
/// `Req`s. Implemented by [`pipeline::Builder`](Builder) and
/// [`multiplex::Builder`](crate::multiplex::Builder), so that one connector
/// ([`MakeMultiplexer`]) and whatever composes it serve either.
pub trait Spawn<T, Req>: Clone {
    /// The service it makes.
    type Service;

    /// Makes the service and spawns the task that drives `transport` on the
    /// current tokio runtime.
    fn spawn_on(self, transport: T) -> Self::Service;
}

impl<T, Req, P> Spawn<T, Req> for Builder<P>
where
    T: Transport<Req> + Send + 'static,
    <T as Transport<Req>>::Error: Into<BoxError>,
    T::Response: Send + 'static,
    Req: Send + 'static,
    P: Pinger<Req>,
{
    type Service = Pipeline<Req, T::Response>;

    fn spawn_on(self, transport: T) -> Self::Service {
        self.spawn(transport)
    }
}

/// Puts a [`Pipeline`] on every transport a connector makes.
///
/// `M` is any `Service<Target>` that makes a transport — a
/// [`TcpConnector`](crate::transport::TcpConnector), a TLS one (feature
/// `tls`), an [`OnConnect`](crate::transport::OnConnect) that runs a
/// handshake first, or a connector of your own — and `MakePipeline` is then
/// a `Service<Target>` that makes pipelines: the connector the
/// [reconnect](crate::reconnect) layer needs. `Req` is the request type the
/// pipelines send (a codec may encode several); `P` the builder's ping.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio_util::codec::LinesCodec;
/// use tower::ServiceExt;
/// use wirestack::pipeline::{self, MakePipeline};
/// use wirestack::transport::TcpConnector;
///
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// let connector = MakePipeline::<_, String>::new(
///     TcpConnector::new(LinesCodec::new()),
///     pipeline::Builder::new().max_in_flight(64),
/// );
/// let pipeline = connector.oneshot(addr).await?;
/// assert!(pipeline.broken().is_none());
/// # Ok(())
/// # }
/// ```
pub type MakePipeline<M, Req, P = NoPing> = MakeMultiplexer<M, Builder<P>, Req>;

/// The future of [`MakePipeline`]: connects, then spawns the pipeline's
/// connection task.
pub type MakeFuture<F, Req, P = NoPing> = SpawnFuture<F, Builder<P>, Req>;

/// Puts a multiplexer, built by `B`, on every transport the connector `M`
/// makes: [`MakePipeline`] and
/// [`MakeMultiplex`](crate::multiplex::MakeMultiplex) are this with each
/// multiplexer's builder. It is a `Service<Target>` that makes connected
/// services — the connector the [reconnect](crate::reconnect) layer needs.
pub struct MakeMultiplexer<M, B, Req> {
    connector: M,
    builder: B,
    _request: PhantomData<fn(Req)>,
}

impl<M, B, Req> MakeMultiplexer<M, B, Req> {
    /// Multiplexers built by `builder` over the transports `connector` makes.
    pub fn new(connector: M, builder: B) -> Self {
        MakeMultiplexer {
            connector,
            builder,
            _request: PhantomData,
        }
    }

    /// The transport connector.
    pub fn get_ref(&self) -> &M {
        &self.connector
    }
}

impl<M: Clone, B: Clone, Req> Clone for MakeMultiplexer<M, B, Req> {
    fn clone(&self) -> Self {
        Self::new(self.connector.clone(), self.builder.clone())
    }
}

impl<M: fmt::Debug, B: fmt::Debug, Req> fmt::Debug for MakeMultiplexer<M, B, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeMultiplexer")
            .field("connector", &self.connector)
            .field("builder", &self.builder)
            .finish()
    }
}

impl<M, B, Target, Req> Service<Target> for MakeMultiplexer<M, B, Req>
where
    M: Service<Target>,
    B: Spawn<M::Response, Req>,
{
    type Response = B::Service;
    type Error = M::Error;
    type Future = SpawnFuture<M::Future, B, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        self.connector.poll_ready(cx)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        SpawnFuture {
            connecting: self.connector.call(target),
            builder: Some(self.builder.clone()),
            _request: PhantomData,
        }
    }
}

/// The future of [`MakeMultiplexer`]: connects, then spawns the
/// multiplexer's connection task.
#[pin_project]
pub struct SpawnFuture<F, B, Req> {
    #[pin]
    connecting: F,
    builder: Option<B>,
    _request: PhantomData<fn(Req)>,
}

impl<F, B, Req> fmt::Debug for SpawnFuture<F, B, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnFuture").finish_non_exhaustive()
    }
}

impl<F, T, E, B, Req> Future for SpawnFuture<F, B, Req>
where
    F: Future<Output = Result<T, E>>,
    B: Spawn<T, Req>,
{
    type Output = Result<B::Service, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let transport = ready!(this.connecting.poll(cx))?;
        let builder = this.builder.take().expect("SpawnFuture polled after completion");
        Poll::Ready(Ok(builder.spawn_on(transport)))
    }
}
