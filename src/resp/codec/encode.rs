//! The RESP2 [`Encoder`]: writes a [`Value`] in one go, reserving exactly
//! the bytes it needs, and writes nothing if the value cannot be encoded.

use super::RespCodec;
use crate::resp::{RespError, Value};
use bytes::{BufMut, BytesMut};
use tokio_util::codec::Encoder;

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
pub(super) fn encoded_len(value: &Value) -> Result<usize, RespError> {
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
