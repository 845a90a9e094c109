//! [`TlsAcceptor`]: the server's TLS handshake, as an [`Accept`].

use crate::server::Accept;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// Serves every connection over TLS: give it to
/// [`Server::with_acceptor`](crate::server::Server::with_acceptor).
///
/// The handshake runs on the connection's own task and must finish within
/// the server's [`read_timeout`](crate::server::ServeConfig::read_timeout);
/// a peer that sends something else than TLS, presents no acceptable client
/// certificate (when the configuration asks for one) or stalls is closed.
///
/// ```no_run
/// # fn example() -> Result<(), wirestack::tls::TlsError> {
/// use wirestack::server::Server;
/// use wirestack::tls::{self, TlsAcceptor};
///
/// let config = tls::server_config_from_pem("server.pem", "server.key", None)?;
/// let server = Server::new(tokio_util::codec::LinesCodec::new()).with_acceptor(TlsAcceptor::new(config));
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TlsAcceptor {
    tls: tokio_rustls::TlsAcceptor,
}

impl TlsAcceptor {
    /// Accepts TLS connections with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsAcceptor {
            tls: tokio_rustls::TlsAcceptor::from(config),
        }
    }
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor").finish_non_exhaustive()
    }
}

impl Accept for TlsAcceptor {
    type Io = TlsStream<TcpStream>;

    fn accept(&self, stream: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send {
        self.tls.accept(stream)
    }
}
