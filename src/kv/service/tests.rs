//! `KvService` alone: ordering of reads and writes, TTLs, a failing log.

use super::*;
use crate::kv::wal::{FsyncPolicy, WalConfig};
use bytes::Bytes;
use futures::executor::block_on;

fn key(k: &'static str) -> Bytes {
    Bytes::from_static(k.as_bytes())
}

fn call(service: &mut KvService, request: Request) -> Response {
    let Ok(response) = block_on(Service::<Request>::call(service, request));
    response
}

fn get(k: &'static str) -> Request {
    Request::Get { key: key(k) }
}

fn put(k: &'static str, v: &'static str) -> Request {
    Request::Put {
        key: key(k),
        value: key(v),
    }
}

/// The same conversation, in memory and through a log.
fn every_command_and_its_statuses(mut service: KvService) {
    let ping = call(&mut service, Request::Ping { payload: key("x") });
    assert_eq!((ping.status, &ping.value[..]), (Status::Ok, &b"x"[..]));
    assert_eq!(call(&mut service, get("k")).status, Status::NotFound);
    assert_eq!(call(&mut service, put("k", "v")), Response::ok_empty());
    assert_eq!(call(&mut service, get("k")), Response::ok(key("v")));
    let delete = Request::Delete { key: key("k") };
    assert_eq!(call(&mut service, delete.clone()), Response::ok_empty());
    assert_eq!(call(&mut service, delete).status, Status::NotFound);
    let put_ttl = Request::PutTtl {
        key: key("t"),
        ttl_ms: 60_000,
        value: key("v"),
    };
    assert_eq!(call(&mut service, put_ttl), Response::ok_empty());
    assert_eq!(call(&mut service, get("t")), Response::ok(key("v")));
    assert_eq!(call(&mut service, Request::Health), Response::ok_empty());
}

#[test]
fn every_command_and_its_statuses_in_memory() {
    every_command_and_its_statuses(KvService::new(Store::new()));
}

#[test]
fn every_command_and_its_statuses_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap();
    every_command_and_its_statuses(KvService::with_wal(wal));
}

#[test]
fn rejected_frames_are_answered_as_the_codec_said() {
    let mut service = KvService::new(Store::new());
    let rejection = Response::error(Status::BadRequest, "unknown command byte 0x7f");
    let answer = block_on(Service::<Incoming>::call(
        &mut service,
        Incoming::Rejected(rejection.clone()),
    ));
    assert_eq!(answer, Ok(rejection));
}

fn logged(fsync: FsyncPolicy) -> (tempfile::TempDir, KvService) {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync,
        ..WalConfig::default()
    };
    let wal = Wal::open(dir.path(), config, Store::new()).unwrap();
    (dir, KvService::with_wal(wal))
}

const POLICIES: [FsyncPolicy; 3] = [FsyncPolicy::Always, FsyncPolicy::EverySec, FsyncPolicy::Never];

#[test]
fn a_read_after_a_pending_write_of_the_same_connection_sees_it() {
    for fsync in POLICIES {
        let (_dir, mut connection) = logged(fsync);
        // Pipelined: both called before either is awaited.
        let mut batch = Vec::new();
        for i in 0..100u32 {
            let value = Bytes::from(i.to_string());
            batch.push(connection.call(Request::Put {
                key: key("k"),
                value: value.clone(),
            }));
            batch.push(connection.call(get("k")));
            let Ok(read) = block_on(batch.pop().unwrap());
            assert_eq!(read, Response::ok(value), "{fsync}");
        }
        for write in batch {
            assert_eq!(block_on(write), Ok(Response::ok_empty()));
        }
        // A clone is another connection: it has no write to wait for.
        assert!(connection.clone().pending_write.is_none());
    }
}

/// The report of issue 10: PUT v1, GET, PUT v2, GET, PUT v3, GET in one
/// write; every GET answered v3, because it read the store once its
/// write was done, when the later writes of the batch were applied too.
#[test]
fn a_pipelined_read_sees_no_later_write_of_its_connection() {
    for fsync in POLICIES {
        for round in 0..50 {
            let (_dir, mut connection) = logged(fsync);
            let mut answers = Vec::new();
            for v in ["v1", "v2", "v3"] {
                answers.push(connection.call(put("k", v)));
                // A read of another key sits between the writes too.
                answers.push(connection.call(get("other")));
                answers.push(connection.call(get("k")));
                answers.push(connection.call(put("other", v)));
            }
            let answers: Vec<Response> = answers.into_iter().map(|a| block_on(a).unwrap()).collect();
            for (i, v) in ["v1", "v2", "v3"].into_iter().enumerate() {
                let other_before = if i == 0 {
                    Response::not_found()
                } else {
                    Response::ok(key(["v1", "v2"][i - 1]))
                };
                assert_eq!(answers[4 * i + 1], other_before, "{fsync}, round {round}");
                assert_eq!(answers[4 * i + 2], Response::ok(key(v)), "{fsync}, round {round}");
            }
        }
    }
}

/// Two connections, each writing one key and then, pipelined, reading
/// the other's: at least one of the reads comes after both writes.
#[test]
fn a_read_of_another_key_does_not_overtake_a_pending_write() {
    for fsync in POLICIES {
        for round in 0..50 {
            let (_dir, mut a) = logged(fsync);
            let mut b = a.clone();
            // Called in this order, none awaited: A's read may miss y,
            // but then B's read comes after A's write.
            let write_x = a.call(put("x", "1"));
            let read_y = a.call(get("y"));
            let write_y = b.call(put("y", "1"));
            let read_x = b.call(get("x"));
            let reads = [read_y, read_x].map(|read| block_on(read).unwrap().status);
            for write in [write_x, write_y] {
                assert_eq!(block_on(write).unwrap(), Response::ok_empty());
            }
            assert_ne!(reads, [Status::NotFound; 2], "{fsync}, round {round}");
        }
    }
}

#[test]
fn a_read_after_a_failed_write_sees_the_store_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    };
    let (wal, faults) = Wal::open_with_faults(dir.path(), config, Store::new()).unwrap();
    let mut service = KvService::with_wal(wal);
    assert_eq!(call(&mut service, put("k", "old")), Response::ok_empty());
    faults.inject(false, true);
    let failed = service.call(put("k", "new"));
    let read = service.call(get("k"));
    assert_eq!(block_on(failed).unwrap().status, Status::Storage);
    assert_eq!(block_on(read).unwrap(), Response::ok(key("old")));
}

#[test]
fn a_read_queued_after_the_log_stopped_reads_the_store() {
    let (_dir, mut service) = logged(FsyncPolicy::Always);
    assert_eq!(call(&mut service, put("k", "v")), Response::ok_empty());
    let wal = service.wal().unwrap().clone();
    let write = service.call(put("k", "w"));
    block_on(wal.shutdown()).unwrap();
    // The log is closed: this read cannot be answered by its writer.
    let read = service.call(get("k"));
    assert_eq!(block_on(write).unwrap(), Response::ok_empty());
    assert_eq!(block_on(read).unwrap(), Response::ok(key("w")));
}

#[test]
fn a_write_that_cannot_be_logged_is_answered_storage_and_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    };
    let (wal, faults) = Wal::open_with_faults(dir.path(), config, Store::new()).unwrap();
    let mut service = KvService::with_wal(wal);
    assert_eq!(call(&mut service, put("k", "old")), Response::ok_empty());
    faults.inject(false, true);
    let failed = call(&mut service, put("k", "new"));
    assert_eq!(failed.status, Status::Storage, "{}", failed.message());
    assert!(failed.message().contains("fsync"), "{}", failed.message());
    assert_eq!(call(&mut service, get("k")), Response::ok(key("old")));
    let delete = call(&mut service, Request::Delete { key: key("k") });
    assert_eq!(delete.status, Status::Storage);
    assert_eq!(call(&mut service, get("k")), Response::ok(key("old")));
    // PING still echoes; HEALTH says writes are refused, and why.
    let ping = call(&mut service, Request::Ping { payload: key("p") });
    assert_eq!(ping, Response::ok(key("p")));
    let health = call(&mut service, Request::Health);
    assert_eq!(health.status, Status::Storage);
    assert!(health.message().contains("fsync"), "{}", health.message());

    // Once the disk is back the log recovers by itself; HEALTH says so
    // once a write succeeds.
    faults.inject(false, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while call(&mut service, put("k", "newer")).status != Status::Ok {
        assert!(std::time::Instant::now() < deadline, "the log never recovered");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(call(&mut service, Request::Health), Response::ok_empty());
    assert_eq!(call(&mut service, get("k")), Response::ok(key("newer")));
}
