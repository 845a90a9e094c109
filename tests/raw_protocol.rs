//! The bad-input table of PROTOCOL.md, byte for byte over a raw socket.

mod common;

use common::read_response;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wirestack::kv::{self, KvClient, KvServer, KvServerConfig, Limits};

fn frame(command: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut frame = vec![command];
    frame.extend_from_slice(&(key.len() as u32).to_le_bytes());
    frame.extend_from_slice(&(value.len() as u32).to_le_bytes());
    frame.extend_from_slice(key);
    frame.extend_from_slice(value);
    frame
}

async fn assert_closed(socket: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut byte))
        .await
        .expect("the server closes the connection in time");
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open: {read:?}");
}

async fn server_with(limits: Limits) -> kv::KvServer {
    KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            limits,
            ..KvServerConfig::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn ping_and_put_get_bytes_on_the_wire() {
    let server = server_with(Limits::default()).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    socket.write_all(&frame(0x01, b"", b"hi")).await.unwrap();
    assert_eq!(read_response(&mut socket).await, (0x00, b"hi".to_vec()));
    socket.write_all(&frame(0x03, b"k", b"v")).await.unwrap();
    assert_eq!(read_response(&mut socket).await, (0x00, vec![]));
    socket.write_all(&frame(0x02, b"k", b"")).await.unwrap();
    assert_eq!(read_response(&mut socket).await, (0x00, b"v".to_vec()));
    socket.write_all(&frame(0x04, b"nope", b"")).await.unwrap();
    assert_eq!(read_response(&mut socket).await, (0x01, vec![]));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_command_is_bad_request_and_keeps_the_connection() {
    let server = server_with(Limits::default()).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    // Pipelined: the bad frame, then a good one, in one write.
    let mut bytes = frame(0x42, b"key", b"value");
    bytes.extend(frame(0x01, b"", b"still here"));
    socket.write_all(&bytes).await.unwrap();
    let (status, message) = read_response(&mut socket).await;
    assert_eq!(status, 0x03);
    assert!(String::from_utf8(message).unwrap().contains("0x42"));
    assert_eq!(read_response(&mut socket).await, (0x00, b"still here".to_vec()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn misplaced_keys_and_values_are_bad_requests_and_keep_the_connection() {
    let server = server_with(Limits::default()).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    for bad in [
        frame(0x01, b"key", b""),      // PING with a key
        frame(0x02, b"k", b"value"),   // GET with a value
        frame(0x04, b"k", b"value"),   // DELETE with a value
        frame(0x05, b"k", b"short"),   // PUT_TTL with value_len < 8
        frame(0x05, b"k", &[0u8; 12]), // PUT_TTL with ttl_ms == 0
    ] {
        socket.write_all(&bad).await.unwrap();
        assert_eq!(read_response(&mut socket).await.0, 0x03);
    }
    socket.write_all(&frame(0x01, b"", b"")).await.unwrap();
    assert_eq!(read_response(&mut socket).await.0, 0x00);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn over_limit_header_answers_too_large_and_closes_only_that_connection() {
    let server = server_with(Limits {
        max_key_bytes: 16,
        max_value_bytes: 64,
    })
    .await;
    let bystander = KvClient::connect(server.local_addr()).await.unwrap();
    bystander.put("k", "before").await.unwrap();

    for (key_len, value_len) in [(17u32, 0u32), (1, 65), (1, u32::MAX)] {
        let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut header = vec![0x03];
        header.extend_from_slice(&key_len.to_le_bytes());
        header.extend_from_slice(&value_len.to_le_bytes());
        socket.write_all(&header).await.unwrap();
        let (status, message) = read_response(&mut socket).await;
        assert_eq!(status, 0x04, "TOO_LARGE for ({key_len}, {value_len})");
        assert!(!message.is_empty());
        assert_closed(&mut socket).await;
    }
    // Every other connection goes on.
    assert_eq!(bystander.get("k").await.unwrap().as_deref(), Some(&b"before"[..]));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn peer_closing_mid_frame_applies_nothing() {
    let server = server_with(Limits::default()).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    let put = frame(0x03, b"half", b"written");
    socket.write_all(&put[..put.len() - 3]).await.unwrap();
    drop(socket);

    let client = KvClient::connect(server.local_addr()).await.unwrap();
    client.ping().await.unwrap();
    assert_eq!(client.get("half").await.unwrap(), None);
    server.shutdown().await.unwrap();
}

// ---- Version 2, by hand. These hold whether the server lets answers
// leave as they complete or in order: answers are matched by id.

const HELLO: u8 = 0x07;
const CANCEL: u8 = 0x08;

/// A version 2 request frame: command, flags, id, lengths, then `extra`
/// (budget, seq), key, value.
fn frame_v2(command: u8, flags: u8, id: u32, extra: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut frame = vec![command, flags];
    frame.extend_from_slice(&id.to_le_bytes());
    frame.extend_from_slice(&(key.len() as u32).to_le_bytes());
    frame.extend_from_slice(&(value.len() as u32).to_le_bytes());
    frame.extend_from_slice(extra);
    frame.extend_from_slice(key);
    frame.extend_from_slice(value);
    frame
}

fn hello_value() -> Vec<u8> {
    let mut value = 2u16.to_le_bytes().to_vec();
    value.extend_from_slice(&[0u8; 16]);
    value
}

/// One version 2 response: (status, id, value).
async fn read_v2(socket: &mut TcpStream) -> (u8, u32, Vec<u8>) {
    let mut header = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut header))
        .await
        .expect("a response in time")
        .expect("a response header");
    assert_eq!(header[1], 0, "response flags");
    let id = u32::from_le_bytes([header[2], header[3], header[4], header[5]]);
    let len = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as usize;
    let mut value = vec![0u8; len];
    socket.read_exact(&mut value).await.expect("a response value");
    (header[0], id, value)
}

/// `n` version 2 responses, by id (each id once).
async fn read_v2_by_id(socket: &mut TcpStream, n: usize) -> std::collections::HashMap<u32, (u8, Vec<u8>)> {
    let mut answers = std::collections::HashMap::new();
    for _ in 0..n {
        let (status, id, value) = read_v2(socket).await;
        assert!(
            answers.insert(id, (status, value)).is_none(),
            "id {id} answered twice"
        );
    }
    answers
}

/// Connects and says HELLO; returns the socket, now on version 2, and
/// what the server answered (version, max_in_flight, session_window).
async fn hello(addr: std::net::SocketAddr) -> (TcpStream, (u16, u32, u32)) {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(&frame(HELLO, b"", &hello_value()))
        .await
        .unwrap();
    let (status, value) = read_response(&mut socket).await;
    assert_eq!((status, value.len()), (0x00, 10), "HELLO answered {value:?}");
    let version = u16::from_le_bytes([value[0], value[1]]);
    let max_in_flight = u32::from_le_bytes([value[2], value[3], value[4], value[5]]);
    let session_window = u32::from_le_bytes([value[6], value[7], value[8], value[9]]);
    (socket, (version, max_in_flight, session_window))
}

#[tokio::test]
async fn hello_then_version_2_frames_answered_with_their_ids() {
    let server = server_with(Limits::default()).await;
    let (mut socket, negotiated) = hello(server.local_addr()).await;
    // The server's per-connection limit (ServeConfig's default), and its
    // session window (SessionConfig's default).
    assert_eq!(negotiated, (2, 128, 512));
    // Pipelined: two writes of one key, then its read, then a read of
    // another key and a PING: one key's requests take effect in order.
    let mut bytes = frame_v2(0x03, 0, 10, &[], b"k", b"v1");
    bytes.extend(frame_v2(0x03, 0, 11, &[], b"k", b"v2"));
    bytes.extend(frame_v2(0x02, 0, 12, &[], b"k", b""));
    bytes.extend(frame_v2(0x02, 0, 13, &[], b"other", b""));
    bytes.extend(frame_v2(0x01, 0, 14, &[], b"", b"hi"));
    socket.write_all(&bytes).await.unwrap();
    let answers = read_v2_by_id(&mut socket, 5).await;
    assert_eq!(answers[&10], (0x00, vec![]));
    assert_eq!(answers[&11], (0x00, vec![]));
    assert_eq!(answers[&12], (0x00, b"v2".to_vec()));
    assert_eq!(answers[&13], (0x01, vec![]));
    assert_eq!(answers[&14], (0x00, b"hi".to_vec()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancel_of_an_id_not_in_flight_is_ignored_and_answers_nothing() {
    let server = server_with(Limits::default()).await;
    let (mut socket, _) = hello(server.local_addr()).await;
    let mut bytes = frame_v2(CANCEL, 0, 99, &[], b"", b"");
    bytes.extend(frame_v2(0x01, 0, 1, &[], b"", b"after"));
    socket.write_all(&bytes).await.unwrap();
    // The first frame back is the PING's: the CANCEL wrote nothing.
    assert_eq!(read_v2(&mut socket).await, (0x00, 1, b"after".to_vec()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_zero_budget_is_deadline_exceeded_without_effect() {
    let server = server_with(Limits::default()).await;
    let (mut socket, _) = hello(server.local_addr()).await;
    // DEADLINE with budget_us 0: the deadline is the moment it was read.
    let put = frame_v2(0x03, 0x01, 3, &0u32.to_le_bytes(), b"late", b"v");
    socket.write_all(&put).await.unwrap();
    let (status, id, _) = read_v2(&mut socket).await;
    assert_eq!((status, id), (0x09, 3), "DEADLINE_EXCEEDED with its id");
    // A generous budget runs.
    let get = frame_v2(0x02, 0x01, 4, &60_000_000u32.to_le_bytes(), b"late", b"");
    socket.write_all(&get).await.unwrap();
    assert_eq!(read_v2(&mut socket).await, (0x01, 4, vec![]));
    assert_eq!(server.store().get(b"late"), None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn sequenced_without_a_session_is_bad_request_with_its_id_and_the_connection_goes_on() {
    let server = server_with(Limits::default()).await;
    let (mut socket, _) = hello(server.local_addr()).await;
    let mut seq = 1u64.to_le_bytes().to_vec();
    seq.extend_from_slice(&1u64.to_le_bytes());
    let mut bytes = frame_v2(0x03, 0x02, 5, &seq, b"k", b"v");
    bytes.extend(frame_v2(0x01, 0, 6, &[], b"", b""));
    socket.write_all(&bytes).await.unwrap();
    let answers = read_v2_by_id(&mut socket, 2).await;
    assert_eq!(answers[&5].0, 0x03);
    assert_eq!(answers[&6].0, 0x00);
    assert_eq!(server.store().get(b"k"), None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn id_0_or_unknown_flags_is_bad_request_with_its_id_then_close() {
    let server = server_with(Limits::default()).await;
    for (bytes, id) in [
        (frame_v2(0x01, 0, 0, &[], b"", b""), 0),
        (frame_v2(0x01, 0x10, 7, &[], b"", b""), 7),
        (frame_v2(0x02, 0x81, 7, &[0; 4], b"k", b""), 7),
    ] {
        let (mut socket, _) = hello(server.local_addr()).await;
        socket.write_all(&bytes).await.unwrap();
        let (status, answered, _) = read_v2(&mut socket).await;
        assert_eq!((status, answered), (0x03, id));
        assert_closed(&mut socket).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_id_still_in_flight_is_bad_request_with_that_id_then_close() {
    let server = server_with(Limits::default()).await;
    let (mut socket, _) = hello(server.local_addr()).await;
    // One small write: the server reads both frames before it answers
    // the first, so the second reuses an id still in flight.
    let mut bytes = frame_v2(0x01, 0, 8, &[], b"", b"first");
    bytes.extend(frame_v2(0x01, 0, 8, &[], b"", b"again"));
    socket.write_all(&bytes).await.unwrap();
    // Until the server closes: the refusal, and the first PING's answer
    // before or after it (what was read before is still answered).
    let mut answers = Vec::new();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection in time")
        .expect("read to the end");
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        assert!(rest.len() >= 10, "a torn response: {rest:?}");
        let id = u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let len = u32::from_le_bytes([rest[6], rest[7], rest[8], rest[9]]) as usize;
        answers.push((rest[0], id, rest[10..10 + len].to_vec()));
        rest = &rest[10 + len..];
    }
    assert!(
        answers.iter().any(|(status, id, _)| (*status, *id) == (0x03, 8)),
        "the reused id was not refused: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|answer| answer.0 == 0x03 || *answer == (0x00, 8, b"first".to_vec())),
        "{answers:?}"
    );
    assert!(answers.len() <= 2, "{answers:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_1_1_connection_is_unchanged_beside_version_2_ones() {
    let server = server_with(Limits::default()).await;
    let (mut v2, _) = hello(server.local_addr()).await;
    let mut v1 = TcpStream::connect(server.local_addr()).await.unwrap();
    v1.write_all(&frame(0x03, b"k", b"v")).await.unwrap();
    assert_eq!(read_response(&mut v1).await, (0x00, vec![]));
    v2.write_all(&frame_v2(0x02, 0, 1, &[], b"k", b"")).await.unwrap();
    assert_eq!(read_v2(&mut v2).await, (0x00, 1, b"v".to_vec()));
    v1.write_all(&frame(0x02, b"k", b"")).await.unwrap();
    assert_eq!(read_response(&mut v1).await, (0x00, b"v".to_vec()));
    // A typed 1.1 client too.
    let client = KvClient::connect(server.local_addr()).await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hello_before_auth_is_unauthenticated_and_the_connection_stays_1_1() {
    let token = kv::AuthToken::new("a token of some length").unwrap();
    let server = KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            auth: Some(token),
            ..KvServerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    socket
        .write_all(&frame(HELLO, b"", &hello_value()))
        .await
        .unwrap();
    assert_eq!(read_response(&mut socket).await.0, 0x07, "UNAUTHENTICATED");
    // Still 1.1: AUTH, then HELLO, then version 2.
    socket
        .write_all(&frame(0x06, b"", b"a token of some length"))
        .await
        .unwrap();
    assert_eq!(read_response(&mut socket).await, (0x00, vec![]));
    socket
        .write_all(&frame(HELLO, b"", &hello_value()))
        .await
        .unwrap();
    let (status, value) = read_response(&mut socket).await;
    assert_eq!((status, value.len()), (0x00, 10));
    socket
        .write_all(&frame_v2(0x01, 0, 2, &[], b"", b"v2"))
        .await
        .unwrap();
    assert_eq!(read_v2(&mut socket).await, (0x00, 2, b"v2".to_vec()));
    // A second HELLO, now in version 2 framing, is a bad request.
    socket
        .write_all(&frame_v2(HELLO, 0, 3, &[], b"", &hello_value()))
        .await
        .unwrap();
    assert_eq!(read_v2(&mut socket).await.0, 0x03);
    server.shutdown().await.unwrap();
}
