//! [`ConnectionError`]: why a connection ended other than by the peer closing it.

use crate::BoxError;
use std::time::Duration;

/// Why a connection ended other than by the peer closing it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Writing a response failed.
    #[error("writing to the connection failed: {0}")]
    Write(#[source] BoxError),
    /// The service failed a request; the connection is closed after the
    /// responses before it are written.
    #[error("the service failed: {0}")]
    Service(#[source] BoxError),
    /// The peer read none of its responses for the write timeout; the
    /// connection was closed with responses unwritten.
    #[error("the peer read nothing for {0:?}")]
    WriteTimedOut(Duration),
}
