//! [`MemcacheCodec`]: meta commands out, answers in, each answer checked
//! against the request it answers.

use super::reply::{Reply, Status};
use super::{CodecError, Key, Request};
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use tokio_util::codec::{Decoder, Encoder};

/// Default for [`MemcacheCodec::max_value_len`]: 16 MiB (memcached's own
/// item limit is 1 MiB unless started with `-I`).
const DEFAULT_MAX_VALUE_LEN: usize = 16 * 1024 * 1024;
/// Default for [`MemcacheCodec::max_line_len`]: 8 KiB — a line holds a key
/// of at most 250 bytes and a few flags, or an error message.
const DEFAULT_MAX_LINE_LEN: usize = 8 * 1024;

/// memcached's meta protocol as a `tokio-util` codec: encodes [`Request`]s,
/// decodes [`Reply`]s.
///
/// **Answers are checked against requests.** Every command but `mn` is sent
/// with an opaque token (`O<n>`, a counter per connection) that memcached
/// echoes; the decoder keeps the tokens of the requests in flight, in
/// order, and an answer whose token is not the one at the head of the line
/// is a [`CodecError::OpaqueMismatch`] — the connection is dropped and the
/// callers told, rather than handed another request's answer. It costs a
/// few bytes a request (see BENCHMARKS.md for what it costs in throughput);
/// [`without_opaque`](Self::without_opaque) turns it off. Error lines
/// (`CLIENT_ERROR`, `SERVER_ERROR`) carry no token and answer the request
/// at the head of the line.
///
/// **The server is not trusted**: a line longer than
/// [`max_line_len`](Self::max_line_len) or a value longer than
/// [`max_value_len`](Self::max_value_len) is an error as soon as it is
/// seen, before anything is reserved for it.
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use wirestack::memcache::{Key, MemcacheCodec, Request, Status};
///
/// let mut codec = MemcacheCodec::new();
/// let mut out = BytesMut::new();
/// codec.encode(Request::GetItem { key: Key::new("greeting")? }, &mut out)?;
/// assert_eq!(&out[..], b"mg greeting v f c O0\r\n");
///
/// let mut input = BytesMut::from(&b"VA 5 f0 c7 O0\r\nhel"[..]);
/// assert_eq!(codec.decode(&mut input)?, None); // the value is not all there
/// input.extend_from_slice(b"lo\r\n");
/// let reply = codec.decode(&mut input)?.expect("a whole answer");
/// assert_eq!(reply.status, Status::Value);
/// assert_eq!(reply.value.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(reply.cas, Some(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemcacheCodec {
    max_value_len: usize,
    max_line_len: usize,
    opaque: bool,
    /// The next opaque token to send.
    next: u32,
    /// What the requests awaiting an answer expect, oldest first.
    in_flight: VecDeque<Expect>,
}

/// What a request in flight expects for an answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A meta answer with this opaque token (`None`: `mn`, or no tokens).
    Meta(Option<u32>),
    /// The `VALUE` blocks and `END` of a multi-key `get` of this many keys.
    Values(usize),
}

impl Default for MemcacheCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl MemcacheCodec {
    /// A codec with opaque tokens on, values up to 16 MiB, lines up to 8 KiB.
    pub fn new() -> Self {
        MemcacheCodec {
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            opaque: true,
            next: 0,
            in_flight: VecDeque::new(),
        }
    }

    /// Sets the longest value, in bytes, the decoder accepts.
    pub fn with_max_value_len(mut self, n: usize) -> Self {
        self.max_value_len = n;
        self
    }

    /// Sets the longest line, in bytes without its `\r\n`, the decoder accepts.
    pub fn with_max_line_len(mut self, n: usize) -> Self {
        self.max_line_len = n;
        self
    }

    /// Sends no opaque tokens and checks answers only by their order: a few
    /// bytes less a request, and no check that the answers are in step.
    pub fn without_opaque(mut self) -> Self {
        self.opaque = false;
        self
    }

    /// The longest value the decoder accepts.
    pub fn max_value_len(&self) -> usize {
        self.max_value_len
    }

    /// The longest line the decoder accepts.
    pub fn max_line_len(&self) -> usize {
        self.max_line_len
    }

    /// Whether requests carry opaque tokens that answers are checked against.
    pub fn checks_opaque(&self) -> bool {
        self.opaque
    }
}

impl Encoder<Request> for MemcacheCodec {
    type Error = CodecError;

    fn encode(&mut self, request: Request, dst: &mut BytesMut) -> Result<(), CodecError> {
        if let Request::GetMulti { keys } = &request {
            if keys.is_empty() || keys.iter().any(Key::is_base64) {
                return Err(CodecError::InvalidMultiGet);
            }
            request.write(None, dst);
            self.in_flight.push_back(Expect::Values(keys.len()));
            return Ok(());
        }
        let opaque = (self.opaque && request != Request::NoOp).then(|| {
            let token = self.next;
            self.next = token.wrapping_add(1);
            token
        });
        request.write(opaque, dst);
        self.in_flight.push_back(Expect::Meta(opaque));
        Ok(())
    }
}

impl Decoder for MemcacheCodec {
    type Item = Reply;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, CodecError> {
        let expected = match self.in_flight.front() {
            Some(&Expect::Values(keys)) => {
                let reply = values::decode(src, keys, self.max_line_len, self.max_value_len)?;
                if reply.is_some() {
                    self.in_flight.pop_front();
                }
                return Ok(reply);
            }
            Some(&Expect::Meta(expected)) => expected,
            None if src.is_empty() => return Ok(None),
            None => return Err(CodecError::Unsolicited),
        };
        // 1. Is a whole answer there? Reads the line, builds nothing big.
        let Some(eol) = line_end(src, self.max_line_len)? else {
            return Ok(None);
        };
        let (status, value_len) = head(&src[..eol], self.max_value_len)?;
        let needed = eol + 2 + value_len.map_or(0, |len| len + 2);
        if src.len() < needed {
            // The length was checked against the limit: reserving is safe.
            src.reserve(needed - src.len());
            return Ok(None);
        }
        // 2. Take it: the flags read in place, the value split off (the
        // one slice an answer keeps of the buffer).
        let mut reply = Reply::new(status);
        if !reply.is_error() {
            return_flags(&src[..eol], &mut reply)?;
        }
        src.advance(eol + 2);
        if let Some(len) = value_len {
            let value = src.split_to(len).freeze();
            if !src.starts_with(b"\r\n") {
                return Err(CodecError::MissingCrlf);
            }
            src.advance(2);
            reply.value = Some(value);
        }
        // 3. Is it the answer to the request at the head of the line?
        self.in_flight.pop_front();
        let in_step = match expected {
            _ if reply.is_error() => true,
            Some(token) => reply.opaque == Some(token),
            None => !self.opaque || reply.status == Status::NoOp,
        };
        if !in_step {
            return Err(CodecError::OpaqueMismatch {
                expected,
                got: reply.opaque,
            });
        }
        Ok(Some(reply))
    }
}

/// The status of an answer's line, and the length of its value if one
/// follows (checked against `max_value_len`).
pub(super) fn head(line: &[u8], max_value_len: usize) -> Result<(Status, Option<usize>), CodecError> {
    let mut tokens = line.split(|&b| b == b' ');
    let code = tokens.next().unwrap_or_default();
    let message = || {
        let text = line.get(code.len() + 1..).unwrap_or_default();
        String::from_utf8_lossy(text).into_owned()
    };
    let status = match code {
        b"VA" => return Ok((Status::Value, Some(value_len(tokens.next(), max_value_len)?))),
        b"HD" => Status::Done,
        b"EN" => Status::Miss,
        b"NS" => Status::NotStored,
        b"EX" => Status::Exists,
        b"NF" => Status::NotFound,
        b"MN" => Status::NoOp,
        b"ERROR" => Status::Error,
        b"CLIENT_ERROR" => Status::ClientError(message()),
        b"SERVER_ERROR" => Status::ServerError(message()),
        _ => {
            let shown = &line[..line.len().min(32)];
            return Err(CodecError::UnknownReply(
                String::from_utf8_lossy(shown).into_owned(),
            ));
        }
    };
    Ok((status, None))
}

/// Where the line at the start of `src` ends (the index of its `\r\n`),
/// `None` while it has not all arrived; an error past `max_line_len`, or for
/// a line ended by a bare `\n`.
pub(super) fn line_end(src: &[u8], max_line_len: usize) -> Result<Option<usize>, CodecError> {
    let scan = &src[..src.len().min(max_line_len + 2)];
    let Some(newline) = scan.iter().position(|&b| b == b'\n') else {
        if src.len() > max_line_len + 1 {
            return Err(CodecError::LineTooLong { limit: max_line_len });
        }
        return Ok(None);
    };
    newline
        .checked_sub(1)
        .filter(|&cr| scan.get(cr) == Some(&b'\r'))
        .map(Some)
        .ok_or(CodecError::MissingCrlf)
}

/// A value's announced length, checked against `max_value_len` before
/// anything is reserved for it.
pub(super) fn value_len(token: Option<&[u8]>, max_value_len: usize) -> Result<usize, CodecError> {
    let len: u64 = token
        .and_then(parse)
        .ok_or(CodecError::InvalidNumber("value length"))?;
    usize::try_from(len)
        .ok()
        .filter(|&len| len <= max_value_len)
        .ok_or(CodecError::ValueTooLarge {
            len,
            limit: max_value_len,
        })
}

/// Reads the return flags this client asks for (`c`, `f`, `O`) into
/// `reply`; others (`k`, `b`, `t`, `s`, ...) are skipped.
fn return_flags(line: &[u8], reply: &mut Reply) -> Result<(), CodecError> {
    let mut tokens = line.split(|&b| b == b' ').skip(1);
    if reply.status == Status::Value {
        tokens.next(); // the length
    }
    for token in tokens {
        let Some((&letter, value)) = token.split_first() else {
            continue;
        };
        match letter {
            b'c' => reply.cas = Some(parse(value).ok_or(CodecError::InvalidNumber("CAS token"))?),
            b'f' => reply.flags = Some(parse(value).ok_or(CodecError::InvalidNumber("client flags"))?),
            b'O' => reply.opaque = Some(parse(value).ok_or(CodecError::InvalidNumber("opaque token"))?),
            _ => {}
        }
    }
    Ok(())
}

/// A decimal number of at most 20 digits, nothing else.
pub(super) fn parse<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
mod values;
