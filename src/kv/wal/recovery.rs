//! Recovery: rebuilding the store from the newest snapshot and the logs
//! after it, cutting a torn tail off the newest log.

use super::files::{
    classify, create_wal, list, open_for_writing, snapshot_path, wal_path, FileKind, MAGIC_LEN,
};
use super::record::{Next, Record, RecordReader, SNAPSHOT_MAGIC, WAL_MAGIC};
use super::tail::{self, Verdict};
use super::WalError;
use crate::kv::store::{now_ms, Store};
use crate::kv::Status;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::path::Path;

const READ_BUFFER: usize = 1 << 20;

/// What recovery found and left ready for the writer.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The newest log file, open for writing at its (possibly cut) end.
    pub(crate) file: File,
    /// Its generation.
    pub(crate) generation: u64,
    /// Its length.
    pub(crate) file_len: u64,
    /// Bytes of every log file recovery replayed.
    pub(crate) wal_bytes: u64,
    /// Bytes of the snapshot it loaded (0 without one).
    pub(crate) snapshot_bytes: u64,
    /// Records applied from the snapshot and the logs.
    pub(crate) records: u64,
}

/// Loads the newest snapshot and replays every log file after it into
/// `store`, cutting a torn tail off the newest log file. Creates the
/// directory and a first log file if there are none.
pub(crate) fn recover(dir: &Path, store: &Store) -> Result<Recovered, WalError> {
    fs::create_dir_all(dir).map_err(|e| WalError::io("create", dir, e))?;
    let files = list(dir)?;
    let newest_snapshot = files
        .iter()
        .filter_map(|(kind, _)| match kind {
            FileKind::Snapshot(n) => Some(*n),
            _ => None,
        })
        .max();
    // Leftovers of a compaction that crashed (a temp file) or did not finish
    // cleaning up (files older than the newest snapshot).
    for (kind, path) in &files {
        let stale = match kind {
            FileKind::Temp => true,
            FileKind::Wal(n) | FileKind::Snapshot(n) => newest_snapshot.is_some_and(|s| *n < s),
        };
        if stale {
            tracing::info!(path = %path.display(), "removing a leftover of an earlier compaction");
            fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
        }
    }

    let mut records = 0;
    let mut snapshot_bytes = 0;
    if let Some(generation) = newest_snapshot {
        let path = snapshot_path(dir, generation);
        let (count, len) = load_snapshot(&path, store)?;
        records += count;
        snapshot_bytes = len;
    }

    let mut wals: Vec<u64> = files
        .iter()
        .filter_map(|(kind, _)| match kind {
            FileKind::Wal(n) if newest_snapshot.is_none_or(|s| *n >= s) => Some(*n),
            _ => None,
        })
        .collect();
    wals.sort_unstable();
    // The chain starts at the snapshot's generation and has no gaps.
    if let Some(first) = newest_snapshot.or(wals.first().copied()) {
        for (expected, &found) in (first..).zip(&wals) {
            if expected != found {
                return Err(WalError::Missing {
                    path: wal_path(dir, expected),
                });
            }
        }
        if wals.is_empty() {
            return Err(WalError::Missing {
                path: wal_path(dir, first),
            });
        }
    }

    let Some((&newest, older)) = wals.split_last() else {
        // A new data directory.
        let file = create_wal(dir, 0)?;
        return Ok(Recovered {
            file,
            generation: 0,
            file_len: MAGIC_LEN,
            wal_bytes: MAGIC_LEN,
            snapshot_bytes,
            records,
        });
    };
    let mut wal_bytes = 0;
    for &generation in older {
        let replayed = replay_wal(&wal_path(dir, generation), store, false)?;
        records += replayed.records;
        wal_bytes += replayed.len;
    }
    let path = wal_path(dir, newest);
    let replayed = replay_wal(&path, store, true)?;
    records += replayed.records;
    wal_bytes += replayed.len;
    Ok(Recovered {
        file: open_for_writing(&path)?,
        generation: newest,
        file_len: replayed.len,
        wal_bytes,
        snapshot_bytes,
        records,
    })
}

fn open_for_reading(path: &Path) -> Result<(BufReader<File>, u64), WalError> {
    let file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let len = file.metadata().map_err(|e| WalError::io("stat", path, e))?.len();
    Ok((BufReader::with_capacity(READ_BUFFER, file), len))
}

fn read_magic(reader: &mut BufReader<File>, path: &Path, expected: &[u8; 8]) -> Result<(), WalError> {
    let mut magic = [0; MAGIC_LEN as usize];
    reader
        .read_exact(&mut magic)
        .map_err(|e| WalError::io("read", path, e))?;
    if &magic != expected {
        return Err(WalError::corrupt(
            path,
            0,
            "not a wirestack file of this kind (bad magic)",
        ));
    }
    Ok(())
}

/// Loads a snapshot, which must be whole: it was renamed into place only
/// after it was written and fsynced. Returns its records and its length.
fn load_snapshot(path: &Path, store: &Store) -> Result<(u64, u64), WalError> {
    let (mut reader, len) = open_for_reading(path)?;
    if len < MAGIC_LEN {
        return Err(WalError::corrupt(path, 0, "shorter than its header"));
    }
    read_magic(&mut reader, path, SNAPSHOT_MAGIC)?;
    let mut records = RecordReader::new(reader, MAGIC_LEN, len);
    let mut count = 0u64;
    let now = now_ms();
    loop {
        let offset = records.offset();
        match records.next().map_err(|e| WalError::io("read", path, e))? {
            Next::Record(Record::Put {
                key,
                value,
                expires_at,
                tag: None,
            }) => {
                count += 1;
                if expires_at.is_none_or(|at| at > now) {
                    store.put_until(key, value, expires_at);
                }
            }
            Next::Record(Record::Session {
                session,
                floor,
                answers,
            }) => {
                count += 1;
                store.sessions().restore(session, floor, answers.iter());
            }
            Next::Record(Record::End { count: expected }) => {
                if expected != count {
                    return Err(WalError::corrupt(
                        path,
                        offset,
                        format!("footer counts {expected} records, the file has {count}"),
                    ));
                }
                if records.offset() != len {
                    return Err(WalError::corrupt(
                        path,
                        records.offset(),
                        "bytes after the footer",
                    ));
                }
                return Ok((count, len));
            }
            Next::Record(Record::Delete { .. }) => {
                return Err(WalError::corrupt(path, offset, "a delete record in a snapshot"));
            }
            Next::Record(Record::Put { tag: Some(_), .. }) => {
                return Err(WalError::corrupt(
                    path,
                    offset,
                    "a sequenced record in a snapshot",
                ));
            }
            Next::Eof => return Err(WalError::corrupt(path, len, "snapshot ends without its footer")),
            Next::Damaged { offset, damage } => return Err(WalError::corrupt(path, offset, damage.reason())),
        }
    }
}

struct Replayed {
    records: u64,
    /// The file's length after any torn tail was cut.
    len: u64,
}

/// Replays one log file into `store`. In the `newest` file, damage that a
/// crash can leave (a torn last record, or zeros: preallocated, or left by
/// the file system) is cut off; anywhere else, damage is an error.
fn replay_wal(path: &Path, store: &Store, newest: bool) -> Result<Replayed, WalError> {
    let (mut reader, len) = open_for_reading(path)?;
    if len < MAGIC_LEN {
        // Only the newest file can be this short: a crash while it was being
        // created, before anything was logged to it.
        let mut start = vec![0; len as usize];
        reader
            .read_exact(&mut start)
            .map_err(|e| WalError::io("read", path, e))?;
        let is_torn_header =
            start.iter().zip(WAL_MAGIC).all(|(a, b)| a == b) || start.iter().all(|&b| b == 0);
        if !(newest && is_torn_header) {
            return Err(WalError::corrupt(path, 0, "shorter than its header"));
        }
        tracing::warn!(path = %path.display(), "log file has a torn header; rewriting it");
        let dir = path.parent().unwrap_or(Path::new("."));
        let generation = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(classify)
            .and_then(|kind| match kind {
                FileKind::Wal(n) => Some(n),
                _ => None,
            })
            .ok_or_else(|| WalError::corrupt(path, 0, "not a log file name"))?;
        create_wal(dir, generation)?;
        return Ok(Replayed {
            records: 0,
            len: MAGIC_LEN,
        });
    }
    read_magic(&mut reader, path, WAL_MAGIC)?;
    let mut records = RecordReader::new(reader, MAGIC_LEN, len);
    let mut count = 0;
    let now = now_ms();
    loop {
        match records.next().map_err(|e| WalError::io("read", path, e))? {
            Next::Record(Record::Put {
                key,
                value,
                expires_at,
                tag,
            }) => {
                count += 1;
                match expires_at {
                    // Expired already: all that is left of it is that it
                    // replaced whatever the key held before.
                    Some(at) if at <= now => {
                        store.delete(key);
                    }
                    _ => store.put_until(key, value, expires_at),
                }
                if let Some(tag) = tag {
                    store.sessions().replay(tag.session, tag.sequenced, Status::Ok);
                }
            }
            Next::Record(Record::Delete { key, tag }) => {
                count += 1;
                let existed = store.delete(key);
                if let Some(tag) = tag {
                    let applied = super::Applied::Deleted { existed };
                    store
                        .sessions()
                        .replay(tag.session, tag.sequenced, applied.status());
                }
            }
            Next::Record(Record::Session { .. }) => {
                return Err(WalError::corrupt(
                    path,
                    records.offset(),
                    "a snapshot's session record in a log file",
                ));
            }
            Next::Record(Record::End { .. }) => {
                return Err(WalError::corrupt(
                    path,
                    records.offset(),
                    "a snapshot footer in a log file",
                ));
            }
            Next::Eof => return Ok(Replayed { records: count, len }),
            Next::Damaged { offset, damage } => {
                if !newest {
                    return Err(WalError::corrupt(path, offset, damage.reason()));
                }
                drop(records);
                let mut file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
                let torn = match tail::judge(&mut file, len, offset, damage) {
                    Ok(Verdict::Torn(torn)) => torn,
                    Ok(Verdict::Corrupt(reason)) => return Err(WalError::corrupt(path, offset, reason)),
                    Err(e) => return Err(WalError::io("read", path, e)),
                };
                if torn == tail::ZERO_TAIL {
                    // What every crash of a server that preallocates leaves.
                    tracing::info!(
                        path = %path.display(),
                        offset,
                        cut = len - offset,
                        "cutting the zeros off the end of the log"
                    );
                } else {
                    tracing::warn!(
                        path = %path.display(),
                        offset,
                        cut = len - offset,
                        reason = torn,
                        "cutting off a torn write at the end of the log"
                    );
                }
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| WalError::io("open", path, e))?;
                file.set_len(offset)
                    .map_err(|e| WalError::io("truncate", path, e))?;
                file.sync_all().map_err(|e| WalError::io("fsync", path, e))?;
                return Ok(Replayed {
                    records: count,
                    len: offset,
                });
            }
        }
    }
}
