//! [`MemcacheError`]: what a [`MemcacheClient`](super::MemcacheClient)
//! call fails with, and the error answers it is made from.

use crate::failure::Failure;
use crate::memcache::{KeyError, Reply, Status};
use crate::BoxError;

/// Everything a [`MemcacheClient`](crate::memcache::MemcacheClient) call can fail with.
///
/// A missing key is not an error: [`MemcacheClient::get`](crate::memcache::MemcacheClient::get) returns `None`.
/// The transport variants follow the framework's [failure rule](crate::failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemcacheError {
    /// The key cannot be sent (empty, or too long); nothing was sent.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),
    /// The value is larger than the server's item size limit (memcached's
    /// `-I`, 1 MiB by default): `SERVER_ERROR object too large for cache`.
    /// Nothing was stored, and the connection is still good.
    #[error("value too large for the server: {0}")]
    TooLarge(String),
    /// The server could not do it: another `SERVER_ERROR` (out of memory).
    #[error("server error: {0}")]
    Server(String),
    /// The server refused the request: `CLIENT_ERROR` (a value that is not
    /// a number for `incr`, ...) or `ERROR`.
    #[error("client error: {0}")]
    Client(String),
    /// The server answered with a status the command never returns.
    #[error("unexpected {status:?} answer to {command}")]
    UnexpectedReply {
        /// The command it answered.
        command: &'static str,
        /// The answer's status.
        status: Status,
    },
    /// The request did not complete within the client's deadline (retries
    /// included). It may or may not have been applied.
    #[error("request timed out")]
    TimedOut,
    /// There is no connection to the server (or it is ejected) and the
    /// request was **not sent**; the source says why.
    #[error("{0}")]
    Disconnected(#[source] BoxError),
    /// The server sent bytes that are not the meta protocol, or an answer
    /// out of step with the requests ([`CodecError`](crate::memcache::CodecError)).
    /// The connection was dropped and will be replaced; the request may have
    /// been applied.
    #[error("protocol error: {0}")]
    Protocol(#[source] BoxError),
    /// The connection failed after the request was written; the request
    /// may have been applied.
    #[error("connection failed: {0}")]
    Connection(#[source] BoxError),
    /// A layer of the stack that is not the framework's failed the request
    /// for a reason of its own; the source is its error.
    #[error("{0}")]
    Other(#[source] BoxError),
}

impl MemcacheError {
    /// Sorts an error from the service stack into the variant a caller acts on.
    pub fn from_service(error: BoxError) -> Self {
        match Failure::of(&*error) {
            Failure::TimedOut => MemcacheError::TimedOut,
            Failure::NotSent | Failure::Rejected => MemcacheError::Disconnected(error),
            Failure::Protocol => MemcacheError::Protocol(error),
            Failure::Connection => MemcacheError::Connection(error),
            _ => MemcacheError::Other(error),
        }
    }
}

/// Turns an error answer into the error a caller acts on.
pub(super) fn server_error(reply: Reply) -> Result<Reply, MemcacheError> {
    match reply.status {
        Status::ServerError(message) if message.contains("too large") => {
            Err(MemcacheError::TooLarge(message))
        }
        Status::ServerError(message) => Err(MemcacheError::Server(message)),
        Status::ClientError(message) => Err(MemcacheError::Client(message)),
        Status::Error => Err(MemcacheError::Client("ERROR".into())),
        _ => Ok(reply),
    }
}

pub(super) fn unexpected(command: &'static str, status: Status) -> MemcacheError {
    MemcacheError::UnexpectedReply { command, status }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_become_typed_errors() {
        let too_large = Reply::new(Status::ServerError("object too large for cache".into()));
        assert!(matches!(server_error(too_large), Err(MemcacheError::TooLarge(_))));
        let oom = Reply::new(Status::ServerError("out of memory storing object".into()));
        assert!(matches!(server_error(oom), Err(MemcacheError::Server(_))));
        assert!(matches!(
            server_error(Reply::new(Status::Error)),
            Err(MemcacheError::Client(_))
        ));
    }
}
