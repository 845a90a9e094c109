//! The tagged multiplexer against an in-memory peer, on a paused clock:
//! each test names the behaviour it proves.

use super::{Answers, Builder, Error, Multiplex, Outgoing, ResponseFuture, Tag, Tagged};
use crate::batch::Batch;
use crate::deadline::context::Scope;
use crate::keepalive::Keepalive;
use crate::pipeline::fake::{pair, settle, Peer};
use futures::FutureExt;
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// A tagged answer: which request it answers (or GOAWAY), and its text.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    to: Answers,
    text: String,
}

impl Tagged for Answer {
    fn answers(&self) -> Answers {
        self.to
    }
}

type Mux = Multiplex<String, Answer>;
type TestPeer = Peer<Outgoing<String>, Answer>;

fn connect(builder: Builder, buffer: usize) -> (Mux, TestPeer) {
    let (transport, peer) = pair(buffer);
    (builder.spawn(transport), peer)
}

async fn call(mux: &Mux, request: &str) -> ResponseFuture<Answer> {
    let mut mux = mux.clone();
    ServiceExt::<String>::ready(&mut mux).await.expect("ready");
    mux.call(request.to_string())
}

/// Sets `deadline` for the call, as a deadline layer above would.
async fn call_by(mux: &Mux, request: &str, deadline: Instant) -> ResponseFuture<Answer> {
    let mut mux = mux.clone();
    ServiceExt::<String>::ready(&mut mux).await.expect("ready");
    let scope = Scope::enter(deadline);
    let future = mux.call(request.to_string());
    drop(scope);
    future
}

fn answer(peer: &TestPeer, tag: Tag, text: &str) {
    peer.send(Answer {
        to: Answers::Request(tag),
        text: text.to_string(),
    });
}

/// The tags of the requests the peer reads next, checking their text.
async fn read_requests(peer: &mut TestPeer, texts: &[&str]) -> Vec<Tag> {
    settle().await;
    let written = peer.read_all();
    let got: Vec<(Tag, &str)> = written
        .iter()
        .map(|message| match message {
            Outgoing::Request { tag, request, .. } => (*tag, request.as_str()),
            other => panic!("expected a request, the client wrote {other:?}"),
        })
        .collect();
    assert_eq!(got.iter().map(|(_, text)| *text).collect::<Vec<_>>(), texts);
    got.into_iter().map(|(tag, _)| tag).collect()
}

/// The connection still serves: a call is written and its answer comes back.
async fn round_trip(mux: &Mux, peer: &mut TestPeer, request: &str) {
    let future = call(mux, request).await;
    let tag = read_one(peer, request).await;
    answer(peer, tag, &request.to_uppercase());
    assert_eq!(text(within(future).await), request.to_uppercase());
}

/// The tag of the one request the peer reads next.
async fn read_one(peer: &mut TestPeer, text: &str) -> Tag {
    read_requests(peer, &[text]).await[0]
}

/// `future`'s output; a test whose answer never comes fails (the paused
/// clock runs ahead to this bound as soon as nothing else can happen)
/// instead of hanging.
async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(3600), future)
        .await
        .expect("no answer came")
}

fn text(result: Result<Answer, Error>) -> String {
    result.expect("answered").text
}

fn is_not_sent_going_away(error: &Error) -> bool {
    matches!(error, Error::NotSent(cause) if matches!(**cause, Error::GoingAway))
}

#[tokio::test(start_paused = true)]
async fn answers_in_any_order_reach_the_callers_their_tags_name() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    let a = call(&mux, "a").await;
    let b = call(&mux, "b").await;
    let c = call(&mux, "c").await;
    let tags = read_requests(&mut peer, &["a", "b", "c"]).await;
    assert!(tags.iter().all(|tag| *tag != 0), "tag 0 is never used");
    answer(&peer, tags[2], "C");
    answer(&peer, tags[0], "A");
    answer(&peer, tags[1], "B");
    assert_eq!(text(within(c).await), "C");
    assert_eq!(text(within(a).await), "A");
    assert_eq!(text(within(b).await), "B");
    assert!(mux.broken().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_tag_is_not_reused_while_in_flight_even_after_its_caller_dropped() {
    let (mux, mut peer) = connect(Builder::new().max_tag(2), 16);
    let a = call(&mux, "a").await;
    let ta = read_one(&mut peer, "a").await;
    drop(a);
    settle().await;
    assert_eq!(
        peer.read_all(),
        vec![Outgoing::Cancel(ta)],
        "one cancel for the dropped call"
    );
    let b = call(&mux, "b").await;
    let c = call(&mux, "c").await;
    let tb = read_one(&mut peer, "b").await;
    assert_ne!(tb, ta);
    // Both tags are in flight (a's until its answer comes): c waits.
    assert!(peer.read_all().is_empty(), "c must wait for a free tag");
    answer(&peer, ta, "late answer to a");
    let tc = read_one(&mut peer, "c").await;
    assert_eq!(tc, ta, "a's tag is free once its answer was read");
    answer(&peer, tc, "C");
    answer(&peer, tb, "B");
    assert_eq!(text(within(c).await), "C", "the late answer went to nobody");
    assert_eq!(text(within(b).await), "B");
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_before_it_is_written_is_never_written_and_frees_its_permit() {
    // The peer's buffer holds one message: b waits unwritten behind a.
    let (mux, mut peer) = connect(Builder::new().max_in_flight(2), 1);
    let a = call(&mux, "a").await;
    let b = call(&mux, "b").await;
    settle().await;
    drop(b);
    let tags = read_requests(&mut peer, &["a"]).await;
    settle().await;
    assert!(
        peer.read_all().is_empty(),
        "b was never written, and no cancel either"
    );
    let mut again = mux.clone();
    assert!(
        ServiceExt::<String>::ready(&mut again).now_or_never().is_some(),
        "b's permit came back"
    );
    answer(&peer, tags[0], "A");
    assert_eq!(text(within(a).await), "A");
}

#[tokio::test(start_paused = true)]
async fn a_call_dropped_after_it_is_written_is_cancelled_once_and_its_answer_discarded() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    let a = call(&mux, "a").await;
    let ta = read_one(&mut peer, "a").await;
    drop(a);
    settle().await;
    assert_eq!(peer.read_all(), vec![Outgoing::Cancel(ta)]);
    answer(&peer, ta, "late");
    round_trip(&mux, &mut peer, "b").await;
    assert!(peer.read_all().is_empty(), "the cancel is written once");
    assert!(
        mux.broken().is_none(),
        "a late answer to a cancelled tag is no protocol error"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_racing_with_the_answer_is_harmless_either_way() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    // The answer is on its way when the caller drops: the cancel is still
    // written (the client cannot know), the answer is dropped.
    let a = call(&mux, "a").await;
    let ta = read_one(&mut peer, "a").await;
    answer(&peer, ta, "A");
    drop(a);
    settle().await;
    assert_eq!(peer.read_all(), vec![Outgoing::Cancel(ta)]);
    // The answer was read before the caller dropped its future unpolled:
    // nothing is in flight for it, so no cancel.
    let b = call(&mux, "b").await;
    let tb = read_one(&mut peer, "b").await;
    answer(&peer, tb, "B");
    settle().await;
    drop(b);
    settle().await;
    assert!(peer.read_all().is_empty(), "no cancel for an answered call");
    round_trip(&mux, &mut peer, "c").await;
    assert!(mux.broken().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_deadline_times_out_a_written_call_with_a_cancel_and_a_queued_one_unwritten() {
    let (mux, mut peer) = connect(Builder::new(), 1);
    let deadline = Instant::now() + Duration::from_millis(100);
    let a = call_by(&mux, "a", deadline).await;
    let b = call_by(&mux, "b", deadline).await;
    settle().await;
    // a is written (with what remains of its deadline), b waits behind it.
    let started = Instant::now();
    assert!(matches!(within(a).await, Err(Error::TimedOut)));
    assert!(matches!(within(b).await, Err(Error::TimedOut)));
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "on time, by the one timer"
    );
    settle().await;
    let written = peer.read_all();
    assert_eq!(written.len(), 1, "b never written");
    let ta = match &written[0] {
        Outgoing::Request { tag, budget, request } => {
            assert_eq!(request, "a");
            assert_eq!(*budget, Some(Duration::from_millis(100)));
            *tag
        }
        other => panic!("expected a, got {other:?}"),
    };
    settle().await;
    assert_eq!(
        peer.read_all(),
        [Outgoing::Cancel(ta)],
        "b never written; a cancelled"
    );
    answer(&peer, ta, "too late");
    round_trip(&mux, &mut peer, "c").await;
}

#[tokio::test(start_paused = true)]
async fn goaway_answers_what_was_written_refuses_the_rest_and_closes() {
    let (mux, mut peer) = connect(Builder::new(), 1);
    let a = call(&mux, "a").await;
    let b = call(&mux, "b").await;
    // A caller ready before the GOAWAY, calling after it.
    let mut late = mux.clone();
    ServiceExt::<String>::ready(&mut late).await.expect("ready");
    settle().await;
    peer.send(Answer {
        to: Answers::GoAway,
        text: String::new(),
    });
    settle().await;
    let late = late.call("late".to_string());
    assert!(
        is_not_sent_going_away(&within(b).await.unwrap_err()),
        "b was not written: safe to resend"
    );
    assert!(is_not_sent_going_away(&within(late).await.unwrap_err()));
    assert!(matches!(mux.broken(), Some(Error::GoingAway)));
    let mut refused = mux.clone();
    assert!(matches!(
        ServiceExt::<String>::ready(&mut refused).await,
        Err(Error::GoingAway)
    ));
    let ta = read_one(&mut peer, "a").await;
    answer(&peer, ta, "A");
    assert_eq!(
        text(within(a).await),
        "A",
        "written before the GOAWAY: still answered"
    );
    settle().await;
    assert!(
        within(peer.written.recv()).await.is_none(),
        "drained: the connection is closed"
    );
}

/// After its GOAWAY the peer answers every request it read, then closes:
/// a written request still unanswered at a clean close was never read, so
/// it fails "not sent" (safe to resend, even a write); after a reset it is
/// lost with the connection, as always.
#[tokio::test(start_paused = true)]
async fn a_clean_close_after_goaway_means_the_unanswered_were_never_read() {
    for clean in [true, false] {
        let (mux, mut peer) = connect(Builder::new(), 16);
        let a = call(&mux, "a").await;
        let b = call(&mux, "b").await;
        let tags = read_requests(&mut peer, &["a", "b"]).await;
        peer.send(Answer {
            to: Answers::GoAway,
            text: String::new(),
        });
        answer(&peer, tags[0], "A");
        assert_eq!(text(within(a).await), "A");
        if clean {
            drop(peer);
            let error = within(b).await.unwrap_err();
            assert!(is_not_sent_going_away(&error), "clean close: {error:?}");
        } else {
            peer.reset();
            let error = within(b).await.unwrap_err();
            assert!(matches!(error, Error::Transport(_)), "reset: {error:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_for_a_tag_never_sent_fails_every_waiter_without_a_panic() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    let a = call(&mux, "a").await;
    let b = call(&mux, "b").await;
    let tags = read_requests(&mut peer, &["a", "b"]).await;
    answer(&peer, 0, "tag zero");
    assert!(matches!(within(a).await, Err(Error::UnexpectedResponse)));
    assert!(matches!(within(b).await, Err(Error::UnexpectedResponse)));
    assert!(matches!(mux.broken(), Some(Error::UnexpectedResponse)));
    // And a tag far out of range, on a fresh connection.
    let (mux, mut peer) = connect(Builder::new(), 16);
    let a = call(&mux, "a").await;
    read_requests(&mut peer, &["a"]).await;
    answer(&peer, tags[1] + 1000, "?");
    assert!(matches!(within(a).await, Err(Error::UnexpectedResponse)));
}

#[tokio::test(start_paused = true)]
async fn a_server_message_that_answers_nothing_is_dropped() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    let a = call(&mux, "a").await;
    let ta = read_one(&mut peer, "a").await;
    peer.send(Answer {
        to: Answers::Nothing,
        text: "notice".into(),
    });
    answer(&peer, ta, "A");
    assert_eq!(text(within(a).await), "A");
}

fn keepalive() -> Keepalive {
    Keepalive::new()
        .interval(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_a_silent_peer_then_fails_the_connection() {
    let (mux, mut peer) = connect(Builder::new().keepalive(keepalive()), 16);
    let a = call(&mux, "a").await;
    read_requests(&mut peer, &["a"]).await;
    tokio::time::advance(Duration::from_millis(999)).await;
    settle().await;
    assert!(peer.read_all().is_empty(), "no ping before the interval");
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    let ping = peer.read_all();
    assert!(matches!(ping[..], [Outgoing::Ping(tag)] if tag != 0), "{ping:?}");
    tokio::time::advance(Duration::from_millis(499)).await;
    settle().await;
    assert!(mux.broken().is_none());
    tokio::time::advance(Duration::from_millis(1)).await;
    settle().await;
    let lost = Error::Unresponsive(Duration::from_millis(500));
    assert_eq!(within(a).await.unwrap_err().to_string(), lost.to_string());
    assert!(matches!(mux.broken(), Some(Error::Unresponsive(_))));
}

/// Waits, 100 ms at a time, for the ping that an interval without answers
/// brings (at most interval + timeout after the last answer).
async fn next_ping(mux: &Mux, peer: &mut TestPeer) -> Tag {
    let since = Instant::now();
    loop {
        tokio::time::advance(Duration::from_millis(100)).await;
        settle().await;
        assert!(mux.broken().is_none(), "{:?}", mux.broken());
        if let Some(Outgoing::Ping(tag)) = peer.read_all().pop() {
            return tag;
        }
        assert!(since.elapsed() <= Duration::from_millis(1500), "no ping came");
    }
}

#[tokio::test(start_paused = true)]
async fn keepalive_keeps_a_connection_whose_peer_answers_its_pings() {
    let (mux, mut peer) = connect(Builder::new().keepalive(keepalive()), 16);
    settle().await;
    let started = Instant::now();
    for _ in 0..10 {
        let tag = next_ping(&mux, &mut peer).await;
        // Answered within the timeout: the connection lives on.
        tokio::time::advance(Duration::from_millis(400)).await;
        answer(&peer, tag, "pong");
        settle().await;
    }
    assert!(started.elapsed() > Duration::from_secs(10));
    assert!(mux.broken().is_none());
    round_trip(&mux, &mut peer, "a").await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_tagged_request_by_request_and_answered_in_its_order() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    let mut m = mux.clone();
    ServiceExt::<Batch<String>>::ready(&mut m).await.expect("ready");
    let batch = m.call(Batch::new(vec!["x".to_string(), "y".into(), "z".into()]));
    let tags = read_requests(&mut peer, &["x", "y", "z"]).await;
    answer(&peer, tags[2], "Z");
    answer(&peer, tags[0], "X");
    answer(&peer, tags[1], "Y");
    let answers: Vec<String> = within(batch)
        .await
        .expect("batch")
        .into_iter()
        .map(text)
        .collect();
    assert_eq!(answers, ["X", "Y", "Z"]);

    // Dropped half answered: a cancel for each request still open.
    ServiceExt::<Batch<String>>::ready(&mut m).await.expect("ready");
    let batch = m.call(Batch::new(vec!["p".to_string(), "q".into()]));
    let tags = read_requests(&mut peer, &["p", "q"]).await;
    answer(&peer, tags[0], "P");
    settle().await;
    drop(batch);
    settle().await;
    assert_eq!(peer.read_all(), vec![Outgoing::Cancel(tags[1])]);
}

#[tokio::test(start_paused = true)]
async fn max_in_flight_holds_callers_until_an_answer_frees_room() {
    let (mux, mut peer) = connect(Builder::new().max_in_flight(2), 16);
    let a = call(&mux, "a").await;
    let b = call(&mux, "b").await;
    let tags = read_requests(&mut peer, &["a", "b"]).await;
    let mut third = mux.clone();
    assert!(
        ServiceExt::<String>::ready(&mut third).now_or_never().is_none(),
        "full"
    );
    answer(&peer, tags[1], "B");
    assert_eq!(text(within(b).await), "B");
    settle().await;
    assert!(ServiceExt::<String>::ready(&mut third).now_or_never().is_some());
    drop(a);
}

#[tokio::test(start_paused = true)]
async fn a_failed_connection_fails_written_calls_and_says_not_sent_to_the_rest() {
    let (mux, mut peer) = connect(Builder::new(), 1);
    let a = call(&mux, "a").await;
    let b = call(&mux, "b").await;
    settle().await;
    peer.reset();
    let a = within(a).await.unwrap_err();
    assert!(matches!(a, Error::Transport(_)), "{a:?}");
    let b = within(b).await.unwrap_err();
    assert!(matches!(b, Error::NotSent(_)), "{b:?}");
    assert!(matches!(mux.broken(), Some(Error::Transport(_))));
    read_requests(&mut peer, &["a"]).await;
}

#[tokio::test(start_paused = true)]
async fn an_answer_read_before_a_broken_write_still_reaches_its_caller() {
    let (mux, mut peer) = connect(Builder::new(), 16);
    let first = call(&mux, "PUT big").await;
    let tag = read_one(&mut peer, "PUT big").await;
    // The peer refuses it and closes: its answer is in the socket, and the
    // next write breaks. The connection task sees both in the same pass.
    answer(&peer, tag, "BUSY");
    peer.stop_reading();
    let second = call(&mux, "GET a").await;
    assert_eq!(text(within(first).await), "BUSY");
    let second = within(second).await;
    assert!(
        matches!(second, Err(Error::NotSent(_))),
        "the request behind it was never written: {second:?}"
    );
}
