use super::*;
use crate::memcache::{Key, SetMode};
use bytes::Bytes;
use proptest::prelude::*;

fn key(k: &str) -> Key {
    Key::new(Bytes::copy_from_slice(k.as_bytes())).unwrap()
}

fn encoded(codec: &mut MemcacheCodec, request: Request) -> Vec<u8> {
    let mut out = BytesMut::new();
    codec.encode(request, &mut out).unwrap();
    out.to_vec()
}

fn decode_all(codec: &mut MemcacheCodec, bytes: &[u8]) -> Result<Vec<Reply>, CodecError> {
    let mut src = BytesMut::from(bytes);
    let mut replies = Vec::new();
    while let Some(reply) = codec.decode(&mut src)? {
        replies.push(reply);
    }
    Ok(replies)
}

#[test]
fn every_command_is_written_as_the_meta_protocol_says() {
    let mut codec = MemcacheCodec::new();
    assert_eq!(
        encoded(&mut codec, Request::GetItem { key: key("a") }),
        b"mg a v f c O0\r\n"
    );
    assert_eq!(
        encoded(
            &mut codec,
            Request::Touch {
                key: key("a"),
                ttl: 30
            }
        ),
        b"mg a T30 O1\r\n"
    );
    assert_eq!(
        encoded(
            &mut codec,
            Request::Set {
                key: key("a"),
                value: Bytes::from_static(b"x\r\ny"),
                ttl: 0,
                flags: 7,
                cas: Some(99),
                mode: SetMode::Add,
            }
        ),
        b"ms a 4 T0 F7 C99 ME O2\r\nx\r\ny\r\n"
    );
    assert_eq!(
        encoded(
            &mut codec,
            Request::Delete {
                key: key("a"),
                cas: None
            }
        ),
        b"md a O3\r\n"
    );
    assert_eq!(
        encoded(
            &mut codec,
            Request::Arithmetic {
                key: key("n"),
                delta: 5,
                decrement: true
            }
        ),
        b"ma n v D5 MD O4\r\n"
    );
    assert_eq!(encoded(&mut codec, Request::NoOp), b"mn\r\n");
    assert_eq!(
        encoded(&mut codec, Request::Get { key: key("a b") }),
        b"mg YSBi b v O5\r\n"
    );
    // The length of `ms` comes before every flag, `b` included.
    assert_eq!(
        encoded(
            &mut codec,
            Request::Set {
                key: key("a b"),
                value: Bytes::from_static(b"v"),
                ttl: 1,
                flags: 0,
                cas: None,
                mode: SetMode::Set,
            }
        ),
        b"ms YSBi 1 b T1 F0 O6\r\nv\r\n"
    );
}

#[test]
fn answers_are_decoded_with_their_flags_and_values() {
    let mut codec = MemcacheCodec::new();
    for request in [
        Request::Get { key: key("a") },
        Request::Get { key: key("b") },
        Request::Delete {
            key: key("c"),
            cas: None,
        },
        Request::NoOp,
        Request::Get { key: key("d") },
        Request::Get { key: key("e") },
    ] {
        encoded(&mut codec, request);
    }
    let replies = decode_all(
        &mut codec,
        b"VA 3 f5 c12 O0\r\n\r\n\x00\r\nEN O1\r\nNF O2\r\nMN\r\nSERVER_ERROR object too large for cache\r\nCLIENT_ERROR bad command line format\r\n",
    )
    .unwrap();
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0].value.as_deref(), Some(&b"\r\n\x00"[..]));
    assert_eq!((replies[0].flags, replies[0].cas), (Some(5), Some(12)));
    assert_eq!(replies[1].status, Status::Miss);
    assert_eq!(replies[2].status, Status::NotFound);
    assert_eq!(replies[3].status, Status::NoOp);
    assert_eq!(
        replies[4].status,
        Status::ServerError("object too large for cache".into())
    );
    assert_eq!(
        replies[5].status,
        Status::ClientError("bad command line format".into())
    );
}

#[test]
fn an_answer_with_another_request_s_token_is_a_typed_error() {
    let mut codec = MemcacheCodec::new();
    encoded(&mut codec, Request::Get { key: key("a") });
    encoded(&mut codec, Request::Get { key: key("b") });
    assert!(matches!(
        decode_all(&mut codec, b"EN O1\r\n"),
        Err(CodecError::OpaqueMismatch {
            expected: Some(0),
            got: Some(1)
        })
    ));
    // An answer without its token, or an MN for a get, is out of step too.
    let mut codec = MemcacheCodec::new();
    encoded(&mut codec, Request::Get { key: key("a") });
    assert!(matches!(
        decode_all(&mut codec, b"MN\r\n"),
        Err(CodecError::OpaqueMismatch { got: None, .. })
    ));
    let mut codec = MemcacheCodec::new();
    encoded(&mut codec, Request::NoOp);
    assert!(matches!(
        decode_all(&mut codec, b"HD O0\r\n"),
        Err(CodecError::OpaqueMismatch { expected: None, .. })
    ));
    // An answer nobody asked for.
    assert!(matches!(
        decode_all(&mut MemcacheCodec::new(), b"HD\r\n"),
        Err(CodecError::Unsolicited)
    ));
}

#[test]
fn without_opaque_tokens_answers_are_taken_in_order() {
    let mut codec = MemcacheCodec::new().without_opaque();
    assert_eq!(encoded(&mut codec, Request::Get { key: key("a") }), b"mg a v\r\n");
    assert_eq!(decode_all(&mut codec, b"EN\r\n").unwrap()[0].status, Status::Miss);
}

#[test]
fn bad_input_is_a_typed_error_before_any_allocation() {
    let mut codec = MemcacheCodec::new().with_max_value_len(1024);
    encoded(&mut codec, Request::Get { key: key("a") });
    let mut src = BytesMut::from(&b"VA 18446744073709551615 O0\r\n"[..]);
    assert!(matches!(
        codec.decode(&mut src),
        Err(CodecError::ValueTooLarge { limit: 1024, .. })
    ));
    assert!(src.capacity() < 1024, "nothing reserved for the claimed length");
    let bad: [&[u8]; 7] = [
        b"HD O0\n",
        b"VA x O0\r\n",
        b"VA 99999999999999999999999 O0\r\n",
        b"XY O0\r\n",
        b"HD cNaN O0\r\n",
        b"HD O-1\r\n",
        b"VA 1 O0\r\nab\r\n",
    ];
    for input in bad {
        let mut codec = MemcacheCodec::new();
        encoded(&mut codec, Request::Get { key: key("a") });
        assert!(
            decode_all(&mut codec, input).is_err(),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut codec = MemcacheCodec::new().with_max_line_len(16);
    encoded(&mut codec, Request::Get { key: key("a") });
    assert!(matches!(
        codec.decode(&mut BytesMut::from(&[b'H'; 64][..])),
        Err(CodecError::LineTooLong { limit: 16 })
    ));
}

proptest! {
    /// Whatever the server sends, the decoder answers, fails or waits; it
    /// never panics — after meta commands and after a multi-key get.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), multi in any::<bool>()) {
        let mut codec = MemcacheCodec::new().with_max_value_len(256).with_max_line_len(64);
        for _ in 0..8 {
            if multi {
                get_multi(&mut codec, &["a", "b"]);
            } else {
                encoded(&mut codec, Request::Get { key: key("a") });
            }
        }
        let _ = decode_all(&mut codec, &bytes);
    }

    /// A value of any bytes, cut anywhere, comes back whole.
    #[test]
    fn values_survive_any_split(value in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..400) {
        let mut codec = MemcacheCodec::new();
        encoded(&mut codec, Request::Get { key: key("a") });
        let mut wire = format!("VA {} f1 c2 O0\r\n", value.len()).into_bytes();
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n");
        let cut = cut.min(wire.len());
        let mut src = BytesMut::from(&wire[..cut]);
        let mut reply = codec.decode(&mut src).unwrap();
        if reply.is_none() {
            src.extend_from_slice(&wire[cut..]);
            reply = codec.decode(&mut src).unwrap();
        }
        let reply = reply.unwrap();
        prop_assert_eq!(reply.value.as_deref(), Some(&value[..]));
        prop_assert!(src.is_empty());
    }
}

fn get_multi(codec: &mut MemcacheCodec, keys: &[&str]) -> Vec<u8> {
    encoded(
        codec,
        Request::GetMulti {
            keys: keys.iter().map(|k| key(k)).collect(),
        },
    )
}

#[test]
fn a_multi_key_get_is_one_request_and_one_answer_between_meta_ones() {
    let mut codec = MemcacheCodec::new();
    encoded(&mut codec, Request::Get { key: key("a") });
    assert_eq!(get_multi(&mut codec, &["a", "b", "c"]), b"get a b c\r\n");
    encoded(&mut codec, Request::NoOp);
    let wire = b"EN O0\r\nVALUE a 0 2\r\nx\n\r\nVALUE c 5 0\r\n\r\nEND\r\nMN\r\n";
    // Cut anywhere, the answers come out the same.
    for cut in 0..wire.len() {
        let mut codec = codec.clone();
        let mut src = BytesMut::from(&wire[..cut]);
        let mut replies = Vec::new();
        while let Some(reply) = codec.decode(&mut src).unwrap() {
            replies.push(reply);
        }
        src.extend_from_slice(&wire[cut..]);
        while let Some(reply) = codec.decode(&mut src).unwrap() {
            replies.push(reply);
        }
        assert_eq!(replies.len(), 3, "cut at {cut}");
        assert_eq!(replies[1].status, Status::Values);
        let values: Vec<(&[u8], &[u8])> = replies[1].values.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(values, [(&b"a"[..], &b"x\n"[..]), (b"c", b"")]);
        assert_eq!(replies[2].status, Status::NoOp);
    }
}

#[test]
fn a_multi_key_get_is_refused_for_keys_it_cannot_carry_and_its_answer_is_bounded() {
    let mut codec = MemcacheCodec::new();
    let mut out = BytesMut::new();
    for keys in [vec![], vec![key("a b")]] {
        assert!(matches!(
            codec.encode(Request::GetMulti { keys }, &mut out),
            Err(CodecError::InvalidMultiGet)
        ));
    }
    assert!(out.is_empty());
    let mut codec = MemcacheCodec::new().with_max_value_len(8);
    get_multi(&mut codec, &["a"]);
    assert!(matches!(
        decode_all(&mut codec, b"VALUE a 0 4294967296\r\n"),
        Err(CodecError::ValueTooLarge { .. })
    ));
    let mut codec = MemcacheCodec::new();
    get_multi(&mut codec, &["a"]);
    assert!(decode_all(&mut codec, b"VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n").is_err());
    let mut codec = MemcacheCodec::new();
    get_multi(&mut codec, &["a"]);
    assert!(decode_all(&mut codec, b"HD O0\r\n").is_err());
    let mut codec = MemcacheCodec::new();
    get_multi(&mut codec, &["a"]);
    let replies = decode_all(&mut codec, b"SERVER_ERROR out of memory\r\n").unwrap();
    assert!(replies[0].is_error());
}
