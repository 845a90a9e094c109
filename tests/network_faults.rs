//! The default client stack (timeout → retry → reconnect → pipeline) under
//! network faults, deterministically: the connections are in-memory pipes
//! (`tokio::io::duplex`) made by a connector of the test's own, plugged into
//! the stack through the connector seam (`pipeline::MakePipeline`), and the
//! clock is paused, so every delay is virtual and every run the same.
//!
//! The test's network can refuse or delay a connection attempt, partition a
//! link (nothing more gets through either way until it heals) or reset it.
//! Its server end runs the real `KvService` over a store and counts every
//! request it receives and every write it applies, so each test can say
//! both what the callers saw and what happened on the server:
//!
//! * every caller gets an answer or a typed error, within its deadline;
//! * nothing that may have been applied is sent again unless it is
//!   idempotent (GET); a write that was never sent is sent again, once.
//!
//! The last tests run the same network under KV 2.0, the stack
//! `KvClient::connect` builds (HELLO, a `Multiplex`, keepalive): a server
//! that goes silent is found by keepalive before the deadline, and a
//! server's GOAWAY gets the writes it never read sent again, each applied
//! once.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tower::retry::Retry;
use tower::timeout::Timeout;
use tower::Service;
use wirestack::keepalive::Keepalive;
use wirestack::kv::{
    ClientCodec, Hello, Incoming, KvClient, KvError, KvService, Request, ServerCodec, Store,
};
use wirestack::multiplex::{self, MakeMultiplex, Multiplex};
use wirestack::pipeline::{self, MakePipeline};
use wirestack::reconnect::{Reconnect, ReconnectConfig, ReconnectHandle};
use wirestack::retry::{RetryHandle, RetryPolicy};
use wirestack::transport::OnConnect;

/// The deadline of every call: `ClientBuilder`'s default.
const DEADLINE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A link that can be partitioned or reset.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Nothing gets through either way until the fault is cleared.
    Partitioned,
    /// Every read and write fails with `ConnectionReset`.
    Reset,
}

/// The state of one connection, shared by its two ends and the test.
#[derive(Debug, Default)]
struct Link {
    state: Mutex<(Option<Fault>, Vec<Waker>)>,
}

impl Link {
    fn set(&self, fault: Option<Fault>) {
        let mut state = self.state.lock().unwrap();
        state.0 = fault;
        for waker in state.1.drain(..) {
            waker.wake();
        }
    }

    /// Whether the client end may read or write now. Every poll registers
    /// its waker, so that a read waiting for bytes also wakes on a fault.
    fn poll_pass(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.state.lock().unwrap();
        if !state.1.iter().any(|waker| waker.will_wake(cx.waker())) {
            state.1.push(cx.waker().clone());
        }
        match state.0 {
            None => Poll::Ready(Ok(())),
            Some(Fault::Partitioned) => Poll::Pending,
            Some(Fault::Reset) => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
        }
    }
}

/// The client end of a link: a pipe that obeys the link's faults.
struct FaultyIo {
    io: DuplexStream,
    link: Arc<Link>,
}

impl AsyncRead for FaultyIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        futures::ready!(self.link.poll_pass(cx))?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        futures::ready!(self.link.poll_pass(cx))?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::ready!(self.link.poll_pass(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// The network: a script of connection attempts and server behaviours.

/// What a connection attempt does.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    /// The server accepts at once; the client end arrives after this delay.
    Connect(Duration),
    /// Refused at once.
    Refuse,
}

/// What a server connection does after answering `answer` requests.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    answer: usize,
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// Go on answering.
    Answer,
    /// Read every request and do nothing with it.
    Silence,
    /// Partition the link (once the client has read the answers so far),
    /// then go on applying and answering: the answers wait in the pipe
    /// until the partition heals, as TCP would keep them.
    Partition,
    /// Apply the next request, then reset the link without answering.
    ResetAfterApplying,
    /// Say GOAWAY (2.0), read nothing more and close: what the client
    /// wrote after the last request read was never read.
    GoAway,
}

const HEALTHY: Behaviour = Behaviour {
    answer: usize::MAX,
    then: Then::Answer,
};

#[derive(Debug, Default)]
struct Net {
    /// Scripted attempts, in order; once it is empty every attempt connects.
    attempts: Mutex<VecDeque<Attempt>>,
    /// Scripted server connections, in order; then every one is healthy.
    behaviours: Mutex<VecDeque<Behaviour>>,
    links: Mutex<Vec<Arc<Link>>>,
    store: Store,
    /// Every request a server connection read: (connection, request).
    received: Mutex<Vec<(usize, Request)>>,
    /// How often each PUT value was applied.
    applied: Mutex<HashMap<Bytes, u32>>,
}

impl Net {
    fn new(attempts: &[Attempt], behaviours: &[Behaviour]) -> Arc<Net> {
        Arc::new(Net {
            attempts: Mutex::new(attempts.iter().copied().collect()),
            behaviours: Mutex::new(behaviours.iter().copied().collect()),
            ..Net::default()
        })
    }

    fn link(&self, connection: usize) -> Arc<Link> {
        self.links.lock().unwrap()[connection].clone()
    }

    fn connections(&self) -> usize {
        self.links.lock().unwrap().len()
    }

    fn applied(&self, value: &str) -> u32 {
        let applied = self.applied.lock().unwrap();
        applied.get(value.as_bytes()).copied().unwrap_or(0)
    }

    fn received(&self) -> Vec<(usize, Request)> {
        self.received.lock().unwrap().clone()
    }

    /// Accepts a connection: starts its server end, returns its link.
    fn accept(self: &Arc<Self>, server_end: DuplexStream) -> Arc<Link> {
        let link = Arc::new(Link::default());
        let connection = {
            let mut links = self.links.lock().unwrap();
            links.push(link.clone());
            links.len() - 1
        };
        let behaviour = self.behaviours.lock().unwrap().pop_front().unwrap_or(HEALTHY);
        tokio::spawn(serve(
            self.clone(),
            connection,
            server_end,
            link.clone(),
            behaviour,
        ));
        link
    }
}

/// One server connection. It speaks 1.1, or 2.0 once the client's HELLO
/// is answered (the codec switches; answers still leave in order here).
async fn serve(net: Arc<Net>, connection: usize, io: DuplexStream, link: Arc<Link>, behaviour: Behaviour) {
    let mut framed = Framed::new(io, ServerCodec::new());
    let mut service = KvService::new(net.store.clone());
    let mut handled = 0;
    let mut partitioned = false;
    loop {
        if behaviour.then == Then::GoAway && handled >= behaviour.answer {
            // What was read is answered; nothing more is read; a clean close.
            let _ = framed.send(wirestack::kv::Response::goaway("going away")).await;
            return;
        }
        let incoming = match framed.next().await {
            Some(Ok(incoming)) => incoming,
            _ => return,
        };
        let request = match &incoming {
            Incoming::Request(request) | Incoming::Identified { request, .. } => request.clone(),
            // A cancel has no answer of its own; nothing here runs late.
            Incoming::Cancel { .. } => continue,
            _ => return,
        };
        if !matches!(request, Request::Hello { .. }) {
            net.received.lock().unwrap().push((connection, request.clone()));
        }
        let then = if handled < behaviour.answer {
            Then::Answer
        } else {
            behaviour.then
        };
        handled += 1;
        if then == Then::Silence {
            continue;
        }
        if then == Then::Partition && !partitioned {
            // Let the client read the answers already sent (virtual time:
            // this sleep ends once every other task is idle), then cut.
            tokio::time::sleep(Duration::from_millis(1)).await;
            link.set(Some(Fault::Partitioned));
            partitioned = true;
        }
        if let Request::Put { value, .. } | Request::PutTtl { value, .. } = &request {
            *net.applied.lock().unwrap().entry(value.clone()).or_default() += 1;
        }
        let Ok(response) = Service::<Incoming>::call(&mut service, incoming).await;
        if then == Then::ResetAfterApplying {
            link.set(Some(Fault::Reset));
            return;
        }
        if framed.send(response).await.is_err() {
            return;
        }
    }
}

/// The connector the stack's reconnect layer calls: one scripted attempt a call.
#[derive(Clone)]
struct Connector(Arc<Net>);

impl Service<()> for Connector {
    type Response = Framed<FaultyIo, ClientCodec>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Self::Response>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _target: ()) -> Self::Future {
        let net = self.0.clone();
        let attempt = net.attempts.lock().unwrap().pop_front();
        Box::pin(async move {
            match attempt.unwrap_or(Attempt::Connect(Duration::ZERO)) {
                Attempt::Refuse => Err(io::ErrorKind::ConnectionRefused.into()),
                Attempt::Connect(delay) => {
                    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
                    let link = net.accept(server_end);
                    tokio::time::sleep(delay).await;
                    Ok(Framed::new(FaultyIo { io: client_end, link }, ClientCodec::new()))
                }
            }
        })
    }
}

type Stack = Timeout<Retry<RetryPolicy, Reconnect<pipeline::Pipeline<Request, wirestack::kv::Response>>>>;

/// The default stack, as `ClientBuilder::new(..)` makes it, over the test's
/// network — but with a connect timeout of 1 s rather than 5 s, shorter
/// than the deadline, so that a call can outlive a connect attempt.
fn client(net: &Arc<Net>) -> (KvClient<Stack>, ReconnectHandle, RetryHandle) {
    let connector = MakePipeline::new(Connector(net.clone()), pipeline::Builder::default());
    let config = ReconnectConfig {
        connect_timeout: Duration::from_secs(1),
        ..ReconnectConfig::default()
    };
    let reconnect = Reconnect::new(connector, (), config);
    let reconnects = reconnect.handle();
    let policy = RetryPolicy::default();
    let retries = policy.handle();
    let stack = Timeout::new(Retry::new(policy, reconnect), DEADLINE);
    (KvClient::new(stack), reconnects, retries)
}

fn put(value: &str) -> Request {
    Request::Put {
        key: Bytes::from_static(b"k"),
        value: Bytes::from(value.to_owned()),
    }
}

fn get() -> Request {
    Request::Get {
        key: Bytes::from_static(b"k"),
    }
}

/// The stack `KvClient::connect` builds (KV 2.0: HELLO on every
/// connection, a `Multiplex` with keepalive at its defaults), over the
/// test's network, with the same connect timeout as [`client`].
fn client_v2(net: &Arc<Net>) -> (KvClient<StackV2>, ReconnectHandle, RetryHandle) {
    let transports = OnConnect::new(Connector(net.clone()), Hello::new());
    let connector = MakeMultiplex::new(
        transports,
        multiplex::Builder::new().keepalive(Keepalive::default()),
    );
    let config = ReconnectConfig {
        connect_timeout: Duration::from_secs(1),
        ..ReconnectConfig::default()
    };
    let reconnect = Reconnect::new(connector, (), config);
    let reconnects = reconnect.handle();
    let policy = RetryPolicy::default();
    let retries = policy.handle();
    let stack = Timeout::new(Retry::new(policy, reconnect), DEADLINE);
    (KvClient::new(stack), reconnects, retries)
}

type StackV2 = Timeout<Retry<RetryPolicy, Reconnect<Multiplex<Request, wirestack::kv::Response>>>>;

/// Makes every call at once (they are pipelined on one connection) and
/// returns each result with how long it took, in virtual time.
async fn call_all<S>(
    client: &KvClient<S>,
    requests: Vec<Request>,
) -> Vec<(Result<wirestack::kv::Response, KvError>, Duration)>
where
    S: Service<Request, Response = wirestack::kv::Response> + Clone,
    S::Error: Into<wirestack::BoxError>,
{
    let calls = requests.into_iter().map(|request| {
        let client = client.clone();
        async move {
            let started = Instant::now();
            let result = client.call(request).await;
            (result, started.elapsed())
        }
    });
    futures::future::join_all(calls).await
}

fn assert_within_deadline(results: &[(Result<wirestack::kv::Response, KvError>, Duration)]) {
    for (result, took) in results {
        assert!(*took <= DEADLINE, "{result:?} took {took:?}");
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_partition_mid_pipeline_times_out_the_callers_behind_it_and_retries_nothing() {
    // The first connection answers 4 requests, then the link partitions.
    let net = Net::new(
        &[],
        &[Behaviour {
            answer: 4,
            then: Then::Partition,
        }],
    );
    let (client, reconnects, retries) = client(&net);
    let requests: Vec<Request> = (0..12)
        .map(|i| if i % 3 == 2 { get() } else { put(&format!("v{i}")) })
        .collect();
    let results = call_all(&client, requests.clone()).await;
    assert_within_deadline(&results);
    for (i, (result, took)) in results.iter().enumerate() {
        if i < 4 {
            assert!(result.is_ok(), "{i}: {result:?}");
        } else {
            assert!(matches!(result, Err(KvError::TimedOut)), "{i}: {result:?}");
            assert_eq!(*took, DEADLINE);
        }
    }
    // The server got every request once and applied every write once —
    // the ones that timed out too: a timeout says "may have been applied".
    assert_eq!(net.received().len(), 12);
    for request in &requests {
        if let Request::Put { value, .. } = request {
            assert_eq!(net.applied(std::str::from_utf8(value).unwrap()), 1);
        }
    }
    assert_eq!(retries.stats().retries, 0);
    assert_eq!(reconnects.stats().connects, 1);

    // The partition heals: the late answers are matched to the callers that
    // gave up (and dropped), and the connection serves again.
    net.link(0).set(None);
    client.put("k", "after").await.unwrap();
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
    assert_eq!(reconnects.stats().connects, 1);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_accepts_and_never_answers_times_every_caller_out_without_retrying() {
    let net = Net::new(
        &[],
        &[Behaviour {
            answer: 0,
            then: Then::Silence,
        }],
    );
    let (client, reconnects, retries) = client(&net);
    let requests: Vec<Request> = (0..10)
        .map(|i| if i % 2 == 0 { get() } else { put(&format!("v{i}")) })
        .collect();
    let results = call_all(&client, requests).await;
    assert_within_deadline(&results);
    for (result, took) in &results {
        assert!(matches!(result, Err(KvError::TimedOut)), "{result:?}");
        assert_eq!(*took, DEADLINE);
    }
    // Each request reached the server exactly once: none was sent again.
    assert_eq!(net.received().len(), 10);
    assert_eq!(retries.stats().retries, 0);
    assert_eq!(reconnects.stats().connects, 1);
    // One more, alone: the same.
    let started = Instant::now();
    assert!(matches!(client.put("k", "late").await, Err(KvError::TimedOut)));
    assert_eq!(started.elapsed(), DEADLINE);
    assert_eq!(net.received().len(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_write_whose_connection_resets_before_its_answer_is_not_sent_again() {
    let reset_first = Behaviour {
        answer: 0,
        then: Then::ResetAfterApplying,
    };
    let net = Net::new(&[], &[reset_first]);
    let (client, reconnects, _) = client(&net);
    let started = Instant::now();
    match client.put("k", "v1").await {
        Err(KvError::Connection(source)) => {
            let reset = std::iter::successors(Some(&*source as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .find_map(|e| e.downcast_ref::<io::Error>());
            assert_eq!(reset.map(io::Error::kind), Some(io::ErrorKind::ConnectionReset));
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(started.elapsed() <= DEADLINE);
    // Applied once, on the server; never sent again.
    assert_eq!(net.applied("v1"), 1);
    assert_eq!(net.received().len(), 1);
    // The next call reconnects and is answered.
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(reconnects.stats().connects, 2);
}

#[tokio::test(start_paused = true)]
async fn a_read_whose_connection_resets_before_its_answer_is_sent_again() {
    let reset_first = Behaviour {
        answer: 0,
        then: Then::ResetAfterApplying,
    };
    let net = Net::new(&[], &[reset_first]);
    net.store.put(b"k", b"v");
    let (client, reconnects, retries) = client(&net);
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let received = net.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!((received[0].0, received[1].0), (0, 1), "once on each connection");
    assert_eq!(retries.stats().retries, 1);
    assert_eq!(reconnects.stats().connects, 2);
}

#[tokio::test(start_paused = true)]
async fn a_reset_under_a_pipeline_fails_the_writes_and_retries_the_reads() {
    let reset_first = Behaviour {
        answer: 3,
        then: Then::ResetAfterApplying,
    };
    let net = Net::new(&[], &[reset_first]);
    let (client, _, _) = client(&net);
    let requests: Vec<Request> = (0..10)
        .map(|i| if i % 2 == 0 { get() } else { put(&format!("v{i}")) })
        .collect();
    let results = call_all(&client, requests.clone()).await;
    assert_within_deadline(&results);
    for (i, ((result, _), request)) in results.iter().zip(&requests).enumerate() {
        match (request, result) {
            // Answered before the reset, or read again on a new connection.
            (_, Ok(_)) if i < 3 => {}
            (Request::Get { .. }, Ok(_)) => {}
            // Written and lost: may have been applied, so not sent again.
            (Request::Put { value, .. }, Err(KvError::Connection(_))) => {
                let value = std::str::from_utf8(value).unwrap();
                assert!(net.applied(value) <= 1, "{value}");
            }
            other => panic!("{i}: unexpected {other:?}"),
        }
    }
    // The fourth request was applied and reset; nothing after it was
    // applied on the first connection, and no write reached the second.
    assert_eq!(net.applied("v3"), 1);
    for (connection, request) in net.received() {
        if connection > 0 {
            assert!(
                matches!(request, Request::Get { .. }),
                "{request:?} was sent again"
            );
        }
    }
    for value in ["v5", "v7", "v9"] {
        assert_eq!(net.applied(value), 0, "{value}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_and_refused_connection_attempts_cost_callers_only_time() {
    // The first attempt's handshake is slower than the connect timeout and
    // is given up (the server had accepted it); the second is refused; the
    // third connects.
    let net = Net::new(&[Attempt::Connect(Duration::from_secs(60)), Attempt::Refuse], &[]);
    let (client, reconnects, retries) = client(&net);
    let requests: Vec<Request> = (0..6)
        .map(|i| if i % 2 == 0 { get() } else { put(&format!("v{i}")) })
        .collect();
    let results = call_all(&client, requests.clone()).await;
    assert_within_deadline(&results);
    // The calls wait for the first attempt, fail "not sent" when it is given
    // up, and are retried — until a connection is up, or the retries or
    // their budget run out. Either way a write was applied exactly when
    // its caller was told so.
    for ((result, _), request) in results.iter().zip(&requests) {
        match (request, result) {
            (Request::Put { value, .. }, Ok(_)) => {
                assert_eq!(net.applied(std::str::from_utf8(value).unwrap()), 1)
            }
            (Request::Put { value, .. }, Err(KvError::Disconnected(_))) => {
                assert_eq!(net.applied(std::str::from_utf8(value).unwrap()), 0)
            }
            (Request::Get { .. }, Ok(_) | Err(KvError::Disconnected(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(retries.stats().retries > 0);
    // Later calls find the third connection.
    for i in 0..4 {
        client.put("k", format!("w{i}")).await.unwrap();
        assert_eq!(net.applied(&format!("w{i}")), 1);
    }
    // The abandoned first connection carried nothing.
    assert!(net.received().iter().all(|(connection, _)| *connection != 0));
    let stats = reconnects.stats();
    assert_eq!(
        (stats.connect_attempts, stats.connects, stats.connect_failures),
        (3, 1, 2),
        "{stats:?}"
    );
    assert_eq!(
        net.connections(),
        2,
        "the slow attempt was accepted, the refused one was not"
    );
}

// ---------------------------------------------------------------------------
// KV 2.0: the stack `KvClient::connect` builds.

/// A server that answers HELLO and then nothing: keepalive pings after a
/// second of silence and fails the connection 900 ms later, long before the
/// 5 s deadline. The writes end "lost with the connection" (they may have
/// been applied: the server read them); the reads are sent again on a new
/// connection and answered.
#[tokio::test(start_paused = true)]
async fn under_2_0_a_silent_server_is_found_by_keepalive_before_the_deadline() {
    let net = Net::new(
        &[],
        &[Behaviour {
            answer: 1,
            then: Then::Silence,
        }],
    );
    net.store.put(b"k", b"v");
    let (client, reconnects, _) = client_v2(&net);
    let requests: Vec<Request> = (0..8)
        .map(|i| if i % 2 == 0 { get() } else { put(&format!("v{i}")) })
        .collect();
    let results = call_all(&client, requests.clone()).await;
    let found_by = Keepalive::default().get_interval() + Keepalive::default().get_timeout();
    for ((result, took), request) in results.iter().zip(&requests) {
        match (request, result) {
            (Request::Get { .. }, Ok(response)) => assert_eq!(&response.value[..], b"v"),
            (Request::Put { .. }, Err(KvError::Connection(source))) => {
                let unresponsive =
                    std::iter::successors(Some(&**source as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| matches!(e.downcast_ref(), Some(pipeline::Error::Unresponsive(_))));
                assert!(unresponsive, "{source}");
                // Virtual time: exactly when the keepalive gave up.
                assert_eq!(*took, found_by, "{result:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(found_by < DEADLINE);
    assert_eq!(reconnects.stats().connects, 2);
    // No write was sent again: each reached the silent server once.
    for (connection, request) in net.received() {
        if connection > 0 {
            assert!(
                matches!(request, Request::Get { .. }),
                "{request:?} was sent again"
            );
        }
    }
}

/// A server that answers three requests, says GOAWAY and closes: the
/// requests written after those were never read, so the client sends them
/// again — writes included — on a new connection, and every write is
/// applied exactly once and every caller answered.
#[tokio::test(start_paused = true)]
async fn under_2_0_a_goaway_sends_the_unread_writes_again_and_applies_each_once() {
    let net = Net::new(
        &[],
        &[Behaviour {
            // HELLO and two calls.
            answer: 3,
            then: Then::GoAway,
        }],
    );
    let (client, reconnects, retries) = client_v2(&net);
    let requests: Vec<Request> = (0..10)
        .map(|i| if i % 3 == 2 { get() } else { put(&format!("v{i}")) })
        .collect();
    let results = call_all(&client, requests.clone()).await;
    assert_within_deadline(&results);
    for (i, (result, _)) in results.iter().enumerate() {
        assert!(result.is_ok(), "{i}: {result:?}");
    }
    for request in &requests {
        if let Request::Put { value, .. } = request {
            let value = std::str::from_utf8(value).unwrap();
            assert_eq!(net.applied(value), 1, "{value}");
        }
    }
    let first: Vec<_> = net.received().into_iter().filter(|(c, _)| *c == 0).collect();
    assert_eq!(first.len(), 2, "the first connection read two calls: {first:?}");
    assert_eq!(reconnects.stats().connects, 2);
    assert!(retries.stats().retries >= 8, "{:?}", retries.stats());
}
