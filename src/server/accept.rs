//! The acceptor seam: what the server does with an accepted TCP stream
//! before it frames it — nothing ([`PlainTcp`]), or a handshake such as TLS.
//!
//! [`Server::serve`](super::Server::serve) accepts TCP connections; an
//! [`Accept`] turns each into the I/O object the codec is run over. The
//! server runs it on the connection's own task, bounded by
//! [`ServeConfig::handshake_timeout`](super::ServeConfig::handshake_timeout)
//! and [`ServeConfig::read_timeout`](super::ServeConfig::read_timeout): a peer
//! that stalls mid-handshake is closed exactly like one that stalls
//! mid-frame, and never holds up the accept loop. A failed handshake closes
//! that connection only (logged at debug level).
//!
//! ```
//! use std::future::Future;
//! use tokio::net::TcpStream;
//! use wirestack::server::Accept;
//!
//! /// An acceptor that turns Nagle's algorithm back on, for illustration.
//! #[derive(Clone)]
//! struct Nagle;
//!
//! impl Accept for Nagle {
//!     type Io = TcpStream;
//!     fn accept(&self, stream: TcpStream) -> impl Future<Output = std::io::Result<TcpStream>> + Send {
//!         async move {
//!             stream.set_nodelay(false)?;
//!             Ok(stream)
//!         }
//!     }
//! }
//! # let _ = wirestack::server::Server::new(tokio_util::codec::LinesCodec::new()).with_acceptor(Nagle);
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Turns an accepted TCP stream into the I/O a connection is served over.
///
/// Implemented by [`PlainTcp`] (the default: the stream itself) and, with
/// the `tls` feature, by `tls::TlsAcceptor`. The server clones the acceptor
/// into each connection's task.
pub trait Accept: Clone + Send + Sync + 'static {
    /// The I/O the codec runs over.
    type Io: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// Runs the handshake, if any, on a freshly accepted `stream` (Nagle's
    /// algorithm already off). An error closes that connection.
    fn accept(&self, stream: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// The default [`Accept`]: serve the TCP stream as it is, in plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Accept for PlainTcp {
    type Io = TcpStream;

    fn accept(&self, stream: TcpStream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        std::future::ready(Ok(stream))
    }
}

/// Runs the acceptor's handshake on `stream` within `timeout`; `None` (the
/// connection is dropped) if it failed, timed out or the server is
/// shutting down.
pub(super) async fn handshake<A: Accept>(
    acceptor: &A,
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Option<Duration>,
    stop: &CancellationToken,
) -> Option<A::Io> {
    let accepting = acceptor.accept(stream);
    let bounded = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, accepting)
                .await
                .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))),
            None => accepting.await,
        }
    };
    tokio::select! {
        accepted = bounded => match accepted {
            Ok(io) => Some(io),
            Err(error) => {
                tracing::debug!(%error, %peer, "handshake failed; closing the connection");
                None
            }
        },
        () = stop.cancelled() => None,
    }
}
