//! Answers by tag, cancels, a tag reused, GOAWAY: a toy tagged protocol
//! (`crate::server::tagged_lines`) on an in-memory pipe, its answers
//! released by the test through gates, the clock paused.

use super::order::LINGER;
use super::*;
use crate::server::metrics::ServerMetrics;
use crate::server::tagged_lines::{Gated, Gates, TaggedLines};
use futures::{SinkExt, StreamExt};

/// The peer's end: lines both ways.
type Peer = Framed<DuplexStream, LinesCodec>;

/// A connection served with [`Gated`] and the order `order`; the test's
/// end of it, its gates, its shutdown switch, and its task.
struct Setup {
    peer: Peer,
    gates: Gates,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ConnectionError>>,
}

fn serve_with<R>(order: R, max_in_flight: usize, budget: Arc<Budget>, metrics: ConnectionMetrics) -> Setup
where
    R: crate::server::Order<String, String> + Send + 'static,
{
    let (peer, server) = tokio::io::duplex(64 * 1024);
    let (gates, service) = Gates::new();
    let stop = CancellationToken::new();
    let connection = Connection::<_, (LinesCodec, Gated, Refuse, KeepOpen, R, AdmitAll), String>::new(
        Framed::new(Metered::new(server), LinesCodec::new()),
        service,
        line_hooks(KeepOpen, order),
        budget,
        limits(max_in_flight),
        stop.clone().cancelled_owned(),
        metrics,
    );
    Setup {
        peer: Framed::new(peer, LinesCodec::new()),
        gates,
        stop,
        task: tokio::spawn(connection),
    }
}

fn serve(max_in_flight: usize) -> Setup {
    serve_with(
        TaggedLines,
        max_in_flight,
        Budget::new(usize::MAX, 1, usize::MAX),
        unrecorded(),
    )
}

fn unrecorded() -> ConnectionMetrics {
    ServerMetrics::new().accepted()
}

async fn send(peer: &mut Peer, lines: &[&str]) {
    for line in lines {
        peer.send(*line).await.unwrap();
    }
}

/// The next line from the server; `None` once it has closed. Panics if
/// none comes while the paused clock runs past every timeout: the server
/// waits for something that will never happen.
async fn answer(peer: &mut Peer) -> Option<String> {
    tokio::time::timeout(IDLE * 10, peer.next())
        .await
        .expect("the server answers, or closes")
        .transpose()
        .unwrap()
}

/// Whether the server writes anything before the connection has nothing
/// left to do (the paused clock moves on only when every task waits).
async fn writes_nothing_more(peer: &mut Peer) -> bool {
    tokio::time::timeout(Duration::from_secs(1), peer.next())
        .await
        .is_err()
}

/// Closes the peer's sending side: the server reads the end.
async fn close_sending(peer: &mut Peer) {
    peer.get_mut().shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_tagged_request_does_not_hold_up_a_later_fast_one() {
    let Setup {
        mut peer,
        mut gates,
        task,
        ..
    } = serve(16);
    send(&mut peer, &["1 hold:a", "2 hold:b", "3 now"]).await;
    assert_eq!(answer(&mut peer).await.as_deref(), Some("3 now"));
    assert!(writes_nothing_more(&mut peer).await);
    gates.open("b");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("2 hold:b"));
    gates.open("a");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("1 hold:a"));
    close_sending(&mut peer).await;
    assert_eq!(answer(&mut peer).await, None);
    assert!(task.await.unwrap().is_ok());
    assert_eq!(gates.more_calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn in_order_by_default_the_same_requests_are_answered_in_request_order() {
    let Setup { mut peer, gates, .. } = serve_with(
        crate::server::InOrder,
        16,
        Budget::new(usize::MAX, 1, usize::MAX),
        unrecorded(),
    );
    send(&mut peer, &["1 hold:a", "2 hold:b", "3 now"]).await;
    gates.open("b");
    assert!(writes_nothing_more(&mut peer).await, "all wait for the first");
    gates.open("a");
    for expected in ["1 hold:a", "2 hold:b", "3 now"] {
        assert_eq!(answer(&mut peer).await.as_deref(), Some(expected));
    }
}

#[tokio::test(start_paused = true)]
async fn an_untagged_request_waits_for_every_request_read_before_it_and_no_tagged_one_after() {
    let Setup { mut peer, gates, .. } = serve(16);
    send(&mut peer, &["1 hold:a", "plain", "2 now"]).await;
    assert_eq!(answer(&mut peer).await.as_deref(), Some("2 now"));
    assert!(writes_nothing_more(&mut peer).await, "plain waits for tag 1");
    gates.open("a");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("1 hold:a"));
    assert_eq!(answer(&mut peer).await.as_deref(), Some("plain"));
}

#[tokio::test(start_paused = true)]
async fn a_tag_reused_in_flight_is_refused_then_what_was_in_flight_is_answered_and_the_connection_closes() {
    let Setup {
        mut peer,
        mut gates,
        task,
        ..
    } = serve(16);
    send(&mut peer, &["1 hold:a", "2 hold:b"]).await;
    assert_eq!(gates.called().await, "1 hold:a");
    assert_eq!(gates.called().await, "2 hold:b");
    send(&mut peer, &["1 again", "3 after"]).await;
    assert_eq!(answer(&mut peer).await.as_deref(), Some("1 in use"));
    gates.open("b");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("2 hold:b"));
    gates.open("a");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("1 hold:a"));
    // Closed by the server, though the peer still sends.
    assert_eq!(answer(&mut peer).await, None);
    assert!(task.await.unwrap().is_ok());
    assert_eq!(
        gates.more_calls(),
        Vec::<String>::new(),
        "neither the reused tag nor what followed it reached the service"
    );
}

#[tokio::test(start_paused = true)]
async fn cancels_are_called_answer_nothing_and_hold_up_nothing() {
    let Setup {
        mut peer,
        mut gates,
        task,
        ..
    } = serve(16);
    send(&mut peer, &["cancel hold:c", "cancel now", "plain", "1 now"]).await;
    let mut answers = [answer(&mut peer).await, answer(&mut peer).await];
    answers.sort();
    assert_eq!(answers, [Some("1 now".to_owned()), Some("plain".to_owned())]);
    assert_eq!(
        gates.more_calls(),
        ["cancel hold:c", "cancel now", "plain", "1 now"],
        "both cancels reached the service"
    );
    gates.open("c");
    close_sending(&mut peer).await;
    assert_eq!(answer(&mut peer).await, None, "a cancel's output is dropped");
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_goaway_goes_first_then_everything_read_is_answered_then_the_connection_closes() {
    let Setup {
        mut peer,
        mut gates,
        stop,
        task,
    } = serve(16);
    send(&mut peer, &["1 hold:a", "2 hold:b", "plain"]).await;
    for _ in 0..3 {
        gates.called().await;
    }
    stop.cancel();
    assert_eq!(
        answer(&mut peer).await.as_deref(),
        Some("goaway: server shutting down")
    );
    // Read no more: what the peer sends now never reaches the service.
    send(&mut peer, &["3 late"]).await;
    gates.open("b");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("2 hold:b"));
    gates.open("a");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("1 hold:a"));
    assert_eq!(answer(&mut peer).await.as_deref(), Some("plain"));
    assert_eq!(answer(&mut peer).await, None);
    assert!(task.await.unwrap().is_ok());
    assert_eq!(gates.more_calls(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_told_goaway_before_it_is_closed() {
    let Setup { mut peer, task, .. } = serve(16);
    let start = tokio::time::Instant::now();
    assert_eq!(
        answer(&mut peer).await.as_deref(),
        Some("goaway: idle connection closed")
    );
    assert!(start.elapsed() >= IDLE);
    assert_eq!(answer(&mut peer).await, None);
    // The peer never closes: the connection lingers, then ends.
    let ended = tokio::time::timeout(IDLE, task).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    let lasted = start.elapsed();
    assert!(
        lasted >= IDLE + LINGER && lasted < IDLE + LINGER * 2,
        "{lasted:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn after_a_goaway_the_connection_drops_what_the_peer_still_sends_until_the_peer_closes() {
    let Setup {
        mut peer, stop, task, ..
    } = serve(16);
    stop.cancel();
    assert_eq!(
        answer(&mut peer).await.as_deref(),
        Some("goaway: server shutting down")
    );
    assert_eq!(answer(&mut peer).await, None, "the server's side is closed");
    // Sent before the peer read the GOAWAY: read and dropped, not left
    // unread to reset the connection.
    send(&mut peer, &["4 sent too late", "5 and this"]).await;
    assert!(!task.is_finished(), "lingering");
    close_sending(&mut peer).await;
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_bounds_a_tagged_connection() {
    let Setup {
        mut peer, mut gates, ..
    } = serve(2);
    send(&mut peer, &["1 hold:a", "2 hold:b", "3 now"]).await;
    assert!(writes_nothing_more(&mut peer).await);
    assert_eq!(
        gates.more_calls(),
        ["1 hold:a", "2 hold:b"],
        "two in flight at most"
    );
    gates.open("a");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("1 hold:a"));
    assert_eq!(answer(&mut peer).await.as_deref(), Some("3 now"));
    assert_eq!(gates.more_calls(), ["3 now"]);
}

/// `line` padded with spaces to 100 bytes on the wire, newline included.
fn hundred_bytes(line: &str) -> String {
    format!("{line:<99}")
}

#[tokio::test(start_paused = true)]
async fn a_tagged_answer_gives_its_bytes_back_to_the_budget_as_it_leaves() {
    // 128 bytes of its own and a pool of 128: the connection holds two
    // 100-byte requests, and cannot read a third whole.
    let Setup {
        mut peer, mut gates, ..
    } = serve_with(TaggedLines, 16, Budget::new(256, 1, usize::MAX), unrecorded());
    let lines = ["1 hold:a", "2 hold:b", "3 now"].map(hundred_bytes);
    send(&mut peer, &lines.each_ref().map(String::as_str)).await;
    assert!(writes_nothing_more(&mut peer).await);
    assert_eq!(gates.more_calls(), &lines[..2], "the third does not fit");
    gates.open("b");
    assert_eq!(answer(&mut peer).await.as_ref(), Some(&lines[1]));
    // Tag 1 still holds its 100 bytes; tag 2's are free for the third.
    assert_eq!(answer(&mut peer).await.as_ref(), Some(&lines[2]));
    assert_eq!(gates.more_calls(), &lines[2..]);
}

#[tokio::test(start_paused = true)]
async fn a_tagged_request_that_fails_ends_the_connection_after_the_others_are_answered() {
    let Setup {
        mut peer,
        mut gates,
        task,
        ..
    } = serve(16);
    send(&mut peer, &["1 hold:x fail", "2 hold:a"]).await;
    gates.called().await;
    gates.called().await;
    gates.open("x");
    assert!(writes_nothing_more(&mut peer).await);
    send(&mut peer, &["3 late"]).await;
    gates.open("a");
    assert_eq!(answer(&mut peer).await.as_deref(), Some("2 hold:a"));
    assert_eq!(answer(&mut peer).await, None);
    assert!(matches!(task.await.unwrap(), Err(ConnectionError::Service(_))));
    assert_eq!(
        gates.more_calls(),
        Vec::<String>::new(),
        "read no more after the failure"
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn a_goaway_written_is_counted_by_its_cause() {
    use crate::metrics::names;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let metrics = metrics::with_local_recorder(&recorder, || ServerMetrics::new().accepted());
    let Setup {
        mut peer, stop, task, ..
    } = serve_with(TaggedLines, 16, Budget::new(usize::MAX, 1, usize::MAX), metrics);
    stop.cancel();
    assert_eq!(
        answer(&mut peer).await.as_deref(),
        Some("goaway: server shutting down")
    );
    assert_eq!(answer(&mut peer).await, None);
    assert!(task.await.unwrap().is_ok());
    let mut goaways: Vec<(String, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == names::SERVER_GOAWAYS)
        .map(|(key, _, _, value)| {
            let cause = key.key().labels().map(|label| label.value().to_owned()).collect();
            (cause, value)
        })
        .collect();
    goaways.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        goaways,
        [
            ("idle_timeout".to_owned(), DebugValue::Counter(0)),
            ("shutdown".to_owned(), DebugValue::Counter(1)),
        ]
    );
}
