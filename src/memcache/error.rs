//! [`CodecError`]: everything that can go wrong while decoding memcached's
//! answers.

use std::io;

/// Everything that can go wrong while decoding what memcached sent.
///
/// Every variant but [`Io`](CodecError::Io) means the server sent bytes
/// this codec will not accept, or an answer that is not the one the
/// request in front of it expects: the stream cannot be trusted any more,
/// so the connection is dropped (the [failure rule](crate::failure) calls it
/// a protocol error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A line grew past the codec's limit without its `\r\n`.
    #[error("line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A `VA` line announced a value longer than the codec's limit. Raised
    /// as soon as the line is read, before any of the value is buffered.
    #[error("value of {len} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// The length the server announced.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// A line that starts with no code the meta protocol has.
    #[error("unknown reply {0:?}")]
    UnknownReply(String),
    /// A number (a value's length, a CAS token, client flags, an opaque
    /// token) that is not one.
    #[error("invalid {0}")]
    InvalidNumber(&'static str),
    /// A value's data block is not followed by `\r\n`, or a line ends
    /// with a bare `\n`.
    #[error("value or line not ended by CRLF")]
    MissingCrlf,
    /// The answer's opaque token is not the one its request was sent with
    /// (or an `MN` answered another command): answers and requests are out
    /// of step.
    #[error("answer out of step: expected opaque {expected:?}, got {got:?}")]
    OpaqueMismatch {
        /// The token of the request at the head of the line (`None`: `mn`).
        expected: Option<u32>,
        /// The token the answer carried.
        got: Option<u32>,
    },
    /// Encoding: a [`Request::GetMulti`](super::Request::GetMulti) with no
    /// key, or with a key that is not plain (the text protocol's `get` has
    /// no base64). Nothing was written.
    #[error("a multi-key get needs at least one key, and plain keys only")]
    InvalidMultiGet,
    /// An answer arrived when no request was waiting for one.
    #[error("answer to no request")]
    Unsolicited,
    /// An I/O error from the connection (required by `tokio-util`).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}
