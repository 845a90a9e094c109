//! The codec's unit and property tests: exact encodings, every decoding
//! error, partial input, and round trips of arbitrary values.

use super::encode::encoded_len;
use super::*;
use crate::resp::{RespError, Value};
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

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
