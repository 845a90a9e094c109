//! [`MakePipeline`]: a connector of pipelines, from a connector of transports.

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

/// Puts a [`Pipeline`] on every transport a connector makes.
///
/// `M` is any `Service<Target>` that makes a transport — a
/// [`TcpConnector`](crate::transport::TcpConnector), a TLS one (feature
/// `tls`), an [`OnConnect`](crate::transport::OnConnect) that runs a
/// handshake first, or a connector of your own — and `MakePipeline` is then
/// a `Service<Target>` that makes pipelines: the connector the
/// [reconnect](crate::reconnect) layer needs. `Req` is the request type the
/// pipelines send (a codec may encode several).
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
pub struct MakePipeline<M, Req, P = NoPing> {
    connector: M,
    builder: Builder<P>,
    _request: PhantomData<fn(Req)>,
}

impl<M, Req, P> MakePipeline<M, Req, P> {
    /// Pipelines built by `builder` over the transports `connector` makes.
    pub fn new(connector: M, builder: Builder<P>) -> Self {
        MakePipeline {
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

impl<M: Clone, Req, P: Clone> Clone for MakePipeline<M, Req, P> {
    fn clone(&self) -> Self {
        Self::new(self.connector.clone(), self.builder.clone())
    }
}

impl<M: fmt::Debug, Req, P: fmt::Debug> fmt::Debug for MakePipeline<M, Req, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakePipeline")
            .field("connector", &self.connector)
            .field("builder", &self.builder)
            .finish()
    }
}

impl<M, Target, Req, P> Service<Target> for MakePipeline<M, Req, P>
where
    P: Pinger<Req>,
    M: Service<Target>,
    M::Response: Transport<Req> + Send + 'static,
    <M::Response as Transport<Req>>::Error: Into<BoxError>,
    <M::Response as Transport<Req>>::Response: Send + 'static,
    Req: Send + 'static,
{
    type Response = Pipeline<Req, <M::Response as Transport<Req>>::Response>;
    type Error = M::Error;
    type Future = MakeFuture<M::Future, Req, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        self.connector.poll_ready(cx)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        MakeFuture {
            connecting: self.connector.call(target),
            builder: Some(self.builder.clone()),
            _request: PhantomData,
        }
    }
}

/// The future of [`MakePipeline`]: connects, then spawns the pipeline's
/// connection task.
#[pin_project]
pub struct MakeFuture<F, Req, P = NoPing> {
    #[pin]
    connecting: F,
    builder: Option<Builder<P>>,
    _request: PhantomData<fn(Req)>,
}

impl<F, Req, P> fmt::Debug for MakeFuture<F, Req, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MakeFuture").finish_non_exhaustive()
    }
}

impl<F, T, E, Req, P> Future for MakeFuture<F, Req, P>
where
    P: Pinger<Req>,
    F: Future<Output = Result<T, E>>,
    T: Transport<Req> + Send + 'static,
    <T as Transport<Req>>::Error: Into<BoxError>,
    T::Response: Send + 'static,
    Req: Send + 'static,
{
    type Output = Result<Pipeline<Req, T::Response>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let transport = ready!(this.connecting.poll(cx))?;
        let builder = this
            .builder
            .take()
            .expect("pipeline::MakeFuture polled after completion");
        Poll::Ready(Ok(builder.spawn(transport)))
    }
}
