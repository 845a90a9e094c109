//! Version 2 of the codecs: the switch after HELLO, every frame shape, bad
//! input, the 1.1 fallback under the multiplexer, round trips.

use super::tests::{bytes_strategy, request_strategy};
use super::*;
use crate::kv::{ByRequestId, Negotiated, Reply};
use crate::server::Order;
use proptest::prelude::*;

fn hello_frame() -> BytesMut {
    let mut buf = BytesMut::new();
    ClientCodec::new().encode(&Hello::request(), &mut buf).unwrap();
    buf
}

use crate::kv::Hello;

const NEGOTIATED: Negotiated = Negotiated {
    version: 2,
    max_in_flight: 128,
    session_window: 0,
};

/// A server codec that has decoded HELLO and encoded its `OK`.
fn server_v2() -> ServerCodec {
    let mut codec = ServerCodec::new();
    let hello = codec.decode(&mut hello_frame()).unwrap();
    assert_eq!(hello, Some(Incoming::Request(Hello::request())));
    let mut out = BytesMut::new();
    codec.encode(Response::ok(NEGOTIATED.encode()), &mut out).unwrap();
    // The OK itself is a 1.1 frame.
    assert_eq!(&out[..5], &[0x00, 10, 0, 0, 0]);
    assert!(codec.is_version_2());
    codec
}

fn client_v2() -> ClientCodec {
    let mut codec = ClientCodec::new();
    codec.use_version_2(NEGOTIATED);
    codec
}

fn outgoing(tag: u32, budget: Option<Duration>, request: Request) -> BytesMut {
    let mut buf = BytesMut::new();
    client_v2()
        .encode(Outgoing::Request { tag, budget, request }, &mut buf)
        .unwrap();
    buf
}

/// A version 2 request frame, byte by byte.
fn raw_v2(command: u8, flags: u8, id: u32, extra: &[u8], key: &[u8], value: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u8(command);
    buf.put_u8(flags);
    buf.put_u32_le(id);
    buf.put_u32_le(key.len() as u32);
    buf.put_u32_le(value.len() as u32);
    buf.put_slice(extra);
    buf.put_slice(key);
    buf.put_slice(value);
    buf
}

fn get(key: &'static [u8]) -> Request {
    Request::Get {
        key: Bytes::from_static(key),
    }
}

fn rejection(incoming: Option<Incoming>) -> Response {
    match incoming {
        Some(Incoming::Rejected(response)) => response,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn the_server_speaks_2_once_it_has_encoded_the_ok_to_hello() {
    let mut codec = server_v2();
    let mut out = BytesMut::new();
    codec
        .encode(Response::ok(Bytes::from_static(b"v")).with_id(7), &mut out)
        .unwrap();
    assert_eq!(&out[..], b"\x00\x00\x07\x00\x00\x00\x01\x00\x00\x00v");
    let decoded = codec.decode(&mut outgoing(7, None, get(b"k"))).unwrap();
    assert_eq!(
        decoded,
        Some(Incoming::Identified {
            id: 7,
            deadline: None,
            sequenced: None,
            request: get(b"k")
        })
    );
}

#[test]
fn hello_refused_leaves_the_server_on_1_1() {
    for refusal in [Status::BadRequest, Status::Unauthenticated] {
        let mut codec = ServerCodec::new();
        codec.decode(&mut hello_frame()).unwrap();
        let mut out = BytesMut::new();
        codec.encode(Response::error(refusal, "no"), &mut out).unwrap();
        assert!(!codec.is_version_2(), "{refusal}");
        codec.encode(Response::ok_empty(), &mut out).unwrap();
        assert_eq!(&out[out.len() - 5..], &[0, 0, 0, 0, 0], "still 1.1 frames");
    }
}

#[test]
fn only_the_answer_to_hello_switches_the_server_counting_answers_in_order() {
    let mut codec = ServerCodec::new();
    let mut buf = BytesMut::new();
    ClientCodec::new().encode(&get(b"k"), &mut buf).unwrap();
    buf.extend_from_slice(&hello_frame());
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Incoming::Request(_))
    ));
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Incoming::Request(Request::Hello { .. }))
    ));
    let mut out = BytesMut::new();
    // The GET's OK is not HELLO's; a GOAWAY answers nothing and writes nothing.
    codec.encode(Response::ok_empty(), &mut out).unwrap();
    assert!(!codec.is_version_2());
    codec.encode(Response::goaway("bye"), &mut out).unwrap();
    assert_eq!(out.len(), 5, "GOAWAY on 1.1 wrote something");
    assert!(!codec.is_version_2());
    codec.encode(Response::ok(NEGOTIATED.encode()), &mut out).unwrap();
    assert!(codec.is_version_2());
}

#[test]
fn a_second_hello_is_a_bad_request_pipelined_in_1_1_or_on_2() {
    let mut codec = ServerCodec::new();
    let mut two = hello_frame();
    two.extend_from_slice(&hello_frame());
    codec.decode(&mut two).unwrap();
    assert_eq!(
        rejection(codec.decode(&mut two).unwrap()).status,
        Status::BadRequest
    );

    let mut codec = server_v2();
    let hello = outgoing(3, None, Hello::request());
    let answer = rejection(codec.decode(&mut hello.clone()).unwrap());
    assert_eq!((answer.status, answer.id), (Status::BadRequest, 3));
    // The connection goes on.
    assert!(codec.decode(&mut outgoing(4, None, get(b"k"))).unwrap().is_some());
}

#[test]
fn version_2_requests_encode_to_the_exact_bytes() {
    let put = outgoing(
        0x0102_0304,
        None,
        Request::Put {
            key: Bytes::from_static(b"ab"),
            value: Bytes::from_static(b"xyz"),
        },
    );
    assert_eq!(
        &put[..],
        b"\x03\x00\x04\x03\x02\x01\x02\x00\x00\x00\x03\x00\x00\x00abxyz"
    );

    let deadline = outgoing(9, Some(Duration::from_micros(0x0102)), get(b"k"));
    assert_eq!(
        &deadline[..],
        b"\x02\x01\x09\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x01\x00\x00k"
    );

    let mut cancel = BytesMut::new();
    client_v2()
        .encode(Outgoing::<Request>::Cancel(9), &mut cancel)
        .unwrap();
    assert_eq!(
        &cancel[..],
        b"\x08\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    );

    let mut ping = BytesMut::new();
    client_v2()
        .encode(Outgoing::<Request>::Ping(5), &mut ping)
        .unwrap();
    assert_eq!(
        &ping[..],
        b"\x01\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    );

    let ttl = outgoing(
        1,
        None,
        Request::PutTtl {
            key: Bytes::from_static(b"k"),
            ttl_ms: 258,
            value: Bytes::from_static(b"v"),
        },
    );
    assert_eq!(
        &ttl[..],
        b"\x05\x00\x01\x00\x00\x00\x01\x00\x00\x00\x09\x00\x00\x00k\x02\x01\x00\x00\x00\x00\x00\x00v"
    );
}

#[test]
fn budgets_are_whole_microseconds_at_least_1_and_at_most_u32_max() {
    let budget_of = |budget: Duration| {
        let frame = outgoing(1, Some(budget), get(b""));
        u32::from_le_bytes(frame[14..18].try_into().unwrap())
    };
    assert_eq!(budget_of(Duration::ZERO), 1);
    assert_eq!(budget_of(Duration::from_nanos(999)), 1);
    assert_eq!(budget_of(Duration::from_millis(3)), 3000);
    assert_eq!(budget_of(Duration::from_secs(10_000)), u32::MAX);
}

#[test]
fn the_server_reckons_a_deadline_from_when_it_decoded_the_frame() {
    let mut codec = server_v2();
    let before = Instant::now();
    let decoded = codec
        .decode(&mut outgoing(2, Some(Duration::from_secs(5)), get(b"k")))
        .unwrap();
    let after = Instant::now();
    let Some(Incoming::Identified {
        id: 2,
        deadline: Some(deadline),
        sequenced: None,
        request,
    }) = decoded
    else {
        panic!("{decoded:?}");
    };
    assert_eq!(request, get(b"k"));
    assert!(deadline >= before + Duration::from_secs(5) && deadline <= after + Duration::from_secs(5));
}

#[test]
fn cancel_decodes_to_the_id_it_names() {
    let mut codec = server_v2();
    let mut cancel = BytesMut::new();
    client_v2()
        .encode(Outgoing::<Request>::Cancel(11), &mut cancel)
        .unwrap();
    assert_eq!(
        codec.decode(&mut cancel).unwrap(),
        Some(Incoming::Cancel { id: 11 })
    );
    assert!(cancel.is_empty());
}

#[test]
fn sequenced_writes_carry_seq_and_acked_below_and_sequenced_reads_are_bad_requests() {
    let mut codec = server_v2();
    let seq_bytes = |seq: u64, acked_below: u64| {
        let mut extra = seq.to_le_bytes().to_vec();
        extra.extend_from_slice(&acked_below.to_le_bytes());
        extra
    };
    let mut with_deadline = 1000u32.to_le_bytes().to_vec();
    with_deadline.extend_from_slice(&seq_bytes(9, 4));
    // PUT with DEADLINE and SEQUENCED, DELETE with SEQUENCED, GET and PING
    // with SEQUENCED (refused, framing kept), then a plain GET.
    let mut buf = raw_v2(
        0x03,
        FLAG_DEADLINE | FLAG_SEQUENCED,
        6,
        &with_deadline,
        b"k",
        b"v",
    );
    buf.extend_from_slice(&raw_v2(
        0x04,
        FLAG_SEQUENCED,
        7,
        &seq_bytes(u64::MAX, 1),
        b"k",
        b"",
    ));
    buf.extend_from_slice(&raw_v2(0x02, FLAG_SEQUENCED, 8, &seq_bytes(1, 1), b"k", b""));
    buf.extend_from_slice(&raw_v2(0x01, FLAG_SEQUENCED, 9, &seq_bytes(1, 1), b"", b""));
    buf.extend_from_slice(&outgoing(10, None, get(b"k")));
    let Some(Incoming::Identified {
        id: 6,
        deadline: Some(_),
        sequenced: Some(sequenced),
        request: Request::Put { .. },
    }) = codec.decode(&mut buf).unwrap()
    else {
        panic!("the sequenced PUT")
    };
    assert_eq!(
        sequenced,
        Sequenced {
            seq: 9,
            acked_below: 4
        }
    );
    let Some(Incoming::Identified {
        id: 7,
        sequenced: Some(sequenced),
        request: Request::Delete { .. },
        ..
    }) = codec.decode(&mut buf).unwrap()
    else {
        panic!("the sequenced DELETE")
    };
    assert_eq!(sequenced.seq, u64::MAX);
    for id in [8, 9] {
        let answer = rejection(codec.decode(&mut buf).unwrap());
        assert_eq!((answer.status, answer.id), (Status::BadRequest, id));
    }
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Incoming::Identified {
            id: 10,
            sequenced: None,
            ..
        })
    ));
}

#[test]
fn unknown_flags_or_id_0_are_bad_requests_that_end_the_framing() {
    for (flags, id) in [(0x04, 5), (0x80, 5), (0xff, 5), (0x00, 0), (FLAG_DEADLINE, 0)] {
        let mut codec = server_v2();
        let mut buf = raw_v2(0x02, flags, id, &[0; 4], b"k", b"");
        buf.extend_from_slice(&outgoing(9, None, get(b"k")));
        let answer = rejection(codec.decode(&mut buf).unwrap());
        assert_eq!(
            (answer.status, answer.id),
            (Status::BadRequest, id),
            "flags {flags:#x}"
        );
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::FramingLost)));
    }
}

#[test]
fn over_limit_on_2_is_too_large_with_its_id_reserves_nothing_and_ends_the_framing() {
    // Room for HELLO's 18-byte value.
    let limits = Limits {
        max_key_bytes: 4,
        max_value_bytes: 32,
    };
    for (key_len, value_len) in [(5u32, 0u32), (0, 33), (u32::MAX, u32::MAX)] {
        let mut codec = ServerCodec::with_limits(limits);
        codec.decode(&mut hello_frame()).unwrap();
        codec
            .encode(Response::ok(NEGOTIATED.encode()), &mut BytesMut::new())
            .unwrap();
        let mut buf = BytesMut::with_capacity(32);
        buf.put_u8(0x03);
        buf.put_u8(0);
        buf.put_u32_le(12);
        buf.put_u32_le(key_len);
        buf.put_u32_le(value_len);
        let answer = rejection(codec.decode(&mut buf).unwrap());
        assert_eq!((answer.status, answer.id), (Status::TooLarge, 12));
        assert_eq!(buf.capacity(), 32, "reserved memory for a rejected frame");
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::FramingLost)));
    }
}

#[test]
fn bad_requests_on_2_carry_their_id_and_keep_the_connection() {
    let mut codec = server_v2();
    let mut buf = raw_v2(0x7f, 0, 21, &[], b"k", b"");
    buf.extend_from_slice(&raw_v2(0x02, 0, 22, &[], b"k", b"value"));
    buf.extend_from_slice(&outgoing(23, None, get(b"k")));
    for id in [21, 22] {
        let answer = rejection(codec.decode(&mut buf).unwrap());
        assert_eq!((answer.status, answer.id), (Status::BadRequest, id));
    }
    assert!(matches!(
        codec.decode(&mut buf).unwrap(),
        Some(Incoming::Identified { id: 23, .. })
    ));
}

#[test]
fn version_2_frames_split_byte_by_byte_decode_once_complete() {
    let mut bytes = outgoing(1, Some(Duration::from_millis(1)), get(b"key"));
    bytes.extend_from_slice(&raw_v2(0x03, FLAG_SEQUENCED, 2, &[0; 16], b"k", b"v"));
    let mut cancel = BytesMut::new();
    client_v2()
        .encode(Outgoing::<Request>::Cancel(1), &mut cancel)
        .unwrap();
    bytes.extend_from_slice(&cancel);
    let mut codec = server_v2();
    let mut buf = BytesMut::new();
    let mut ids = Vec::new();
    for byte in bytes.iter() {
        buf.put_u8(*byte);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            ids.push(frame.id());
        }
    }
    assert_eq!(ids, [Some(1), Some(2), Some(1)]);
    assert!(buf.is_empty());

    let mut response = BytesMut::new();
    codec
        .encode(Response::ok(Bytes::from_static(b"abc")).with_id(1), &mut response)
        .unwrap();
    let mut client = client_v2();
    let mut buf = BytesMut::new();
    for (i, byte) in response.iter().enumerate() {
        buf.put_u8(*byte);
        let got = client.decode(&mut buf).unwrap();
        assert_eq!(got.is_some(), i + 1 == response.len());
    }
}

#[test]
fn frame_len_for_follows_the_connections_version() {
    let codec = server_v2();
    let frame = outgoing(1, Some(Duration::from_millis(1)), get(b"key"));
    assert_eq!(codec.frame_len_for(&frame[..13]), None);
    assert_eq!(codec.frame_len_for(&frame), Some(frame.len()));
    let sequenced = raw_v2(0x03, FLAG_SEQUENCED, 2, &[0; 16], b"k", b"v");
    assert_eq!(codec.frame_len_for(&sequenced), Some(sequenced.len()));
    assert_eq!(codec.frame_len_for(&raw_v2(0x03, 0x40, 2, &[], b"k", b"v")), None);
    let v1 = hello_frame();
    assert_eq!(ServerCodec::new().frame_len_for(&v1), Some(v1.len()));
}

#[test]
fn the_client_decodes_version_2_responses_with_their_id_and_refuses_bad_ones() {
    let mut client = client_v2();
    let mut buf = BytesMut::from(
        &b"\x0a\x00\x00\x00\x00\x00\x03\x00\x00\x00bye\x08\x00\x07\x00\x00\x00\x00\x00\x00\x00"[..],
    );
    let goaway = client.decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        (goaway.status, goaway.id, &goaway.value[..]),
        (Status::GoAway, 0, &b"bye"[..])
    );
    let cancelled = client.decode(&mut buf).unwrap().unwrap();
    assert_eq!((cancelled.status, cancelled.id), (Status::Cancelled, 7));

    let mut flags = BytesMut::from(&b"\x00\x01\x07\x00\x00\x00\x00\x00\x00\x00"[..]);
    assert!(matches!(
        client.decode(&mut flags),
        Err(CodecError::UnknownFlags(1))
    ));
    let mut status = BytesMut::from(&b"\x0c\x00\x07\x00\x00\x00\x00\x00\x00\x00"[..]);
    assert!(matches!(
        client_v2().decode(&mut status),
        Err(CodecError::UnknownStatus(0x0c))
    ));
    let mut small = ClientCodec::with_limits(Limits {
        max_key_bytes: 0,
        max_value_bytes: 3,
    });
    small.use_version_2(NEGOTIATED);
    let mut huge = BytesMut::from(&b"\x00\x00\x07\x00\x00\x00\xff\xff\xff\xff"[..]);
    let capacity = huge.capacity();
    assert!(matches!(
        small.decode(&mut huge),
        Err(CodecError::TooLarge { .. })
    ));
    assert_eq!(huge.capacity(), capacity);
}

#[test]
fn a_bare_request_on_a_version_2_connection_is_an_error_not_a_1_1_frame() {
    let mut buf = BytesMut::new();
    assert!(matches!(
        client_v2().encode(&get(b"k"), &mut buf),
        Err(CodecError::NoId)
    ));
    assert!(buf.is_empty());
}

#[test]
fn on_1_1_the_multiplexers_messages_are_1_1_frames_answered_in_tag_order() {
    let mut client = ClientCodec::new();
    let mut out = BytesMut::new();
    client
        .encode(
            Outgoing::Request {
                tag: 5,
                budget: Some(Duration::from_secs(1)),
                request: get(b"k"),
            },
            &mut out,
        )
        .unwrap();
    // No budget in 1.1, no id: exactly the 1.1 frame.
    assert_eq!(&out[..], b"\x02\x01\x00\x00\x00\x00\x00\x00\x00k");
    client.encode(Outgoing::<Request>::Cancel(5), &mut out).unwrap();
    assert_eq!(out.len(), 10, "a cancel on 1.1 wrote something");
    client.encode(Outgoing::<Request>::Ping(9), &mut out).unwrap();
    assert_eq!(&out[10..], &[0x01, 0, 0, 0, 0, 0, 0, 0, 0]);

    let mut answers = BytesMut::new();
    let mut server = ServerCodec::new();
    server.encode(Response::not_found(), &mut answers).unwrap();
    server.encode(Response::ok_empty(), &mut answers).unwrap();
    server.encode(Response::ok_empty(), &mut answers).unwrap();
    let ids: Vec<u32> = std::iter::from_fn(|| client.decode(&mut answers).unwrap())
        .map(|response| response.id)
        .collect();
    // The third answers no tag written: id 0, which the multiplexer drops.
    assert_eq!(ids, [5, 9, 0]);
}

#[test]
fn a_silent_reply_writes_nothing() {
    let mut out = BytesMut::new();
    server_v2()
        .encode(Reply::silent(Response::ok_empty()), &mut out)
        .unwrap();
    assert!(out.is_empty());
}

proptest! {
    #[test]
    fn version_2_requests_round_trip_with_their_ids(
        base in 1..u32::MAX - 8,
        requests in proptest::collection::vec((proptest::option::of(0u64..10_000_000), request_strategy()), 1..8)
    ) {
        // Distinct ids: an id still unanswered may not be reused.
        let requests: Vec<_> = requests.into_iter().zip(base..).map(|((budget, request), tag)| (tag, budget, request)).collect();
        let mut buf = BytesMut::new();
        let mut client = client_v2();
        for (tag, budget, request) in &requests {
            let budget = budget.map(Duration::from_micros);
            client.encode(Outgoing::Request { tag: *tag, budget, request: request.clone() }, &mut buf).unwrap();
        }
        let mut server = server_v2();
        for (tag, budget, request) in requests {
            let Some(Incoming::Identified { id, deadline, request: decoded, .. }) = server.decode(&mut buf).unwrap() else {
                return Err(TestCaseError::fail("not an identified request"));
            };
            prop_assert_eq!((id, decoded, deadline.is_some()), (tag, request, budget.is_some()));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn version_2_responses_round_trip_with_their_ids(
        status in (0u8..=0x0B).prop_map(|b| Status::from_byte(b).unwrap()),
        id in any::<u32>(),
        value in bytes_strategy(512),
    ) {
        let response = Response { status, id, value };
        let mut buf = BytesMut::new();
        server_v2().encode(response.clone(), &mut buf).unwrap();
        prop_assert_eq!(client_v2().decode(&mut buf).unwrap(), Some(response));
        prop_assert!(buf.is_empty());
    }
}

/// Which ids are in flight is the server's to know (its `Order`), not the
/// codec's: the codec decodes a reused id as it is, and a CANCEL names the
/// request it cancels by that request's id.
#[test]
fn the_codec_keeps_no_ids_and_a_cancel_names_its_target() {
    let mut codec = server_v2();
    assert!(codec.decode(&mut outgoing(5, None, get(b"k"))).unwrap().is_some());
    let mut cancel = BytesMut::new();
    client_v2()
        .encode(Outgoing::<Request>::Cancel(5), &mut cancel)
        .unwrap();
    assert_eq!(
        codec.decode(&mut cancel).unwrap(),
        Some(Incoming::Cancel { id: 5 })
    );
    let again = codec.decode(&mut outgoing(5, None, get(b"k"))).unwrap();
    assert!(
        matches!(again, Some(Incoming::Identified { id: 5, .. })),
        "{again:?}"
    );
    assert_eq!(
        ByRequestId.tag_in_use(5).map(|r: Response| (r.status, r.id)),
        Some((Status::BadRequest, 5))
    );
}
