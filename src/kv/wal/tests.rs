use super::files::{snapshot_path, temp_path, wal_path, MAGIC_LEN};
use super::*;
use crate::kv::store::now_ms;
use std::fs::{self, OpenOptions};
use std::io::Write;

fn config(fsync: FsyncPolicy) -> WalConfig {
    WalConfig {
        fsync,
        ..WalConfig::default()
    }
}

fn open(dir: &Path) -> Wal {
    Wal::open(dir, config(FsyncPolicy::Always), Store::new()).expect("open the log")
}

fn put(key: &str, value: &str) -> Mutation {
    Mutation::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        expires_at: None,
    }
}

fn delete(key: &str) -> Mutation {
    Mutation::Delete {
        key: Bytes::copy_from_slice(key.as_bytes()),
    }
}

fn get(wal: &Wal, key: &str) -> Option<String> {
    wal.store()
        .get(key.as_bytes())
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn wal0(dir: &Path) -> PathBuf {
    wal_path(dir, 0)
}

/// Writes `n` puts `k{i} = v{i}` and shuts the log down.
async fn write_puts(dir: &Path, n: usize) {
    let wal = open(dir);
    for i in 0..n {
        wal.append(put(&format!("k{i}"), &format!("v{i}"))).await.unwrap();
    }
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn writes_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    assert_eq!(wal.append(put("a", "1")).await.unwrap(), Applied::Written);
    assert_eq!(wal.append(put("b", "2")).await.unwrap(), Applied::Written);
    assert_eq!(wal.append(put("a", "3")).await.unwrap(), Applied::Written);
    assert_eq!(
        wal.append(delete("b")).await.unwrap(),
        Applied::Deleted { existed: true }
    );
    assert_eq!(
        wal.append(delete("b")).await.unwrap(),
        Applied::Deleted { existed: false }
    );
    assert_eq!(get(&wal, "a").as_deref(), Some("3"));
    wal.shutdown().await.unwrap();

    let wal = open(dir.path());
    assert_eq!(get(&wal, "a").as_deref(), Some("3"));
    assert_eq!(get(&wal, "b"), None);
    assert_eq!(wal.stats().records_recovered, 5);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn appends_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    wal.shutdown().await.unwrap();
    assert!(matches!(wal.append(put("a", "1")).await, Err(WalError::Closed)));
    assert_eq!(get(&wal, "a"), None);
}

#[tokio::test]
async fn ttls_are_absolute_and_expired_keys_are_dropped_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let soon = now_ms() + 200;
    let later = now_ms() + 3_600_000;
    for (key, at) in [("short", soon), ("long", later)] {
        let mutation = Mutation::Put {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::from_static(b"v"),
            expires_at: Some(at),
        };
        wal.append(mutation).await.unwrap();
    }
    // An expired write still replaces what the key held before it.
    wal.append(put("replaced", "old")).await.unwrap();
    let expired = Mutation::Put {
        key: Bytes::from_static(b"replaced"),
        value: Bytes::from_static(b"new"),
        expires_at: Some(now_ms() - 1),
    };
    wal.append(expired).await.unwrap();
    wal.shutdown().await.unwrap();

    // Wait until the short TTL is over (a deadline, not a guess).
    while now_ms() <= soon {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let store = Store::new();
    let wal = Wal::open(dir.path(), config(FsyncPolicy::Always), store.clone()).unwrap();
    assert_eq!(get(&wal, "short"), None);
    assert_eq!(get(&wal, "long").as_deref(), Some("v"));
    assert_eq!(get(&wal, "replaced"), None);
    // Dropped, not merely invisible.
    assert_eq!(store.len(), 1);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_partial_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 10).await;
    let path = wal0(dir.path());
    let whole = fs::metadata(&path).unwrap().len();
    // Every cut inside the last record loses only that record.
    let last_record_len = 8 + 1 + 4 + 2 + 2;
    for cut in 1..last_record_len {
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole - cut).unwrap();
        let wal = open(dir.path());
        assert_eq!(get(&wal, "k8").as_deref(), Some("v8"), "cut {cut}");
        assert_eq!(get(&wal, "k9"), None, "cut {cut}");
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            whole - last_record_len,
            "the torn record is gone from the file"
        );
        // Put the last record back for the next round.
        wal.append(put("k9", "v9")).await.unwrap();
        wal.shutdown().await.unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
    }
}

#[tokio::test]
async fn a_bad_checksum_in_the_whole_last_record_refuses_and_cuts_nothing() {
    // A flipped bit in an answered last record and a torn write of a whole
    // record look the same; cutting could lose an answered write, so the
    // log is refused as it is (`kv repair` decides).
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 3).await;
    let path = wal0(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    fs::write(&path, &bytes).unwrap();

    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    assert!(matches!(error, WalError::Corrupt { .. }), "{error:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[tokio::test]
async fn a_bad_checksum_with_a_valid_record_after_it_refuses_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 3).await;
    let path = wal0(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let second_record = MAGIC_LEN as usize + 8 + 1 + 4 + 2 + 2;
    bytes[second_record - 1] ^= 0xFF; // the first record's last byte
    fs::write(&path, &bytes).unwrap();

    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    assert!(matches!(error, WalError::Corrupt { .. }), "{error:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[tokio::test]
async fn a_flipped_length_bit_in_the_middle_refuses_and_cuts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 40).await;
    let path = wal0(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    // Records k0..k9 are 17 bytes, k10..k39 19: record 12 starts here.
    let record = MAGIC_LEN as usize + 10 * 17 + 2 * 19;
    bytes[record + 2] ^= 0x02; // bit 17 of its length: far past the end
    fs::write(&path, &bytes).unwrap();

    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    match &error {
        WalError::Corrupt { offset, reason, .. } => {
            assert_eq!(*offset, record as u64);
            assert!(reason.contains(&format!("offset {}", record + 19)), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was cut");
}

#[tokio::test]
async fn a_second_log_on_one_directory_is_refused_until_the_first_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    first.append(put("k", "v")).await.unwrap();
    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    match &error {
        WalError::Locked { path, holder } => {
            assert_eq!(path, &dir.path().join("LOCK"));
            assert_eq!(*holder, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(error.to_string().contains("LOCK"), "{error}");
    // The refused open read nothing and changed nothing.
    assert_eq!(get(&first, "k").as_deref(), Some("v"));
    // Released once the first log is closed, and not before its shutdown
    // returns: a restart in the same process can follow at once.
    first.shutdown().await.unwrap();
    let second = open(dir.path());
    assert_eq!(get(&second, "k").as_deref(), Some("v"));
    drop(second);
}

#[tokio::test]
async fn a_zero_filled_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 3).await;
    let path = wal0(dir.path());
    let len = fs::metadata(&path).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[0; 4096]).unwrap();
    drop(file);

    let wal = open(dir.path());
    assert_eq!(get(&wal, "k2").as_deref(), Some("v2"));
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn damage_before_the_tail_is_a_typed_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 3).await;
    let path = wal0(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    let second_record = MAGIC_LEN as usize + 8 + 1 + 4 + 2 + 2;
    bytes[second_record + 10] ^= 0x01; // inside the second record's payload
    fs::write(&path, &bytes).unwrap();

    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    match &error {
        WalError::Corrupt {
            path: bad,
            offset,
            reason,
        } => {
            assert_eq!(bad, &path);
            assert_eq!(*offset, second_record as u64);
            assert!(
                reason.starts_with("checksum mismatch, but a valid record follows"),
                "{reason}"
            );
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("offset {second_record}")), "{message}");
    // Nothing was cut: the operator decides.
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[tokio::test]
async fn a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(wal0(dir.path()), b"definitely not a log file").unwrap();
    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    assert!(matches!(error, WalError::Corrupt { offset: 0, .. }), "{error:?}");
}

/// Waits (in real time: the writer is a thread) until the log takes
/// writes again — a write of key `probe` succeeds — or says why not after
/// ten seconds. Only then is it no longer degraded.
async fn until_recovered(wal: &Wal) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(error) = wal.append(put("probe", "")).await {
        assert!(std::time::Instant::now() < deadline, "still failing: {error}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(wal.failure().is_none());
}

/// Waits until the writer's background retry has run once more: its probe
/// fsyncs twice.
async fn until_retried(wal: &Wal, fsyncs_before: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.stats().fsyncs < fsyncs_before + 2 {
        assert!(std::time::Instant::now() < deadline, "the log never retried");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_nearly_full_disk_stays_degraded_until_a_clients_write_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = Wal::open_with_faults(dir.path(), config(FsyncPolicy::Always), Store::new()).unwrap();
    wal.append(put("small", "1")).await.unwrap();
    let big = Mutation::Put {
        key: Bytes::from_static(b"big"),
        value: Bytes::from(vec![7; 9_000]),
        expires_at: None,
    };

    // Room for the retry's probe, not for the big write.
    faults.leave_room(Some(5_000));
    for round in 1..=2u64 {
        let failed = wal.append(big.clone()).await;
        assert!(
            matches!(failed, Err(WalError::Io { op: "write", .. })),
            "{failed:?}"
        );
        assert_eq!(wal.stats().writes_failed, round);
        // The background retry succeeds (its write fits)...
        until_retried(&wal, wal.stats().fsyncs).await;
        // ... and the log is still degraded: HEALTH and the gauge say so.
        assert!(wal.failure().is_some(), "round {round}: a retry alone cleared it");
    }
    // A client's write that succeeds clears it.
    wal.append(put("small", "2")).await.unwrap();
    assert!(wal.failure().is_none());
    assert_eq!(wal.stats().writes_failed, 2);
    faults.leave_room(None);
    wal.append(big).await.unwrap();
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_fsync_is_answered_then_the_log_recovers_once_the_disk_does() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = Wal::open_with_faults(dir.path(), config(FsyncPolicy::Always), Store::new()).unwrap();
    wal.append(put("k", "before")).await.unwrap();
    assert!(wal.failure().is_none());

    faults.inject(false, true);
    let failed = wal.append(put("k", "during")).await;
    assert!(
        matches!(failed, Err(WalError::Io { op: "fsync", .. })),
        "{failed:?}"
    );
    assert_eq!(get(&wal, "k").as_deref(), Some("before"));
    assert!(wal.failure().is_some(), "the log says it is failing");
    // While the disk still fails, writes are refused and change nothing.
    let refused = wal.append(delete("k")).await;
    assert!(matches!(refused, Err(WalError::Failed(_))), "{refused:?}");
    assert_eq!(get(&wal, "k").as_deref(), Some("before"));

    // The disk is back: the log retries by itself and takes writes again.
    faults.inject(false, false);
    until_recovered(&wal).await;
    wal.append(put("k2", "after")).await.unwrap();
    wal.shutdown().await.unwrap();

    // Nothing answered OK is lost, nothing refused came back.
    let wal = open(dir.path());
    assert_eq!(get(&wal, "k").as_deref(), Some("before"));
    assert_eq!(get(&wal, "k2").as_deref(), Some("after"));
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_write_is_answered_then_the_log_recovers_once_the_disk_does() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = Wal::open_with_faults(dir.path(), config(FsyncPolicy::Never), Store::new()).unwrap();
    wal.append(put("a", "1")).await.unwrap();
    faults.inject(true, false);
    let failed = wal.append(put("b", "2")).await;
    assert!(
        matches!(failed, Err(WalError::Io { op: "write", .. })),
        "{failed:?}"
    );
    assert!(matches!(wal.append(delete("a")).await, Err(WalError::Failed(_))));
    assert_eq!(get(&wal, "b"), None);
    assert_eq!(get(&wal, "a").as_deref(), Some("1"));

    faults.inject(false, false);
    until_recovered(&wal).await;
    wal.append(put("c", "3")).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = open(dir.path());
    assert_eq!(
        [get(&wal, "a"), get(&wal, "b"), get(&wal, "c")],
        [Some("1".into()), None, Some("3".into())]
    );
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_background_fsync_recovers_through_a_snapshot_of_every_answered_write() {
    // Under everysec, writes are answered before their fsync. When that
    // fsync fails the kernel may have dropped them: the retry snapshots
    // the store, which has them all.
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) =
        Wal::open_with_faults(dir.path(), config(FsyncPolicy::EverySec), Store::new()).unwrap();
    faults.inject(false, true);
    for i in 0..25 {
        wal.append(put(&format!("k{i}"), "answered")).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.failure().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the background fsync never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(matches!(
        wal.append(put("x", "refused")).await,
        Err(WalError::Failed(_))
    ));

    faults.inject(false, false);
    until_recovered(&wal).await;
    assert_eq!(wal.stats().compactions, 1, "{:?}", wal.stats());
    assert!(
        snapshot_path(dir.path(), 1).exists(),
        "{:?}",
        generations(dir.path())
    );
    wal.shutdown().await.unwrap();
    let wal = open(dir.path());
    for i in 0..25 {
        assert_eq!(get(&wal, &format!("k{i}")).as_deref(), Some("answered"));
    }
    assert_eq!(get(&wal, "x"), None);
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutting_down_a_failing_log_succeeds_unless_an_answered_write_is_at_risk() {
    // `always`: every answered write was fsynced before its answer.
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = Wal::open_with_faults(dir.path(), config(FsyncPolicy::Always), Store::new()).unwrap();
    wal.append(put("k", "v")).await.unwrap();
    faults.inject(true, true);
    assert!(wal.append(put("k", "w")).await.is_err());
    wal.shutdown().await.unwrap();
    let wal = open(dir.path());
    assert_eq!(get(&wal, "k").as_deref(), Some("v"));
    wal.shutdown().await.unwrap();

    // `never`: an answered write is in the page cache only, and the disk
    // will not take it.
    let dir = tempfile::tempdir().unwrap();
    let (wal, faults) = Wal::open_with_faults(dir.path(), config(FsyncPolicy::Never), Store::new()).unwrap();
    wal.append(put("k", "v")).await.unwrap();
    faults.inject(true, true);
    assert!(wal.append(put("k", "w")).await.is_err());
    let closed = wal.shutdown().await;
    assert!(matches!(closed, Err(WalError::Failed(_))), "{closed:?}");
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    let appends: Vec<_> = (0..500).map(|i| wal.append(put(&format!("k{i}"), "v"))).collect();
    for append in appends {
        append.await.unwrap();
    }
    let stats = wal.stats();
    assert_eq!(stats.records_written, 500);
    assert!(stats.fsyncs < stats.records_written, "group commit: {stats:?}");
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn everysec_and_never_sync_on_shutdown() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), config(policy), Store::new()).unwrap();
        wal.append(put("k", "v")).await.unwrap();
        let before = wal.stats().fsyncs;
        wal.shutdown().await.unwrap();
        assert_eq!(before, 0, "{policy}: no fsync per write");
        let wal = Wal::open(dir.path(), config(policy), Store::new()).unwrap();
        assert_eq!(get(&wal, "k").as_deref(), Some("v"), "{policy}");
        wal.shutdown().await.unwrap();
    }
}

fn tiny_compaction() -> WalConfig {
    WalConfig {
        fsync: FsyncPolicy::Never,
        compact_min_bytes: 4096,
        compact_ratio: 1.5,
    }
}

fn generations(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "LOCK")
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn compaction_replaces_logs_with_a_snapshot_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), tiny_compaction(), Store::new()).unwrap();
    // Overwrite a small key space many times: the logs outgrow the data.
    let mut appends = Vec::new();
    for round in 0..200 {
        for key in 0..20 {
            appends.push(wal.append(put(&format!("k{key}"), &format!("r{round}"))));
        }
        appends.push(wal.append(delete("k0")));
    }
    for append in appends {
        append.await.unwrap();
    }
    wal.shutdown().await.unwrap();
    assert!(wal.stats().compactions > 0, "{:?}", wal.stats());
    let files = generations(dir.path());
    assert!(files.iter().any(|f| f.starts_with("snapshot-")), "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with(".tmp")), "{files:?}");

    let wal = Wal::open(dir.path(), tiny_compaction(), Store::new()).unwrap();
    assert_eq!(get(&wal, "k0"), None);
    for key in 1..20 {
        assert_eq!(get(&wal, &format!("k{key}")).as_deref(), Some("r199"));
    }
    // Recovery read a snapshot in place of the records it replaced.
    assert!(wal.stats().records_recovered < 200 * 21, "{:?}", wal.stats());
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_compaction_interrupted_before_its_rename_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 5).await;
    // As if the writer had rotated to wal-1 and died while writing the snapshot.
    super::files::create_wal(dir.path(), 1).unwrap();
    fs::write(temp_path(&snapshot_path(dir.path(), 1)), b"half a snapshot").unwrap();
    let wal = open(dir.path());
    wal.append(put("k5", "v5")).await.unwrap();
    wal.shutdown().await.unwrap();
    assert_eq!(
        generations(dir.path()),
        ["wal-00000000000000000000", "wal-00000000000000000001"]
    );
    let wal = open(dir.path());
    for i in 0..6 {
        assert_eq!(get(&wal, &format!("k{i}")), Some(format!("v{i}")));
    }
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_compaction_interrupted_after_its_rename_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    // Generation 1 is a snapshot with k0..k2 and a log after it; wal-0 is a
    // leftover that the snapshot replaces and that must not be replayed.
    let wal = Wal::open(dir.path(), tiny_compaction(), Store::new()).unwrap();
    for i in 0..3 {
        wal.append(put(&format!("k{i}"), "snap")).await.unwrap();
    }
    wal.shutdown().await.unwrap();
    super::files::create_wal(dir.path(), 1).unwrap();
    let store = Store::new();
    for i in 0..3 {
        store.put(format!("k{i}").as_bytes(), b"snap");
    }
    super::compaction::write_snapshot(dir.path(), &store, 1).unwrap();
    assert_eq!(
        generations(dir.path()),
        ["snapshot-00000000000000000001", "wal-00000000000000000001"]
    );
    // Put a stale wal-0 back, with a write the snapshot supersedes.
    let stale_dir = tempfile::tempdir().unwrap();
    let stale = Wal::open(stale_dir.path(), tiny_compaction(), Store::new()).unwrap();
    stale.append(put("k0", "stale")).await.unwrap();
    stale.shutdown().await.unwrap();
    fs::copy(wal0(stale_dir.path()), wal0(dir.path())).unwrap();

    let wal = open(dir.path());
    assert_eq!(get(&wal, "k0").as_deref(), Some("snap"));
    assert!(!wal0(dir.path()).exists(), "the leftover is removed");
    wal.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_missing_log_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 1).await;
    for generation in 1..=2 {
        super::files::create_wal(dir.path(), generation).unwrap();
    }
    fs::remove_file(wal_path(dir.path(), 1)).unwrap();
    let error = Wal::open(dir.path(), WalConfig::default(), Store::new()).unwrap_err();
    assert!(
        matches!(&error, WalError::Missing { path } if *path == wal_path(dir.path(), 1)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_torn_header_of_a_new_log_file_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    write_puts(dir.path(), 2).await;
    fs::write(wal_path(dir.path(), 1), &super::record::WAL_MAGIC[..3]).unwrap();
    let wal = open(dir.path());
    assert_eq!(get(&wal, "k1").as_deref(), Some("v1"));
    wal.append(put("k2", "v2")).await.unwrap();
    wal.shutdown().await.unwrap();
    let wal = open(dir.path());
    assert_eq!(get(&wal, "k2").as_deref(), Some("v2"));
    wal.shutdown().await.unwrap();
}

#[test]
fn the_largest_entry_fits_one_record_and_one_byte_more_does_not() {
    use super::record::{encode, encode_tagged, payload_len, MAX_PAYLOAD};
    // The size rule, checked on small records against their encoding...
    for mutation in [put("key", "value"), delete("key")] {
        let mut buf = Vec::new();
        encode(&mutation, &mut buf);
        assert_eq!(payload_len(&mutation, false) + 8, buf.len() as u64);
    }
    let ttl = Mutation::Put {
        key: Bytes::from_static(b"k"),
        value: Bytes::from_static(b"v"),
        expires_at: Some(1),
    };
    let mut buf = Vec::new();
    encode(&ttl, &mut buf);
    assert_eq!(payload_len(&ttl, false) + 8, buf.len() as u64);
    let tag = super::record::Tag {
        session: [7; 16],
        sequenced: crate::kv::Sequenced {
            seq: 3,
            acked_below: 2,
        },
    };
    let mut buf = Vec::new();
    encode_tagged(&ttl, Some(&tag), &mut buf);
    assert_eq!(payload_len(&ttl, true) + 8, buf.len() as u64);
    // ... and at the boundary, by arithmetic: the largest entry with an
    // expiry, sequenced (the longest form), is exactly the largest payload.
    assert_eq!(
        Wal::MAX_ENTRY_BYTES + payload_len(&ttl, true) - 2,
        u64::from(MAX_PAYLOAD)
    );
}

/// Copies the log and snapshot files of a log that is still open: what a
/// crash (of the process or the machine) at this moment leaves on disk,
/// since under `always` every answered write is fsynced.
fn crash_copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for name in generations(from) {
        if name.starts_with("wal-") || name.starts_with("snapshot-") && !name.ends_with(".tmp") {
            fs::copy(from.join(&name), to.path().join(&name)).unwrap();
        }
    }
    to
}

#[tokio::test]
async fn under_always_the_log_is_preallocated_and_a_crash_leaves_zeros_that_recovery_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path());
    for i in 0..100 {
        wal.append(put(&format!("k{i}"), &format!("v{i}"))).await.unwrap();
    }
    let records_end = MAGIC_LEN + wal.stats().bytes_written;
    let bytes = fs::read(wal0(dir.path())).unwrap();
    assert!(
        bytes.len() as u64 > records_end,
        "preallocated: {} bytes, records end at {records_end}",
        bytes.len()
    );
    assert!(bytes[records_end as usize..].iter().all(|&b| b == 0));

    let crashed = crash_copy(dir.path());
    let recovered = open(crashed.path());
    for i in 0..100 {
        assert_eq!(get(&recovered, &format!("k{i}")), Some(format!("v{i}")));
    }
    assert_eq!(
        fs::metadata(wal0(crashed.path())).unwrap().len(),
        records_end,
        "zeros cut"
    );
    // Writes go on after the cut, preallocated again, and survive.
    recovered.append(put("after", "crash")).await.unwrap();
    recovered.shutdown().await.unwrap();
    let reopened = open(crashed.path());
    assert_eq!(get(&reopened, "after").as_deref(), Some("crash"));
    assert_eq!(get(&reopened, "k99").as_deref(), Some("v99"));
    reopened.shutdown().await.unwrap();

    // A clean shutdown leaves the log ending at its last record.
    wal.shutdown().await.unwrap();
    assert_eq!(fs::metadata(wal0(dir.path())).unwrap().len(), records_end);
}

#[tokio::test]
async fn only_always_preallocates() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), config(policy), Store::new()).unwrap();
        for i in 0..50 {
            wal.append(put(&format!("k{i}"), "v")).await.unwrap();
        }
        let records_end = MAGIC_LEN + wal.stats().bytes_written;
        assert_eq!(
            fs::metadata(wal0(dir.path())).unwrap().len(),
            records_end,
            "{policy:?}"
        );
        wal.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_rotation_cuts_the_preallocated_zeros_off_the_log_it_leaves() {
    // Recovery takes zeros at the end of a log that is not the newest for
    // damage: the log a rotation leaves must end at its last record.
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        fsync: FsyncPolicy::Always,
        compact_min_bytes: 4096,
        compact_ratio: 1.5,
    };
    let wal = Wal::open(dir.path(), config.clone(), Store::new()).unwrap();
    // The compaction after the first rotation fails (its temp file cannot
    // be created), so both logs stay.
    fs::create_dir(temp_path(&snapshot_path(dir.path(), 1))).unwrap();
    // About 5.7 KB of records: one rotation (at 4 KiB), not a second.
    for i in 0..300 {
        wal.append(put(&format!("k{i}"), &format!("v{i}"))).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !wal_path(dir.path(), 1).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            generations(dir.path())
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let older = fs::read(wal0(dir.path())).unwrap();
    let mut cursor = std::io::Cursor::new(&older);
    cursor.set_position(MAGIC_LEN);
    let mut records = super::record::RecordReader::new(cursor, MAGIC_LEN, older.len() as u64);
    let mut count = 0;
    loop {
        match records.next().unwrap() {
            super::record::Next::Record(_) => count += 1,
            super::record::Next::Eof => break,
            damaged => panic!("the older log does not end at its last record: {damaged:?}"),
        }
    }
    assert!(count > 100, "{count} records before the rotation");
    let newest = fs::metadata(wal_path(dir.path(), 1)).unwrap().len();
    let newest_records = MAGIC_LEN + wal.stats().bytes_written - older.len() as u64 + MAGIC_LEN;
    assert!(newest > newest_records, "the new log is preallocated: {newest}");

    // A crash now recovers every answered write from both logs.
    let crashed = crash_copy(dir.path());
    let recovered = Wal::open(crashed.path(), config, Store::new()).unwrap();
    for i in 0..300 {
        assert_eq!(get(&recovered, &format!("k{i}")), Some(format!("v{i}")), "k{i}");
    }
    recovered.shutdown().await.unwrap();
    wal.shutdown().await.unwrap();
}
