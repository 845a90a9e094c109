//! [`RespError`]: everything that can go wrong while encoding or decoding RESP2.

use std::io;

/// Everything that can go wrong while encoding or decoding RESP2.
///
/// Every decoding error means the peer sent bytes this codec will not accept;
/// the stream cannot be resynchronised, so the connection should be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// A bulk string or array header announced more than the codec's limit
    /// (`what` is `"bulk string"` or `"array"`). Raised as soon as the header
    /// is read, before any of the payload is buffered.
    #[error("{what} of length {len} exceeds the limit of {limit}")]
    TooLarge {
        /// Which kind of item was too large.
        what: &'static str,
        /// The length the peer announced.
        len: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Arrays were nested deeper than [`RespCodec::max_depth`](super::RespCodec::max_depth).
    #[error("arrays nested deeper than the limit of {limit}")]
    TooDeep {
        /// The configured nesting limit.
        limit: usize,
    },
    /// A line (simple string, error, integer or length header) grew past its
    /// limit without a terminating `\r\n`, or its content is longer than the
    /// limit. Simple strings and errors use [`RespCodec::max_line_len`](super::RespCodec::max_line_len);
    /// integer and length lines are limited to 20 bytes, the longest `i64`.
    #[error("line longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The limit that applied to this line.
        limit: usize,
    },
    /// The first byte of a value is not one of `+ - : $ *`.
    #[error("invalid RESP type byte 0x{0:02x}")]
    InvalidTypeByte(u8),
    /// An integer or length is not `-?[0-9]+` or does not fit in an `i64`.
    #[error("invalid integer")]
    InvalidInteger,
    /// A bulk string or array length is negative but not `-1`.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A bulk payload is not followed by `\r\n`, or a line contains a bare
    /// `\r` or `\n`.
    #[error("missing or malformed CRLF terminator")]
    MissingCrlf,
    /// Encoding: a [`Value::Simple`](super::Value::Simple) or [`Value::Error`](super::Value::Error) contains `\r` or
    /// `\n`, which would corrupt the frame. Nothing was written.
    #[error("simple string or error contains CR or LF")]
    InvalidSimpleString,
    /// An I/O error from the underlying transport (required by `tokio-util`'s
    /// `FramedRead`/`FramedWrite`), e.g. a stream that ended mid-frame.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}
