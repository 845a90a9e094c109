//! The KV wire format: tokio-util codecs for both ends of a connection.
//!
//! * [`ClientCodec`] encodes [`Request`]s and decodes [`Response`]s.
//! * [`ServerCodec`] decodes [`Incoming`] frames and encodes [`Response`]s.
//!
//! Both follow `PROTOCOL.md` to the byte. Lengths come from a fixed header
//! and are checked against [`Limits`] *before* anything is buffered for the
//! frame: a header that claims 4 GiB is an error, never an allocation. A
//! frame is only parsed once all of it is in the buffer, and its key and value
//! are zero-copy slices of the read buffer.

use super::{Command, Incoming, Request, Response, Status};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// Size of a request header: command (1), `key_len` (4), `value_len` (4).
pub const REQUEST_HEADER_LEN: usize = 9;
/// Size of a response header: status (1), `value_len` (4).
pub const RESPONSE_HEADER_LEN: usize = 5;
/// Size of the TTL prefix in a `PUT_TTL` value.
pub const TTL_LEN: usize = 8;

/// Largest key and value a codec accepts from its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest `key_len` accepted (default 64 KiB).
    pub max_key_bytes: u32,
    /// Largest value accepted (default 16 MiB). A `PUT_TTL` frame may carry
    /// 8 more bytes, for its TTL.
    pub max_value_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 64 * 1024,
            max_value_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Errors of the KV codecs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A length in a header is over the limit; the connection's framing can
    /// no longer be trusted.
    #[error("{field} length {len} is over the limit of {limit} bytes")]
    TooLarge {
        /// Which length: `"key"` or `"value"`.
        field: &'static str,
        /// The length the header claimed.
        len: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// A response carried a status byte the protocol does not define.
    #[error("unknown response status byte 0x{0:02x}")]
    UnknownStatus(u8),
    /// The server answered with a TLS record: it expects TLS on this port,
    /// and the client connected in plain text.
    #[error("the server answered with TLS (record type 0x{0:02x}): it requires TLS on this port; connect with TLS")]
    TlsAnswer(u8),
    /// The server codec already rejected an over-limit frame; it decodes
    /// nothing more from this connection.
    #[error("connection framing lost after an over-limit frame")]
    FramingLost,
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// The client's codec: encodes [`Request`]s, decodes [`Response`]s.
#[derive(Debug, Clone, Default)]
pub struct ClientCodec {
    limits: Limits,
}

impl ClientCodec {
    /// A codec with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that refuses responses whose value is over `limits.max_value_bytes`.
    pub fn with_limits(limits: Limits) -> Self {
        ClientCodec { limits }
    }
}

fn encode_len(field: &'static str, len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| CodecError::TooLarge {
        field,
        len: len as u64,
        limit: u64::from(u32::MAX),
    })
}

impl Encoder<Request> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&request, dst)
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, request: &Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        let (key, ttl, value): (&[u8], Option<u64>, &[u8]) = match request {
            Request::Ping { payload } => (&[], None, payload),
            Request::Get { key } | Request::Delete { key } => (key, None, &[]),
            Request::Put { key, value } => (key, None, value),
            Request::PutTtl { key, ttl_ms, value } => (key, Some(*ttl_ms), value),
            Request::Health => (&[], None, &[]),
            Request::Auth { token } => (&[], None, token),
        };
        let ttl_len = if ttl.is_some() { TTL_LEN } else { 0 };
        let key_len = encode_len("key", key.len())?;
        let value_len = encode_len("value", value.len() + ttl_len)?;

        dst.reserve(REQUEST_HEADER_LEN + key.len() + ttl_len + value.len());
        dst.put_u8(request.command() as u8);
        dst.put_u32_le(key_len);
        dst.put_u32_le(value_len);
        dst.put_slice(key);
        if let Some(ttl) = ttl {
            dst.put_u64_le(ttl);
        }
        dst.put_slice(value);
        Ok(())
    }
}

impl Decoder for ClientCodec {
    type Item = Response;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        let Some(header) = src.get(..RESPONSE_HEADER_LEN) else {
            return Ok(None);
        };
        let Some(status) = Status::from_byte(header[0]) else {
            return Err(unknown_status(header));
        };
        let value_len = read_u32(&header[1..5]);
        if value_len > self.limits.max_value_bytes {
            return Err(CodecError::TooLarge {
                field: "value",
                len: u64::from(value_len),
                limit: u64::from(self.limits.max_value_bytes),
            });
        }
        let frame_len = RESPONSE_HEADER_LEN + value_len as usize;
        if src.len() < frame_len {
            return Ok(None);
        }
        src.advance(RESPONSE_HEADER_LEN);
        let value = src.split_to(value_len as usize).freeze();
        Ok(Some(Response { status, value }))
    }
}

/// The server's codec: decodes [`Incoming`] frames, encodes [`Response`]s.
///
/// A well-framed but invalid request decodes to [`Incoming::Rejected`] and the
/// connection goes on. An over-limit header decodes to a `TOO_LARGE`
/// rejection, after which the codec returns [`CodecError::FramingLost`]: the
/// server answers what it has and closes that connection.
#[derive(Debug, Clone, Default)]
pub struct ServerCodec {
    limits: Limits,
    framing_lost: bool,
}

impl ServerCodec {
    /// A codec with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that enforces `limits` on every request header.
    pub fn with_limits(limits: Limits) -> Self {
        ServerCodec {
            limits,
            framing_lost: false,
        }
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The length of the request frame that `buffered` starts with, once
    /// its 9-byte header is there: what
    /// [`Server::with_frame_size`](crate::server::Server::with_frame_size)
    /// asks, so that the server reserves a large frame's bytes whole.
    ///
    /// ```
    /// use wirestack::kv::ServerCodec;
    ///
    /// let header = [0x03, 3, 0, 0, 0, 0, 0, 1, 0]; // PUT, 3-byte key, 64 KiB value
    /// assert_eq!(ServerCodec::frame_len(&header[..5]), None);
    /// assert_eq!(ServerCodec::frame_len(&header), Some(9 + 3 + 65_536));
    /// ```
    pub fn frame_len(buffered: &[u8]) -> Option<usize> {
        let header = buffered.get(..REQUEST_HEADER_LEN)?;
        let key_len = read_u32(&header[1..5]) as usize;
        let value_len = read_u32(&header[5..9]) as usize;
        Some(REQUEST_HEADER_LEN + key_len + value_len)
    }

    fn check_lengths(&self, command: Option<Command>, key_len: u32, value_len: u32) -> Option<Response> {
        let ttl_allowance = if command == Some(Command::PutTtl) {
            TTL_LEN as u64
        } else {
            0
        };
        let value_limit = u64::from(self.limits.max_value_bytes) + ttl_allowance;
        if key_len > self.limits.max_key_bytes {
            return Some(Response::error(
                Status::TooLarge,
                format!(
                    "key_len {key_len} is over the limit of {} bytes",
                    self.limits.max_key_bytes
                ),
            ));
        }
        if u64::from(value_len) > value_limit {
            return Some(Response::error(
                Status::TooLarge,
                format!("value_len {value_len} is over the limit of {value_limit} bytes"),
            ));
        }
        None
    }
}

/// The error for a response that starts with an unknown status byte: a
/// TLS alert or handshake record (type `0x15`/`0x16`, version `0x03 xx`)
/// says that the server speaks TLS; anything else is just unknown.
fn unknown_status(header: &[u8]) -> CodecError {
    match header {
        [record @ (0x15 | 0x16), 0x03, 0x00..=0x04, ..] => CodecError::TlsAnswer(*record),
        _ => CodecError::UnknownStatus(header[0]),
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(raw)
}

fn bad_request(message: impl Into<String>) -> Incoming {
    Incoming::Rejected(Response::error(Status::BadRequest, message))
}

/// Builds a request from a whole frame's key and value, or the rejection it gets.
fn parse_request(command_byte: u8, key: Bytes, mut value: Bytes) -> Incoming {
    let Some(command) = Command::from_byte(command_byte) else {
        return bad_request(format!("unknown command byte 0x{command_byte:02x}"));
    };
    let request = match command {
        Command::Ping if !key.is_empty() => return bad_request("PING takes no key"),
        Command::Auth if !key.is_empty() => return bad_request("AUTH takes no key"),
        Command::Auth => Request::Auth { token: value },
        Command::Ping => Request::Ping { payload: value },
        Command::Health if !key.is_empty() || !value.is_empty() => {
            return bad_request("HEALTH takes no key and no value")
        }
        Command::Health => Request::Health,
        Command::Get | Command::Delete if !value.is_empty() => {
            return bad_request(format!("{command:?} takes no value"))
        }
        Command::Get => Request::Get { key },
        Command::Delete => Request::Delete { key },
        Command::Put => Request::Put { key, value },
        Command::PutTtl => {
            if value.len() < TTL_LEN {
                return bad_request("PUT_TTL value is shorter than its 8-byte TTL");
            }
            let ttl_ms = value.get_u64_le();
            if ttl_ms == 0 {
                return bad_request("PUT_TTL with a TTL of 0 ms");
            }
            Request::PutTtl { key, ttl_ms, value }
        }
    };
    Incoming::Request(request)
}

impl Decoder for ServerCodec {
    type Item = Incoming;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        if self.framing_lost {
            return Err(CodecError::FramingLost);
        }
        let Some(header) = src.get(..REQUEST_HEADER_LEN) else {
            return Ok(None);
        };
        let command_byte = header[0];
        let key_len = read_u32(&header[1..5]);
        let value_len = read_u32(&header[5..9]);
        if let Some(too_large) = self.check_lengths(Command::from_byte(command_byte), key_len, value_len) {
            // Nothing after this header can be framed: answer, then stop.
            self.framing_lost = true;
            src.clear();
            return Ok(Some(Incoming::Rejected(too_large)));
        }
        let (key_len, value_len) = (key_len as usize, value_len as usize);
        if src.len() < REQUEST_HEADER_LEN + key_len + value_len {
            return Ok(None);
        }
        src.advance(REQUEST_HEADER_LEN);
        let key = src.split_to(key_len).freeze();
        let value = src.split_to(value_len).freeze();
        Ok(Some(parse_request(command_byte, key, value)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                // The peer closed mid-frame: drop the partial frame unapplied.
                src.clear();
                Ok(None)
            }
        }
    }
}

impl Encoder<Response> for ServerCodec {
    type Error = CodecError;

    fn encode(&mut self, response: Response, dst: &mut BytesMut) -> Result<(), CodecError> {
        let value_len = encode_len("value", response.value.len())?;
        dst.reserve(RESPONSE_HEADER_LEN + response.value.len());
        dst.put_u8(response.status as u8);
        dst.put_u32_le(value_len);
        dst.put_slice(&response.value);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
