//! The errors of the pipelining multiplexer.

use crate::transport::BoxError;
use std::sync::Arc;

/// Why a pipelined request failed.
///
/// Every variant means the connection is gone: the [`Pipeline`] that returned
/// it is broken for good and reports so from `poll_ready`, so that a
/// reconnect layer above it can replace it. The error is cheap to clone: all
/// callers that were waiting on a dead connection get the same one.
///
/// [`Pipeline`]: super::Pipeline
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Reading from or writing to the transport failed (an I/O error, or a
    /// codec error such as a malformed or over-limit response). The source is
    /// the transport's own error; downcast it to learn more.
    #[error("connection failed: {0}")]
    Transport(#[source] Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The peer closed the connection while requests were outstanding, or
    /// before they could be sent.
    #[error("connection closed by the peer")]
    Closed,
    /// The peer sent a response when no request was waiting for one: the
    /// two ends no longer agree on the order of messages.
    #[error("peer sent a response with no request outstanding")]
    UnexpectedResponse,
}

impl Error {
    pub(crate) fn transport(error: impl Into<BoxError>) -> Self {
        Error::Transport(Arc::from(error.into()))
    }
}
