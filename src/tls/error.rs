//! [`TlsError`]: why a TLS configuration could not be made.

use std::path::PathBuf;

/// Why a TLS configuration could not be made: a file that cannot be read or
/// holds nothing usable, or settings rustls refuses. Handshake failures are
/// not here: they are I/O errors of the connection (kind `InvalidData`,
/// with the `rustls::Error` inside).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not valid PEM, or holds an item of the wrong kind.
    #[error("{}: {message}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A certificate file holds no certificate.
    #[error("{}: no certificate in the file", .0.display())]
    NoCertificate(PathBuf),
    /// A key file holds no private key.
    #[error("{}: no private key in the file", .0.display())]
    NoPrivateKey(PathBuf),
    /// The platform's trust store holds no usable certificate.
    #[error("no usable root certificate on this platform ({0}); give a CA bundle")]
    PlatformRoots(String),
    /// A server name that is neither a DNS name nor an IP address.
    #[error("{0:?} is not a valid server name (a DNS name or an IP address)")]
    InvalidServerName(String),
    /// The client-certificate verifier could not be built from the CA bundle.
    #[error("cannot verify client certificates: {0}")]
    ClientVerifier(String),
    /// rustls refused the configuration (a key that does not match its
    /// certificate, say).
    #[error("{0}")]
    Rustls(#[source] tokio_rustls::rustls::Error),
}
