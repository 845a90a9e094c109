//! The timers, on an in-memory pipe with the clock paused: no real waiting.

use super::*;
use crate::server::{AdmitAll, InOrder, KeepOpen, Refuse};
use futures::StreamExt;
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use tokio_util::codec::LinesCodec;
use tokio_util::sync::CancellationToken;

const IDLE: Duration = Duration::from_secs(60);
const READ: Duration = Duration::from_secs(10);
const WRITE: Duration = Duration::from_secs(20);

/// A connection's task: how it ended and how long it lasted.
type Served = tokio::task::JoinHandle<(Result<(), ConnectionError>, Duration)>;

/// The protocol's hooks of a line protocol that answers no refused work.
fn line_hooks<K, R>(close: K, order: R) -> Hooks<LinesCodec, Refuse, K, R, AdmitAll> {
    Hooks {
        overload: Refuse,
        close,
        order,
        frame_size: None,
        admission: AdmitAll,
    }
}

/// The test timeouts, and at most `max_in_flight` requests in flight.
fn limits(max_in_flight: usize) -> Limits {
    Limits {
        max_in_flight,
        idle_timeout: Some(IDLE),
        read_timeout: Some(READ),
        write_timeout: Some(WRITE),
        max_unadmitted_frame: usize::MAX,
    }
}

/// Serves an echo-lines service on one end of a pipe of `capacity`
/// bytes; returns the other end and the connection's task, which
/// reports how long (in paused time) it lasted.
fn serve_lines(capacity: usize) -> (DuplexStream, Served) {
    let (peer, server) = tokio::io::duplex(capacity);
    let service = tower::service_fn(|line: String| async move { Ok::<_, Infallible>(line) });
    let connection = Connection::<_, (LinesCodec, _, Refuse, KeepOpen, InOrder, AdmitAll), String>::new(
        Framed::new(Metered::new(server), LinesCodec::new()),
        service,
        line_hooks(KeepOpen, InOrder),
        Budget::new(usize::MAX, 1, usize::MAX),
        limits(4),
        CancellationToken::new().cancelled_owned(),
        crate::server::metrics::ServerMetrics::new().accepted(),
    );
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let result = connection.await;
        (result, start.elapsed())
    });
    (peer, task)
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_closes_after_the_idle_timeout() {
    let (mut peer, task) = serve_lines(1024);
    peer.write_all(b"hello\n").await.unwrap();
    let mut echo = [0u8; 6];
    peer.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hello\n");
    let (result, lasted) = task.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(lasted >= IDLE && lasted < IDLE + READ, "lasted {lasted:?}");
    assert_eq!(peer.read(&mut echo).await.unwrap(), 0, "closed");
}

#[tokio::test(start_paused = true)]
async fn a_partial_frame_closes_after_the_read_timeout_however_it_trickles() {
    let (mut peer, task) = serve_lines(1024);
    // One byte every 3 s: bytes arriving are not a frame finishing.
    // The server closes in the middle of it, failing a later write.
    for byte in b"slowly" {
        if peer.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let (result, lasted) = task.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        lasted >= READ && lasted < READ + Duration::from_secs(3),
        "lasted {lasted:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn frames_that_keep_finishing_keep_the_connection() {
    let (mut peer, task) = serve_lines(1024);
    let mut echo = [0u8; 3];
    // A frame finishing every 6 s, each sent in two halves 3 s apart:
    // 60 s in all, several read timeouts long.
    for _ in 0..10 {
        peer.write_all(b"h").await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        peer.write_all(b"i\n").await.unwrap();
        peer.read_exact(&mut echo).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert!(
        !task.is_finished(),
        "closed a connection that kept finishing frames"
    );
    drop(peer);
    let (result, _) = task.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_nothing_is_dropped_after_the_write_timeout() {
    // A 64-byte pipe: the echoes fill it at once, and nobody reads them.
    let (mut peer, task) = serve_lines(64);
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            if peer.write_all(b"0123456789abcdef\n").await.is_err() {
                return;
            }
        }
        // Keep the pipe open: only the server may end this.
        std::future::pending::<()>().await;
    });
    let (result, lasted) = task.await.unwrap();
    assert!(
        matches!(result, Err(ConnectionError::WriteTimedOut(t)) if t == WRITE),
        "{result:?}"
    );
    assert!(lasted >= WRITE && lasted < WRITE + READ, "lasted {lasted:?}");
    writer.abort();
}

#[tokio::test(start_paused = true)]
async fn an_answer_the_close_hook_picks_is_the_last_one_written() {
    let (mut peer, server) = tokio::io::duplex(1024);
    let service = tower::service_fn(|line: String| async move { Ok::<_, Infallible>(line) });
    let close = |line: &String| line == "BYE";
    let connection = Connection::<_, (LinesCodec, _, Refuse, _, InOrder, AdmitAll), String>::new(
        Framed::new(Metered::new(server), LinesCodec::new()),
        service,
        line_hooks(close, InOrder),
        Budget::new(usize::MAX, 1, usize::MAX),
        limits(4),
        CancellationToken::new().cancelled_owned(),
        crate::server::metrics::ServerMetrics::new().accepted(),
    );
    let task = tokio::spawn(connection);
    // Pipelined: what follows BYE was read, and is dropped unanswered.
    peer.write_all(b"one\nBYE\nafter\nand more\n").await.unwrap();
    let mut answers = String::new();
    peer.read_to_string(&mut answers).await.unwrap();
    assert_eq!(answers, "one\nBYE\n");
    assert!(task.await.unwrap().is_ok());
}

/// A line service whose connection is admitted once it has sent "login".
#[derive(Debug, Default)]
struct Login {
    logged_in: bool,
}

impl Service<String> for Login {
    type Response = String;
    type Error = Infallible;
    type Future = std::future::Ready<Result<String, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, line: String) -> Self::Future {
        self.logged_in |= line == "login";
        std::future::ready(Ok(format!("{} bytes", line.len())))
    }
}

type Refusal = fn(&Overloaded) -> Option<String>;
type Admitted = fn(&Login) -> bool;

/// Serves [`Login`] on a pipe, with `budget`, frames of at most
/// `before_login` bytes before "login", and refused work answered
/// "REFUSED <reason>".
fn serve_login(budget: Arc<Budget>, before_login: usize) -> (DuplexStream, Served) {
    let (peer, server) = tokio::io::duplex(64 * 1024);
    let hooks = Hooks {
        overload: (|reason: &Overloaded| Some(format!("REFUSED {reason}"))) as Refusal,
        close: KeepOpen,
        order: InOrder,
        frame_size: None,
        admission: (|login: &Login| login.logged_in) as Admitted,
    };
    let connection = Connection::<_, (LinesCodec, Login, Refusal, KeepOpen, InOrder, Admitted), String>::new(
        Framed::new(Metered::new(server), LinesCodec::new()),
        Login::default(),
        hooks,
        budget,
        Limits {
            max_unadmitted_frame: before_login,
            ..limits(8)
        },
        CancellationToken::new().cancelled_owned(),
        crate::server::metrics::ServerMetrics::new().accepted(),
    );
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let result = connection.await;
        (result, start.elapsed())
    });
    (peer, task)
}

#[tokio::test(start_paused = true)]
async fn before_admission_a_frame_over_the_small_limit_is_refused_and_takes_no_pool_bytes() {
    // Shares of 96 KiB, and a pool of 384 KiB.
    let budget = Budget::new(768 * 1024, 4, usize::MAX);
    let pool = budget.pool_available();
    let (peer, task) = serve_login(budget.clone(), 100);
    let (mut reading, mut writing) = tokio::io::split(peer);
    writing.write_all(b"hello\n").await.unwrap();
    // A line of 3,000 bytes before "login": refused once 100 bytes of it
    // have come, without waiting for the rest.
    writing.write_all(&[b'x'; 3_000]).await.unwrap();
    let mut answers = String::new();
    reading.read_to_string(&mut answers).await.unwrap();
    assert_eq!(
        answers,
        "5 bytes\nREFUSED a request larger than 100 bytes before the connection was admitted \
         (authenticate first)\n"
    );
    assert_eq!(budget.pool_available(), pool);
    let (result, lasted) = task.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        lasted < READ,
        "refused at once, not at the read timeout: {lasted:?}"
    );

    // With no smaller limit, the connection's share is the limit: a frame
    // that would need pool bytes is refused, not granted them.
    let (peer, task) = serve_login(budget.clone(), usize::MAX);
    let (mut reading, mut writing) = tokio::io::split(peer);
    let writer = tokio::spawn(async move {
        let _ = writing.write_all(&vec![b'y'; 200 * 1024]).await;
        writing
    });
    let mut answers = String::new();
    reading.read_to_string(&mut answers).await.unwrap();
    assert_eq!(
        answers,
        format!(
            "REFUSED a request larger than {} bytes before the connection was admitted \
             (authenticate first)\n",
            96 * 1024
        )
    );
    assert_eq!(budget.pool_available(), pool, "no pool bytes taken");
    assert!(task.await.unwrap().0.is_ok());
    drop(writer.await);
}

#[tokio::test(start_paused = true)]
async fn a_pipelined_login_admits_the_large_frame_behind_it() {
    let budget = Budget::new(768 * 1024, 4, usize::MAX);
    let (peer, task) = serve_login(budget, 100);
    let (mut reading, mut writing) = tokio::io::split(peer);
    // "login" and a 200 KiB line, more than a share, in one write: the
    // line takes pool bytes once "login" has reached the service.
    let writer = tokio::spawn(async move {
        let mut lines = b"short\nlogin\n".to_vec();
        lines.extend_from_slice(&vec![b'z'; 200 * 1024]);
        lines.push(b'\n');
        writing.write_all(&lines).await.unwrap();
        writing
    });
    let mut answers = Framed::new(&mut reading, LinesCodec::new());
    for expected in ["5 bytes", "5 bytes", "204800 bytes"] {
        let answer = answers.next().await.unwrap().unwrap();
        assert_eq!(answer, expected);
    }
    drop(writer.await.unwrap());
    drop(answers);
    drop(reading);
    assert!(task.await.unwrap().0.is_ok());
}

mod tagged;
