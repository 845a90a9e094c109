//! [`TcpConnector`]: a new TCP connection framed by a codec, per call.

use futures::future::BoxFuture;
use std::io;
use std::task::{Context, Poll};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::Framed;
use tower::Service;

/// Makes a transport: a new TCP connection (Nagle off) to the address it is
/// called with, framed by a clone of a codec.
///
/// It is a `Service<T>` for any target `T` tokio can resolve, and for a
/// [`Target`](super::Target) (what a
/// [`ClientBuilder`](crate::builder::ClientBuilder) gives it), resolved
/// again on every call, so it is what the [reconnect](crate::reconnect)
/// layer calls — through [`MakePipeline`](crate::pipeline::MakePipeline),
/// which puts a [`Pipeline`](crate::pipeline::Pipeline) on each transport.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio_util::codec::LinesCodec;
/// use tower::ServiceExt;
/// use wirestack::transport::TcpConnector;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let transport = TcpConnector::new(LinesCodec::new())
///     .oneshot(listener.local_addr()?)
///     .await?;
/// assert!(transport.get_ref().nodelay()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TcpConnector<C> {
    codec: C,
}

impl<C> TcpConnector<C> {
    /// Frames each connection with a clone of `codec`.
    pub fn new(codec: C) -> Self {
        TcpConnector { codec }
    }

    /// The codec each connection is framed with.
    pub fn codec(&self) -> &C {
        &self.codec
    }
}

impl<C, T> Service<T> for TcpConnector<C>
where
    C: Clone + Send + 'static,
    T: ToSocketAddrs + Send + 'static,
{
    type Response = Framed<TcpStream, C>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Framed<TcpStream, C>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: T) -> Self::Future {
        Box::pin(super::connect(target, self.codec.clone()))
    }
}

impl<C> Service<super::Target> for TcpConnector<C>
where
    C: Clone + Send + 'static,
{
    type Response = Framed<TcpStream, C>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Framed<TcpStream, C>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: super::Target) -> Self::Future {
        let (codec, resolving) = (self.codec.clone(), target.resolve());
        Box::pin(async move { super::connect(&resolving.await?[..], codec).await })
    }
}
