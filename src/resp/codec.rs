//! The RESP2 value type, its error type, and the [`RespCodec`] that frames
//! them on a byte stream.
//!
//! Decoding works in two passes over the buffered bytes, in the style of
//! mini-redis's `Frame::check` / `Frame::parse`:
//!
//! 1. **check** walks the buffer without building anything. It validates each
//!    header against the codec's limits (bulk length, array length, nesting
//!    depth, line length) the moment the header is readable, and reports
//!    whether a whole frame is present. A bulk header claiming 4 GiB is
//!    rejected right there; nothing is ever reserved or allocated from a
//!    length the peer sent before that length has been validated.
//! 2. **parse** runs only once check found a complete frame. The frame's
//!    bytes are split off the buffer and frozen, and bulk and simple strings in
//!    the resulting [`Value`] are zero-copy slices of them.
//!
//! Both passes are iterative (an explicit stack bounded by `max_depth`), so
//! deep nesting cannot overflow the thread's stack.
//!
//! Cost of partial input: when a frame is incomplete, the next call re-checks
//! it from its first byte. Skipping a bulk payload costs O(1) and line scans
//! are bounded by the line limits, so the re-scan is proportional to the
//! number of *headers* buffered so far. Only a huge array of tiny elements
//! that trickles in makes this quadratic-ish (O(elements × reads)); the array
//! limit bounds that cost.

use std::io;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Longest valid content of an integer or length line: `-9223372036854775808`.
const MAX_INT_LINE: usize = 20;

/// Default for [`RespCodec::max_bulk_len`]: 16 MiB.
const DEFAULT_MAX_BULK_LEN: usize = 16 * 1024 * 1024;
/// Default for [`RespCodec::max_array_len`]: 1,048,576 elements.
const DEFAULT_MAX_ARRAY_LEN: usize = 1024 * 1024;
/// Default for [`RespCodec::max_depth`]: 32 nested arrays.
const DEFAULT_MAX_DEPTH: usize = 32;
/// Default for [`RespCodec::max_line_len`]: 64 KiB.
const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;

/// One RESP2 value: a command sent to the server or a reply received from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A simple string, `+OK\r\n`. Must not contain `\r` or `\n`.
    Simple(Bytes),
    /// An error reply, `-ERR unknown command\r\n`. Must not contain `\r` or `\n`.
    Error(Bytes),
    /// A signed 64-bit integer, `:42\r\n`.
    Integer(i64),
    /// A binary-safe bulk string, `$3\r\nfoo\r\n`.
    Bulk(Bytes),
    /// The null value. Encoded as the null bulk string `$-1\r\n`; the null
    /// array `*-1\r\n` also decodes to it.
    Nil,
    /// An array of values, `*2\r\n:1\r\n:2\r\n`.
    Array(Vec<Value>),
}

impl Value {
    /// Builds a command: an array of bulk strings, one per argument.
    ///
    /// ```
    /// use wirestack::resp::Value;
    /// let cmd = Value::command(["GET", "key"]);
    /// assert_eq!(cmd, Value::Array(vec![Value::bulk("GET"), Value::bulk("key")]));
    /// ```
    pub fn command<I, A>(args: I) -> Value
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Value::Array(
            args.into_iter()
                .map(|arg| Value::Bulk(Bytes::copy_from_slice(arg.as_ref())))
                .collect(),
        )
    }

    /// Builds a [`Value::Bulk`] from anything convertible into [`Bytes`].
    pub fn bulk(data: impl Into<Bytes>) -> Value {
        Value::Bulk(data.into())
    }

    /// Builds a [`Value::Simple`] from anything convertible into [`Bytes`].
    ///
    /// The text is not checked here; encoding fails with
    /// [`RespError::InvalidSimpleString`] if it contains `\r` or `\n`.
    pub fn simple(text: impl Into<Bytes>) -> Value {
        Value::Simple(text.into())
    }

    /// Builds a [`Value::Error`] from anything convertible into [`Bytes`].
    ///
    /// The text is not checked here; encoding fails with
    /// [`RespError::InvalidSimpleString`] if it contains `\r` or `\n`.
    pub fn error(text: impl Into<Bytes>) -> Value {
        Value::Error(text.into())
    }
}

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
    /// Arrays were nested deeper than [`RespCodec::max_depth`].
    #[error("arrays nested deeper than the limit of {limit}")]
    TooDeep {
        /// The configured nesting limit.
        limit: usize,
    },
    /// A line (simple string, error, integer or length header) grew past its
    /// limit without a terminating `\r\n`, or its content is longer than the
    /// limit. Simple strings and errors use [`RespCodec::max_line_len`];
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
    /// Encoding: a [`Value::Simple`] or [`Value::Error`] contains `\r` or
    /// `\n`, which would corrupt the frame. Nothing was written.
    #[error("simple string or error contains CR or LF")]
    InvalidSimpleString,
    /// An I/O error from the underlying transport (required by `tokio-util`'s
    /// `FramedRead`/`FramedWrite`), e.g. a stream that ended mid-frame.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// A RESP2 [`Encoder`] and [`Decoder`] with limits on what a peer may send.
///
/// The limits apply to decoding only; encoding trusts the caller's values.
///
/// ```
/// use wirestack::resp::RespCodec;
/// let codec = RespCodec::new().with_max_bulk_len(1024).with_max_depth(4);
/// assert_eq!(codec.max_bulk_len(), 1024);
/// assert_eq!(codec.max_depth(), 4);
/// ```
#[derive(Debug, Clone)]
pub struct RespCodec {
    max_bulk_len: usize,
    max_array_len: usize,
    max_depth: usize,
    max_line_len: usize,
}

impl Default for RespCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl RespCodec {
    /// A codec with the default limits: bulk strings up to 16 MiB, arrays up
    /// to 1,048,576 elements, 32 levels of nesting, lines up to 64 KiB.
    pub fn new() -> Self {
        RespCodec {
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_array_len: DEFAULT_MAX_ARRAY_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
            max_line_len: DEFAULT_MAX_LINE_LEN,
        }
    }

    /// Sets the largest bulk string payload, in bytes, the decoder accepts.
    pub fn with_max_bulk_len(mut self, n: usize) -> Self {
        self.max_bulk_len = n;
        self
    }

    /// Sets the largest number of elements in one array the decoder accepts.
    pub fn with_max_array_len(mut self, n: usize) -> Self {
        self.max_array_len = n;
        self
    }

    /// Sets how many arrays may be nested in one another. A flat array has
    /// depth 1; `0` rejects every (non-null) array.
    pub fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Sets the longest content, in bytes and without the type byte and the
    /// `\r\n`, of a simple string or error line the decoder accepts.
    pub fn with_max_line_len(mut self, n: usize) -> Self {
        self.max_line_len = n;
        self
    }

    /// The largest bulk string payload the decoder accepts, in bytes.
    pub fn max_bulk_len(&self) -> usize {
        self.max_bulk_len
    }

    /// The largest number of elements in one array the decoder accepts.
    pub fn max_array_len(&self) -> usize {
        self.max_array_len
    }

    /// How many arrays may be nested in one another.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// The longest simple string or error line content the decoder accepts.
    pub fn max_line_len(&self) -> usize {
        self.max_line_len
    }

    /// Walks one frame at the start of `src`, validating as it goes and
    /// reporting each item to `emit`.
    ///
    /// Returns `Ok(Some(len))` when a whole frame of `len` bytes is present,
    /// `Ok(None)` when more bytes are needed, and an error as soon as the
    /// bytes seen so far cannot start a valid frame. It never reads past the
    /// end of the frame, so walking `&src[..len]` again gives the same events.
    fn walk(&self, src: &[u8], mut emit: impl FnMut(Event)) -> Result<Option<usize>, RespError> {
        let mut pos = 0usize;
        // Elements still expected by each open array, innermost last.
        // Its length never exceeds `max_depth`.
        let mut open: Vec<usize> = Vec::new();
        loop {
            let Some(&tag) = src.get(pos) else {
                return Ok(None);
            };
            let body = pos + 1;
            match tag {
                b'+' | b'-' => {
                    let Some((end, next)) = find_line(src, body, self.max_line_len)? else {
                        return Ok(None);
                    };
                    emit(if tag == b'+' {
                        Event::Simple(body..end)
                    } else {
                        Event::Error(body..end)
                    });
                    pos = next;
                }
                b':' => {
                    let Some((n, next)) = read_int(src, body)? else {
                        return Ok(None);
                    };
                    emit(Event::Integer(n));
                    pos = next;
                }
                b'$' => {
                    let Some((n, next)) = read_int(src, body)? else {
                        return Ok(None);
                    };
                    match self.check_len(n, "bulk string", self.max_bulk_len)? {
                        None => {
                            emit(Event::Nil);
                            pos = next;
                        }
                        Some(len) => {
                            let too_large = || RespError::TooLarge {
                                what: "bulk string",
                                len: len as u64,
                                limit: self.max_bulk_len as u64,
                            };
                            let end = next.checked_add(len).ok_or_else(too_large)?;
                            let after = end.checked_add(2).ok_or_else(too_large)?;
                            // Fail early on a wrong terminator byte that has
                            // already arrived, instead of waiting for more.
                            let tail = src.get(end..).unwrap_or_default();
                            let tail = tail.get(..2).unwrap_or(tail);
                            if !b"\r\n".starts_with(tail) {
                                return Err(RespError::MissingCrlf);
                            }
                            if tail.len() < 2 {
                                return Ok(None);
                            }
                            emit(Event::Bulk(next..end));
                            pos = after;
                        }
                    }
                }
                b'*' => {
                    let Some((n, next)) = read_int(src, body)? else {
                        return Ok(None);
                    };
                    pos = next;
                    match self.check_len(n, "array", self.max_array_len)? {
                        None => emit(Event::Nil),
                        Some(len) => {
                            if open.len() >= self.max_depth {
                                return Err(RespError::TooDeep {
                                    limit: self.max_depth,
                                });
                            }
                            emit(Event::Array(len));
                            if len > 0 {
                                open.push(len);
                                continue;
                            }
                        }
                    }
                }
                other => return Err(RespError::InvalidTypeByte(other)),
            }
            if value_completed(&mut open) {
                return Ok(Some(pos));
            }
        }
    }

    /// Validates a bulk or array length: `None` for `-1` (null), the length
    /// if it is within `limit`, an error otherwise.
    fn check_len(&self, n: i64, what: &'static str, limit: usize) -> Result<Option<usize>, RespError> {
        if n == -1 {
            return Ok(None);
        }
        let len = u64::try_from(n).map_err(|_| RespError::InvalidLength(n))?;
        let too_large = RespError::TooLarge {
            what,
            len,
            limit: limit as u64,
        };
        match usize::try_from(len) {
            Ok(len) if len <= limit => Ok(Some(len)),
            _ => Err(too_large),
        }
    }
}

/// Records that one value is complete: decrements the innermost open array
/// and closes every array this completes. Returns `true` when no array is
/// left open, i.e. the top-level frame is complete.
fn value_completed(open: &mut Vec<usize>) -> bool {
    while let Some(remaining) = open.last_mut() {
        *remaining = remaining.saturating_sub(1);
        if *remaining > 0 {
            return false;
        }
        open.pop();
    }
    true
}

/// One item found by [`RespCodec::walk`]; ranges index the walked bytes.
#[derive(Debug)]
enum Event {
    Simple(Range<usize>),
    Error(Range<usize>),
    Integer(i64),
    Bulk(Range<usize>),
    Nil,
    /// An array header with this many elements; they follow as events.
    Array(usize),
}

/// Finds the `\r\n` ending the line whose content starts at `start`.
///
/// Returns `(content_end, next_pos)`, `None` if the line may still be
/// completed by more bytes, or an error if the content exceeds `limit` or
/// contains a bare `\r` or `\n`. Scans at most `limit + 2` bytes.
fn find_line(src: &[u8], start: usize, limit: usize) -> Result<Option<(usize, usize)>, RespError> {
    let rest = src.get(start..).unwrap_or_default();
    let window = rest.get(..limit.saturating_add(1)).unwrap_or(rest);
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) => {
            let end = start + i;
            match (rest.get(i), rest.get(i + 1)) {
                (Some(b'\r'), Some(b'\n')) => Ok(Some((end, end + 2))),
                (Some(b'\r'), None) => Ok(None),
                _ => Err(RespError::MissingCrlf),
            }
        }
        None if rest.len() > limit => Err(RespError::LineTooLong { limit }),
        None => Ok(None),
    }
}

/// Reads an integer line starting at `start`; see [`parse_int`].
fn read_int(src: &[u8], start: usize) -> Result<Option<(i64, usize)>, RespError> {
    match find_line(src, start, MAX_INT_LINE)? {
        None => Ok(None),
        Some((end, next)) => {
            let digits = src.get(start..end).unwrap_or_default();
            Ok(Some((parse_int(digits)?, next)))
        }
    }
}

/// Parses `-?[0-9]+` into an `i64`, rejecting anything else and overflow.
fn parse_int(text: &[u8]) -> Result<i64, RespError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(RespError::InvalidInteger);
    }
    let mut magnitude: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(RespError::InvalidInteger);
        }
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(d - b'0')))
            .ok_or(RespError::InvalidInteger)?;
    }
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    value.ok_or(RespError::InvalidInteger)
}

/// Assembles a [`Value`] from the events of a walk over a complete frame.
#[derive(Debug, Default)]
struct Builder {
    /// Open arrays, innermost last: elements so far and elements still due.
    open: Vec<(Vec<Value>, usize)>,
    done: Option<Value>,
}

impl Builder {
    fn push(&mut self, event: Event, frame: &Bytes) {
        let mut value = match event {
            Event::Simple(r) => Value::Simple(frame.slice(r)),
            Event::Error(r) => Value::Error(frame.slice(r)),
            Event::Integer(n) => Value::Integer(n),
            Event::Bulk(r) => Value::Bulk(frame.slice(r)),
            Event::Nil => Value::Nil,
            Event::Array(0) => Value::Array(Vec::new()),
            Event::Array(len) => {
                // `len` is within `max_array_len` and the whole frame, with
                // at least 3 bytes per element, is already in memory, so this
                // preallocation is bounded by what the peer actually sent.
                self.open.push((Vec::with_capacity(len), len));
                return;
            }
        };
        loop {
            match self.open.last_mut() {
                None => {
                    self.done = Some(value);
                    return;
                }
                Some((items, remaining)) => {
                    items.push(value);
                    *remaining = remaining.saturating_sub(1);
                    if *remaining > 0 {
                        return;
                    }
                }
            }
            match self.open.pop() {
                Some((items, _)) => value = Value::Array(items),
                None => return,
            }
        }
    }
}

impl Decoder for RespCodec {
    type Item = Value;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Value>, RespError> {
        // Pass 1: is a whole, valid frame there? Builds nothing.
        let Some(len) = self.walk(src, |_| {})? else {
            return Ok(None);
        };
        // Pass 2: build it from the frozen frame, slicing strings zero-copy.
        let frame = src.split_to(len).freeze();
        let mut builder = Builder::default();
        let walked = self.walk(&frame, |event| builder.push(event, &frame))?;
        match (walked, builder.done) {
            (Some(n), Some(value)) if n == len => Ok(Some(value)),
            // Unreachable: the walk is deterministic and never reads past the
            // frame it reported. Kept as an error rather than a panic.
            _ => Err(RespError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "resp: decoder invariant violated",
            ))),
        }
    }
}

impl Encoder<&Value> for RespCodec {
    type Error = RespError;

    /// Writes `item` as RESP2, reserving exactly the bytes it needs.
    /// On error nothing is written.
    fn encode(&mut self, item: &Value, dst: &mut BytesMut) -> Result<(), RespError> {
        let len = encoded_len(item)?;
        dst.reserve(len);
        write_value(item, dst);
        Ok(())
    }
}

impl Encoder<Value> for RespCodec {
    type Error = RespError;

    /// Writes `item` as RESP2; see the `Encoder<&Value>` implementation.
    fn encode(&mut self, item: Value, dst: &mut BytesMut) -> Result<(), RespError> {
        self.encode(&item, dst)
    }
}

/// The exact encoded size of `value`; fails if a simple string or error
/// contains CR or LF.
fn encoded_len(value: &Value) -> Result<usize, RespError> {
    Ok(match value {
        Value::Simple(s) | Value::Error(s) => {
            if s.iter().any(|&b| b == b'\r' || b == b'\n') {
                return Err(RespError::InvalidSimpleString);
            }
            1 + s.len() + 2
        }
        Value::Integer(n) => 1 + decimal_len(*n < 0, n.unsigned_abs()) + 2,
        Value::Bulk(b) => 1 + decimal_len(false, b.len() as u64) + 2 + b.len() + 2,
        Value::Nil => 5,
        Value::Array(items) => {
            let mut len = 1 + decimal_len(false, items.len() as u64) + 2;
            for item in items {
                len += encoded_len(item)?;
            }
            len
        }
    })
}

/// Writes `value`; [`encoded_len`] must have validated it.
fn write_value(value: &Value, dst: &mut BytesMut) {
    match value {
        Value::Simple(s) => write_line(dst, b'+', s),
        Value::Error(s) => write_line(dst, b'-', s),
        Value::Integer(n) => write_line(dst, b':', format_decimal(*n < 0, n.unsigned_abs(), &mut [0; 20])),
        Value::Bulk(b) => {
            write_line(dst, b'$', format_decimal(false, b.len() as u64, &mut [0; 20]));
            dst.put_slice(b);
            dst.put_slice(b"\r\n");
        }
        Value::Nil => dst.put_slice(b"$-1\r\n"),
        Value::Array(items) => {
            write_line(dst, b'*', format_decimal(false, items.len() as u64, &mut [0; 20]));
            for item in items {
                write_value(item, dst);
            }
        }
    }
}

fn write_line(dst: &mut BytesMut, tag: u8, content: &[u8]) {
    dst.put_u8(tag);
    dst.put_slice(content);
    dst.put_slice(b"\r\n");
}

/// Number of bytes of `magnitude` in decimal, plus one for a minus sign.
fn decimal_len(negative: bool, mut magnitude: u64) -> usize {
    let mut len = usize::from(negative) + 1;
    while magnitude >= 10 {
        magnitude /= 10;
        len += 1;
    }
    len
}

/// Formats a number in decimal into `buf`. `negative` is only ever set for
/// an `i64`'s magnitude (at most 19 digits), so 20 bytes always suffice.
fn format_decimal(negative: bool, mut magnitude: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(value: &Value) -> BytesMut {
        let mut buf = BytesMut::new();
        RespCodec::new().encode(value, &mut buf).unwrap();
        buf
    }

    fn decode_all(codec: &mut RespCodec, bytes: &[u8]) -> Result<Vec<Value>, RespError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(v) = codec.decode(&mut buf)? {
            out.push(v);
        }
        assert!(buf.is_empty(), "leftover bytes: {buf:?}");
        Ok(out)
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Value>, RespError> {
        RespCodec::new().decode(&mut BytesMut::from(bytes))
    }

    fn decode_err(codec: RespCodec, bytes: &[u8]) -> RespError {
        let mut codec = codec;
        match codec.decode(&mut BytesMut::from(bytes)) {
            Err(e) => e,
            Ok(v) => panic!("expected an error for {bytes:?}, got {v:?}"),
        }
    }

    #[test]
    fn encodes_every_type_exactly() {
        let cases: Vec<(Value, &[u8])> = vec![
            (Value::simple("OK"), b"+OK\r\n"),
            (Value::simple(""), b"+\r\n"),
            (Value::error("ERR bad"), b"-ERR bad\r\n"),
            (Value::Integer(42), b":42\r\n"),
            (Value::Integer(0), b":0\r\n"),
            (Value::Integer(-7), b":-7\r\n"),
            (Value::Integer(i64::MAX), b":9223372036854775807\r\n"),
            (Value::Integer(i64::MIN), b":-9223372036854775808\r\n"),
            (Value::bulk("foo"), b"$3\r\nfoo\r\n"),
            (Value::bulk(""), b"$0\r\n\r\n"),
            (Value::bulk(&b"a\r\nb"[..]), b"$4\r\na\r\nb\r\n"),
            (Value::Nil, b"$-1\r\n"),
            (Value::Array(vec![]), b"*0\r\n"),
            (
                Value::Array(vec![Value::Integer(1), Value::Array(vec![Value::Nil])]),
                b"*2\r\n:1\r\n*1\r\n$-1\r\n",
            ),
            (
                Value::command(["SET", "k", "v"]),
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            ),
        ];
        for (value, expected) in cases {
            let buf = encode(&value);
            assert_eq!(&buf[..], expected, "encoding {value:?}");
            assert_eq!(encoded_len(&value).unwrap(), expected.len());
            // Owned and borrowed encoders agree.
            let mut owned = BytesMut::new();
            RespCodec::new().encode(value, &mut owned).unwrap();
            assert_eq!(&owned[..], expected);
        }
        let big = Value::bulk(vec![b'x'; 1234]);
        assert_eq!(&encode(&big)[..7], b"$1234\r\n");
        assert_eq!(encode(&big).len(), 7 + 1234 + 2);
    }

    #[test]
    fn encoding_cr_or_lf_in_simple_string_fails_and_writes_nothing() {
        for bad in [
            Value::simple("a\rb"),
            Value::simple("a\nb"),
            Value::error("ERR\r\n"),
            Value::Array(vec![Value::Integer(1), Value::simple("x\n")]),
        ] {
            let mut buf = BytesMut::from(&b"prefix"[..]);
            let err = RespCodec::new().encode(&bad, &mut buf).unwrap_err();
            assert!(matches!(err, RespError::InvalidSimpleString), "{err:?}");
            assert_eq!(&buf[..], b"prefix");
        }
    }

    #[test]
    fn decodes_every_type() {
        let cases: Vec<(&[u8], Value)> = vec![
            (b"+OK\r\n", Value::simple("OK")),
            (b"+\r\n", Value::simple("")),
            (b"-ERR unknown command\r\n", Value::error("ERR unknown command")),
            (b":42\r\n", Value::Integer(42)),
            (b":-0\r\n", Value::Integer(0)),
            (b":007\r\n", Value::Integer(7)),
            (b":9223372036854775807\r\n", Value::Integer(i64::MAX)),
            (b":-9223372036854775808\r\n", Value::Integer(i64::MIN)),
            (b"$3\r\nfoo\r\n", Value::bulk("foo")),
            (b"$0\r\n\r\n", Value::bulk("")),
            (b"$4\r\n\r\n\r\n\r\n", Value::bulk("\r\n\r\n")),
            (b"$-1\r\n", Value::Nil),
            (b"*-1\r\n", Value::Nil),
            (b"*0\r\n", Value::Array(vec![])),
            (
                b"*3\r\n:1\r\n$1\r\na\r\n+b\r\n",
                Value::Array(vec![Value::Integer(1), Value::bulk("a"), Value::simple("b")]),
            ),
        ];
        for (bytes, expected) in cases {
            let mut buf = BytesMut::from(bytes);
            let got = RespCodec::new().decode(&mut buf).unwrap();
            assert_eq!(got, Some(expected), "decoding {bytes:?}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn decodes_nested_arrays_and_nils() {
        let bytes = b"*3\r\n*2\r\n*0\r\n*1\r\n$-1\r\n*-1\r\n*1\r\n-E\r\n";
        let expected = Value::Array(vec![
            Value::Array(vec![Value::Array(vec![]), Value::Array(vec![Value::Nil])]),
            Value::Nil,
            Value::Array(vec![Value::error("E")]),
        ]);
        assert_eq!(decode_one(bytes).unwrap(), Some(expected));
    }

    #[test]
    fn byte_by_byte_returns_none_until_complete() {
        let value = Value::Array(vec![
            Value::command(["GET", "key"]),
            Value::Integer(-12),
            Value::simple("OK"),
            Value::error("ERR x"),
            Value::Nil,
            Value::bulk(&b"bin\r\nary"[..]),
            Value::Array(vec![]),
        ]);
        let bytes = encode(&value);
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::new();
        for (i, &b) in bytes.iter().enumerate() {
            buf.put_u8(b);
            let got = codec.decode(&mut buf).unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(got, None, "complete too early at byte {i}");
                assert_eq!(buf.len(), i + 1, "consumed bytes of a partial frame");
            } else {
                assert_eq!(got, Some(value.clone()));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let bytes = b"+OK\r\n:1\r\n$-1\r\n*1\r\n$1\r\nx\r\n-ERR\r\n+part";
        let mut codec = RespCodec::new();
        let mut buf = BytesMut::from(&bytes[..]);
        let mut got = Vec::new();
        while let Some(v) = codec.decode(&mut buf).unwrap() {
            got.push(v);
        }
        assert_eq!(
            got,
            vec![
                Value::simple("OK"),
                Value::Integer(1),
                Value::Nil,
                Value::Array(vec![Value::bulk("x")]),
                Value::error("ERR"),
            ]
        );
        assert_eq!(&buf[..], b"+part");
    }

    #[test]
    fn empty_and_partial_input_is_none() {
        for partial in [
            &b""[..],
            b"+",
            b"+OK",
            b"+OK\r",
            b":12",
            b"$",
            b"$3",
            b"$3\r\n",
            b"$3\r\nfo",
            b"$3\r\nfoo",
            b"$3\r\nfoo\r",
            b"*2\r\n:1\r\n",
            b"*1\r\n*1\r\n",
        ] {
            let mut buf = BytesMut::from(partial);
            assert_eq!(RespCodec::new().decode(&mut buf).unwrap(), None, "{partial:?}");
            assert_eq!(&buf[..], partial);
        }
    }

    #[test]
    fn bulk_is_a_zero_copy_slice_of_the_buffer() {
        let mut buf = BytesMut::from(&b"*2\r\n$5\r\nhello\r\n+hi\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let Some(Value::Array(items)) = RespCodec::new().decode(&mut buf).unwrap() else {
            panic!("expected an array");
        };
        let [Value::Bulk(b), Value::Simple(s)] = &items[..] else {
            panic!("unexpected items {items:?}");
        };
        assert_eq!(b.as_ptr() as usize, base + 8);
        assert_eq!(s.as_ptr() as usize, base + 16);
    }

    #[test]
    fn huge_bulk_header_fails_without_reserving() {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"$4294967296\r\n");
        let cap = buf.capacity();
        let err = RespCodec::new().decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                RespError::TooLarge { what: "bulk string", len: 4_294_967_296, limit } if limit == DEFAULT_MAX_BULK_LEN as u64
            ),
            "{err:?}"
        );
        assert_eq!(buf.capacity(), cap);
        // Also before the payload could even be checked: just above the limit.
        let err = decode_err(RespCodec::new().with_max_bulk_len(3), b"$4\r\n");
        assert!(
            matches!(err, RespError::TooLarge { len: 4, limit: 3, .. }),
            "{err:?}"
        );
        // At the limit is fine.
        assert_eq!(
            RespCodec::new()
                .with_max_bulk_len(3)
                .decode(&mut BytesMut::from(&b"$3\r\nabc\r\n"[..]))
                .unwrap(),
            Some(Value::bulk("abc"))
        );
    }

    #[test]
    fn huge_array_header_fails_without_reserving() {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"*99999999999\r\n");
        let cap = buf.capacity();
        let err = RespCodec::new().decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                RespError::TooLarge {
                    what: "array",
                    len: 99_999_999_999,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(buf.capacity(), cap);
        let err = decode_err(RespCodec::new().with_max_array_len(2), b"*3\r\n");
        assert!(
            matches!(
                err,
                RespError::TooLarge {
                    what: "array",
                    len: 3,
                    limit: 2
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn nesting_deeper_than_limit_fails() {
        let codec = RespCodec::new().with_max_depth(2);
        assert_eq!(
            codec
                .clone()
                .decode(&mut BytesMut::from(&b"*1\r\n*1\r\n:1\r\n"[..]))
                .unwrap(),
            Some(Value::Array(vec![Value::Array(vec![Value::Integer(1)])]))
        );
        // Detected from the headers alone, before the frame is complete.
        let err = decode_err(codec.clone(), b"*1\r\n*1\r\n*0\r\n");
        assert!(matches!(err, RespError::TooDeep { limit: 2 }), "{err:?}");
        let err = decode_err(codec, b"*1\r\n*1\r\n*5\r\n");
        assert!(matches!(err, RespError::TooDeep { limit: 2 }), "{err:?}");
        // Null arrays do not count as nesting.
        let codec = RespCodec::new().with_max_depth(0);
        assert_eq!(
            codec
                .clone()
                .decode(&mut BytesMut::from(&b"*-1\r\n"[..]))
                .unwrap(),
            Some(Value::Nil)
        );
        assert!(matches!(
            decode_err(codec, b"*0\r\n"),
            RespError::TooDeep { limit: 0 }
        ));
        // The default depth stops a long chain of headers.
        let deep = b"*1\r\n".repeat(DEFAULT_MAX_DEPTH + 1);
        assert!(matches!(
            decode_err(RespCodec::new(), &deep),
            RespError::TooDeep { .. }
        ));
    }

    #[test]
    fn long_lines_fail_without_buffering_forever() {
        let codec = RespCodec::new().with_max_line_len(4);
        // Exactly at the limit is fine, with or without the CRLF yet.
        assert_eq!(
            codec.clone().decode(&mut BytesMut::from(&b"+abcd"[..])).unwrap(),
            None
        );
        assert_eq!(
            codec
                .clone()
                .decode(&mut BytesMut::from(&b"+abcd\r"[..]))
                .unwrap(),
            None
        );
        assert_eq!(
            codec
                .clone()
                .decode(&mut BytesMut::from(&b"+abcd\r\n"[..]))
                .unwrap(),
            Some(Value::simple("abcd"))
        );
        // One more byte, with no CRLF in sight: error now.
        for bad in [&b"+abcde"[..], b"-abcde", b"+abcde\r\n"] {
            let err = decode_err(codec.clone(), bad);
            assert!(
                matches!(err, RespError::LineTooLong { limit: 4 }),
                "{bad:?}: {err:?}"
            );
        }
        // Integer and length lines are limited to 20 bytes of content.
        for bad in [
            &b":000000000000000000001"[..],
            b"$000000000000000000001",
            b"*000000000000000000001",
        ] {
            let err = decode_err(RespCodec::new(), bad);
            assert!(
                matches!(err, RespError::LineTooLong { limit: 20 }),
                "{bad:?}: {err:?}"
            );
        }
        assert_eq!(
            decode_one(b":00000000000000000001\r\n").unwrap(),
            Some(Value::Integer(1))
        );
    }

    #[test]
    fn strict_integers() {
        for bad in [
            &b":\r\n"[..],
            b":-\r\n",
            b":+1\r\n",
            b": 1\r\n",
            b":1 \r\n",
            b":1a\r\n",
            b":--1\r\n",
            b":0x10\r\n",
            b":9223372036854775808\r\n",
            b":-9223372036854775809\r\n",
            b":99999999999999999999\r\n",
            b"$x\r\n",
            b"*\r\n",
            b"$99999999999999999999\r\n",
        ] {
            let err = decode_err(RespCodec::new(), bad);
            assert!(matches!(err, RespError::InvalidInteger), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn lengths_below_minus_one_fail() {
        for (bad, n) in [
            (&b"$-2\r\n"[..], -2),
            (b"*-2\r\n", -2),
            (b"$-9223372036854775808\r\n", i64::MIN),
        ] {
            let err = decode_err(RespCodec::new(), bad);
            assert!(
                matches!(err, RespError::InvalidLength(got) if got == n),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn bulk_without_trailing_crlf_fails() {
        for bad in [
            &b"$3\r\nfooXY"[..],
            b"$3\r\nfooX",
            b"$3\r\nfoo\rX",
            b"$3\r\nfoo\n\r",
            b"$0\r\n\n",
        ] {
            let err = decode_err(RespCodec::new(), bad);
            assert!(matches!(err, RespError::MissingCrlf), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn bare_cr_or_lf_in_line_fails() {
        for bad in [
            &b"+a\nb\r\n"[..],
            b"+a\rb\r\n",
            b"-\n",
            b":1\n",
            b"$3\rx",
            b"*1\n",
        ] {
            let err = decode_err(RespCodec::new(), bad);
            assert!(matches!(err, RespError::MissingCrlf), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn unknown_type_byte_fails() {
        for (bad, tag) in [
            (&b"!oops\r\n"[..], b'!'),
            (b"\r\n", b'\r'),
            (b"*1\r\nx", b'x'),
            (b"%1\r\n", b'%'),
        ] {
            let err = decode_err(RespCodec::new(), bad);
            assert!(
                matches!(err, RespError::InvalidTypeByte(t) if t == tag),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn eof_mid_frame_is_an_io_error() {
        let mut buf = BytesMut::from(&b"$3\r\nfo"[..]);
        let err = RespCodec::new().decode_eof(&mut buf).unwrap_err();
        assert!(matches!(err, RespError::Io(_)), "{err:?}");
    }

    #[test]
    fn codec_defaults_and_setters() {
        let c = RespCodec::default();
        assert_eq!(c.max_bulk_len(), 16 * 1024 * 1024);
        assert_eq!(c.max_array_len(), 1_048_576);
        assert_eq!(c.max_depth(), 32);
        assert_eq!(c.max_line_len(), 64 * 1024);
        let c = c
            .with_max_bulk_len(1)
            .with_max_array_len(2)
            .with_max_depth(3)
            .with_max_line_len(4);
        assert_eq!(
            (
                c.max_bulk_len(),
                c.max_array_len(),
                c.max_depth(),
                c.max_line_len()
            ),
            (1, 2, 3, 4)
        );
    }

    #[test]
    fn decodes_what_it_encodes_for_the_doc_example() {
        let mut codec = RespCodec::new();
        let replies = decode_all(&mut codec, b"+OK\r\n$5\r\nhello\r\n").unwrap();
        assert_eq!(replies, vec![Value::simple("OK"), Value::bulk("hello")]);
    }

    // ---- property tests ----

    fn line_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
            0..16,
        )
        .prop_map(Bytes::from)
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            line_bytes().prop_map(Value::Simple),
            line_bytes().prop_map(Value::Error),
            any::<i64>().prop_map(Value::Integer),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Value::Bulk(Bytes::from(v))),
            Just(Value::Nil),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(Value::Array)
        })
    }

    /// Checks a decoded value against a codec's limits; returns its depth.
    fn within_limits(v: &Value, c: &RespCodec) -> usize {
        match v {
            Value::Bulk(b) => {
                assert!(b.len() <= c.max_bulk_len());
                0
            }
            Value::Simple(s) | Value::Error(s) => {
                assert!(s.len() <= c.max_line_len());
                assert!(!s.contains(&b'\r') && !s.contains(&b'\n'));
                0
            }
            Value::Array(items) => {
                assert!(items.len() <= c.max_array_len());
                let depth = 1 + items.iter().map(|i| within_limits(i, c)).max().unwrap_or(0);
                assert!(depth <= c.max_depth());
                depth
            }
            Value::Integer(_) | Value::Nil => 0,
        }
    }

    /// Feeds `bytes` to `codec` in pieces cut at `cuts`, collecting values
    /// until the input ends or an error occurs.
    fn feed_in_pieces(
        codec: &mut RespCodec,
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<Value>, Option<RespError>, BytesMut) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.push(bytes.len());
        points.sort_unstable();
        let mut buf = BytesMut::new();
        let mut values = Vec::new();
        let mut start = 0;
        for p in points {
            buf.extend_from_slice(&bytes[start..p]);
            start = p;
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(v)) => values.push(v),
                    Ok(None) => break,
                    Err(e) => return (values, Some(e), buf),
                }
            }
        }
        (values, None, buf)
    }

    proptest! {
        #[test]
        fn prop_round_trip(value in arb_value()) {
            let mut codec = RespCodec::new();
            let mut buf = BytesMut::new();
            codec.encode(&value, &mut buf).unwrap();
            prop_assert_eq!(buf.len(), encoded_len(&value).unwrap());
            buf.extend_from_slice(b"+next\r\n");
            // Nil arrays are not produced by the encoder, so decoding is exact.
            prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(value));
            prop_assert_eq!(&buf[..], b"+next\r\n");
        }

        #[test]
        fn prop_round_trip_in_pieces(values in proptest::collection::vec(arb_value(), 1..4),
                                     cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
            let mut codec = RespCodec::new();
            let mut bytes = BytesMut::new();
            for v in &values {
                codec.encode(v, &mut bytes).unwrap();
            }
            let (got, err, rest) = feed_in_pieces(&mut codec, &bytes, &cuts);
            prop_assert!(err.is_none(), "{:?}", err);
            prop_assert_eq!(got, values);
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256),
                                            cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
            let mut codec = RespCodec::new()
                .with_max_bulk_len(16)
                .with_max_array_len(4)
                .with_max_depth(3)
                .with_max_line_len(8);
            let (values, _err, _rest) = feed_in_pieces(&mut codec, &bytes, &cuts);
            for v in &values {
                within_limits(v, &codec);
            }
        }

        #[test]
        fn prop_mutated_frames_never_panic(value in arb_value(),
                                           edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let mut bytes = encode(&value).to_vec();
            for (at, byte) in edits {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let mut codec = RespCodec::new()
                .with_max_bulk_len(32)
                .with_max_array_len(6)
                .with_max_depth(3)
                .with_max_line_len(12);
            let (values, _err, _rest) = feed_in_pieces(&mut codec, &bytes, &cuts);
            for v in &values {
                within_limits(v, &codec);
            }
        }
    }
}
