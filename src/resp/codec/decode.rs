//! The RESP2 [`Decoder`]: frames a byte stream into [`Value`]s, treating the
//! peer as untrusted.
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

use super::RespCodec;
use crate::resp::{RespError, Value};
use bytes::{Bytes, BytesMut};
use std::io;
use std::ops::Range;
use tokio_util::codec::Decoder;

/// Longest valid content of an integer or length line: `-9223372036854775808`.
const MAX_INT_LINE: usize = 20;

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

impl RespCodec {
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
