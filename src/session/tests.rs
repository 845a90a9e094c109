use super::*;
use crate::retry::RetryPolicy;
use crate::BoxError;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tower::{service_fn, Layer, Service, ServiceExt};

/// A request: a write is deduplicated and not idempotent, a read is idempotent.
#[derive(Debug, Clone, PartialEq)]
enum Req {
    Write,
    Read,
}

impl Deduplicated for Req {
    fn is_deduplicated(&self) -> bool {
        *self == Req::Write
    }
}

impl Idempotent for Req {
    fn is_idempotent(&self) -> bool {
        *self == Req::Read
    }
}

struct Reply;
impl crate::retry::RetryableResponse for Reply {
    fn is_retryable(&self) -> bool {
        false
    }
}
impl SessionAnswer for Reply {
    fn is_session_expired(&self) -> bool {
        false
    }
}
impl SessionAnswer for () {
    fn is_session_expired(&self) -> bool {
        false
    }
}

fn stamp(seq: u64, acked_below: u64) -> Stamp {
    Stamp {
        session: [9; 16],
        seq,
        acked_below,
    }
}

fn session(window: u32) -> ClientSession {
    let session = ClientSession::with_id([9; 16]);
    session.set_window(session.id(), window);
    session
}

#[tokio::test]
async fn deduplicated_requests_are_numbered_and_acked_below_is_the_lowest_unanswered() {
    let session = session(8);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = service_fn({
        let seen = seen.clone();
        move |stamped: Stamped<Req>| {
            seen.lock().unwrap().push(stamped.stamp);
            async { Ok::<_, BoxError>(()) }
        }
    });
    let mut service = SessionLayer::new(session.clone()).layer(inner);
    let first = service.call(Req::Write);
    // Seq 1 goes alone: a write made while it is out waits for it.
    let waits = service.call(Req::Write);
    assert!(seen.lock().unwrap().len() == 1, "the second write waits");
    first.await.unwrap();
    waits.await.unwrap();
    assert_eq!(session.acked_below(), 3, "1 and 2 are answered");
    let third = service.call(Req::Write);
    let fourth = service.call(Req::Write);
    let read = service.call(Req::Read);
    assert_eq!(session.acked_below(), 3);
    drop(third); // given up on: never resent, so counted answered
    assert_eq!(session.acked_below(), 4, "3 is given up on, 4 is not answered");
    fourth.await.unwrap();
    read.await.unwrap();
    assert_eq!(session.acked_below(), 5);
    let stamps = seen.lock().unwrap().clone();
    assert_eq!(
        stamps,
        [
            Some(stamp(1, 1)),
            Some(stamp(2, 2)),
            Some(stamp(3, 3)),
            Some(stamp(4, 3)),
            None
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_waits_for_room_in_the_window_and_fails_unsent_past_its_bound() {
    let session = session(2);
    let (release, released) = tokio::sync::watch::channel(false);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let inner = service_fn({
        let seen = seen.clone();
        move |stamped: Stamped<Req>| {
            seen.lock().unwrap().push(stamped.stamp);
            let mut released = released.clone();
            async move {
                // Seq 2 is held until released; the others answer at once.
                if stamped.stamp.map(|s| s.seq) == Some(2) {
                    released.wait_for(|&go| go).await.unwrap();
                }
                Ok::<_, BoxError>(())
            }
        }
    });
    let layer = SessionLayer::new(session.clone()).max_wait(Duration::from_secs(3));
    let mut service = layer.layer(inner);
    service.call(Req::Write).await.unwrap();
    let held = tokio::spawn(service.call(Req::Write)); // seq 2, unanswered
    tokio::task::yield_now().await;
    service.call(Req::Write).await.unwrap(); // seq 3: 3 < acked_below 2 + window 2
                                             // Seq 4 would pass the window: it waits, and fails unsent at its bound.
    let error = service.call(Req::Write).await.unwrap_err();
    assert!(error.downcast_ref::<NoRoom>().is_some(), "{error}");
    assert_eq!(
        crate::failure::Failure::of(&*error),
        crate::failure::Failure::NotSent
    );
    assert_eq!(seen.lock().unwrap().len(), 3, "the refused write was not sent");
    // A write waiting when seq 2 is answered gets the next number.
    let waiting = tokio::spawn(service.call(Req::Write));
    tokio::time::sleep(Duration::from_secs(1)).await;
    release.send(true).unwrap();
    held.await.unwrap().unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(seen.lock().unwrap()[3], Some(stamp(4, 4)));
}

#[tokio::test]
async fn nothing_is_stamped_without_a_window_or_past_a_full_one() {
    let off = session(0);
    assert!(off.stamp().is_none());
    let full = session(2);
    let first = full.stamp().unwrap();
    assert!(full.stamp().is_none(), "seq 1 goes alone");
    drop(first);
    let two = full.stamp().unwrap();
    let _three = full.stamp().unwrap();
    assert!(full.stamp().is_none(), "4 is at acked_below 2 plus window 2");
    drop(two);
    assert_eq!(full.stamp().unwrap().stamp(), stamp(4, 3));
    assert_ne!(ClientSession::new().id(), ClientSession::new().id());
}

/// Fails the first attempt after it may have been sent, then answers.
fn lossy(
    attempts: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Option<Stamp>>>>,
) -> impl Service<Stamped<Req>, Response = Reply, Error = BoxError, Future = impl Send> + Clone {
    service_fn(move |stamped: Stamped<Req>| {
        seen.lock().unwrap().push(stamped.stamp);
        let attempt = attempts.fetch_add(1, Ordering::Relaxed);
        async move {
            match attempt {
                0 => Err(BoxError::from(crate::pipeline::Error::Closed)),
                _ => Ok(Reply),
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_stamped_write_lost_after_it_was_sent_is_resent_with_its_number() {
    let (attempts, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let stack = SessionLayer::new(session(8)).layer(
        RetryPolicy::default()
            .into_layer()
            .layer(lossy(attempts.clone(), seen.clone())),
    );
    stack.oneshot(Req::Write).await.unwrap();
    let first = Some(stamp(1, 1));
    assert_eq!(*seen.lock().unwrap(), [first, first], "one resend, same number");

    // Without a window the same write is not resent: it may have been applied.
    let (attempts, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let stack = SessionLayer::new(session(0)).layer(
        RetryPolicy::default()
            .into_layer()
            .layer(lossy(attempts, seen.clone())),
    );
    assert!(stack.oneshot(Req::Write).await.is_err());
    assert_eq!(*seen.lock().unwrap(), [None]);
}

#[tokio::test]
async fn an_expired_answer_renews_the_session_and_numbers_start_again() {
    struct Expired;
    impl SessionAnswer for Expired {
        fn is_session_expired(&self) -> bool {
            true
        }
    }
    let session = session(8);
    let old = session.id();
    let inner = service_fn(|_: Stamped<Req>| async { Ok::<_, BoxError>(Expired) });
    let mut service = SessionLayer::new(session.clone()).layer(inner);
    service.call(Req::Write).await.unwrap();
    assert_ne!(session.id(), old);
    assert!(
        session.stamp().is_none(),
        "nothing stamped until a handshake names the new id"
    );
    session.set_window(old, 8);
    assert!(
        session.stamp().is_none(),
        "a handshake of the old id does not count"
    );
    session.set_window(session.id(), 8);
    let renewed = session.stamp().unwrap().stamp();
    assert_eq!((renewed.session, renewed.seq), (session.id(), 1));
}

#[test]
fn numbers_answered_out_of_order_move_acked_below_only_past_the_oldest() {
    let session = session(64);
    let mut given: Vec<_> = (0..6).map(|_| session.stamp()).collect();
    // Seq 1 goes alone: the others got nothing.
    assert!(given[1..].iter().all(Option::is_none));
    given.clear();
    assert_eq!(session.acked_below(), 2);
    let mut out: Vec<_> = (2..=7).map(|_| session.stamp().unwrap()).collect();
    assert_eq!(session.acked_below(), 2);
    // End 4, 3 and 7: 2 is still the oldest.
    out.remove(5);
    out.remove(2);
    out.remove(1);
    assert_eq!(session.acked_below(), 2);
    // End 2: 3 and 4 are done, so 5 is the oldest.
    out.remove(0);
    assert_eq!(session.acked_below(), 5);
    out.clear();
    assert_eq!(session.acked_below(), 8, "none out: the next number");
    assert_eq!(session.stamp().unwrap().stamp().seq, 8);
}
