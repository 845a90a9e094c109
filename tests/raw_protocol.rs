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
