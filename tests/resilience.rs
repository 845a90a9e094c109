//! The client stack against servers that die, stay down, hang, lie or refuse:
//! reconnect, retry, timeout and the retry budget, each proven on real
//! sockets on 127.0.0.1.

use futures::{SinkExt, StreamExt};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, Framed, LinesCodec, LinesCodecError};
use tower::{Service, ServiceBuilder, ServiceExt};
use wirestack::backoff::Backoff;
use wirestack::builder::ClientBuilder;
use wirestack::kv::{
    self, ClientCodec, Incoming, KvClient, KvError, KvServer, KvServerConfig, Request, Response, ServerCodec,
    Status,
};
use wirestack::pipeline::Pipeline;
use wirestack::pipeline::{self, MakePipeline};
use wirestack::reconnect::error::Disconnected;
use wirestack::reconnect::{Reconnect, ReconnectConfig, ReconnectLayer};
use wirestack::retry::{Idempotent, RetryConfig, RetryPolicy, RetryableResponse};
use wirestack::server::Server;
use wirestack::transport::TcpConnector;
use wirestack::BoxError;

/// A listener on `addr` with `SO_REUSEADDR`, so that a server can come back
/// on the port of one that was just killed.
fn bind_reusable(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A loopback address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn fast_reconnect() -> ReconnectConfig {
    ReconnectConfig {
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(250)),
        connect_timeout: Duration::from_secs(1),
        max_attempts: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_completes_across_a_server_restart_under_load() {
    const TASKS: u64 = 16;
    const OPERATIONS: u64 = 20_000;
    const KILL_AFTER: u64 = 5_000;

    let listener = bind_reusable("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(kv::serve(
        listener,
        KvServerConfig::default(),
        std::future::pending(),
    ));

    let stack = ClientBuilder::new(ClientCodec::new())
        .timeout(Duration::from_secs(20))
        .retry(RetryConfig {
            max_retries: 30,
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(200)),
            ..RetryConfig::default()
        })
        .reconnect(fast_reconnect())
        .connect::<Request>(addr)
        .await
        .unwrap();
    let client = KvClient::new(stack);

    let done = Arc::new(AtomicU64::new(0));
    let lost_writes = Arc::new(AtomicU64::new(0));
    let longest_stall = Arc::new(Mutex::new(Duration::ZERO));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = client.clone();
        let done = done.clone();
        let lost_writes = lost_writes.clone();
        let longest_stall = longest_stall.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..OPERATIONS / TASKS / 2 {
                let key = format!("task{task}-key{i}");
                let value = format!("value{i}");
                let started = Instant::now();
                // A write lost with its connection is not retried (it may
                // have been applied): it fails "may have been applied", and
                // the caller decides. This key is this task's alone, so
                // writing it again is safe here.
                loop {
                    match client.put(key.clone(), value.clone()).await {
                        Ok(()) => break,
                        Err(KvError::Connection(_)) => {
                            lost_writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(format!("put {key}: {e}")),
                    }
                }
                let got = client
                    .get(key.clone())
                    .await
                    .map_err(|e| format!("get {key}: {e}"))?;
                // A restart loses the in-memory store between the two.
                if got.is_some_and(|got| got != value.as_bytes()) {
                    return Err(format!("get {key}: wrong value"));
                }
                let took = started.elapsed();
                let mut longest = longest_stall.lock().unwrap();
                *longest = (*longest).max(took);
                drop(longest);
                done.fetch_add(2, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }

    // Kill the server in the middle of the load; bring it back on the same
    // port after about a second.
    let restart = tokio::spawn({
        let done = done.clone();
        async move {
            while done.load(Ordering::Relaxed) < KILL_AFTER {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let killed_at = done.load(Ordering::Relaxed);
            server.abort();
            tokio::time::sleep(Duration::from_millis(800)).await;
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match bind_reusable(addr) {
                    Ok(listener) => break listener,
                    Err(error) if Instant::now() < deadline => {
                        eprintln!("rebinding {addr}: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(error) => panic!("could not rebind {addr}: {error}"),
                }
            };
            let server = tokio::spawn(kv::serve(
                listener,
                KvServerConfig::default(),
                std::future::pending(),
            ));
            (killed_at, server)
        }
    });

    let results = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(tasks))
        .await
        .expect("the load hung");
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|result| result.expect("a load task panicked").err())
        .collect();
    let (killed_at, server) = restart.await.unwrap();

    let stack = client.service();
    let retries = stack.retry_stats();
    let reconnects = stack.reconnect_stats();
    let longest = *longest_stall.lock().unwrap();
    println!(
        "restart under load: {} operations from {TASKS} tasks, server killed after {killed_at}; \
         {} retries ({} refused by the budget), {} reconnects ({} connect attempts, {} failed), \
         {} writes lost with the connection and written again, longest stall {longest:?}",
        done.load(Ordering::Relaxed),
        retries.retries,
        retries.budget_exhausted,
        reconnects.reconnects(),
        reconnects.connect_attempts,
        reconnects.connect_failures,
        lost_writes.load(Ordering::Relaxed),
    );
    assert!(
        failures.is_empty(),
        "{} tasks failed, first: {}",
        failures.len(),
        failures[0]
    );
    assert_eq!(done.load(Ordering::Relaxed), OPERATIONS);
    assert!(reconnects.reconnects() >= 1, "{reconnects:?}");
    assert!(retries.retries >= 1, "{retries:?}");
    server.abort();
}

/// A connector that records when it is asked to connect and always fails,
/// for backoff tests in paused time.
fn refusing_connector(
    attempts: Arc<Mutex<Vec<Instant>>>,
) -> impl Service<(), Response = Pipeline<Request, Response>, Error = io::Error, Future = impl Send> + Send + 'static
{
    tower::service_fn(move |()| {
        attempts.lock().unwrap().push(Instant::now());
        async { Err(io::Error::from(io::ErrorKind::ConnectionRefused)) }
    })
}

#[tokio::test(start_paused = true)]
async fn reconnect_backs_off_exponentially_while_the_server_stays_down() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let config = ReconnectConfig {
        backoff,
        ..ReconnectConfig::default()
    };
    let service = Reconnect::new(refusing_connector(attempts.clone()), (), config);
    assert!(service.wait_connected().await.is_err());

    // While down, calls fail fast, without waiting for the next attempt.
    let started = Instant::now();
    for _ in 0..100 {
        let error = service
            .clone()
            .oneshot(Request::Get { key: "k".into() })
            .await
            .unwrap_err();
        let disconnected = error
            .downcast_ref::<Disconnected>()
            .expect("a Disconnected error");
        assert!(disconnected.cause().is_some());
    }
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "calls waited instead of failing fast"
    );

    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = attempts.lock().unwrap().clone();
    let stats = service.handle().stats();
    assert_eq!(stats.connect_attempts, attempts.len() as u64);
    assert_eq!(stats.connect_failures, attempts.len() as u64);
    assert_eq!(stats.connects, 0);

    // Never faster than `base`, never slower than the exponential ceiling,
    // so over a minute: at least 60 s / cap and at most 60 s / base attempts.
    for (failures, gap) in attempts.windows(2).map(|w| w[1] - w[0]).enumerate() {
        assert!(gap >= backoff.base(), "attempt {failures}: waited {gap:?}");
        assert!(
            gap <= backoff.ceiling(failures as u32),
            "attempt {failures}: waited {gap:?}"
        );
    }
    assert!(attempts.len() >= 30, "gave up: {} attempts", attempts.len());
    assert!(attempts.len() < 600, "spun: {} attempts", attempts.len());
}

#[tokio::test(start_paused = true)]
async fn reconnect_stops_after_max_attempts_and_probes_only_on_demand() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let config = ReconnectConfig {
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        max_attempts: Some(3),
        ..ReconnectConfig::default()
    };
    let service = Reconnect::new(refusing_connector(attempts.clone()), (), config);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(attempts.lock().unwrap().len(), 3);

    // A call still fails fast, and asks for one more attempt.
    let error = service
        .clone()
        .oneshot(Request::Ping { payload: "".into() })
        .await
        .unwrap_err();
    assert!(error.is::<Disconnected>());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(attempts.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn calls_to_a_server_that_stays_down_end_with_a_typed_error_within_their_deadline() {
    let addr = closed_port().await;
    let deadline = Duration::from_millis(300);

    // With retries: each call retries its not-sent request until the budget,
    // its retries or its deadline runs out.
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(deadline)
            .reconnect(fast_reconnect())
            .connect_lazy::<Request>(addr),
    );
    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let result = client.get(format!("k{i}")).await;
            (started.elapsed(), result)
        }
    });
    for (took, result) in futures::future::join_all(calls).await {
        match result {
            Err(KvError::Disconnected(_) | KvError::TimedOut) => {}
            other => panic!("expected Disconnected or TimedOut, got {other:?}"),
        }
        // A hang guard, not a speed test: the deadline holds.
        assert!(took < deadline + Duration::from_secs(2), "took {took:?}");
    }
    assert!(client.service().reconnect_stats().connect_failures >= 1);

    // Without retries, every call fails fast with Disconnected.
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(Duration::from_secs(30))
            .retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .reconnect(fast_reconnect())
            .connect_lazy::<Request>(addr),
    );
    for i in 0..20 {
        match client.put(format!("k{i}"), "v").await {
            Err(KvError::Disconnected(source)) => {
                let cause = source
                    .downcast_ref::<Disconnected>()
                    .and_then(Disconnected::cause);
                let io = cause.and_then(|cause| cause.downcast_ref::<io::Error>());
                assert_eq!(io.map(io::Error::kind), Some(io::ErrorKind::ConnectionRefused));
            }
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_requests_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket); // accepted, never read, never answered
        }
    });

    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(Duration::from_millis(200))
            .connect::<Request>(addr)
            .await
            .unwrap(),
    );
    for _ in 0..3 {
        assert!(matches!(client.get("k").await, Err(KvError::TimedOut)));
    }
    let put = client.put("k", "v").await;
    assert!(matches!(put, Err(KvError::TimedOut)), "{put:?}");
    // A timeout is not a reason to retry or reconnect.
    assert_eq!(client.service().retry_stats().retries, 0);
    assert_eq!(client.service().reconnect_stats().connects, 1);
    silent.abort();
}

#[tokio::test]
async fn a_garbage_answer_is_a_protocol_error_and_the_connection_is_replaced() {
    let good = KvServer::start("127.0.0.1:0", KvServerConfig::default())
        .await
        .unwrap();
    let good_addr = good.local_addr();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The first connection gets garbage; later ones reach the real server.
    let front = tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = socket.read(&mut buf).await;
                    // Status 0xEE does not exist.
                    let _ = socket.write_all(&[0xEE, 0, 0, 0, 0]).await;
                    let _ = socket.read(&mut buf).await;
                });
            } else {
                tokio::spawn(async move {
                    let mut upstream = TcpStream::connect(good_addr).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                });
            }
        }
    });

    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .reconnect(fast_reconnect())
            .connect::<Request>(addr)
            .await
            .unwrap(),
    );
    match client.get("k").await {
        Err(KvError::Protocol(error)) => {
            let codec = std::iter::successors(Some(&*error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .find_map(|e| e.downcast_ref::<kv::CodecError>());
            assert!(
                matches!(codec, Some(kv::CodecError::UnknownStatus(0xEE))),
                "{error}"
            );
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // Not retried: the same bytes would come back.
    assert_eq!(client.service().retry_stats().retries, 0);

    client.put("k", "v").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let stats = client.service().reconnect_stats();
    assert_eq!((stats.disconnects, stats.reconnects()), (1, 1), "{stats:?}");
    front.abort();
    good.shutdown().await.unwrap();
}

/// A KV server that answers every request `BUSY` and counts them.
async fn spawn_busy_server(received: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = tower::service_fn(move |_: Incoming| {
        received.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::error(Status::Busy, "try later")) }
    });
    tokio::spawn(Server::new(ServerCodec::new()).serve(
        listener,
        tower::make::Shared::new(service),
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn the_retry_budget_bounds_extra_attempts() {
    const REQUESTS: u64 = 100;
    let received = Arc::new(AtomicU64::new(0));
    let addr = spawn_busy_server(received.clone()).await;

    // Unbudgeted, 100 requests × 50 retries would be 5,100 attempts. The
    // budget allows one retry per four requests (and no floor), over a window
    // longer than the test.
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(Duration::from_secs(30))
            .retry(RetryConfig {
                max_retries: 50,
                backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
                retry_ratio: 0.25,
                min_retries_per_sec: 0,
                budget_window: Duration::from_secs(60),
            })
            .connect::<Request>(addr)
            .await
            .unwrap(),
    );
    for i in 0..REQUESTS {
        let error = client.get(format!("k{i}")).await.unwrap_err();
        assert!(error.is_busy(), "{error:?}");
    }

    let stats = client.service().retry_stats();
    let attempts = received.load(Ordering::Relaxed);
    println!("budget: {REQUESTS} requests, {attempts} attempts, {stats:?}");
    assert_eq!(attempts, REQUESTS + stats.retries);
    assert!(stats.retries >= 1, "BUSY was never retried: {stats:?}");
    assert!(stats.retries <= REQUESTS / 4, "{stats:?}");
    assert!(stats.budget_exhausted >= REQUESTS - stats.retries, "{stats:?}");
}

#[tokio::test]
async fn a_busy_answer_is_retried_until_the_server_accepts() {
    let busy_left = Arc::new(AtomicU64::new(3));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Without sessions: a fresh `KvService` per call keeps no connection's
    // HELLO, so the client must not stamp its writes (window 0).
    let store = kv::Store::with_sessions(kv::SessionConfig {
        window: 0,
        ..kv::SessionConfig::default()
    });
    let service = tower::service_fn({
        let busy_left = busy_left.clone();
        move |incoming: Incoming| {
            // The client's HELLO is answered: the refusals are for its calls.
            let refuse = !is_hello(&incoming)
                && busy_left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok();
            // A 2.0 refusal carries its request's id.
            let id = incoming.id().unwrap_or(0);
            // Called now, so requests apply in the order they arrived.
            let answer = (!refuse).then(|| kv::KvService::new(store.clone()).call(incoming));
            async move {
                match answer {
                    Some(answer) => answer.await,
                    None => Ok::<_, Infallible>(Response::error(Status::Busy, "warming up").with_id(id)),
                }
            }
        }
    });
    tokio::spawn(Server::new(ServerCodec::new()).serve(
        listener,
        tower::make::Shared::new(service),
        std::future::pending(),
    ));

    let client = KvClient::connect(addr).await.unwrap();
    client.put("k", "v").await.unwrap();
    assert_eq!(client.service().retry_stats().retries, 3);
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

// ---------------------------------------------------------------------------
// A tiny counter protocol with a request that is not idempotent: one command
// per line, `INCR` or `GET`, answered with the counter's value.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Incr,
    Get,
}

impl Idempotent for Cmd {
    fn is_idempotent(&self) -> bool {
        matches!(self, Cmd::Get)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply(String);

impl RetryableResponse for Reply {
    fn is_retryable(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Default)]
struct CounterCodec(LinesCodec);

impl Encoder<Cmd> for CounterCodec {
    type Error = LinesCodecError;

    fn encode(&mut self, cmd: Cmd, dst: &mut bytes::BytesMut) -> Result<(), LinesCodecError> {
        self.0.encode(if cmd == Cmd::Incr { "INCR" } else { "GET" }, dst)
    }
}

impl Decoder for CounterCodec {
    type Item = Reply;
    type Error = LinesCodecError;

    fn decode(&mut self, src: &mut bytes::BytesMut) -> Result<Option<Reply>, LinesCodecError> {
        Ok(self.0.decode(src)?.map(Reply))
    }
}

/// The counter server. While `drop_next` is set, the next request is applied
/// and then its connection is dropped without an answer: the answer is lost.
struct CounterServer {
    addr: SocketAddr,
    counter: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    drop_next: Arc<AtomicBool>,
}

async fn spawn_counter_server() -> CounterServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = CounterServer {
        addr: listener.local_addr().unwrap(),
        counter: Arc::default(),
        requests: Arc::default(),
        drop_next: Arc::default(),
    };
    let (counter, requests, drop_next) = (
        server.counter.clone(),
        server.requests.clone(),
        server.drop_next.clone(),
    );
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let (counter, requests, drop_next) = (counter.clone(), requests.clone(), drop_next.clone());
            tokio::spawn(async move {
                let mut lines = Framed::new(socket, LinesCodec::new());
                while let Some(Ok(line)) = lines.next().await {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let value = match line.as_str() {
                        "INCR" => counter.fetch_add(1, Ordering::SeqCst) + 1,
                        _ => counter.load(Ordering::SeqCst),
                    };
                    if drop_next.swap(false, Ordering::SeqCst) {
                        return;
                    }
                    if lines.send(value.to_string()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    server
}

type CounterService = wirestack::deadline::Deadline<wirestack::retry::Retry<Reconnect<Pipeline<Cmd, Reply>>>>;

fn counter_client<M>(connector: M, addr: SocketAddr, policy: RetryPolicy) -> CounterService
where
    M: Service<SocketAddr, Response = Pipeline<Cmd, Reply>> + Send + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send,
{
    ServiceBuilder::new()
        .layer(wirestack::deadline::DeadlineLayer::new(Duration::from_secs(10)))
        .layer(policy.into_layer())
        .layer(ReconnectLayer::with_config(addr, fast_reconnect()))
        .service(connector)
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy::new(RetryConfig {
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        ..RetryConfig::default()
    })
}

#[tokio::test]
async fn a_request_that_is_not_idempotent_is_not_retried_after_it_may_have_been_sent() {
    let server = spawn_counter_server().await;
    let policy = quick_retries();
    let stats = policy.handle();
    let client = counter_client(
        MakePipeline::<_, Cmd>::new(
            TcpConnector::new(CounterCodec::default()),
            pipeline::Builder::new(),
        ),
        server.addr,
        policy,
    );

    // The server applies INCR, then the connection dies before the answer.
    server.drop_next.store(true, Ordering::SeqCst);
    let error = client.clone().oneshot(Cmd::Incr).await.unwrap_err();
    assert!(error.is::<wirestack::pipeline::Error>(), "{error}");
    assert_eq!(server.counter.load(Ordering::SeqCst), 1, "applied once");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1, "INCR was retried");
    assert_eq!((stats.stats().retries, stats.stats().unsafe_to_retry), (0, 1));

    // The same loss on an idempotent GET is retried on a new connection.
    server.drop_next.store(true, Ordering::SeqCst);
    let reply = client.clone().oneshot(Cmd::Get).await.unwrap();
    assert_eq!(reply, Reply("1".into()));
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    assert_eq!(stats.stats().retries, 1);
}

#[tokio::test]
async fn a_request_that_is_not_idempotent_is_retried_when_it_was_never_sent() {
    let server = spawn_counter_server().await;
    // The first two connect attempts are refused: the endpoint is down.
    let refusals = Arc::new(AtomicU64::new(2));
    let mut tcp = TcpConnector::new(CounterCodec::default());
    let transports = tower::service_fn(move |addr: SocketAddr| {
        let refuse = refusals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let connect = tcp.call(addr);
        async move {
            if refuse {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            connect.await
        }
    });
    let connector = MakePipeline::<_, Cmd>::new(transports, pipeline::Builder::new());
    let policy = quick_retries();
    let stats = policy.handle();
    let client = counter_client(connector, server.addr, policy);

    let reply = client.oneshot(Cmd::Incr).await.unwrap();
    assert_eq!(reply, Reply("1".into()));
    assert_eq!(server.counter.load(Ordering::SeqCst), 1, "applied exactly once");
    assert!(stats.stats().retries >= 1, "{:?}", stats.stats());
}

/// Whether `incoming` is a client's HELLO (which the scripted servers here
/// answer as a KV server does, and do not count among the calls).
fn is_hello(incoming: &Incoming) -> bool {
    matches!(incoming, Incoming::Request(kv::Request::Hello { .. }))
}

/// A KV server that answers `BUSY` to the requests `refuse` picks (by the
/// order the server sees them, from 0, HELLOs aside) and serves the others.
async fn refusing_server(refuse: fn(u64) -> bool) -> (SocketAddr, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Without sessions: a fresh `KvService` per call keeps no connection's
    // HELLO, so the client must not stamp its writes (window 0).
    let store = kv::Store::with_sessions(kv::SessionConfig {
        window: 0,
        ..kv::SessionConfig::default()
    });
    let service = tower::service_fn({
        let received = received.clone();
        move |incoming: Incoming| {
            let refused = !is_hello(&incoming) && refuse(received.fetch_add(1, Ordering::SeqCst));
            // A 2.0 refusal carries its request's id.
            let id = incoming.id().unwrap_or(0);
            let answer = (!refused).then(|| kv::KvService::new(store.clone()).call(incoming));
            async move {
                match answer {
                    Some(answer) => answer.await,
                    None => Ok::<_, Infallible>(Response::error(Status::Busy, "one moment").with_id(id)),
                }
            }
        }
    });
    tokio::spawn(Server::new(ServerCodec::new()).serve(
        listener,
        tower::make::Shared::new(service),
        std::future::pending(),
    ));
    (addr, received)
}

#[tokio::test]
async fn a_batch_resends_the_remainder_from_its_first_refused_request() {
    // The server refuses the 2nd, 3rd and 4th request it ever sees, as an
    // overloaded server refuses what follows: the whole remainder.
    let (addr, received) = refusing_server(|n| (1..=3).contains(&n)).await;
    let client = KvClient::connect(addr).await.unwrap();
    // k is written twice in the batch: the retry must leave the later value.
    client
        .put_many([("k", "first"), ("a", "1"), ("k", "last"), ("b", "2")])
        .await
        .unwrap();
    // 4 sent, then the 3 from the refused one on.
    assert_eq!(received.load(Ordering::SeqCst), 7);
    assert_eq!(client.service().retry_stats().retries, 1);
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"last"[..]));
    assert_eq!(client.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
}

#[tokio::test]
async fn a_batch_is_not_resent_over_writes_that_were_applied_after_a_refusal() {
    // Only the 2nd request is refused: the writes after it were applied,
    // and sending them again could land over newer writes of others.
    let (addr, received) = refusing_server(|n| n == 1).await;
    let client = KvClient::connect(addr).await.unwrap();
    let error = client
        .put_many([("k", "first"), ("a", "1"), ("k", "last"), ("b", "2")])
        .await
        .unwrap_err();
    assert!(error.is_busy(), "the refusal, as it was: {error}");
    assert_eq!(received.load(Ordering::SeqCst), 4, "nothing sent again");
    assert_eq!(client.service().retry_stats().retries, 0);
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"last"[..]));
    assert_eq!(
        client.get("a").await.unwrap(),
        None,
        "the refused write was not applied"
    );
}

// On the real clock: a paused clock auto-advances whenever the runtime
// waits, even for a loopback answer already on its way, and could jump to
// the deadline between two attempts on a busy machine.
#[tokio::test]
async fn a_refusal_that_outlasts_the_deadline_is_reported_as_busy() {
    let received = Arc::new(AtomicU64::new(0));
    let addr = spawn_busy_server(received.clone()).await;
    // Retries every 200-400 ms, without limit but the deadline's.
    let client = KvClient::new(
        ClientBuilder::new(ClientCodec::new())
            .timeout(Duration::from_secs(2))
            .retry(RetryConfig {
                max_retries: u32::MAX,
                backoff: Backoff::new(Duration::from_millis(200), Duration::from_millis(400)),
                ..RetryConfig::default()
            })
            .connect::<Request>(addr)
            .await
            .unwrap(),
    );
    let error = client.get("k").await.unwrap_err();
    assert!(
        matches!(error, KvError::Busy { .. }),
        "the refusal, before the deadline: {error:?}"
    );
    assert!(
        received.load(Ordering::Relaxed) >= 3,
        "retried while there was time"
    );
}
