//! Token authentication as PROTOCOL.md 1.1 says: requests before AUTH,
//! a wrong token, pipelined AUTH, the client's on-connect AUTH across a
//! server restart, the limit on failed attempts and protected mode. Every
//! wait has a deadline; nothing asserts a speed.

mod common;

use common::read_response;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{
    AuthHandshake, AuthLimits, AuthToken, ClientCodec, KvClient, KvError, KvServer, KvServerConfig, Request,
    Status,
};
use wirestack::pipeline::Pipeline;
use wirestack::reconnect::ReconnectConfig;
use wirestack::server::ServeConfig;

const SOON: Duration = Duration::from_secs(20);
const TOKEN: &str = "a long random token, in real life 32 bytes from /dev/urandom";

fn token() -> AuthToken {
    AuthToken::new(TOKEN).unwrap()
}

async fn server_with_token(limits: AuthLimits) -> KvServer {
    KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            auth: Some(token()),
            auth_limits: limits,
            ..KvServerConfig::default()
        },
    )
    .await
    .expect("a server on a loopback port")
}

/// Raw frames, as any client of the protocol would send them.
fn frame(command: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut frame = vec![command];
    frame.extend_from_slice(&(key.len() as u32).to_le_bytes());
    frame.extend_from_slice(&(value.len() as u32).to_le_bytes());
    frame.extend_from_slice(key);
    frame.extend_from_slice(value);
    frame
}

fn auth(token: &str) -> Vec<u8> {
    frame(0x06, b"", token.as_bytes())
}

async fn assert_closed(socket: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = timeout(SOON, socket.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open: {read:?}");
}

async fn bare_client(addr: std::net::SocketAddr) -> KvClient<Pipeline<Request, wirestack::kv::Response>> {
    let transport = wirestack::transport::connect(addr, ClientCodec::new())
        .await
        .unwrap();
    KvClient::new(Pipeline::new(transport))
}

#[tokio::test]
async fn requests_before_auth_are_answered_unauthenticated_and_the_connection_stays() {
    let server = server_with_token(AuthLimits::default()).await;
    let client = bare_client(server.local_addr()).await;
    for _ in 0..3 {
        match client.put("k", "v").await {
            Err(KvError::Unauthenticated { message }) => {
                assert!(message.contains("AUTH required"), "{message}")
            }
            other => panic!("expected UNAUTHENTICATED, got {other:?}"),
        }
    }
    // Same connection: now authenticate, and it is served.
    client.auth(&token()).await.unwrap();
    client.put("k", "v").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(server.store().len(), 1, "nothing was written before AUTH");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_is_answered_unauthenticated_and_closes_the_connection() {
    let server = server_with_token(AuthLimits::default()).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    // A wrong AUTH, and a PUT pipelined behind it.
    let mut batch = auth("not the token");
    batch.extend(frame(0x03, b"k", b"v"));
    socket.write_all(&batch).await.unwrap();
    let (status, message) = read_response(&mut socket).await;
    assert_eq!(status, Status::Unauthenticated as u8);
    assert_eq!(String::from_utf8_lossy(&message), "wrong token");
    assert_closed(&mut socket).await;
    assert_eq!(server.store().len(), 0, "the PUT behind it was not applied");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_pipelined_auth_authenticates_the_requests_behind_it() {
    let server = server_with_token(AuthLimits::default()).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut batch = frame(0x01, b"", b""); // PING before AUTH
    batch.extend(auth(TOKEN));
    batch.extend(frame(0x03, b"k", b"v"));
    batch.extend(frame(0x02, b"k", b""));
    socket.write_all(&batch).await.unwrap();
    assert_eq!(read_response(&mut socket).await.0, Status::Unauthenticated as u8);
    assert_eq!(read_response(&mut socket).await, (0x00, vec![]));
    assert_eq!(read_response(&mut socket).await, (0x00, vec![]));
    assert_eq!(read_response(&mut socket).await, (0x00, b"v".to_vec()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn auth_on_a_server_without_a_token_is_ok() {
    let server = KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .unwrap();
    let client = bare_client(server.local_addr()).await;
    client.auth(&AuthToken::new("anything").unwrap()).await.unwrap();
    client.put("k", "v").await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_on_connect_auth_reauthenticates_after_a_server_restart() {
    let server = server_with_token(AuthLimits::default()).await;
    let addr = server.local_addr();
    let stack = ClientBuilder::new(ClientCodec::new())
        .timeout(Duration::from_secs(10))
        .on_connect(AuthHandshake::new(token()))
        .connect::<Request>(addr)
        .await
        .unwrap();
    let client = KvClient::new(stack);
    client.put("k", "before").await.unwrap();

    server.shutdown().await.unwrap();
    let restarted = KvServer::start(
        addr,
        KvServerConfig {
            auth: Some(token()),
            ..KvServerConfig::default()
        },
    )
    .await
    .expect("the same port again");
    // The next requests go out on a new connection, authenticated by the
    // hook before any of them is written (the store is new: in memory).
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match client.put("k", "after").await {
            Ok(()) => break,
            Err(KvError::Unauthenticated { message }) => panic!("sent before AUTH: {message}"),
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "never reconnected: {error}"
            ),
        }
    }
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
    assert!(client.service().reconnect_stats().reconnects() >= 1);
    restarted.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_in_the_hook_is_unauthenticated_and_never_retried() {
    let server = server_with_token(AuthLimits::default()).await;
    let wrong = AuthToken::new("wrong").unwrap();
    let connected = ClientBuilder::new(ClientCodec::new())
        .on_connect(AuthHandshake::new(wrong.clone()))
        .connect::<Request>(server.local_addr())
        .await;
    let error = KvError::from_service(connected.expect_err("refused").into());
    match error {
        KvError::Unauthenticated { message } => assert_eq!(message, "wrong token"),
        other => panic!("expected Unauthenticated, got {other:?}"),
    }

    // Built in the background: calls fail with it too, and are not retried.
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .on_connect(AuthHandshake::new(wrong))
            .connect_lazy::<Request>(server.local_addr()),
    );
    let error = timeout(SOON, client.put("k", "v"))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(error, KvError::Unauthenticated { .. }), "{error:?}");
    assert_eq!(client.service().retry_stats().retries, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn past_the_burst_wrong_tokens_are_refused_and_the_right_one_still_gets_in() {
    // Three failures allowed, then one an hour: the test is over long before.
    let server = server_with_token(AuthLimits {
        burst: 3,
        refill: Duration::from_secs(3600),
    })
    .await;
    let addr = server.local_addr();
    // A correct AUTH costs nothing.
    for _ in 0..5 {
        bare_client(addr).await.auth(&token()).await.unwrap();
    }
    // Each wrong guess, on a connection of its own, is compared and refused.
    for _ in 0..3 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(&auth("guess")).await.unwrap();
        let (status, message) = read_response(&mut socket).await;
        assert_eq!(
            (status, &message[..]),
            (Status::Unauthenticated as u8, &b"wrong token"[..])
        );
        assert_closed(&mut socket).await;
    }
    // The budget of 127.0.0.1 is spent: a wrong guess is told so...
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket.write_all(&auth("guess")).await.unwrap();
    let (status, message) = read_response(&mut socket).await;
    assert_eq!(status, Status::Unauthenticated as u8);
    assert!(String::from_utf8_lossy(&message).contains("too many failed AUTH attempts"));
    assert_closed(&mut socket).await;
    // ...and the right token, from the same address, still gets in.
    bare_client(addr).await.auth(&token()).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_on_every_interface_without_a_token_refuses_to_start() {
    // Bound and refused before it serves anything; no traffic is sent.
    let refused = KvServer::start("0.0.0.0:0", KvServerConfig::default())
        .await
        .expect_err("protected mode");
    assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(refused.to_string().contains("without a token"), "{refused}");
}

#[tokio::test]
async fn a_refused_client_does_not_try_again_until_a_request_needs_it() {
    let server = server_with_token(AuthLimits::default()).await;
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .reconnect(ReconnectConfig {
                backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(300)),
                ..ReconnectConfig::default()
            })
            .on_connect(AuthHandshake::new(AuthToken::new("wrong").unwrap()))
            .connect_lazy::<Request>(server.local_addr()),
    );
    let error = timeout(SOON, client.ping()).await.expect("no hang").unwrap_err();
    assert!(matches!(error, KvError::Unauthenticated { .. }), "{error:?}");
    let attempts = client.service().reconnect_stats().connect_attempts;
    // Left alone for several backoff periods (50 ms, 100 ms, ... 300 ms),
    // it makes no more attempts: each would be one more failed AUTH.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(client.service().reconnect_stats().connect_attempts, attempts);
    // A request is demand: it fails at once, and the task tries again.
    let error = client.ping().await.unwrap_err();
    assert!(matches!(error, KvError::Unauthenticated { .. }), "{error:?}");
    let deadline = tokio::time::Instant::now() + SOON;
    while client.service().reconnect_stats().connect_attempts == attempts {
        assert!(tokio::time::Instant::now() < deadline, "never tried again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

/// A server with a token and `serve`'s connection settings.
async fn server_with(serve: ServeConfig, auth_timeout: Option<Duration>) -> KvServer {
    KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            auth: Some(token()),
            auth_timeout,
            serve,
            ..KvServerConfig::default()
        },
    )
    .await
    .expect("a server on a loopback port")
}

#[tokio::test]
async fn silent_peers_do_not_keep_an_authenticated_client_out_past_the_auth_deadline() {
    // Every slot taken by a peer that connects and says nothing; the idle
    // timeout alone would keep them for an hour.
    let slots = 24;
    let server = server_with(
        ServeConfig {
            max_connections: slots,
            idle_timeout: Some(Duration::from_secs(3600)),
            ..ServeConfig::default()
        },
        Some(Duration::from_millis(300)),
    )
    .await;
    let addr = server.local_addr();
    let mut silent = Vec::new();
    for _ in 0..slots {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // A client with the token gets in once the deadline has cleared them
    // (before, it is refused BUSY: the server is full).
    let served = timeout(SOON, async {
        loop {
            let client = bare_client(addr).await;
            if client.auth(&token()).await.is_ok() && client.ping().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "the authenticated client was kept out");
    for socket in &mut silent {
        assert_closed(socket).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_authenticated_connection_outlives_the_auth_deadline() {
    let server = server_with(ServeConfig::default(), Some(Duration::from_millis(100))).await;
    let client = bare_client(server.local_addr()).await;
    client.auth(&token()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.ping().await.expect("still open past the deadline");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_peer_over_the_per_address_cap_is_refused() {
    let server = server_with(
        ServeConfig {
            max_connections_per_address: Some(3),
            ..ServeConfig::default()
        },
        None,
    )
    .await;
    let addr = server.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        let client = bare_client(addr).await;
        client.auth(&token()).await.unwrap();
        held.push(client);
    }
    // The fourth from 127.0.0.1 is answered BUSY and closed.
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    fourth.write_all(&auth(TOKEN)).await.unwrap();
    let (status, message) = timeout(SOON, read_response(&mut fourth)).await.expect("answered");
    assert_eq!(status, Status::Busy as u8);
    assert!(
        String::from_utf8_lossy(&message).contains("too many connections from this address"),
        "{message:?}"
    );
    assert_closed(&mut fourth).await;
    // One closed, one more may come in.
    drop(held.pop());
    let again = timeout(SOON, async {
        loop {
            let client = bare_client(addr).await;
            if client.auth(&token()).await.is_ok() {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a slot given back");
    again.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

/// A PUT header claiming a `value_len`-byte value, its key, and the
/// first `sent` bytes of the value.
fn put_start(key: &str, value_len: u32, sent: usize) -> Vec<u8> {
    let mut put = vec![0x03];
    put.extend_from_slice(&(key.len() as u32).to_le_bytes());
    put.extend_from_slice(&value_len.to_le_bytes());
    put.extend_from_slice(key.as_bytes());
    put.resize(put.len() + sent, 5);
    put
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_uploads_are_refused_at_once_and_take_no_pool_room() {
    // 3 MiB for 24 connections: shares of 64 KiB, a pool of 1.5 MiB. The
    // read timeout and the AUTH deadline are long: neither frees the pool
    // from peers that stall before SOON.
    let server = server_with(
        ServeConfig {
            max_connections: 24,
            max_buffered_request_bytes: 3 << 20,
            read_timeout: Some(Duration::from_secs(90)),
            ..ServeConfig::default()
        },
        Some(Duration::from_secs(90)),
    )
    .await;
    let addr = server.local_addr();
    // Twelve peers that never AUTH start 700 KiB uploads and stall: each
    // is told to authenticate first, and closed.
    let mut stalled = Vec::new();
    for i in 0..12 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(&put_start(&format!("stalled-{i}"), 700 << 10, 3_000))
            .await
            .unwrap();
        stalled.push(socket);
    }
    for socket in &mut stalled {
        let (status, message) = timeout(SOON, read_response(socket))
            .await
            .expect("answered at once");
        let message = String::from_utf8_lossy(&message);
        assert_eq!(status, Status::Unauthenticated as u8, "{message}");
        assert!(message.contains("AUTH first"), "{message}");
        assert_closed(socket).await;
    }
    // An authenticated 1 MiB PUT needs most of the pool: nothing holds it.
    let client = bare_client(addr).await;
    client.auth(&token()).await.unwrap();
    let stored = timeout(SOON, client.put("large", vec![9u8; 1 << 20])).await;
    stored.expect("delayed by unauthenticated peers").unwrap();
    assert_eq!(server.store().get(b"large").map(|v| v.len()), Some(1 << 20));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_auth_pipelined_ahead_of_a_large_put_lets_it_through() {
    let server = server_with(ServeConfig::default(), None).await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    // AUTH and a 300 KiB PUT in one write: the PUT is read after AUTH
    // has reached the gate, with the full limits.
    let mut both = auth(TOKEN);
    both.extend_from_slice(&frame(0x03, b"big", &vec![3u8; 300 << 10]));
    let (mut reading, mut writing) = socket.split();
    let (written, answers) = tokio::join!(writing.write_all(&both), async {
        let auth = timeout(SOON, read_response(&mut reading))
            .await
            .expect("AUTH answered");
        let put = timeout(SOON, read_response(&mut reading))
            .await
            .expect("PUT answered");
        (auth, put)
    });
    written.unwrap();
    assert_eq!(answers.0 .0, Status::Ok as u8);
    assert_eq!(
        answers.1 .0,
        Status::Ok as u8,
        "{}",
        String::from_utf8_lossy(&answers.1 .1)
    );
    assert_eq!(server.store().get(b"big").map(|v| v.len()), Some(300 << 10));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_longer_than_the_limit_before_auth_still_gets_in() {
    let long = "t".repeat(11_000);
    let server = KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            auth: Some(AuthToken::new(long.clone()).unwrap()),
            serve: ServeConfig {
                max_unadmitted_frame_bytes: 2_000,
                ..ServeConfig::default()
            },
            ..KvServerConfig::default()
        },
    )
    .await
    .unwrap();
    let client = bare_client(server.local_addr()).await;
    client.auth(&AuthToken::new(long).unwrap()).await.unwrap();
    client.put("k", vec![1u8; 5_000]).await.unwrap();
    // The limit before AUTH was raised to the AUTH frame (a 9-byte
    // header and the token): a request over it is told to authenticate.
    let other = bare_client(server.local_addr()).await;
    match other.put("k", vec![1u8; 5_000]).await {
        Err(KvError::Unauthenticated { message }) => assert!(message.contains("AUTH required"), "{message}"),
        other => panic!("{other:?}"),
    }
    let other = bare_client(server.local_addr()).await;
    match other.put("k", vec![1u8; 11_001]).await {
        Err(KvError::Unauthenticated { message }) => assert!(message.contains("11009 bytes"), "{message}"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await.unwrap();
}
