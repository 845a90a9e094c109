//! TLS as a transport, on both sides, with rustls (no OpenSSL).
//!
//! TLS sits between TCP and the codec, so any protocol runs over it
//! unchanged:
//!
//! * client side, [`TlsConnector`] makes `Framed<TlsStream<TcpStream>, C>`
//!   transports as [`TcpConnector`](crate::transport::TcpConnector) makes
//!   plain ones; [`ClientBuilder::tls`](crate::builder::ClientBuilder::tls)
//!   puts it under the whole client stack, so every reconnect is a new
//!   handshake;
//! * server side, [`TlsAcceptor`] is an [`Accept`](crate::server::Accept)
//!   for [`Server::with_acceptor`](crate::server::Server::with_acceptor):
//!   each accepted stream is handshaken on its connection's task, within the
//!   server's read timeout.
//!
//! The configurations are plain rustls ones ([`rustls`] is re-exported so
//! that its version matches); the functions here make the usual ones from
//! PEM files. The client checks the server's certificate against a CA
//! bundle ([`read_roots`]) or the platform's trust store
//! ([`platform_roots`]) and a server name; the server can require client
//! certificates (mutual TLS). TLS 1.2 and 1.3, with rustls' `ring` provider.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::codec::LinesCodec;
//! use tower::ServiceExt;
//! use wirestack::server::Server;
//! use wirestack::tls::{self, rustls, TlsAcceptor, TlsConnector};
//! # let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! # let chain = vec![certified.cert.der().clone()];
//! # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
//! # let mut roots = rustls::RootCertStore::empty();
//! # roots.add(certified.cert.der().clone())?;
//!
//! // `chain` and `key`: the server's certificate for "localhost";
//! // `roots`: what the client trusts.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let echo = tower::service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line) });
//! tokio::spawn(
//!     Server::new(LinesCodec::new())
//!         .with_acceptor(TlsAcceptor::new(tls::server_config(chain, key, None)?))
//!         .serve(listener, tower::make::Shared::new(echo), std::future::pending()),
//! );
//!
//! let connector = TlsConnector::new(
//!     tls::client_config(roots, None)?,
//!     tls::server_name("localhost")?,
//!     LinesCodec::new(),
//! );
//! let mut transport = connector.oneshot(addr).await?;
//! transport.send("over TLS").await?;
//! assert_eq!(transport.next().await.transpose()?.as_deref(), Some("over TLS"));
//! # Ok(())
//! # }
//! ```

mod acceptor;
mod config;
mod connector;
mod error;
mod explain;

pub use acceptor::TlsAcceptor;
pub use config::{
    client_config, platform_roots, read_certificates, read_private_key, read_roots, server_config,
    server_config_from_pem, server_name,
};
pub use connector::TlsConnector;
pub use error::TlsError;
pub use explain::{explain, CertificateRejected};
/// The rustls version these types are built with, for its configuration
/// types (`ClientConfig`, `ServerConfig`, `RootCertStore`, `pki_types`).
pub use tokio_rustls::rustls;
