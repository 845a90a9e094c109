//! The server under hostile and heavy load, and the client facing a hostile
//! server: garbage, slow and idle peers, the connection cap, panics in a
//! service, many pipelined connections, and malformed responses.
//!
//! Every wait has a deadline; nothing asserts how fast anything is.

mod common;

use bytes::Bytes;
use common::read_response;
use std::collections::HashMap;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};
use wirestack::kv::{
    self, Busy, ClientCodec, CodecError, Incoming, KvClient, KvServer, KvServerConfig, KvService, Request,
    Response, ServerCodec, Status, Store,
};
use wirestack::pipeline::{self, Pipeline};
use wirestack::server::{ServeConfig, Server};

/// A deadline for things that must happen "soon" on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(20);

/// Taken by the tests that open hundreds of sockets, so that together they
/// stay within a common soft limit of 1024 file descriptors (each loopback
/// connection costs two: the client's and the in-process server's).
static MANY_SOCKETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A small deterministic generator (xorshift64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

async fn server(serve: ServeConfig) -> kv::KvServer {
    KvServer::start(
        "127.0.0.1:0",
        KvServerConfig {
            serve,
            ..KvServerConfig::default()
        },
    )
    .await
    .expect("bind a loopback port")
}

/// Waits, with a deadline, for the server to close `socket`.
async fn assert_closed(socket: &mut TcpStream) {
    let mut byte = [0u8; 1];
    let read = timeout(SOON, socket.read(&mut byte))
        .await
        .expect("the server closes the connection in time");
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open: {read:?}");
}

/// A client on one bare pipelined connection: no reconnect, no retry, no
/// deadline, so that a test sees exactly what the server did.
async fn bare_client(addr: std::net::SocketAddr) -> KvClient<Pipeline<Request, Response>> {
    let transport = wirestack::transport::connect(addr, ClientCodec::new())
        .await
        .expect("connect");
    KvClient::new(Pipeline::new(transport))
}

/// A fresh client with the default stack is served.
async fn assert_served(addr: std::net::SocketAddr) {
    let client = timeout(SOON, KvClient::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    timeout(SOON, async {
        client.ping().await.expect("ping");
        client.put("fresh", "client").await.expect("put");
        assert_eq!(
            client.get("fresh").await.expect("get").as_deref(),
            Some(&b"client"[..])
        );
    })
    .await
    .expect("served in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_300_connections_leaves_the_server_serving() {
    let _turn = MANY_SOCKETS.lock().await;
    let server = server(ServeConfig::default()).await;
    let addr = server.local_addr();
    let mut peers = JoinSet::new();
    for seed in 0..300u64 {
        peers.spawn(async move {
            let mut rng = Rng::new(seed);
            let mut socket = TcpStream::connect(addr).await.expect("connect");
            let len = rng.below(4096) as usize + 1;
            let garbage = rng.bytes(len);
            // The server may already have answered TOO_LARGE and closed.
            let _ = socket.write_all(&garbage).await;
        });
    }
    timeout(SOON, async {
        while let Some(peer) = peers.join_next().await {
            peer.expect("a garbage peer");
        }
    })
    .await
    .expect("garbage peers done in time");
    assert_served(addr).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_hang_until_the_read_timeout_while_others_are_served() {
    let _turn = MANY_SOCKETS.lock().await;
    let read_timeout = Duration::from_secs(3);
    let server = server(ServeConfig {
        read_timeout: Some(read_timeout),
        idle_timeout: None,
        ..ServeConfig::default()
    })
    .await;
    let addr = server.local_addr();

    // A bystander connected before: idle, but with nothing half sent.
    let bystander = KvClient::connect(addr).await.unwrap();
    bystander.ping().await.unwrap();

    let mut slow = Vec::new();
    for _ in 0..200 {
        slow.push(TcpStream::connect(addr).await.expect("connect"));
    }
    for socket in &mut slow {
        // Five of the nine header bytes of a PUT.
        socket.write_all(&[0x03, 1, 0, 0, 0]).await.unwrap();
    }

    assert_served(addr).await;
    // Still hanging, not closed: the fresh client was served while they hang.
    for socket in &slow {
        let mut byte = [0u8; 1];
        let read = socket.try_read(&mut byte);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a slow peer was answered or closed before its read timeout: {read:?}"
        );
    }

    for socket in &mut slow {
        assert_closed(socket).await;
    }
    // Only partial frames time out: the idle bystander is still served.
    bystander.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = server(ServeConfig {
        idle_timeout: Some(Duration::from_millis(200)),
        ..ServeConfig::default()
    })
    .await;
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    socket
        .write_all(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert_eq!(read_response(&mut socket).await, (0x00, vec![]));
    assert_closed(&mut socket).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_peer_that_reads_no_responses_is_closed_after_the_write_timeout() {
    let server = server(ServeConfig {
        write_timeout: Some(Duration::from_millis(300)),
        max_in_flight_per_connection: 4,
        idle_timeout: None,
        ..ServeConfig::default()
    })
    .await;
    let bystander = KvClient::connect(server.local_addr()).await.unwrap();
    bystander.ping().await.unwrap();

    // PINGs echo 256 KiB each; this peer never reads an answer. Once the
    // socket buffers fill, the server can write nothing more to it.
    let mut ping = vec![0x01, 0, 0, 0, 0];
    ping.extend_from_slice(&(256 * 1024u32).to_le_bytes());
    ping.resize(ping.len() + 256 * 1024, b'p');
    let mut socket = TcpStream::connect(server.local_addr()).await.unwrap();
    let closed = timeout(SOON, async {
        // Writing fails once the server has closed the connection.
        while socket.write_all(&ping).await.is_ok() {}
    })
    .await;
    assert!(closed.is_ok(), "the server kept a peer that reads nothing");
    bystander.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_past_the_cap_are_answered_busy_and_closed() {
    let server = server(ServeConfig {
        max_connections: 4,
        ..ServeConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let mut admitted = Vec::new();
    for _ in 0..4 {
        let client = bare_client(addr).await;
        client.ping().await.unwrap();
        admitted.push(client);
    }

    // A refused connection's first request is answered BUSY, then it closes.
    let mut refused = TcpStream::connect(addr).await.unwrap();
    refused
        .write_all(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (status, message) = read_response(&mut refused).await;
    assert_eq!(status, Status::Busy as u8);
    assert!(String::from_utf8_lossy(&message).contains("too many connections"));
    assert_closed(&mut refused).await;

    let refused = bare_client(addr).await;
    let error = refused.ping().await.expect_err("refused");
    assert!(error.is_busy(), "{error}");

    // The admitted ones are served, and a slot frees when one leaves.
    for client in &admitted {
        client.ping().await.unwrap();
    }
    drop(admitted.pop());
    let deadline = Instant::now() + SOON;
    loop {
        let client = bare_client(addr).await;
        match client.ping().await {
            Ok(()) => break,
            Err(error) if error.is_busy() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no slot freed in time: {error}"),
        }
    }
    server.shutdown().await.unwrap();
}

/// `KvService`, except that a PING with the payload `panic` panics.
#[derive(Clone)]
struct PanicOnMagic(KvService);

impl Service<Incoming> for PanicOnMagic {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = <KvService as Service<Incoming>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Incoming>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        if let Incoming::Request(Request::Ping { payload }) = &incoming {
            if payload.as_ref() == b"panic" {
                panic!("the magic request");
            }
        }
        self.0.call(incoming)
    }
}

#[tokio::test]
async fn a_panic_in_one_connection_ends_only_that_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(Server::new(ServerCodec::new()).with_overload(Busy).serve(
        listener,
        tower::make::Shared::new(PanicOnMagic(KvService::new(Store::new()))),
        stop.clone().cancelled_owned(),
    ));

    let bystander = bare_client(addr).await;
    bystander.put("k", "v").await.unwrap();
    let victim = bare_client(addr).await;
    let error = timeout(SOON, victim.ping_with("panic"))
        .await
        .expect("the victim is answered in time")
        .expect_err("its connection died with the panic");
    assert!(matches!(error, kv::KvError::Connection(_)), "{error}");

    assert_eq!(bystander.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_served(addr).await;
    stop.cancel();
    timeout(SOON, serving)
        .await
        .expect("the server drains in time")
        .expect("the server task did not panic")
        .expect("serve returns Ok");
}

/// One connection's share of the soak: random pipelined batches on keys only
/// it uses, each answer checked against a model of what it wrote.
async fn soak_one_connection(addr: std::net::SocketAddr, id: u64, until: Instant) -> usize {
    // Bare: a protocol error must surface, not be retried away.
    let client = bare_client(addr).await;
    let mut rng = Rng::new(1000 + id);
    let mut model: HashMap<Bytes, Bytes> = HashMap::new();
    let mut checked = 0;
    for _batch in 0..2000 {
        if Instant::now() >= until {
            break;
        }
        let mut batch = Vec::new();
        for _ in 0..16 {
            let key = Bytes::from(format!("c{id}-k{}", rng.below(8)));
            let len = rng.below(64) as usize;
            let value = Bytes::from(rng.bytes(len));
            batch.push(match rng.below(4) {
                0 => Request::Put { key, value },
                1 => Request::PutTtl {
                    key,
                    ttl_ms: 3_600_000,
                    value,
                },
                2 => Request::Delete { key },
                _ => Request::Get { key },
            });
        }
        let responses = client.batch(batch.clone()).await.expect("no protocol error");
        assert_eq!(responses.len(), batch.len());
        for (request, response) in batch.into_iter().zip(responses) {
            let expected = match request {
                Request::Put { key, value } | Request::PutTtl { key, value, .. } => {
                    model.insert(key, value);
                    Response::ok_empty()
                }
                Request::Delete { key } => match model.remove(&key) {
                    Some(_) => Response::ok_empty(),
                    None => Response::not_found(),
                },
                Request::Get { key } => match model.get(&key) {
                    Some(value) => Response::ok(value.clone()),
                    None => Response::not_found(),
                },
                other => unreachable!("not sent: {other:?}"),
            };
            assert_eq!(response, expected, "connection {id}");
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pipelined_connections_each_read_their_own_writes() {
    let _turn = MANY_SOCKETS.lock().await;
    let server = server(ServeConfig::default()).await;
    let until = Instant::now() + Duration::from_secs(3);
    let mut connections = JoinSet::new();
    for id in 0..50 {
        connections.spawn(soak_one_connection(server.local_addr(), id, until));
    }
    let mut total = 0;
    while let Some(checked) = timeout(SOON, connections.join_next())
        .await
        .expect("every connection finishes in time")
    {
        let checked = checked.expect("a connection's soak");
        assert!(checked > 0, "a connection completed no batch");
        total += checked;
    }
    assert!(total >= 50 * 16);
    server.shutdown().await.unwrap();
}

/// A fake server that answers the first request it receives with `reply`
/// and keeps the connection open; reports when the client drops it.
async fn hostile_server(reply: &'static [u8]) -> (std::net::SocketAddr, impl Future<Output = bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dropped = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await;
        socket.write_all(reply).await.unwrap();
        // Reading until EOF: the client closed its end.
        while socket.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
        true
    });
    (addr, async move {
        timeout(SOON, dropped).await.is_ok_and(|r| r.unwrap_or(false))
    })
}

#[tokio::test]
async fn a_bad_response_fails_every_pending_caller_and_drops_the_connection() {
    let over_limit: &[u8] = b"\x00\x00\x00\x00\x80"; // OK claiming 2 GiB
    let unknown_status: &[u8] = b"\x09\x00\x00\x00\x00";
    let garbage: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    for (reply, expected) in [
        (over_limit, "TooLarge"),
        (unknown_status, "UnknownStatus(9)"),
        (garbage, "UnknownStatus(72)"),
    ] {
        let (addr, dropped) = hostile_server(reply).await;
        let transport = wirestack::transport::connect(addr, ClientCodec::new())
            .await
            .unwrap();
        let pipeline: Pipeline<Request, Response> = Pipeline::new(transport);
        let mut callers = JoinSet::new();
        for i in 0..8 {
            let pipeline = pipeline.clone();
            callers.spawn(async move {
                pipeline
                    .oneshot(Request::Get {
                        key: Bytes::from(format!("k{i}")),
                    })
                    .await
            });
        }
        while let Some(result) = timeout(SOON, callers.join_next()).await.expect("no caller hangs") {
            let error = result.unwrap().expect_err("a bad response is an error");
            let pipeline::Error::Transport(source) = &error else {
                panic!("expected a transport error, got {error:?}");
            };
            let codec_error = source
                .downcast_ref::<CodecError>()
                .unwrap_or_else(|| panic!("expected a codec error, got {source:?}"));
            assert!(
                format!("{codec_error:?}").starts_with(expected),
                "{codec_error:?}"
            );
        }
        assert!(pipeline.broken().is_some(), "the pipeline reports itself broken");
        // KvClient sorts it as a protocol error.
        let error = KvClient::new(pipeline.clone()).ping().await.expect_err("broken");
        assert!(
            matches!(error, kv::KvError::Protocol(_)),
            "expected a protocol error, got {error:?}"
        );
        let mut pipeline = pipeline;
        let ready = std::future::poll_fn(|cx| Service::<kv::Request>::poll_ready(&mut pipeline, cx)).await;
        assert!(ready.is_err(), "a broken pipeline takes no more requests");
        assert!(dropped.await, "the client dropped the connection");
    }
}

#[tokio::test]
async fn without_an_overload_answer_refused_work_closes_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    // No `with_overload`: the server has no protocol answer to refuse with.
    let serving = tokio::spawn(
        Server::new(ServerCodec::new())
            .with_config(ServeConfig {
                max_connections: 2,
                max_buffered_request_bytes: 1024,
                ..ServeConfig::default()
            })
            .serve(
                listener,
                tower::make::Shared::new(KvService::new(Store::new())),
                stop.clone().cancelled_owned(),
            ),
    );
    // Two peers take the two connections, answered so they are counted.
    let mut holder = TcpStream::connect(addr).await.unwrap();
    holder
        .write_all(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    assert_eq!(read_response(&mut holder).await, (0x00, vec![]));
    let client = bare_client(addr).await;
    client.ping().await.unwrap();

    // Past the connection limit, a new connection is closed unanswered.
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert_closed(&mut third).await;

    // The holder starts a PUT of 4 KiB: more than a connection can ever
    // hold of a 1 KiB budget (its 256-byte share and the 512-byte pool).
    // With no answer to refuse it with, its own connection is closed,
    // unanswered; the other is served as before.
    let mut partial = vec![0x03, 1, 0, 0, 0];
    partial.extend_from_slice(&4096u32.to_le_bytes());
    partial.resize(partial.len() + 2048, b'h');
    holder.write_all(&partial).await.unwrap();
    assert_closed(&mut holder).await;
    client.ping().await.unwrap();

    stop.cancel();
    drop(holder);
    timeout(SOON, serving).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_frame_larger_than_the_budget_can_hold_is_answered_busy_and_closes_only_its_connection() {
    // A 64 KiB budget for 4 connections: 8 KiB each, and a 32 KiB pool.
    let server = server(ServeConfig {
        max_connections: 4,
        max_buffered_request_bytes: 64 * 1024,
        ..ServeConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let other = bare_client(addr).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    // A PUT of 48 KiB: the server reads its share of it, then refuses it.
    // Sending exactly the share leaves nothing unread to reset the
    // connection before the answer is read.
    let mut put = vec![0x03, 1, 0, 0, 0];
    put.extend_from_slice(&(48 * 1024u32).to_le_bytes());
    put.push(b'k');
    put.resize(8 * 1024, 7);
    socket.write_all(&put).await.unwrap();
    let (status, message) = read_response(&mut socket).await;
    assert_eq!(
        status,
        Status::Busy as u8,
        "{}",
        String::from_utf8_lossy(&message)
    );
    assert_closed(&mut socket).await;
    // A request that fits a connection's share is served as ever.
    other.put("k", vec![1u8; 4 * 1024]).await.unwrap();
    assert!(server.store().get(b"k").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_put_is_not_queued_without_bound_behind_stalled_uploads() {
    let _turn = MANY_SOCKETS.lock().await;
    // A budget of 6 MiB for 48 connections: 64 KiB each, a pool of 3 MiB.
    let read_timeout = Duration::from_millis(700);
    let server = server(ServeConfig {
        max_connections: 48,
        max_buffered_request_bytes: 6 << 20,
        read_timeout: Some(read_timeout),
        ..ServeConfig::default()
    })
    .await;
    let addr = server.local_addr();
    // Uploads of 2 MiB values that send 100 KiB and stall: each needs
    // most of the pool, so they hold it one after another, each for its
    // read timeout. Served first come first served, 40 of them are 28 s.
    let mut stalled = Vec::new();
    for i in 0..40u32 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let key = format!("stalled-{i}");
        let mut header = vec![0x03];
        header.extend_from_slice(&(key.len() as u32).to_le_bytes());
        header.extend_from_slice(&(2u32 << 20).to_le_bytes());
        header.extend_from_slice(key.as_bytes());
        // More than a connection's share, so that it takes pool bytes.
        header.extend_from_slice(&[0u8; 100 << 10]);
        socket.write_all(&header).await.unwrap();
        stalled.push(socket);
    }
    // Let the server read their headers and queue them for the pool first
    // (an ordering aid, not a measurement).
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fresh PUT over its share: answered within its own read timeout's
    // reach — served, or refused BUSY — not after every stalled upload.
    // 1.5 MiB: it cannot fit in the pool beside one stalled upload. Sent
    // raw, its answer read apart from its write: a server that refuses it
    // closes the connection, which may break the write before the answer
    // is read (a client that fails the call on the broken write would
    // hide the answer).
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut put = vec![0x03];
    put.extend_from_slice(&5u32.to_le_bytes());
    put.extend_from_slice(&(3u32 << 19).to_le_bytes());
    put.extend_from_slice(b"fresh");
    put.resize(put.len() + (3 << 19), 7);
    let writing = tokio::spawn(async move {
        let _ = write.write_all(&put).await;
        write // kept open until the answer is read
    });
    let mut header = [0u8; 5];
    timeout(SOON, read.read_exact(&mut header))
        .await
        .expect("the fresh PUT was queued behind the stalled uploads")
        .unwrap();
    let mut message = vec![0u8; u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize];
    read.read_exact(&mut message).await.unwrap();
    let message = String::from_utf8_lossy(&message);
    match header[0] {
        status if status == Status::Ok as u8 => {}
        status if status == Status::Busy as u8 => assert!(message.contains("buffer budget"), "{message}"),
        status => panic!("neither served nor refused BUSY: status {status}, {message}"),
    }
    drop(writing.await);
    drop(stalled);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_most_pool_waiters_a_large_put_is_answered_busy_at_once() {
    // 5 MiB for 40 connections: shares of 64 KiB, a pool of 2.5 MiB; at
    // most 3 connections wait for it. The read timeout is long: it frees
    // nobody from the queue before SOON.
    let server = server(ServeConfig {
        max_connections: 40,
        max_buffered_request_bytes: 5 << 20,
        max_pool_waiters: 3,
        read_timeout: Some(Duration::from_secs(90)),
        ..ServeConfig::default()
    })
    .await;
    let addr = server.local_addr();
    // Seven uploads of 1.75 MiB values send exactly a share (so that
    // nothing unread resets a refused one under its answer) and stall: one
    // holds the pool, three wait, three are refused BUSY at once.
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let mut stalled = JoinSet::new();
    for i in 0..7u32 {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let key = format!("stalled-{i}");
        let mut put = vec![0x03];
        put.extend_from_slice(&(key.len() as u32).to_le_bytes());
        put.extend_from_slice(&(7u32 << 18).to_le_bytes());
        put.extend_from_slice(key.as_bytes());
        put.resize(64 << 10, 1);
        socket.write_all(&put).await.unwrap();
        let answered = answered.clone();
        stalled.spawn(async move {
            let mut status = [0u8; 1];
            if socket.read_exact(&mut status).await.is_ok() {
                let _ = answered.send(status[0]);
            }
            // Held open (the holder and the waiters) until the test ends.
            std::future::pending::<()>().await;
        });
    }
    // Once three are refused, the queue is full.
    for _ in 0..3 {
        let status = timeout(SOON, answers.recv())
            .await
            .expect("three refused at once");
        assert_eq!(status, Some(Status::Busy as u8));
    }
    // A fresh 1.25 MiB PUT would wait behind them: it is refused at once.
    // Sent raw, a share of it and no more, so that the server's close after
    // its answer cannot break the write before the answer is read.
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    let mut put = vec![0x03];
    put.extend_from_slice(&5u32.to_le_bytes());
    put.extend_from_slice(&(5u32 << 18).to_le_bytes());
    put.extend_from_slice(b"fresh");
    put.resize(64 << 10, 2);
    fresh.write_all(&put).await.unwrap();
    let mut header = [0u8; 5];
    timeout(SOON, fresh.read_exact(&mut header))
        .await
        .expect("the fresh PUT was queued behind the stalled uploads")
        .unwrap();
    assert_eq!(header[0], Status::Busy as u8, "not refused BUSY at once");
    let mut message = vec![0u8; u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize];
    fresh.read_exact(&mut message).await.unwrap();
    let message = String::from_utf8_lossy(&message);
    assert!(message.contains("too many requests wait"), "{message}");
    // A request within a connection's share is served meanwhile.
    let small = bare_client(addr).await;
    timeout(SOON, small.put("small", vec![3u8; 1_000]))
        .await
        .expect("served")
        .unwrap();
    // The holder and the waiters are still there, unanswered.
    assert!(answers.try_recv().is_err());
    stalled.abort_all();
    server.shutdown().await.unwrap();
}
