//! The KV codecs' unit and property tests: exact frames, every status,
//! rejections, partial input, round trips and hostile input.

use super::*;
use proptest::prelude::*;

fn encode_request(request: &Request) -> BytesMut {
    let mut buf = BytesMut::new();
    ClientCodec::new().encode(request, &mut buf).unwrap();
    buf
}

fn raw_frame(command: u8, key: &[u8], value: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u8(command);
    buf.put_u32_le(key.len() as u32);
    buf.put_u32_le(value.len() as u32);
    buf.put_slice(key);
    buf.put_slice(value);
    buf
}

fn decode_one(codec: &mut ServerCodec, bytes: &[u8]) -> Incoming {
    let mut buf = BytesMut::from(bytes);
    let frame = codec.decode(&mut buf).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "frame not fully consumed");
    frame
}

fn rejected_status(incoming: Incoming) -> Status {
    match incoming {
        Incoming::Rejected(response) => response.status,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn all_requests() -> Vec<Request> {
    vec![
        Request::Ping {
            payload: Bytes::new(),
        },
        Request::Ping {
            payload: Bytes::from_static(b"echo"),
        },
        Request::Get {
            key: Bytes::from_static(b"k"),
        },
        Request::Get { key: Bytes::new() },
        Request::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
        },
        Request::Put {
            key: Bytes::new(),
            value: Bytes::new(),
        },
        Request::Delete {
            key: Bytes::from_static(b"k"),
        },
        Request::PutTtl {
            key: Bytes::from_static(b"k"),
            ttl_ms: 1500,
            value: Bytes::from_static(b"v"),
        },
    ]
}

#[test]
fn requests_encode_to_the_exact_protocol_bytes() {
    let put = encode_request(&Request::Put {
        key: Bytes::from_static(b"ab"),
        value: Bytes::from_static(b"xyz"),
    });
    assert_eq!(&put[..], b"\x03\x02\x00\x00\x00\x03\x00\x00\x00abxyz");

    let get = encode_request(&Request::Get {
        key: Bytes::from_static(b"ab"),
    });
    assert_eq!(&get[..], b"\x02\x02\x00\x00\x00\x00\x00\x00\x00ab");

    let del = encode_request(&Request::Delete {
        key: Bytes::from_static(b"k"),
    });
    assert_eq!(&del[..], b"\x04\x01\x00\x00\x00\x00\x00\x00\x00k");

    let ping = encode_request(&Request::Ping {
        payload: Bytes::from_static(b"hi"),
    });
    assert_eq!(&ping[..], b"\x01\x00\x00\x00\x00\x02\x00\x00\x00hi");

    let ttl = encode_request(&Request::PutTtl {
        key: Bytes::from_static(b"k"),
        ttl_ms: 258,
        value: Bytes::from_static(b"v"),
    });
    assert_eq!(
        &ttl[..],
        b"\x05\x01\x00\x00\x00\x09\x00\x00\x00k\x02\x01\x00\x00\x00\x00\x00\x00v"
    );
}

#[test]
fn every_command_decodes_on_the_server() {
    for request in all_requests() {
        let bytes = encode_request(&request);
        assert_eq!(
            decode_one(&mut ServerCodec::new(), &bytes),
            Incoming::Request(request)
        );
    }
}

#[test]
fn every_status_round_trips() {
    // 1.1's statuses; version 2's are tested in `v2_tests`.
    for byte in 0x00..=0x07u8 {
        let status = Status::from_byte(byte).unwrap();
        let response = Response {
            status,
            id: 0,
            value: Bytes::from_static(b"payload"),
        };
        let mut buf = BytesMut::new();
        ServerCodec::new().encode(response.clone(), &mut buf).unwrap();
        assert_eq!(buf[0], byte);
        assert_eq!(&buf[1..5], &7u32.to_le_bytes());
        assert_eq!(ClientCodec::new().decode(&mut buf).unwrap(), Some(response));
        assert!(buf.is_empty());
    }
}

#[test]
fn frames_split_byte_by_byte_decode_once_complete() {
    let mut bytes = BytesMut::new();
    for request in all_requests() {
        bytes.extend_from_slice(&encode_request(&request));
    }
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for byte in bytes.iter() {
        buf.put_u8(*byte);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            decoded.push(frame);
        }
    }
    let expected: Vec<_> = all_requests().into_iter().map(Incoming::Request).collect();
    assert_eq!(decoded, expected);

    let mut response_bytes = BytesMut::new();
    ServerCodec::new()
        .encode(Response::ok(Bytes::from_static(b"abc")), &mut response_bytes)
        .unwrap();
    let mut client = ClientCodec::new();
    let mut buf = BytesMut::new();
    for (i, byte) in response_bytes.iter().enumerate() {
        buf.put_u8(*byte);
        let got = client.decode(&mut buf).unwrap();
        assert_eq!(got.is_some(), i + 1 == response_bytes.len());
    }
}

#[test]
fn several_frames_in_one_buffer() {
    let mut buf = BytesMut::new();
    for request in all_requests() {
        ClientCodec::new().encode(&request, &mut buf).unwrap();
    }
    let mut codec = ServerCodec::new();
    for request in all_requests() {
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Incoming::Request(request)));
    }
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
}

#[test]
fn every_byte_that_is_no_command_is_a_bad_request() {
    // Version 1.1 has 0x01..=0x06, version 2 HELLO (0x07, whose empty
    // value is malformed) and CANCEL (0x08, no 1.1 frame); this
    // implementation adds HEALTH at 0x80.
    for byte in (0u8..=255).filter(|b| !(0x01..=0x06).contains(b) && *b != 0x80) {
        let mut buf = raw_frame(byte, b"", b"");
        let decoded = ServerCodec::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            rejected_status(decoded),
            Status::BadRequest,
            "command byte {byte:#04x}"
        );
    }
}

#[test]
fn unknown_command_is_bad_request_and_the_next_frame_still_decodes() {
    let mut buf = raw_frame(0x7f, b"key", b"value");
    buf.extend_from_slice(&raw_frame(0x02, b"k", b""));
    let mut codec = ServerCodec::new();
    assert_eq!(
        rejected_status(codec.decode(&mut buf).unwrap().unwrap()),
        Status::BadRequest
    );
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(Incoming::Request(Request::Get {
            key: Bytes::from_static(b"k")
        }))
    );
}

#[test]
fn misplaced_keys_and_values_are_bad_requests() {
    let cases: [(u8, &[u8], &[u8]); 7] = [
        (0x01, b"key", b""),      // PING with a key
        (0x80, b"k", b""),        // HEALTH with a key
        (0x80, b"", b"v"),        // HEALTH with a value
        (0x02, b"k", b"v"),       // GET with a value
        (0x04, b"k", b"v"),       // DELETE with a value
        (0x05, b"k", b"1234567"), // PUT_TTL shorter than its TTL
        (0x05, b"k", &[0u8; 8]),  // PUT_TTL with ttl 0
    ];
    for (command, key, value) in cases {
        let mut codec = ServerCodec::new();
        let incoming = decode_one(&mut codec, &raw_frame(command, key, value));
        assert_eq!(
            rejected_status(incoming),
            Status::BadRequest,
            "command {command:#x}"
        );
        // The connection goes on.
        assert!(codec.decode(&mut raw_frame(0x01, b"", b"")).unwrap().is_some());
    }
}

#[test]
fn over_limit_header_is_too_large_then_framing_is_lost() {
    let limits = Limits {
        max_key_bytes: 4,
        max_value_bytes: 8,
    };
    for (key_len, value_len) in [(5u32, 0u32), (0, 9), (u32::MAX, u32::MAX)] {
        let mut codec = ServerCodec::with_limits(limits);
        let mut buf = BytesMut::new();
        buf.put_u8(0x03);
        buf.put_u32_le(key_len);
        buf.put_u32_le(value_len);
        let capacity = buf.capacity();
        assert_eq!(
            rejected_status(codec.decode(&mut buf).unwrap().unwrap()),
            Status::TooLarge
        );
        assert!(buf.capacity() <= capacity, "reserved memory for a rejected frame");
        buf.extend_from_slice(&raw_frame(0x01, b"", b""));
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::FramingLost)));
    }
}

#[test]
fn put_ttl_may_carry_a_value_at_the_limit() {
    let limits = Limits {
        max_key_bytes: 4,
        max_value_bytes: 8,
    };
    let request = Request::PutTtl {
        key: Bytes::from_static(b"k"),
        ttl_ms: 1,
        value: Bytes::from_static(b"12345678"),
    };
    let incoming = decode_one(&mut ServerCodec::with_limits(limits), &encode_request(&request));
    assert_eq!(incoming, Incoming::Request(request));
}

#[test]
fn four_gib_header_reserves_nothing() {
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::with_capacity(16);
    buf.put_u8(0x03);
    buf.put_u32_le(1);
    buf.put_u32_le(u32::MAX);
    assert_eq!(
        rejected_status(codec.decode(&mut buf).unwrap().unwrap()),
        Status::TooLarge
    );
    assert_eq!(buf.capacity(), 16);
}

#[test]
fn peer_closing_mid_frame_drops_the_partial_frame() {
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::from(
        &encode_request(&Request::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"value"),
        })[..7],
    );
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
}

#[test]
fn client_rejects_unknown_status_and_over_limit_responses() {
    for status in [0x08, 0x0b, 0x0c] {
        // 0x08..=0x0B are version 2's: unknown to a 1.1 connection.
        let mut buf = BytesMut::from(&[status, 0, 0, 0, 0][..]);
        let error = ClientCodec::new().decode(&mut buf).unwrap_err();
        assert!(
            matches!(error, CodecError::UnknownStatus(s) if s == status),
            "{error:?}"
        );
    }

    let mut codec = ClientCodec::with_limits(Limits {
        max_key_bytes: 0,
        max_value_bytes: 3,
    });
    let mut buf = BytesMut::from(&b"\x00\xff\xff\xff\xff"[..]);
    let capacity = buf.capacity();
    assert!(matches!(codec.decode(&mut buf), Err(CodecError::TooLarge { .. })));
    assert_eq!(buf.capacity(), capacity);
}

pub(super) fn bytes_strategy(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

pub(super) fn request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        bytes_strategy(64).prop_map(|payload| Request::Ping { payload }),
        bytes_strategy(64).prop_map(|key| Request::Get { key }),
        (bytes_strategy(64), bytes_strategy(256)).prop_map(|(key, value)| Request::Put { key, value }),
        bytes_strategy(64).prop_map(|key| Request::Delete { key }),
        (bytes_strategy(64), 1..u64::MAX, bytes_strategy(256))
            .prop_map(|(key, ttl_ms, value)| Request::PutTtl { key, ttl_ms, value }),
        Just(Request::Health),
    ]
}

fn status_strategy() -> impl Strategy<Value = Status> {
    (0u8..=0x07).prop_map(|b| Status::from_byte(b).unwrap())
}

proptest! {
    #[test]
    fn request_round_trip(requests in proptest::collection::vec(request_strategy(), 1..8)) {
        let mut buf = BytesMut::new();
        for request in &requests {
            ClientCodec::new().encode(request, &mut buf).unwrap();
        }
        let mut codec = ServerCodec::new();
        for request in requests {
            prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(Incoming::Request(request)));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn response_round_trip(status in status_strategy(), value in bytes_strategy(512)) {
        let response = Response { status, id: 0, value };
        let mut buf = BytesMut::new();
        ServerCodec::new().encode(response.clone(), &mut buf).unwrap();
        prop_assert_eq!(ClientCodec::new().decode(&mut buf).unwrap(), Some(response));
        prop_assert!(buf.is_empty());
    }
}

/// Untrusted input: arbitrary bytes, headers claiming lengths around and
/// far over the limits, and bodies long enough that a decoder which
/// believed an over-limit header would buffer far more than one frame.
fn hostile_input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (any::<u8>(), 0u32..600, prop_oneof![0u32..5000, any::<u32>()]).prop_map(|(first, a, b)| {
            let mut header = vec![first];
            header.extend_from_slice(&a.to_le_bytes());
            header.extend_from_slice(&b.to_le_bytes());
            header
        }),
        (any::<u8>(), 0usize..8192).prop_map(|(fill, len)| vec![fill; len]),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// An `AsyncRead` that hands out its bytes `piece` at a time, as a socket would.
struct Pieces {
    data: Bytes,
    piece: usize,
}

impl tokio::io::AsyncRead for Pieces {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let n = self.piece.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data.advance(n);
        std::task::Poll::Ready(Ok(()))
    }
}

/// Decodes `input` through a real `FramedRead`, checking after every
/// frame that its read buffer stays within what one frame needs:
/// tokio-util grows the buffer only while the decoder waits for more of
/// a frame, so this bounds what a peer can make a connection hold.
/// Returns the frames decoded, up to the first error.
fn decode_through_framed_read<D: Decoder>(
    decoder: D,
    input: Vec<u8>,
    piece: usize,
    max_frame: usize,
) -> Vec<D::Item> {
    use futures::StreamExt;
    // FramedRead's initial capacity, then at most doubling past one frame.
    let bound = 8 * 1024 + 2 * max_frame;
    let reader = Pieces {
        data: Bytes::from(input),
        piece,
    };
    let mut framed = tokio_util::codec::FramedRead::new(reader, decoder);
    let mut frames = Vec::new();
    while let Some(Ok(frame)) = futures::executor::block_on(framed.next()) {
        frames.push(frame);
        let capacity = framed.read_buffer().capacity();
        assert!(
            capacity <= bound,
            "read buffer grew to {capacity} bytes (bound {bound})"
        );
    }
    let capacity = framed.read_buffer().capacity();
    assert!(
        capacity <= bound,
        "read buffer grew to {capacity} bytes (bound {bound})"
    );
    frames
}

const SMALL: Limits = Limits {
    max_key_bytes: 256,
    max_value_bytes: 4096,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn server_decoder_survives_hostile_input_in_any_pieces(input in hostile_input(), piece in 1usize..10_000) {
        let max_frame = REQUEST_HEADER_LEN + (SMALL.max_key_bytes + SMALL.max_value_bytes) as usize + TTL_LEN;
        let frames = decode_through_framed_read(ServerCodec::with_limits(SMALL), input, piece, max_frame);
        let mut after_too_large = false;
        for frame in frames {
            prop_assert!(!after_too_large, "decoded a frame after TOO_LARGE");
            match frame {
                Incoming::Request(request) => {
                    let (key, value) = match &request {
                        Request::Ping { payload } | Request::Auth { token: payload } => (&Bytes::new(), payload),
                        Request::Health => (&Bytes::new(), &Bytes::new()),
                        Request::Get { key } | Request::Delete { key } => (key, &Bytes::new()),
                        Request::Put { key, value } | Request::PutTtl { key, value, .. } => (key, value),
                        Request::Hello { .. } => (&Bytes::new(), &Bytes::new()),
                    };
                    prop_assert!(key.len() <= SMALL.max_key_bytes as usize);
                    prop_assert!(value.len() <= SMALL.max_value_bytes as usize);
                }
                Incoming::Rejected(response) => {
                    after_too_large = response.status == Status::TooLarge;
                }
                other => prop_assert!(false, "a 1.1 connection decoded {:?}", other),
            }
        }
    }

    #[test]
    fn client_decoder_survives_hostile_input_in_any_pieces(input in hostile_input(), piece in 1usize..10_000) {
        let max_frame = RESPONSE_HEADER_LEN + SMALL.max_value_bytes as usize;
        let frames = decode_through_framed_read(ClientCodec::with_limits(SMALL), input, piece, max_frame);
        for response in frames {
            prop_assert!(response.value.len() <= SMALL.max_value_bytes as usize);
        }
    }
}

#[test]
fn auth_round_trips_and_takes_no_key() {
    let auth = Request::Auth {
        token: Bytes::from_static(b"s3cret"),
    };
    let bytes = encode_request(&auth);
    assert_eq!(&bytes[..9], &[0x06, 0, 0, 0, 0, 6, 0, 0, 0]);
    assert_eq!(
        decode_one(&mut ServerCodec::new(), &bytes),
        Incoming::Request(auth)
    );
    let with_key = [0x06, 1, 0, 0, 0, 0, 0, 0, 0, b'k'];
    match decode_one(&mut ServerCodec::new(), &with_key) {
        Incoming::Rejected(response) => {
            assert_eq!(response.status, Status::BadRequest);
            assert!(response.message().contains("AUTH takes no key"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_tls_record_in_place_of_a_response_says_the_server_wants_tls() {
    // A TLS alert (decode_error), as a TLS server sends to plain text.
    let mut alert = BytesMut::from(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32][..]);
    let error = ClientCodec::new().decode(&mut alert).unwrap_err();
    assert!(matches!(error, CodecError::TlsAnswer(0x15)), "{error:?}");
    assert!(error.to_string().contains("requires TLS"), "{error}");
    let mut other = BytesMut::from(&[0x15, 0x00, 0x00, 0x00, 0x00][..]);
    let error = ClientCodec::new().decode(&mut other).unwrap_err();
    assert!(matches!(error, CodecError::UnknownStatus(0x15)), "{error:?}");
}

#[test]
fn every_command_and_status_byte_is_its_own_and_named_as_in_protocol_md() {
    let protocol = include_str!("../PROTOCOL.md");
    let mut known = 0;
    for byte in 0..=u8::MAX {
        for (value, name) in [
            Command::from_byte(byte).map(|c| (c as u8, c.name())),
            Status::from_byte(byte).map(|s| (s as u8, s.name())),
        ]
        .into_iter()
        .flatten()
        {
            known += 1;
            assert_eq!(value, byte, "{name}");
            let row = format!("| `0x{byte:02X}` | {name} |");
            assert!(protocol.contains(&row), "PROTOCOL.md has no row {row}");
        }
    }
    assert_eq!(known, 9 + 12, "nine commands and twelve statuses");
}
