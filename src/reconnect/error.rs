//! Errors of the reconnect middleware.
//!
//! [`Reconnect`](super::Reconnect) boxes errors, as tower middleware does: a
//! request that reached the connection fails with the connection's own error
//! (for a [`Pipeline`](crate::pipeline::Pipeline), a
//! [`pipeline::Error`](crate::pipeline::Error)); a request that could not be
//! sent at all fails with [`Disconnected`]. Downcast to tell them apart.

use crate::failure::{Classify, Failure};
use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A shared connect error: every caller that fails fast sees the same one.
pub(crate) type SharedError = Arc<dyn Error + Send + Sync + 'static>;

/// The request was **not sent**: there is no live connection.
///
/// Either the last connect attempt failed (the endpoint is down, refused the
/// connection or did not answer within the connect timeout) and calls fail
/// fast until a reconnect succeeds, or the reconnect task has stopped. Because
/// nothing reached the peer, a request that failed this way is safe to retry
/// whatever it does.
#[derive(Debug, Clone)]
pub struct Disconnected {
    cause: Option<SharedError>,
}

impl Disconnected {
    pub(crate) fn new(cause: Option<SharedError>) -> Self {
        Disconnected { cause }
    }

    pub(crate) fn because(cause: crate::BoxError) -> Self {
        Disconnected {
            cause: Some(SharedError::from(cause)),
        }
    }

    /// Why the last connect attempt failed, if one did.
    pub fn cause(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "not connected (last connect attempt: {cause})"),
            None => f.write_str("not connected (the reconnect task has stopped)"),
        }
    }
}

impl Error for Disconnected {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl Classify for Disconnected {
    /// Not sent; unless the last connect attempt was refused.
    fn failure(&self) -> Option<Failure> {
        Some(match self.source().map(Failure::of) {
            Some(Failure::Rejected) => Failure::Rejected,
            _ => Failure::NotSent,
        })
    }
}

/// A connect attempt did not finish within the connect timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectTimedOut(pub(crate) ());

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connect attempt timed out")
    }
}

impl Error for ConnectTimedOut {}
