//! The on-connect hook: [`OnConnect`] runs a [`Handshake`] on every new
//! transport before anything else is written to it.

use crate::failure::{Classify, Failure};
use crate::BoxError;
use futures::future::BoxFuture;
use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};
use tower::Service;

/// Why an on-connect handshake failed.
///
/// The hook says which kind it is: a peer that *refused* (a wrong
/// credential) is [`Rejected`](Self::Rejected), and the
/// [failure rule](crate::failure) sorts it as
/// [`Failure::Rejected`](crate::failure::Failure::Rejected), which is never
/// retried; anything else (the connection broke, the peer answered nonsense)
/// is [`Failed`](Self::Failed), a connect attempt that failed like any
/// other.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer refused the handshake; retrying with the same settings
    /// cannot help.
    #[error("the peer refused the handshake: {0}")]
    Rejected(#[source] BoxError),
    /// The handshake could not be completed.
    #[error("the handshake failed: {0}")]
    Failed(#[source] BoxError),
}

impl Classify for HandshakeError {
    /// A refusal is final; a handshake that failed is what its cause says.
    fn failure(&self) -> Option<Failure> {
        match self {
            HandshakeError::Rejected(_) => Some(Failure::Rejected),
            HandshakeError::Failed(_) => None,
        }
    }
}

impl HandshakeError {
    /// The peer refused, for `reason`.
    pub fn rejected(reason: impl Into<BoxError>) -> Self {
        HandshakeError::Rejected(reason.into())
    }

    /// The handshake could not be completed, because of `error`.
    pub fn failed(error: impl Into<BoxError>) -> Self {
        HandshakeError::Failed(error.into())
    }
}

/// Something to do on every new transport before it carries requests: an
/// authentication exchange, a protocol version check, a `SELECT db`.
///
/// It gets the transport and gives it back when done. Implemented for
/// closures `Fn(T) -> impl Future<Output = Result<T, HandshakeError>>`; a
/// protocol whose handshake works on any transport implements it on a type
/// of its own.
pub trait Handshake<T>: Clone + Send + Sync + 'static {
    /// Runs the handshake on `transport`.
    fn handshake(&self, transport: T) -> impl Future<Output = Result<T, HandshakeError>> + Send;
}

impl<T, F, Fut> Handshake<T> for F
where
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T, HandshakeError>> + Send,
{
    fn handshake(&self, transport: T) -> impl Future<Output = Result<T, HandshakeError>> + Send {
        self(transport)
    }
}

/// A connector that runs a [`Handshake`] on each transport its inner
/// connector makes: connect, then handshake, then hand the transport over.
///
/// Put under a [`MakePipeline`](crate::pipeline::MakePipeline) (as
/// [`ClientBuilder::on_connect`](crate::builder::ClientBuilder::on_connect)
/// does), the handshake runs before the pipeline exists, so before any
/// request is written — and on every reconnect, since the reconnect layer
/// calls the connector again. Its error is a [`BoxError`]: the inner
/// connector's error, or a [`HandshakeError`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use futures::{SinkExt, StreamExt};
/// use tokio_util::codec::{Framed, LinesCodec};
/// use tower::ServiceExt;
/// use wirestack::transport::{HandshakeError, OnConnect, TcpConnector};
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// # let echo = tower::service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line) });
/// # tokio::spawn(wirestack::server::Server::new(LinesCodec::new()).serve(listener, tower::make::Shared::new(echo), std::future::pending()));
///
/// // A line-echo server listens on `addr`. Say hello on every connection.
/// let hello = |mut transport: Framed<tokio::net::TcpStream, LinesCodec>| async move {
///     transport.send("HELLO").await.map_err(HandshakeError::failed)?;
///     match transport.next().await {
///         Some(Ok(answer)) if answer == "HELLO" => Ok(transport),
///         other => Err(HandshakeError::rejected(format!("greeted with {other:?}"))),
///     }
/// };
/// let connector = OnConnect::new(TcpConnector::new(LinesCodec::new()), hello);
/// let _transport = connector.oneshot(addr).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OnConnect<M, H> {
    connector: M,
    handshake: H,
}

impl<M, H> OnConnect<M, H> {
    /// Runs `handshake` on every transport `connector` makes.
    pub fn new(connector: M, handshake: H) -> Self {
        OnConnect { connector, handshake }
    }

    /// The inner connector.
    pub fn get_ref(&self) -> &M {
        &self.connector
    }
}

impl<M: fmt::Debug, H> fmt::Debug for OnConnect<M, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnConnect")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl<M, H, Target> Service<Target> for OnConnect<M, H>
where
    M: Service<Target>,
    M::Error: Into<BoxError>,
    M::Future: Send + 'static,
    M::Response: Send + 'static,
    H: Handshake<M::Response>,
{
    type Response = M::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<M::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.connector.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let connecting = self.connector.call(target);
        let handshake = self.handshake.clone();
        Box::pin(async move {
            let transport = connecting.await.map_err(Into::into)?;
            Ok(handshake.handshake(transport).await?)
        })
    }
}
