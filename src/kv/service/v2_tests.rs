//! `KvService` on version 2 requests: per-key order, answers with their
//! ids, deadlines, cancellation, HELLO. A log whose writer is held in its
//! write (the faults seam) makes "still queued" and "taken" exact states,
//! not timing.

use super::*;
use crate::kv::wal::faults::Faults;
use crate::kv::wal::{FsyncPolicy, WalConfig};
use crate::kv::Negotiated;
use futures::executor::block_on;
use std::task::Context;

fn key(k: &'static str) -> Bytes {
    Bytes::from_static(k.as_bytes())
}

fn identified(id: u32, request: Request) -> Incoming {
    Incoming::Identified {
        id,
        deadline: None,
        sequenced: None,
        request,
    }
}

fn get(id: u32, k: &'static str) -> Incoming {
    identified(id, Request::Get { key: key(k) })
}

fn put(id: u32, k: &'static str, v: &'static str) -> Incoming {
    identified(
        id,
        Request::Put {
            key: key(k),
            value: key(v),
        },
    )
}

fn call(service: &mut KvService, incoming: Incoming) -> ResponseFuture {
    Service::<Incoming>::call(service, incoming)
}

fn answer(future: ResponseFuture) -> Response {
    let Ok(response) = block_on(future);
    response
}

/// The answer if it is there without waiting, polling once.
fn poll_once(future: &mut ResponseFuture) -> Option<Response> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    match Pin::new(future).poll(&mut cx) {
        Poll::Ready(Ok(response)) => Some(response),
        Poll::Pending => None,
    }
}

/// A service whose log's writer can be held inside its write.
fn held_log() -> (tempfile::TempDir, KvService, Faults) {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    };
    let (wal, faults) = Wal::open_with_faults(dir.path(), config, Store::new()).unwrap();
    (dir, KvService::with_wal(wal), faults)
}

/// Calls a write of `a` (id 1) and holds the writer inside it: taken,
/// not applied. What is called next stays queued until `release`.
fn hold_behind_a_write(service: &mut KvService, faults: &Faults) -> ResponseFuture {
    faults.hold();
    let first = call(service, put(1, "a", "1"));
    faults.wait_until_held();
    first
}

#[test]
fn answers_carry_their_request_id_and_1_1_answers_id_0() {
    let mut service = KvService::new(Store::new());
    let ping = identified(42, Request::Ping { payload: key("p") });
    assert_eq!(
        answer(call(&mut service, ping)),
        Response::ok(key("p")).with_id(42)
    );
    assert_eq!(answer(call(&mut service, put(43, "k", "v"))).id, 43);
    assert_eq!(
        answer(call(&mut service, get(44, "k"))),
        Response::ok(key("v")).with_id(44)
    );
    let v1 = Incoming::Request(Request::Get { key: key("k") });
    assert_eq!(answer(call(&mut service, v1)).id, 0);
    let rejected = Response::error(Status::BadRequest, "unknown command byte 0x7f").with_id(45);
    let answered = answer(call(&mut service, Incoming::Rejected(rejected.clone())));
    assert_eq!(answered, rejected);
}

#[test]
fn a_get_of_another_key_is_answered_while_a_logged_write_is_pending_and_of_the_same_key_waits() {
    let (_dir, mut service, faults) = held_log();
    let mut write = hold_behind_a_write(&mut service, &faults);
    service.store().put(b"b", b"there");
    // Another key: read at once, though the write of `a` is not done.
    let mut other = call(&mut service, get(2, "b"));
    assert_eq!(poll_once(&mut other), Some(Response::ok(key("there")).with_id(2)));
    // The same key: in order behind the write.
    let mut same = call(&mut service, get(3, "a"));
    assert_eq!(poll_once(&mut same), None);
    assert_eq!(poll_once(&mut write), None);
    // 1.1 keeps the connection-wide rule: a read of any key waits.
    let mut v1 = call(&mut service, Incoming::Request(Request::Get { key: key("b") }));
    let v1_write = call(
        &mut service,
        Incoming::Request(Request::Put {
            key: key("c"),
            value: key("1"),
        }),
    );
    let mut v1_read = call(&mut service, Incoming::Request(Request::Get { key: key("b") }));
    assert!(poll_once(&mut v1).is_some(), "no 1.1 write was pending yet");
    assert_eq!(poll_once(&mut v1_read), None, "a 1.1 read overtook a 1.1 write");
    faults.release();
    assert_eq!(answer(write), Response::ok_empty().with_id(1));
    assert_eq!(answer(same), Response::ok(key("1")).with_id(3));
    assert_eq!(answer(v1_write), Response::ok_empty());
    assert_eq!(answer(v1_read), Response::ok(key("there")));
}

#[test]
fn a_request_past_its_deadline_when_called_is_deadline_exceeded_without_effect() {
    for mut service in [KvService::new(Store::new()), held_log().1] {
        let late = |request| Incoming::Identified {
            id: 5,
            deadline: Some(Instant::now()),
            sequenced: None,
            request,
        };
        let write = late(Request::Put {
            key: key("k"),
            value: key("v"),
        });
        let answered = answer(call(&mut service, write));
        assert_eq!((answered.status, answered.id), (Status::DeadlineExceeded, 5));
        let ping = answer(call(&mut service, late(Request::Ping { payload: key("p") })));
        assert_eq!(ping.status, Status::DeadlineExceeded);
        assert_eq!(answer(call(&mut service, get(6, "k"))).status, Status::NotFound);
    }
}

#[test]
fn a_logged_write_whose_deadline_passes_while_queued_is_never_applied() {
    let (_dir, mut service, faults) = held_log();
    let first = hold_behind_a_write(&mut service, &faults);
    // Queued behind the held batch; its deadline passes meanwhile.
    let deadline = Instant::now() + Duration::from_millis(200);
    let late = Incoming::Identified {
        id: 2,
        deadline: Some(deadline),
        sequenced: None,
        request: Request::Put {
            key: key("b"),
            value: key("late"),
        },
    };
    let mut late = call(&mut service, late);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        poll_once(&mut late),
        None,
        "not decided until the writer comes to it"
    );
    faults.release();
    assert_eq!(answer(first).status, Status::Ok);
    let late = answer(late);
    assert_eq!((late.status, late.id), (Status::DeadlineExceeded, 2));
    // In order behind it through the log: it left nothing.
    assert_eq!(answer(call(&mut service, get(3, "b"))).status, Status::NotFound);
}

#[test]
fn cancel_before_the_writer_takes_a_write_answers_cancelled_and_it_never_applies() {
    let (_dir, mut service, faults) = held_log();
    let first = hold_behind_a_write(&mut service, &faults);
    let mut cancelled = call(&mut service, put(2, "b", "2"));
    let read_behind = call(&mut service, get(3, "b"));
    assert_eq!(poll_once(&mut cancelled), None);
    let cancel = answer(call(&mut service, Incoming::Cancel { id: 2 }));
    assert_eq!(cancel.id, 0, "a CANCEL's own output answers nothing");
    // Answered now, while the writer is still held.
    let answered = poll_once(&mut cancelled).expect("answered at once");
    assert_eq!((answered.status, answered.id), (Status::Cancelled, 2));
    faults.release();
    assert_eq!(answer(first).status, Status::Ok);
    assert_eq!(answer(read_behind), Response::not_found().with_id(3));
    assert_eq!(service.store().get(b"b"), None);
}

#[test]
fn cancel_of_a_read_waiting_in_order_answers_cancelled() {
    let (_dir, mut service, faults) = held_log();
    let first = hold_behind_a_write(&mut service, &faults);
    let mut read = call(&mut service, get(2, "a"));
    let _ = answer(call(&mut service, Incoming::Cancel { id: 2 }));
    let answered = poll_once(&mut read).expect("answered at once");
    assert_eq!((answered.status, answered.id), (Status::Cancelled, 2));
    faults.release();
    assert_eq!(answer(first).status, Status::Ok);
}

#[test]
fn cancel_after_the_writer_took_the_write_changes_nothing() {
    let (_dir, mut service, faults) = held_log();
    // Held inside its batch's write: taken, it will be applied.
    let write = hold_behind_a_write(&mut service, &faults);
    let _ = answer(call(&mut service, Incoming::Cancel { id: 1 }));
    // An id not in flight is ignored.
    let _ = answer(call(&mut service, Incoming::Cancel { id: 99 }));
    faults.release();
    assert_eq!(answer(write), Response::ok_empty().with_id(1));
    assert_eq!(service.store().get(b"a"), Some(key("1")));
}

#[test]
fn without_a_log_cancel_changes_nothing() {
    let mut service = KvService::new(Store::new());
    let write = call(&mut service, put(1, "a", "1"));
    let _ = answer(call(&mut service, Incoming::Cancel { id: 1 }));
    assert_eq!(answer(write), Response::ok_empty().with_id(1));
    assert_eq!(service.store().get(b"a"), Some(key("1")));
}

#[test]
fn the_writer_drops_an_append_whose_deadline_has_passed() {
    let (_dir, service, _faults) = held_log();
    let wal = service.wal().unwrap();
    let claim = Claim::new(Some(Instant::now()));
    let mutation = Mutation::Put {
        key: key("k"),
        value: key("v"),
        expires_at: None,
    };
    assert!(block_on(wal.append_claimed(mutation, claim.clone())).is_err());
    assert_eq!(claim.lost(), Some(Lost::DeadlineExceeded));
    assert_eq!(block_on(wal.read(key("k"))), None);
}

#[test]
fn hello_is_answered_with_version_2_and_the_connections_limit() {
    let mut service = KvService::new(Store::new()).with_max_in_flight(17);
    let hello = |version| {
        Incoming::Request(Request::Hello {
            version,
            session_id: [0; 16],
        })
    };
    let ok = answer(call(&mut service, hello(2)));
    assert_eq!(ok.status, Status::Ok);
    let negotiated = Negotiated::parse(&ok.value).unwrap();
    assert_eq!(
        negotiated,
        Negotiated {
            version: 2,
            max_in_flight: 17,
            session_window: crate::kv::SessionConfig::default().window
        }
    );
    // A later version is offered 2; an earlier one is refused.
    assert_eq!(answer(call(&mut service, hello(3))).status, Status::Ok);
    assert_eq!(answer(call(&mut service, hello(1))).status, Status::BadRequest);
}

#[test]
fn a_cancelled_write_holds_up_no_later_read_of_its_key() {
    let (_dir, mut service, faults) = held_log();
    let first = hold_behind_a_write(&mut service, &faults);
    let cancelled = call(&mut service, put(2, "b", "2"));
    let _ = answer(call(&mut service, Incoming::Cancel { id: 2 }));
    assert_eq!(answer(cancelled).status, Status::Cancelled);
    // Never applied: a read of `b` need not wait for the writer.
    service.store().put(b"b", b"other");
    let mut read = call(&mut service, get(3, "b"));
    assert_eq!(poll_once(&mut read), Some(Response::ok(key("other")).with_id(3)));
    faults.release();
    assert_eq!(answer(first).status, Status::Ok);
}
