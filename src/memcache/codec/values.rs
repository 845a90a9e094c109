//! The answer to a multi-key `get` (memcached's text protocol, which the
//! meta protocol has no one-request equivalent of): a `VALUE` block per key
//! found, in the order asked, then `END`.

use super::{head, line_end, parse, value_len};
use crate::memcache::reply::{Reply, Status};
use crate::memcache::CodecError;
use bytes::{Buf, BytesMut};
use std::ops::Range;

/// One whole answer to a `get` of `keys` keys, or `None` while it is not
/// all there. Every block's length is checked against `max_value_len`
/// before anything is reserved for it, and there are never more blocks
/// than keys asked for, so what is buffered is bounded by the request.
/// An incomplete answer is walked again from its start on the next call.
pub(super) fn decode(
    src: &mut BytesMut,
    keys: usize,
    max_line_len: usize,
    max_value_len: usize,
) -> Result<Option<Reply>, CodecError> {
    let mut pos = 0;
    let mut found: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    loop {
        let rest = &src[pos..];
        let Some(eol) = line_end(rest, max_line_len)? else {
            return Ok(None);
        };
        let line = &rest[..eol];
        if line == b"END" {
            let frame = src.split_to(pos + eol + 2).freeze();
            let mut reply = Reply::new(Status::Values);
            reply.values = found
                .into_iter()
                .map(|(key, value)| (frame.slice(key), frame.slice(value)))
                .collect();
            return Ok(Some(reply));
        }
        let Some(header) = line.strip_prefix(b"VALUE ") else {
            // An error line answers the whole get.
            let (status, _) = head(line, max_value_len)?;
            let reply = Reply::new(status);
            if !reply.is_error() {
                return Err(CodecError::UnknownReply(
                    String::from_utf8_lossy(line).into_owned(),
                ));
            }
            src.advance(pos + eol + 2);
            return Ok(Some(reply));
        };
        if found.len() == keys {
            return Err(CodecError::UnknownReply(
                "more VALUE blocks than keys asked for".into(),
            ));
        }
        let mut tokens = header.split(|&b| b == b' ');
        let key = tokens.next().unwrap_or_default();
        let _flags: u32 = tokens
            .next()
            .and_then(parse)
            .ok_or(CodecError::InvalidNumber("client flags"))?;
        let len = value_len(tokens.next(), max_value_len)?;
        let key_start = pos + b"VALUE ".len();
        let data = pos + eol + 2;
        let end = data + len;
        if src.len() < end + 2 {
            // Checked against the limit above: reserving is safe.
            src.reserve(end + 2 - src.len());
            return Ok(None);
        }
        if src.get(end..end + 2) != Some(&b"\r\n"[..]) {
            return Err(CodecError::MissingCrlf);
        }
        found.push((key_start..key_start + key.len(), data..end));
        pos = end + 2;
    }
}
