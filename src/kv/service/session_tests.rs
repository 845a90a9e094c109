//! `KvService` with sessions: SEQUENCED writes applied once, on any
//! connection, through the log, after a restart and a compaction; a resend
//! racing its first send (the writer held by the faults seam) waits for it.

use super::*;
use crate::kv::wal::faults::Faults;
use crate::kv::wal::{FsyncPolicy, WalConfig};
use crate::kv::Negotiated;
use futures::executor::block_on;

const SESSION: SessionId = [5; 16];

fn key(k: &str) -> Bytes {
    Bytes::copy_from_slice(k.as_bytes())
}

fn call(service: &mut KvService, incoming: Incoming) -> ResponseFuture {
    Service::<Incoming>::call(service, incoming)
}

fn answer(future: ResponseFuture) -> Response {
    let Ok(response) = block_on(future);
    response
}

/// A connection of `service` whose HELLO named `session`.
fn connect(service: &KvService, session: SessionId) -> KvService {
    let mut connection = service.clone();
    let hello = Incoming::Request(Request::Hello {
        version: 2,
        session_id: session,
    });
    let ok = answer(call(&mut connection, hello));
    assert_eq!(ok.status, Status::Ok);
    assert_eq!(Negotiated::parse(&ok.value).unwrap().session_window, 512);
    connection
}

fn sequenced(id: u32, seq: u64, acked_below: u64, request: Request) -> Incoming {
    Incoming::Identified {
        id,
        deadline: None,
        sequenced: Some(Sequenced { seq, acked_below }),
        request,
    }
}

fn put(k: &str, v: &str) -> Request {
    Request::Put {
        key: key(k),
        value: key(v),
    }
}

fn delete(k: &str) -> Request {
    Request::Delete { key: key(k) }
}

fn status(service: &mut KvService, incoming: Incoming) -> Status {
    answer(call(service, incoming)).status
}

fn value(store: &Store, k: &str) -> Option<Bytes> {
    store.get(k.as_bytes())
}

fn log(dir: &std::path::Path, config: WalConfig) -> KvService {
    KvService::with_wal(Wal::open(dir, config, Store::new()).unwrap())
}

fn always() -> WalConfig {
    WalConfig {
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    }
}

/// The same checks with and without a log: a resend (here with another
/// value, which must not land) gets the first answer on any connection.
fn resends_are_answered_once(service: &KvService) {
    let mut one = connect(service, SESSION);
    let mut two = connect(service, SESSION);
    assert_eq!(
        status(&mut one, sequenced(1, 1, 1, put("k", "first"))),
        Status::Ok
    );
    assert_eq!(
        status(&mut one, sequenced(2, 2, 1, delete("gone"))),
        Status::NotFound
    );
    // A plain write by someone else, then the resends.
    assert_eq!(
        status(&mut one, Incoming::Request(put("gone", "now"))),
        Status::Ok
    );
    assert_eq!(
        status(&mut two, sequenced(7, 1, 1, put("k", "resent"))),
        Status::Ok
    );
    assert_eq!(
        status(&mut two, sequenced(8, 2, 1, delete("gone"))),
        Status::NotFound
    );
    assert_eq!(value(service.store(), "k"), Some(key("first")));
    assert_eq!(
        value(service.store(), "gone"),
        Some(key("now")),
        "the resent DELETE changed nothing"
    );
    // The answer carries the resend's id.
    assert_eq!(answer(call(&mut two, sequenced(9, 1, 1, put("k", "x")))).id, 9);
}

#[test]
fn a_resend_on_any_connection_is_answered_with_the_first_answer_without_a_log() {
    resends_are_answered_once(&KvService::new(Store::new()));
}

#[test]
fn a_resend_on_any_connection_is_answered_with_the_first_answer_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let service = log(dir.path(), always());
    resends_are_answered_once(&service);
    // One record each for the two sequenced writes and the plain one.
    assert_eq!(service.wal().unwrap().stats().records_written, 3);
}

#[test]
fn sequenced_without_a_session_and_sequenced_reads_are_bad_requests() {
    let service = KvService::new(Store::new());
    let mut anonymous = connect(&service, [0; 16]);
    assert_eq!(
        status(&mut anonymous, sequenced(1, 1, 1, put("k", "v"))),
        Status::BadRequest
    );
    let mut session = connect(&service, SESSION);
    let get = Request::Get { key: key("k") };
    assert_eq!(status(&mut session, sequenced(2, 1, 1, get)), Status::BadRequest);
    assert_eq!(value(service.store(), "k"), None);
    assert_eq!(
        status(&mut session, sequenced(3, 3, 1, put("k", "v"))),
        Status::SessionExpired
    );
    assert_eq!(value(service.store(), "k"), None);
}

#[test]
fn the_table_survives_a_restart_and_a_resend_after_it_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    {
        let service = log(dir.path(), always());
        let mut one = connect(&service, SESSION);
        assert_eq!(
            status(&mut one, sequenced(1, 1, 1, put("k", "first"))),
            Status::Ok
        );
        assert_eq!(
            status(&mut one, sequenced(2, 2, 1, delete("absent"))),
            Status::NotFound
        );
        assert_eq!(status(&mut one, sequenced(3, 3, 2, put("j", "j1"))), Status::Ok);
        // (A process killed here instead is the end-to-end test's.)
        block_on(service.wal().unwrap().shutdown()).unwrap();
    }
    let service = log(dir.path(), always());
    let mut after = connect(&service, SESSION);
    assert_eq!(
        status(&mut after, sequenced(1, 3, 2, put("j", "resent"))),
        Status::Ok
    );
    assert_eq!(
        status(&mut after, sequenced(2, 2, 2, delete("absent"))),
        Status::NotFound
    );
    // seq 1 is below the acked_below the log holds: forgotten, not reapplied.
    assert_eq!(
        status(&mut after, sequenced(3, 1, 1, put("k", "again"))),
        Status::BadRequest
    );
    assert_eq!(value(service.store(), "k"), Some(key("first")));
    assert_eq!(value(service.store(), "j"), Some(key("j1")));
    assert_eq!(status(&mut after, sequenced(4, 4, 4, put("j", "j4"))), Status::Ok);
    assert_eq!(value(service.store(), "j"), Some(key("j4")));
}

#[test]
fn the_table_survives_snapshots_and_compaction_in_the_middle_of_a_session_and_repair_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = WalConfig {
        fsync: FsyncPolicy::Never,
        compact_min_bytes: 4096,
        compact_ratio: 1.5,
    };
    let seqs = 2000;
    {
        let service = log(dir.path(), tiny.clone());
        let mut one = connect(&service, SESSION);
        for seq in 1..=seqs {
            // acked_below trails by 100: the last 100 answers are kept.
            let write = sequenced(
                1,
                seq,
                seq.saturating_sub(100).max(1),
                put(&format!("k{}", seq % 10), &seq.to_string()),
            );
            assert_eq!(status(&mut one, write), Status::Ok);
        }
        block_on(service.wal().unwrap().shutdown()).unwrap();
        assert!(service.wal().unwrap().stats().compactions > 0);
    }
    // `kv repair` reads snapshots with session records and logs with
    // sequenced ones as sound.
    let report = Wal::repair(dir.path(), crate::kv::wal::RepairMode::Check).unwrap();
    assert!(report.actions.is_empty(), "{report:?}");
    let service = log(dir.path(), tiny);
    let mut after = connect(&service, SESSION);
    for seq in seqs - 99..=seqs {
        let resend = sequenced(2, seq, seqs - 100, put(&format!("k{}", seq % 10), "resent"));
        assert_eq!(status(&mut after, resend), Status::Ok);
    }
    for k in 0..10 {
        let value = value(service.store(), &format!("k{k}")).unwrap();
        assert_ne!(
            value,
            key("resent"),
            "a resend after compaction was applied again"
        );
    }
    assert_eq!(service.store().sessions().answers_of(&SESSION), 101);
}

#[test]
fn a_resend_while_the_first_send_is_held_in_the_writer_is_not_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults): (Wal, Faults) = Wal::open_with_faults(dir.path(), always(), Store::new()).unwrap();
    let service = KvService::with_wal(wal);
    let mut one = connect(&service, SESSION);
    let mut two = connect(&service, SESSION);
    faults.hold();
    let first = call(&mut one, sequenced(1, 1, 1, put("k", "first")));
    faults.wait_until_held();
    // Taken by the writer, not applied: the resend must wait, not apply.
    let resend = call(&mut two, sequenced(1, 1, 1, put("k", "second")));
    faults.release();
    assert_eq!(answer(first).status, Status::Ok);
    assert_eq!(answer(resend).status, Status::Ok);
    assert_eq!(value(service.store(), "k"), Some(key("first")));
    assert_eq!(service.wal().unwrap().stats().records_written, 1);
}

/// `kv repair` cutting a damaged log keeps the table consistent with the
/// data: a write and its session entry are one record, so the writes before
/// the damage are still deduplicated and those cut off are gone from both —
/// a resend of one applies it, once.
#[test]
fn a_repair_that_cuts_the_log_cuts_the_session_entries_with_their_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (writes, damaged) = (50u64, 30u64);
    {
        let service = log(dir.path(), always());
        let mut one = connect(&service, SESSION);
        for seq in 1..=writes {
            let write = sequenced(1, seq, 1, put(&format!("k{seq}"), &format!("v{seq}")));
            assert_eq!(status(&mut one, write), Status::Ok);
        }
        block_on(service.wal().unwrap().shutdown()).unwrap();
    }
    // Flip a byte in the payload of record `damaged` (counted from 1).
    let path = dir.path().join(format!("wal-{:020}", 0));
    let mut bytes = std::fs::read(&path).unwrap();
    let mut at = 8;
    for _ in 1..damaged {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    bytes[at + 8 + 20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    let report = Wal::repair(dir.path(), crate::kv::wal::RepairMode::Fix).unwrap();
    assert!(!report.actions.is_empty(), "the damage was not found: {report:?}");
    let service = log(dir.path(), always());
    let mut after = connect(&service, SESSION);
    for seq in 1..=writes {
        let resend = sequenced(1, seq, 1, put(&format!("k{seq}"), "resent"));
        assert_eq!(status(&mut after, resend), Status::Ok, "seq {seq}");
        let expected = if seq < damaged {
            format!("v{seq}") // kept, and deduplicated
        } else {
            "resent".to_owned() // cut with its entry: applied now
        };
        assert_eq!(
            value(service.store(), &format!("k{seq}")),
            Some(key(&expected)),
            "seq {seq}"
        );
        // Once: a second resend changes nothing.
        let again = sequenced(1, seq, 1, put(&format!("k{seq}"), "again"));
        assert_eq!(status(&mut after, again), Status::Ok);
        assert_eq!(
            value(service.store(), &format!("k{seq}")),
            Some(key(&expected)),
            "seq {seq}"
        );
    }
}
