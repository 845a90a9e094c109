//! The errors of the pipelining multiplexer.

use crate::failure::{has_io_error, Classify, Failure};
use crate::BoxError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a pipelined request failed.
///
/// Every variant but [`TimedOut`](Error::TimedOut) means the connection is
/// gone: the [`Pipeline`] that returned it is broken for good and reports so
/// from `poll_ready`, so that a reconnect layer above it can replace it. The
/// error is cheap to clone: all callers that were waiting on a dead
/// connection get the same one.
///
/// [`Pipeline`]: super::Pipeline
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// Reading from or writing to the transport failed (an I/O error, or a
    /// codec error such as a malformed or over-limit response). The source is
    /// the transport's own error; downcast it to learn more.
    Transport(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The peer closed the connection while requests were outstanding, or
    /// before they could be sent.
    Closed,
    /// The peer sent a response when no request was waiting for one: the
    /// two ends no longer agree on the order of messages.
    UnexpectedResponse,
    /// The connection failed, for the reason inside, before this request was
    /// written: the peer never saw it, so it is safe to send again whatever
    /// it does.
    NotSent(Arc<Error>),
    /// The request's deadline (set by a
    /// [`Deadline`](crate::deadline::Deadline) layer above) passed while it
    /// was queued or waiting for its answer. The connection is fine: a
    /// request not yet written is never written, and the answer to one that
    /// was is read in its place and dropped.
    TimedOut,
    /// The peer said it reads no more requests from this connection (a
    /// GOAWAY): requests written before it are still answered; a request
    /// not written gets this inside [`NotSent`](Error::NotSent), and the
    /// service answers `poll_ready` with it, so that a reconnect layer
    /// opens another connection.
    GoingAway,
    /// Keepalive: nothing came from the peer within the timeout after a
    /// ping (see [`crate::keepalive`]). The peer stopped answering — its
    /// process stopped, its host gone, a partition — and the connection is
    /// failed like a reset.
    Unresponsive(Duration),
}

impl Error {
    pub(crate) fn transport(error: impl Into<BoxError>) -> Self {
        Error::Transport(Arc::from(error.into()))
    }

    /// The error for a request that was still queued when the connection
    /// failed with `self`.
    pub(crate) fn not_sent(&self) -> Self {
        match self {
            Error::NotSent(_) => self.clone(),
            cause => Error::NotSent(Arc::new(cause.clone())),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(error) => write!(f, "connection failed: {error}"),
            Error::Closed => f.write_str("connection closed by the peer"),
            Error::UnexpectedResponse => f.write_str("peer sent a response with no request outstanding"),
            Error::NotSent(cause) => write!(f, "request not sent: {cause}"),
            Error::TimedOut => f.write_str("request deadline passed"),
            Error::GoingAway => f.write_str("the peer reads no more requests on this connection (GOAWAY)"),
            Error::Unresponsive(after) => {
                write!(f, "the peer did not answer a keepalive ping within {after:?}")
            }
        }
    }
}

impl Classify for Error {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            Error::NotSent(_) => Failure::NotSent,
            Error::Closed => Failure::Connection,
            Error::UnexpectedResponse => Failure::Protocol,
            Error::TimedOut => Failure::TimedOut,
            // Said of a request only inside `NotSent`; alone, it is the
            // connection refusing new work.
            Error::GoingAway => Failure::NotSent,
            Error::Unresponsive(_) => Failure::Connection,
            // An I/O error among its sources: the connection failed; else
            // the codec rejected the peer's bytes.
            Error::Transport(source) if has_io_error(&**source) => Failure::Connection,
            Error::Transport(_) => Failure::Protocol,
        })
    }
}

// Written by hand so that `source` is the transport's error itself: the
// `Error` impl of `Arc` would skip it and go straight to *its* source, and a
// caller could no longer downcast to the codec's error.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(error) => Some(&**error),
            Error::NotSent(cause) => Some(&**cause),
            Error::Closed
            | Error::UnexpectedResponse
            | Error::TimedOut
            | Error::GoingAway
            | Error::Unresponsive(_) => None,
        }
    }
}
