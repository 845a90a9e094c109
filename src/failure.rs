//! Sorting an error from a client stack into what a caller can act on.
//!
//! The layers box their errors (as tower's do), so a typed client has to look
//! through the chain of sources to tell a deadline from a lost connection.
//! [`Failure::of`] does that once for every protocol: each typed client
//! (`KvError`, `RedisError`) maps the four answers onto its own variants.

use crate::pipeline;
use crate::reconnect::error::Disconnected;
use std::error::Error;

/// What became of a request that failed somewhere below a typed client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request's deadline passed (tower's `Timeout`); it may or may not
    /// have been applied.
    TimedOut,
    /// The request was not sent: there was no connection, or it failed
    /// while the request was still queued.
    NotSent,
    /// The peer broke the protocol (bytes the codec rejects, or an answer
    /// nobody asked for); the connection was dropped.
    Protocol,
    /// The connection failed after the request was written; it
    /// may have been applied.
    Connection,
}

impl Failure {
    /// Sorts `error`. `codec_is_protocol` tells, for the codec's error type
    /// `E`, a protocol violation (`true`) from an I/O failure (`false`).
    pub fn of<E: Error + 'static>(
        error: &(dyn Error + Send + Sync + 'static),
        codec_is_protocol: impl Fn(&E) -> bool,
    ) -> Self {
        if error.is::<tower::timeout::error::Elapsed>() {
            return Failure::TimedOut;
        }
        let mut next: Option<&(dyn Error + 'static)> = Some(error);
        while let Some(cause) = next {
            if cause.is::<Disconnected>() {
                return Failure::NotSent;
            }
            match cause.downcast_ref() {
                Some(pipeline::Error::NotSent(_)) => return Failure::NotSent,
                Some(pipeline::Error::UnexpectedResponse) => return Failure::Protocol,
                _ => {}
            }
            if let Some(codec) = cause.downcast_ref::<E>() {
                return if codec_is_protocol(codec) {
                    Failure::Protocol
                } else {
                    Failure::Connection
                };
            }
            next = cause.source();
        }
        Failure::Connection
    }
}
