//! The KV wire format: tokio-util codecs for both ends of a connection.
//!
//! * [`ClientCodec`] encodes [`Request`]s (1.1) and the tagged
//!   multiplexer's [`Outgoing`] messages (2.0, or 1.1 against an old
//!   server), and decodes [`Response`]s.
//! * [`ServerCodec`] decodes [`Incoming`] frames and encodes [`Response`]s.
//!
//! Both follow `PROTOCOL.md` to the byte. Lengths come from a fixed header
//! and are checked against [`Limits`] *before* anything is buffered for the
//! frame: a header that claims 4 GiB is an error, never an allocation. A
//! frame is only parsed once all of it is in the buffer, and its key and value
//! are zero-copy slices of the read buffer.
//!
//! # Versions
//!
//! Both codecs start in 1.1. The server's switches to version 2 once it has
//! encoded the `OK` answer to a `HELLO` (1.1 answers in order, so it knows
//! which answer that is); the client's when the [`Hello`](super::Hello)
//! handshake has read that `OK` and calls [`ClientCodec::use_version_2`].
//! The client sends no version 2 frame before it has that answer, so the
//! server never reads one in 1.1.

use super::hello::Negotiated;
use super::{Command, Incoming, Request, Response, Sequenced, Status};
use crate::multiplex::{Outgoing, Tag};
use crate::session::{SessionId, Stamp, Stamped};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};
use tokio_util::codec::{Decoder, Encoder};

/// Size of a request header: command (1), `key_len` (4), `value_len` (4).
pub const REQUEST_HEADER_LEN: usize = 9;
/// Size of a response header: status (1), `value_len` (4).
pub const RESPONSE_HEADER_LEN: usize = 5;
/// Size of a version 2 request header: command (1), flags (1),
/// `request_id` (4), `key_len` (4), `value_len` (4).
pub const REQUEST_HEADER_LEN_V2: usize = 14;
/// Size of a version 2 response header: status (1), flags (1),
/// `request_id` (4), `value_len` (4).
pub const RESPONSE_HEADER_LEN_V2: usize = 10;
/// Size of a `HELLO` request's value: `version` (2), `session_id` (16).
const HELLO_LEN: usize = 2 + 16;

/// Size of the TTL prefix in a `PUT_TTL` value.
pub const TTL_LEN: usize = 8;
/// Version 2 request flag, bit 0: a 4-byte `budget_us` follows the header.
pub const FLAG_DEADLINE: u8 = 0x01;
/// Version 2 request flag, bit 1: 16 bytes (`seq`, `acked_below`) follow
/// the header (and the budget, if any).
pub const FLAG_SEQUENCED: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_DEADLINE | FLAG_SEQUENCED;
const BUDGET_LEN: usize = 4;
const SEQUENCED_LEN: usize = 16;

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
    /// A version 2 response carried flags (the protocol defines none).
    #[error("unknown response flags 0x{0:02x}")]
    UnknownFlags(u8),
    /// The server answered with a TLS record: it expects TLS on this port,
    /// and the client connected in plain text.
    #[error("the server answered with TLS (record type 0x{0:02x}): it requires TLS on this port; connect with TLS")]
    TlsAnswer(u8),
    /// A request without an id on a version 2 connection: there, requests
    /// are sent as [`Outgoing`] messages, which carry their tag.
    #[error("a version 2 connection takes requests with an id (multiplex::Outgoing), not bare requests")]
    NoId,
    /// A write stamped for a session, on a connection whose server has no
    /// sessions (1.1, or a `session_window` of 0) or whose `HELLO` named
    /// another session (it was renewed): it is not sent.
    #[error(
        "a session write on a connection without that session (HELLO named another, or the server has none)"
    )]
    NoSession,
    /// The server codec already rejected a frame whose framing it cannot
    /// trust (over-limit, unknown flags, id 0); it decodes nothing more
    /// from this connection.
    #[error("connection framing lost after an over-limit or malformed frame")]
    FramingLost,
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// The client's codec: encodes [`Request`]s and [`Outgoing`] messages,
/// decodes [`Response`]s.
///
/// * **1.1, in order** (the [`pipeline`](crate::pipeline)): `Encoder<Request>`
///   and the decoder, as they have always been; every response's
///   [`id`](Response::id) is 0.
/// * **Version 2** (the tagged multiplexer, after [`Hello`](super::Hello)
///   has called [`use_version_2`](Self::use_version_2)):
///   `Encoder<Outgoing<Request>>` writes 2.0 frames — the tag as the
///   request id; a budget as the DEADLINE flag with `budget_us` (in whole
///   microseconds, at most `u32::MAX`, and at least 1: a budget of zero, a
///   deadline already reached, is still sent, with the smallest budget, and
///   the server answers it `DEADLINE_EXCEEDED` without running it);
///   `Cancel(tag)` as a `CANCEL` of that id; `Ping(tag)` as a `PING` with
///   that id — and the decoder reads 2.0 responses, whose id it keeps.
/// * **1.1 under the multiplexer** (the server answered `HELLO` with
///   `BAD_REQUEST`: an old server): `Encoder<Outgoing<Request>>` writes 1.1
///   frames and remembers each tag in order; since 1.1 answers in order,
///   the decoder gives each answer the oldest remembered tag as its id. A
///   `Cancel` writes nothing (1.1 has no cancel), and budgets are not sent.
///
/// A clone starts in 1.1 with nothing remembered: the codec a connector
/// clones for each connection is never switched itself.
#[derive(Debug, Clone, Default)]
pub struct ClientCodec {
    limits: Limits,
    /// What `HELLO` negotiated, once this connection speaks version 2.
    negotiated: Option<Negotiated>,
    /// The session this connection's `HELLO` named (all zero: none).
    session: SessionId,
    /// On 1.1, the tags of the `Outgoing` requests written and not yet
    /// answered, oldest first.
    tags: VecDeque<Tag>,
}

impl ClientCodec {
    /// A codec with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that refuses responses whose value is over `limits.max_value_bytes`.
    pub fn with_limits(limits: Limits) -> Self {
        ClientCodec {
            limits,
            ..Self::default()
        }
    }

    /// Frames everything from now on in version 2: what the
    /// [`Hello`](super::Hello) handshake calls once the server's `OK` to
    /// `HELLO` is read (so with nothing in flight).
    pub fn use_version_2(&mut self, negotiated: Negotiated) {
        self.negotiated = Some(negotiated);
        self.tags.clear();
    }

    /// Records the session this connection's `HELLO` named: a stamped
    /// write of another session is not sent on it
    /// ([`CodecError::NoSession`]). [`Hello`](super::Hello) calls it.
    pub fn use_session(&mut self, session: SessionId) {
        self.session = session;
    }

    /// What `HELLO` negotiated on this connection; `None` while it speaks 1.1.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }
}

fn encode_len(field: &'static str, len: usize) -> Result<u32, CodecError> {
    u32::try_from(len).map_err(|_| CodecError::TooLarge {
        field,
        len: len as u64,
        limit: u64::from(u32::MAX),
    })
}

/// A request's key, TTL and value, as its frame carries them.
fn parts(request: &Request) -> (&[u8], Option<u64>, std::borrow::Cow<'_, [u8]>) {
    use std::borrow::Cow;
    match request {
        Request::Ping { payload } => (&[], None, Cow::Borrowed(payload)),
        Request::Get { key } | Request::Delete { key } => (key, None, Cow::Borrowed(&[])),
        Request::Put { key, value } => (key, None, Cow::Borrowed(value)),
        Request::PutTtl { key, ttl_ms, value } => (key, Some(*ttl_ms), Cow::Borrowed(value)),
        Request::Health => (&[], None, Cow::Borrowed(&[])),
        Request::Auth { token } => (&[], None, Cow::Borrowed(token)),
        Request::Hello { version, session_id } => {
            let mut value = Vec::with_capacity(2 + session_id.len());
            value.extend_from_slice(&version.to_le_bytes());
            value.extend_from_slice(session_id);
            (&[], None, Cow::Owned(value))
        }
    }
}

/// The part of a request header before `key_len`: 1.1 has only the
/// command; version 2 adds flags, the id and the budget.
#[derive(Clone, Copy)]
enum Head {
    V1,
    V2 {
        id: u32,
        budget_us: Option<u32>,
        stamp: Option<Stamp>,
    },
}

/// Writes one request frame.
fn encode_frame(
    command: Command,
    head: Head,
    request: Option<&Request>,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let (key, ttl, value) = match request {
        Some(request) => parts(request),
        None => (&[][..], None, std::borrow::Cow::Borrowed(&[][..])),
    };
    let ttl_len = if ttl.is_some() { TTL_LEN } else { 0 };
    let key_len = encode_len("key", key.len())?;
    let value_len = encode_len("value", value.len() + ttl_len)?;
    dst.reserve(REQUEST_HEADER_LEN_V2 + BUDGET_LEN + SEQUENCED_LEN + key.len() + ttl_len + value.len());
    dst.put_u8(command as u8);
    let (budget_us, stamp) = match head {
        Head::V1 => (None, None),
        Head::V2 { id, budget_us, stamp } => {
            let deadline = if budget_us.is_some() { FLAG_DEADLINE } else { 0 };
            let sequenced = if stamp.is_some() { FLAG_SEQUENCED } else { 0 };
            dst.put_u8(deadline | sequenced);
            dst.put_u32_le(id);
            (budget_us, stamp)
        }
    };
    dst.put_u32_le(key_len);
    dst.put_u32_le(value_len);
    if let Some(budget_us) = budget_us {
        dst.put_u32_le(budget_us);
    }
    if let Some(stamp) = stamp {
        dst.put_u64_le(stamp.seq);
        dst.put_u64_le(stamp.acked_below);
    }
    dst.put_slice(key);
    if let Some(ttl) = ttl {
        dst.put_u64_le(ttl);
    }
    dst.put_slice(&value);
    Ok(())
}

/// A budget in whole microseconds: at most `u32::MAX`, at least 1.
fn budget_us(budget: Duration) -> u32 {
    u32::try_from(budget.as_micros()).unwrap_or(u32::MAX).max(1)
}

impl Encoder<Request> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&request, dst)
    }
}

impl Encoder<&Request> for ClientCodec {
    type Error = CodecError;

    /// A 1.1 frame; an error ([`CodecError::NoId`]) once the connection
    /// speaks version 2.
    fn encode(&mut self, request: &Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        if self.negotiated.is_some() {
            return Err(CodecError::NoId);
        }
        encode_frame(request.command(), Head::V1, Some(request), dst)
    }
}

impl Encoder<Outgoing<Request>> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, outgoing: Outgoing<Request>, dst: &mut BytesMut) -> Result<(), CodecError> {
        let version_2 = self.negotiated.is_some();
        match outgoing {
            Outgoing::Request { tag, budget, request } if version_2 => {
                let head = Head::V2 {
                    id: tag,
                    budget_us: budget.map(budget_us),
                    stamp: None,
                };
                encode_frame(request.command(), head, Some(&request), dst)
            }
            Outgoing::Cancel(tag) if version_2 => encode_frame(
                Command::Cancel,
                Head::V2 {
                    id: tag,
                    budget_us: None,
                    stamp: None,
                },
                None,
                dst,
            ),
            Outgoing::Ping(tag) if version_2 => encode_frame(
                Command::Ping,
                Head::V2 {
                    id: tag,
                    budget_us: None,
                    stamp: None,
                },
                None,
                dst,
            ),
            Outgoing::Request { tag, request, .. } => {
                encode_frame(request.command(), Head::V1, Some(&request), dst)?;
                self.tags.push_back(tag);
                Ok(())
            }
            // 1.1 has no cancel: the request is answered as usual.
            Outgoing::Cancel(_) => Ok(()),
            Outgoing::Ping(tag) => {
                encode_frame(Command::Ping, Head::V1, None, dst)?;
                self.tags.push_back(tag);
                Ok(())
            }
        }
    }
}

/// Session writes: a [`Stamped`] request with a stamp is sent SEQUENCED
/// (`PROTOCOL.md`, "Sessions"); one without, as an [`Outgoing<Request>`].
/// A stamp on a connection whose `HELLO` got no `session_window` (a 1.1
/// server, or one with sessions off) is [`CodecError::NoSession`]: sent
/// plain it could be applied twice when the retry layer resends it.
impl Encoder<Outgoing<Stamped<Request>>> for ClientCodec {
    type Error = CodecError;

    fn encode(&mut self, outgoing: Outgoing<Stamped<Request>>, dst: &mut BytesMut) -> Result<(), CodecError> {
        let (tag, budget, request, stamp) = match outgoing {
            Outgoing::Request {
                tag,
                budget,
                request:
                    Stamped {
                        request,
                        stamp: Some(stamp),
                    },
            } => (tag, budget, request, stamp),
            Outgoing::Request { tag, budget, request } => {
                let request = request.request;
                return self.encode(Outgoing::Request { tag, budget, request }, dst);
            }
            Outgoing::Cancel(tag) => return self.encode(Outgoing::<Request>::Cancel(tag), dst),
            Outgoing::Ping(tag) => return self.encode(Outgoing::<Request>::Ping(tag), dst),
        };
        let has_sessions = self
            .negotiated
            .is_some_and(|negotiated| negotiated.session_window > 0);
        if !has_sessions || stamp.session != self.session || self.session == [0; 16] {
            return Err(CodecError::NoSession);
        }
        let head = Head::V2 {
            id: tag,
            budget_us: budget.map(budget_us),
            stamp: Some(stamp),
        };
        encode_frame(request.command(), head, Some(&request), dst)
    }
}

/// Checks a response's `value_len` against the client's limit.
fn check_response_len(limits: Limits, value_len: u32) -> Result<(), CodecError> {
    if value_len > limits.max_value_bytes {
        return Err(CodecError::TooLarge {
            field: "value",
            len: u64::from(value_len),
            limit: u64::from(limits.max_value_bytes),
        });
    }
    Ok(())
}

impl ClientCodec {
    fn decode_v1(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        let Some(header) = src.get(..RESPONSE_HEADER_LEN) else {
            return Ok(None);
        };
        // Version 2's statuses (from CANCELLED on) are no 1.1 answer.
        let Some(status) = Status::from_byte(header[0]).filter(|s| *s as u8 <= Status::Unauthenticated as u8)
        else {
            return Err(unknown_status(header));
        };
        let value_len = read_u32(&header[1..5]);
        check_response_len(self.limits, value_len)?;
        let frame_len = RESPONSE_HEADER_LEN + value_len as usize;
        if src.len() < frame_len {
            return Ok(None);
        }
        src.advance(RESPONSE_HEADER_LEN);
        let value = src.split_to(value_len as usize).freeze();
        // 1.1 answers in order: the oldest tag written is the one answered.
        let id = self.tags.pop_front().unwrap_or(0);
        Ok(Some(Response { status, id, value }))
    }

    fn decode_v2(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        let Some(header) = src.get(..RESPONSE_HEADER_LEN_V2) else {
            return Ok(None);
        };
        let Some(status) = Status::from_byte(header[0]) else {
            return Err(CodecError::UnknownStatus(header[0]));
        };
        if header[1] != 0 {
            return Err(CodecError::UnknownFlags(header[1]));
        }
        let id = read_u32(&header[2..6]);
        let value_len = read_u32(&header[6..10]);
        check_response_len(self.limits, value_len)?;
        if src.len() < RESPONSE_HEADER_LEN_V2 + value_len as usize {
            return Ok(None);
        }
        src.advance(RESPONSE_HEADER_LEN_V2);
        let value = src.split_to(value_len as usize).freeze();
        Ok(Some(Response { status, id, value }))
    }
}

impl Decoder for ClientCodec {
    type Item = Response;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Response>, CodecError> {
        match self.negotiated {
            Some(_) => self.decode_v2(src),
            None => self.decode_v1(src),
        }
    }
}

/// Where a server connection stands between the versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// 1.1: frames decoded and answers encoded so far, and the place among
    /// the answers of a `HELLO` decoded and not yet answered.
    V1 {
        decoded: u64,
        encoded: u64,
        hello: Option<u64>,
    },
    /// Version 2, both ways.
    V2,
}

impl Default for Version {
    fn default() -> Self {
        Version::V1 {
            decoded: 0,
            encoded: 0,
            hello: None,
        }
    }
}

/// The server's codec: decodes [`Incoming`] frames, encodes [`Response`]s.
///
/// It speaks 1.1 until it has encoded the `OK` answer to a `HELLO`, and
/// version 2 both ways from then on. 1.1 answers in order, so the codec
/// knows which answer is `HELLO`'s: it counts the frames it decoded and
/// the answers it encoded. (A client sends no version 2 frame before it
/// has that `OK`, so none is ever read as 1.1.)
///
/// A well-framed but invalid request decodes to [`Incoming::Rejected`] and the
/// connection goes on. A header whose framing cannot be trusted — over a
/// limit (`TOO_LARGE`), or on version 2 with an unknown flag bit or request
/// id 0 (`BAD_REQUEST`) — decodes to that rejection, after which the codec
/// returns [`CodecError::FramingLost`]: the server answers what it has and
/// closes that connection.
///
/// On a 1.1 connection, a `GOAWAY` response is encoded as nothing: 1.1 has
/// no such frame (the server just closes once it has answered).
///
/// Which ids are in flight is not the codec's to know: a server with
/// [`ByRequestId`](super::ByRequestId) keeps them, and answers a request
/// that reuses one `BAD_REQUEST` (with that id) and closes the connection.
#[derive(Debug, Clone, Default)]
pub struct ServerCodec {
    limits: Limits,
    framing_lost: bool,
    version: Version,
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
            ..Self::default()
        }
    }

    /// The limits this codec enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `true` once this connection speaks version 2.
    pub fn is_version_2(&self) -> bool {
        self.version == Version::V2
    }

    /// The length of the 1.1 request frame that `buffered` starts with, once
    /// its 9-byte header is there: what
    /// [`Server::with_frame_size`](crate::server::Server::with_frame_size)
    /// asks, so that the server reserves a large frame's bytes whole. On a
    /// connection that may speak version 2, use
    /// [`frame_len_for`](Self::frame_len_for).
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
        Some(
            REQUEST_HEADER_LEN
                .saturating_add(key_len)
                .saturating_add(value_len),
        )
    }

    /// The length of the request frame that `buffered` starts with, in the
    /// version this connection speaks now, once its header is there.
    /// `None` before, and for a version 2 header with unknown flags (whose
    /// length nobody can tell; the decoder rejects it).
    ///
    /// ```
    /// use wirestack::kv::ServerCodec;
    ///
    /// let codec = ServerCodec::new(); // 1.1 until HELLO is answered OK
    /// let header = [0x03, 3, 0, 0, 0, 0, 0, 1, 0];
    /// assert_eq!(codec.frame_len_for(&header), Some(9 + 3 + 65_536));
    /// ```
    pub fn frame_len_for(&self, buffered: &[u8]) -> Option<usize> {
        if self.version != Version::V2 {
            return Self::frame_len(buffered);
        }
        let header = buffered.get(..REQUEST_HEADER_LEN_V2)?;
        let flags = header[1];
        if flags & !KNOWN_FLAGS != 0 {
            return None;
        }
        let key_len = read_u32(&header[6..10]) as usize;
        let value_len = read_u32(&header[10..14]) as usize;
        Some(
            (REQUEST_HEADER_LEN_V2 + extra_len(flags))
                .saturating_add(key_len)
                .saturating_add(value_len),
        )
    }

    fn check_lengths(&self, command: Option<Command>, key_len: u32, value_len: u32) -> Option<Response> {
        let max_value = u64::from(self.limits.max_value_bytes);
        let value_limit = match command {
            Some(Command::PutTtl) => max_value + TTL_LEN as u64,
            // HELLO's fixed 18 bytes are never a stored value: a server
            // whose values are smaller still negotiates.
            Some(Command::Hello) => max_value.max(HELLO_LEN as u64),
            _ => max_value,
        };
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

    /// Answers `rejection`, after which nothing more is decoded.
    fn lose_framing(&mut self, src: &mut BytesMut, rejection: Response) -> Option<Incoming> {
        self.framing_lost = true;
        src.clear();
        Some(Incoming::Rejected(rejection))
    }

    fn decode_v1(&mut self, src: &mut BytesMut) -> Option<Incoming> {
        let header = src.get(..REQUEST_HEADER_LEN)?;
        let command_byte = header[0];
        let key_len = read_u32(&header[1..5]);
        let value_len = read_u32(&header[5..9]);
        if let Some(too_large) = self.check_lengths(Command::from_byte(command_byte), key_len, value_len) {
            // Nothing after this header can be framed: answer, then stop.
            return self.lose_framing(src, too_large);
        }
        let (key_len, value_len) = (key_len as usize, value_len as usize);
        if src.len() < REQUEST_HEADER_LEN + key_len + value_len {
            return None;
        }
        src.advance(REQUEST_HEADER_LEN);
        let key = src.split_to(key_len).freeze();
        let value = src.split_to(value_len).freeze();
        Some(parse_request(command_byte, key, value))
    }

    fn decode_v2(&mut self, src: &mut BytesMut) -> Option<Incoming> {
        let header = src.get(..REQUEST_HEADER_LEN_V2)?;
        let command_byte = header[0];
        let flags = header[1];
        let id = read_u32(&header[2..6]);
        let key_len = read_u32(&header[6..10]);
        let value_len = read_u32(&header[10..14]);
        if flags & !KNOWN_FLAGS != 0 {
            let message = format!("unknown flag bits 0x{:02x}", flags & !KNOWN_FLAGS);
            return self.lose_framing(src, Response::error(Status::BadRequest, message).with_id(id));
        }
        if id == 0 {
            return self.lose_framing(src, Response::error(Status::BadRequest, "request id 0"));
        }
        if let Some(too_large) = self.check_lengths(Command::from_byte(command_byte), key_len, value_len) {
            return self.lose_framing(src, too_large.with_id(id));
        }
        let extra = extra_len(flags);
        let (key_len, value_len) = (key_len as usize, value_len as usize);
        if src.len() < REQUEST_HEADER_LEN_V2 + extra + key_len + value_len {
            return None;
        }
        src.advance(REQUEST_HEADER_LEN_V2);
        let budget_us = (flags & FLAG_DEADLINE != 0).then(|| src.get_u32_le());
        let sequenced = (flags & FLAG_SEQUENCED != 0).then(|| Sequenced {
            seq: src.get_u64_le(),
            acked_below: src.get_u64_le(),
        });
        let key = src.split_to(key_len).freeze();
        let value = src.split_to(value_len).freeze();
        if command_byte == Command::Cancel as u8 {
            // No answer of its own; its flags, key and value, if any, are
            // ignored: it names its target by the id alone.
            return Some(Incoming::Cancel { id });
        }
        let rejected =
            |message: &str| Incoming::Rejected(Response::error(Status::BadRequest, message).with_id(id));
        let is_write = matches!(
            Command::from_byte(command_byte),
            Some(Command::Put | Command::PutTtl | Command::Delete)
        );
        if sequenced.is_some() && !is_write {
            return Some(rejected("SEQUENCED is for PUT, PUT_TTL and DELETE only"));
        }
        let incoming = match Command::from_byte(command_byte) {
            Some(Command::Hello) => rejected("a second HELLO: this connection speaks version 2 already"),
            _ => match parse_request(command_byte, key, value) {
                Incoming::Request(request) => Incoming::Identified {
                    id,
                    // The deadline is reckoned from the moment the frame was read.
                    deadline: budget_us
                        .and_then(|us| Instant::now().checked_add(Duration::from_micros(u64::from(us)))),
                    sequenced,
                    request,
                },
                Incoming::Rejected(response) => Incoming::Rejected(response.with_id(id)),
                other => other,
            },
        };
        Some(incoming)
    }
}

/// The bytes a version 2 request header's flags add after it.
fn extra_len(flags: u8) -> usize {
    let budget = if flags & FLAG_DEADLINE != 0 { BUDGET_LEN } else { 0 };
    let sequenced = if flags & FLAG_SEQUENCED != 0 {
        SEQUENCED_LEN
    } else {
        0
    };
    budget + sequenced
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
        Command::Hello => {
            let mut session_id = [0u8; 16];
            if !key.is_empty() || value.len() != HELLO_LEN {
                return bad_request("HELLO takes no key and an 18-byte value (version, session_id)");
            }
            let version = value.get_u16_le();
            value.copy_to_slice(&mut session_id);
            Request::Hello { version, session_id }
        }
        Command::Cancel => return bad_request("CANCEL is a version 2 frame; this connection speaks 1.1"),
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
        let Version::V1 { decoded, hello, .. } = &mut self.version else {
            return Ok(self.decode_v2(src));
        };
        let (at, pending_hello) = (*decoded, hello.is_some());
        let Some(mut incoming) = self.decode_v1(src) else {
            return Ok(None);
        };
        if let Incoming::Request(Request::Hello { .. }) = incoming {
            if pending_hello {
                incoming = bad_request("a second HELLO before the first was answered");
            } else if let Version::V1 { hello, .. } = &mut self.version {
                *hello = Some(at);
            }
        }
        if let Version::V1 { decoded, .. } = &mut self.version {
            *decoded += 1;
        }
        Ok(Some(incoming))
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
        let Version::V1 { encoded, hello, .. } = &mut self.version else {
            dst.reserve(RESPONSE_HEADER_LEN_V2 + response.value.len());
            dst.put_u8(response.status as u8);
            dst.put_u8(0);
            dst.put_u32_le(response.id);
            dst.put_u32_le(value_len);
            dst.put_slice(&response.value);
            return Ok(());
        };
        if response.status == Status::GoAway {
            // 1.1 has no such frame, and it answers no request.
            return Ok(());
        }
        let answers_hello = *hello == Some(*encoded);
        *encoded += 1;
        if answers_hello {
            *hello = None;
        }
        dst.reserve(RESPONSE_HEADER_LEN + response.value.len());
        dst.put_u8(response.status as u8);
        dst.put_u32_le(value_len);
        dst.put_slice(&response.value);
        if answers_hello && response.status == Status::Ok {
            self.version = Version::V2;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod v2_tests;
