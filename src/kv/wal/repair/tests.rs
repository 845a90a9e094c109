//! Repairs of damaged data directories.

use super::super::files::{create_wal, snapshot_path, wal_path, MAGIC_LEN};
use super::super::{FsyncPolicy, Mutation, WalConfig};
use super::*;
use crate::kv::store::Store;
use bytes::Bytes;

fn config() -> WalConfig {
    WalConfig {
        fsync: FsyncPolicy::Always,
        ..WalConfig::default()
    }
}

/// Appends puts `k{i} = v{i}` for `range` to the log of `dir`.
async fn write(dir: &Path, range: std::ops::Range<usize>) {
    let wal = Wal::open(dir, config(), Store::new()).unwrap();
    for i in range {
        let put = Mutation::Put {
            key: Bytes::from(format!("k{i}")),
            value: Bytes::from(format!("v{i}")),
            expires_at: None,
        };
        wal.append(put).await.unwrap();
    }
    wal.shutdown().await.unwrap();
}

/// The keys a fresh open of `dir` recovers, sorted by their number.
async fn keys(dir: &Path) -> Vec<usize> {
    let wal = Wal::open(dir, config(), Store::new()).unwrap();
    let mut keys = Vec::new();
    wal.store().for_each_live(|key, _, _| {
        keys.push(std::str::from_utf8(&key[1..]).unwrap().parse().unwrap());
    });
    wal.shutdown().await.unwrap();
    keys.sort_unstable();
    keys
}

/// Where record `i` of a log of `k{i} = v{i}` puts starts.
fn record_offset(i: usize) -> usize {
    let len = |i: usize| 8 + 5 + 2 * (1 + i.to_string().len());
    MAGIC_LEN as usize + (0..i).map(len).sum::<usize>()
}

#[tokio::test]
async fn a_sound_directory_needs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 0..20).await;
    let report = Wal::repair(dir.path(), RepairMode::Fix).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.backup, None);
    assert!(report.to_string().contains("no damage"), "{report}");
}

#[tokio::test]
async fn a_flipped_length_is_cut_after_a_check_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 0..300).await;
    let path = wal_path(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    let at = record_offset(117);
    bytes[at + 2] ^= 0x10; // bit 20 of record 117's length
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), config(), Store::new()),
        Err(WalError::Corrupt { .. })
    ));

    let check = Wal::repair(dir.path(), RepairMode::Check).unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes, "a check changes nothing");
    match check.actions.as_slice() {
        [RepairAction::CutLog {
            offset,
            dropped_records,
            ..
        }] => {
            assert_eq!(*offset, at as u64);
            assert_eq!(
                *dropped_records,
                300 - 118,
                "every whole record after the damaged one"
            );
        }
        other => panic!("{other:?}"),
    }

    let fixed = Wal::repair(dir.path(), RepairMode::Fix).unwrap();
    assert_eq!(fixed.actions, check.actions);
    let backup = fixed.backup.clone().expect("a backup");
    assert_eq!(fs::read(backup.join(path.file_name().unwrap())).unwrap(), bytes);
    assert_eq!(keys(dir.path()).await, (0..117).collect::<Vec<_>>());
    assert!(Wal::repair(dir.path(), RepairMode::Check).unwrap().is_clean());
}

#[tokio::test]
async fn damage_in_an_older_log_drops_the_logs_after_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 0..50).await;
    create_wal(dir.path(), 1).unwrap();
    write(dir.path(), 50..80).await;
    let older = wal_path(dir.path(), 0);
    let mut bytes = fs::read(&older).unwrap();
    bytes[record_offset(20) + 12] ^= 0x01;
    fs::write(&older, &bytes).unwrap();

    let report = Wal::repair(dir.path(), RepairMode::Fix).unwrap();
    match report.actions.as_slice() {
        [RepairAction::CutLog { path, .. }, RepairAction::RemoveLog {
            path: removed,
            records,
            ..
        }] => {
            assert_eq!(path, &older);
            assert_eq!(removed, &wal_path(dir.path(), 1));
            assert_eq!(*records, 30);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(keys(dir.path()).await, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_torn_tail_is_cut_as_the_server_would() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 0..10).await;
    let path = wal_path(dir.path(), 0);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    let report = Wal::repair(dir.path(), RepairMode::Fix).unwrap();
    let [RepairAction::CutLog {
        reason,
        dropped_records: 0,
        ..
    }] = report.actions.as_slice()
    else {
        panic!("{report}")
    };
    assert!(reason.contains("torn"), "{reason}");
    assert_eq!(keys(dir.path()).await, (0..9).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_damaged_snapshot_keeps_the_records_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new();
    for i in 0..40 {
        store.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes());
    }
    create_wal(dir.path(), 3).unwrap();
    super::super::compaction::write_snapshot(dir.path(), &store, 3).unwrap();
    let snapshot = snapshot_path(dir.path(), 3);
    let mut bytes = fs::read(&snapshot).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 30); // the footer and the end of the last records
    fs::write(&snapshot, &bytes).unwrap();
    assert!(Wal::open(dir.path(), config(), Store::new()).is_err());

    let report = Wal::repair(dir.path(), RepairMode::Fix).unwrap();
    let [RepairAction::RewriteSnapshot { kept_records, .. }] = report.actions.as_slice() else {
        panic!("{report}")
    };
    assert_eq!(keys(dir.path()).await.len() as u64, *kept_records);
    assert!(*kept_records >= 37, "{report}");
}

#[tokio::test]
async fn a_missing_log_is_created_and_the_logs_after_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 0..5).await;
    create_wal(dir.path(), 1).unwrap();
    write(dir.path(), 5..9).await;
    create_wal(dir.path(), 2).unwrap();
    write(dir.path(), 9..12).await;
    fs::remove_file(wal_path(dir.path(), 1)).unwrap();

    let report = Wal::repair(dir.path(), RepairMode::Fix).unwrap();
    assert!(
        matches!(
            report.actions.as_slice(),
            [RepairAction::RemoveLog { records: 3, .. }]
        ),
        "{report}"
    );
    assert_eq!(keys(dir.path()).await, (0..5).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_directory_in_use_is_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), config(), Store::new()).unwrap();
    let error = Wal::repair(dir.path(), RepairMode::Fix).unwrap_err();
    assert!(matches!(error, WalError::Locked { .. }), "{error:?}");
    wal.shutdown().await.unwrap();
}
