//! [`TlsConnector`]: a new TLS connection over TCP, framed by a codec, per call.

use crate::transport::Target;
use futures::future::BoxFuture;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_util::codec::Framed;
use tower::Service;

/// How long a TLS handshake may take by default.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes a transport: a new TCP connection (Nagle off) to the address it is
/// called with, a TLS handshake that checks the server's certificate against
/// the configuration's roots and a server name, then a clone of a codec
/// around the TLS stream.
///
/// It is the TLS twin of [`TcpConnector`](crate::transport::TcpConnector):
/// a `Service<Target>` for any target tokio can resolve, so
/// [`MakePipeline`](crate::pipeline::MakePipeline), the
/// [reconnect](crate::reconnect) layer and
/// [`ClientBuilder::tls`](crate::builder::ClientBuilder::tls) use it
/// unchanged, over any codec. A failed handshake (an untrusted, expired or
/// wrongly named certificate; a peer that does not speak TLS) is an
/// `io::Error` of kind `InvalidData` whose inner error is rustls'; a
/// handshake that takes longer than the [handshake
/// timeout](Self::handshake_timeout) fails with kind `TimedOut`.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use tokio_util::codec::LinesCodec;
/// use tower::ServiceExt;
/// use wirestack::tls::{self, TlsConnector};
///
/// let config = tls::client_config(tls::read_roots("ca.pem")?, None)?;
/// let connector = TlsConnector::new(config, tls::server_name("db.example")?, LinesCodec::new());
/// let transport = connector.oneshot("192.0.2.7:7878").await?;
/// # let _ = transport;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsConnector<C> {
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
    codec: C,
}

impl<C> TlsConnector<C> {
    /// Connects with `config`, checking the server's certificate against
    /// `server_name`, and frames each connection with a clone of `codec`.
    pub fn new(config: Arc<ClientConfig>, server_name: ServerName<'static>, codec: C) -> Self {
        TlsConnector {
            tls: tokio_rustls::TlsConnector::from(config),
            server_name,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            codec,
        }
    }

    /// Bounds each TLS handshake (default 10 s), so that a peer that
    /// accepts and says nothing cannot hang a connect.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The codec each connection is framed with.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The name the server's certificate is checked against.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

impl<C> fmt::Debug for TlsConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl<C: Clone> TlsConnector<C> {
    /// TCP to whatever `connecting` connects to, then the TLS handshake.
    fn handshake(
        &self,
        connecting: impl Future<Output = io::Result<TcpStream>> + Send + 'static,
    ) -> impl Future<Output = io::Result<Framed<TlsStream<TcpStream>, C>>> + Send + 'static
    where
        C: Send + 'static,
    {
        let (tls, name, limit, codec) = (
            self.tls.clone(),
            self.server_name.clone(),
            self.handshake_timeout,
            self.codec.clone(),
        );
        async move {
            let stream = connecting.await?;
            stream.set_nodelay(true)?;
            let stream = tokio::time::timeout(limit, tls.connect(name, stream))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
                .map_err(super::explain::explained)?;
            Ok(Framed::new(stream, codec))
        }
    }
}

impl<C, T> Service<T> for TlsConnector<C>
where
    C: Clone + Send + 'static,
    T: ToSocketAddrs + Send + 'static,
{
    type Response = Framed<TlsStream<TcpStream>, C>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Framed<TlsStream<TcpStream>, C>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: T) -> Self::Future {
        Box::pin(self.handshake(TcpStream::connect(target)))
    }
}

impl<C> Service<Target> for TlsConnector<C>
where
    C: Clone + Send + 'static,
{
    type Response = Framed<TlsStream<TcpStream>, C>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Framed<TlsStream<TcpStream>, C>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let resolving = target.resolve();
        Box::pin(self.handshake(async move { TcpStream::connect(&resolving.await?[..]).await }))
    }
}
