//! Repairing a damaged data directory, as Redis' `redis-check-aof --fix`
//! does: cut the log at its first bad record, drop what came after it, and
//! keep a copy of every file it changes. What `kv repair` runs.

use super::files::{create_wal, list, snapshot_path, sync_dir, temp_path, wal_path, FileKind, MAGIC_LEN};
use super::lock::DirLock;
use super::record::{encode_end, Next, Record, RecordReader, SNAPSHOT_MAGIC, WAL_MAGIC};
use super::tail::{self, Found, Verdict};
use super::{Wal, WalError};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

mod report;
pub use report::{RepairAction, RepairMode, RepairReport};

impl Wal {
    /// Finds the first damage in the data directory `dir` and, in
    /// [`RepairMode::Fix`], repairs it: the log is cut at its first bad
    /// record and every log file after it is removed (so that what is left
    /// is the state of the store at one moment); a damaged snapshot is
    /// rewritten with the records before its damage. Every file it changes
    /// or removes is first copied into a new `repair-<time>` directory
    /// inside `dir`. A torn last record, which a server would cut anyway,
    /// is cut too.
    ///
    /// It takes the directory's lock, so it fails with
    /// [`WalError::Locked`] while a server uses the directory.
    pub fn repair(dir: impl AsRef<Path>, mode: RepairMode) -> Result<RepairReport, WalError> {
        let dir = dir.as_ref();
        fs::metadata(dir).map_err(|e| WalError::io("open", dir, e))?;
        let _lock = DirLock::acquire(dir)?;
        let actions = plan(dir)?;
        let backup = match mode {
            RepairMode::Fix if !actions.is_empty() => Some(apply(dir, &actions)?),
            _ => None,
        };
        Ok(RepairReport {
            dir: dir.to_path_buf(),
            actions,
            backup,
        })
    }
}

/// Walks the snapshot and the log chain as recovery would, and lists the
/// changes that make it recoverable.
fn plan(dir: &Path) -> Result<Vec<RepairAction>, WalError> {
    let files = list(dir)?;
    let snapshot = files
        .iter()
        .filter_map(|(kind, _)| match kind {
            FileKind::Snapshot(n) => Some(*n),
            _ => None,
        })
        .max();
    let mut wals: Vec<u64> = files
        .iter()
        .filter_map(|(kind, _)| match kind {
            FileKind::Wal(n) if snapshot.is_none_or(|s| *n >= s) => Some(*n),
            _ => None,
        })
        .collect();
    wals.sort_unstable();

    let mut actions = Vec::new();
    if let Some(generation) = snapshot {
        actions.extend(check_snapshot(&snapshot_path(dir, generation))?);
    }
    let Some(first) = snapshot.or(wals.first().copied()) else {
        return Ok(actions); // an empty directory
    };
    // A missing first log: create it, and drop every later one (they
    // would be replayed without what the missing one held).
    let mut cut = wals.first() != Some(&first);
    if cut {
        actions.push(RepairAction::CreateLog {
            path: wal_path(dir, first),
        });
    }
    for (expected, &generation) in (first..).zip(&wals) {
        let path = wal_path(dir, generation);
        if cut || generation != expected {
            let bytes = file_len(&path)?;
            let records = count_valid_from(&path, 0, bytes)?;
            actions.push(RepairAction::RemoveLog { path, bytes, records });
            cut = true;
        } else if let Some(action) = check_log(&path, Some(&generation) == wals.last())? {
            actions.push(action);
            cut = true;
        }
    }
    Ok(actions)
}

/// The first damage of one log file, as a cut.
fn check_log(path: &Path, newest: bool) -> Result<Option<RepairAction>, WalError> {
    let len = file_len(path)?;
    let read_error = |e| WalError::io("read", path, e);
    let mut start = [0; MAGIC_LEN as usize];
    let magic_ok = len >= MAGIC_LEN && {
        let mut file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
        file.read_exact(&mut start).map_err(read_error)?;
        &start == WAL_MAGIC
    };
    if !magic_ok {
        // Recovery rewrites a torn header of the newest file itself.
        let torn_header = newest && len < MAGIC_LEN;
        if torn_header {
            return Ok(None);
        }
        let dropped_records = count_valid_from(path, 0, len)?;
        return Ok(Some(RepairAction::CutLog {
            path: path.to_path_buf(),
            offset: 0,
            dropped_bytes: len,
            dropped_records,
            reason: "not a log file (bad magic): replaced by an empty log".into(),
        }));
    }
    let mut reader = BufReader::new(File::open(path).map_err(|e| WalError::io("open", path, e))?);
    reader.seek(SeekFrom::Start(MAGIC_LEN)).map_err(read_error)?;
    let mut records = RecordReader::new(reader, MAGIC_LEN, len);
    let (offset, reason) = loop {
        let offset = records.offset();
        match records.next().map_err(read_error)? {
            Next::Record(Record::End { .. }) => {
                break (offset, "a snapshot footer in a log file".to_string())
            }
            Next::Record(_) => {}
            Next::Eof => return Ok(None),
            Next::Damaged { offset, damage } if newest => {
                let mut file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
                match tail::judge(&mut file, len, offset, damage).map_err(read_error)? {
                    Verdict::Torn(torn) => break (offset, format!("a torn write: {torn}")),
                    Verdict::Corrupt(reason) => break (offset, reason),
                }
            }
            Next::Damaged { offset, damage } => break (offset, damage.reason()),
        }
    };
    let dropped_records = count_valid_from(path, offset + 1, len)?;
    Ok(Some(RepairAction::CutLog {
        path: path.to_path_buf(),
        offset,
        dropped_bytes: len - offset,
        dropped_records,
        reason,
    }))
}

/// The first damage of the snapshot, if any.
fn check_snapshot(path: &Path) -> Result<Option<RepairAction>, WalError> {
    let len = file_len(path)?;
    let read_error = |e| WalError::io("read", path, e);
    let mut file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let mut magic = [0; MAGIC_LEN as usize];
    let damage = |offset, kept_records, reason: String| {
        Some(RepairAction::RewriteSnapshot {
            path: path.to_path_buf(),
            offset,
            kept_records,
            dropped_bytes: len - offset,
            reason,
        })
    };
    if len < MAGIC_LEN || file.read_exact(&mut magic).is_err() || &magic != SNAPSHOT_MAGIC {
        return Ok(damage(0, 0, "not a snapshot (bad magic)".into()));
    }
    let mut records = RecordReader::new(BufReader::new(file), MAGIC_LEN, len);
    let mut count = 0;
    loop {
        let offset = records.offset();
        let end = match records.next().map_err(read_error)? {
            Next::Record(Record::Put { tag: None, .. } | Record::Session { .. }) => {
                count += 1;
                continue;
            }
            Next::Record(Record::Put { tag: Some(_), .. }) => {
                return Ok(damage(offset, count, "a sequenced record".into()))
            }
            Next::Record(Record::End { count: expected }) => expected,
            Next::Record(Record::Delete { .. }) => {
                return Ok(damage(offset, count, "a delete record".into()))
            }
            Next::Eof => return Ok(damage(len, count, "no footer".into())),
            Next::Damaged { offset, damage: what } => return Ok(damage(offset, count, what.reason())),
        };
        if end != count || records.offset() != len {
            return Ok(damage(
                offset,
                count,
                "a footer that does not close the file".into(),
            ));
        }
        return Ok(None);
    }
}

/// Valid log records in `from..len` of a file: each run of records that
/// follows a stretch of damage (or garbage) is found by looking for the
/// next valid record.
fn count_valid_from(path: &Path, from: u64, len: u64) -> Result<u64, WalError> {
    let open = || File::open(path).map_err(|e| WalError::io("open", path, e));
    let read_error = |e| WalError::io("read", path, e);
    let mut file = open()?;
    let mut count = 0;
    let mut at = from;
    while let Found::At(start) = tail::find_record(&mut file, at, len).map_err(read_error)? {
        let mut reader = BufReader::new(open()?);
        reader.seek(SeekFrom::Start(start)).map_err(read_error)?;
        let mut records = RecordReader::new(reader, start, len);
        loop {
            match records.next().map_err(read_error)? {
                Next::Record(_) => count += 1,
                Next::Eof => return Ok(count),
                Next::Damaged { offset, .. } => {
                    at = offset + 1;
                    break;
                }
            }
        }
    }
    Ok(count)
}

fn file_len(path: &Path) -> Result<u64, WalError> {
    Ok(fs::metadata(path)
        .map_err(|e| WalError::io("stat", path, e))?
        .len())
}

/// Copies every file the actions touch into a new backup directory, then
/// carries the actions out. Returns the backup directory.
fn apply(dir: &Path, actions: &[RepairAction]) -> Result<PathBuf, WalError> {
    let backup = backup_dir(dir)?;
    for action in actions {
        let path = match action {
            RepairAction::CutLog { path, .. }
            | RepairAction::RemoveLog { path, .. }
            | RepairAction::RewriteSnapshot { path, .. } => path,
            RepairAction::CreateLog { .. } => continue,
        };
        let copy = backup.join(path.file_name().unwrap_or_default());
        fs::copy(path, &copy).map_err(|e| WalError::io("copy", path, e))?;
        File::open(&copy)
            .and_then(|f| f.sync_all())
            .map_err(|e| WalError::io("fsync", &copy, e))?;
    }
    sync_dir(&backup)?;
    sync_dir(dir)?;
    for action in actions {
        match action {
            RepairAction::CutLog { path, offset: 0, .. } => {
                fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
                let generation = generation_of(path)?;
                create_wal(dir, generation)?;
            }
            RepairAction::CutLog { path, offset, .. } => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| WalError::io("open", path, e))?;
                file.set_len(*offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| WalError::io("truncate", path, e))?;
            }
            RepairAction::RemoveLog { path, .. } => {
                fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
            }
            RepairAction::RewriteSnapshot {
                path,
                offset,
                kept_records,
                ..
            } => rewrite_snapshot(path, *offset, *kept_records)?,
            RepairAction::CreateLog { path } => {
                create_wal(dir, generation_of(path)?)?;
            }
        }
    }
    sync_dir(dir)?;
    Ok(backup)
}

/// Keeps the records of a snapshot before `offset` and gives it a footer:
/// a temp file, fsynced, renamed over it.
fn rewrite_snapshot(path: &Path, offset: u64, kept_records: u64) -> Result<(), WalError> {
    let temp = temp_path(path);
    let mut kept = Vec::new();
    if offset >= MAGIC_LEN {
        File::open(path)
            .and_then(|f| f.take(offset).read_to_end(&mut kept))
            .map_err(|e| WalError::io("read", path, e))?;
    } else {
        kept.extend_from_slice(SNAPSHOT_MAGIC);
    }
    encode_end(kept_records, &mut kept);
    let mut file = File::create(&temp).map_err(|e| WalError::io("create", &temp, e))?;
    file.write_all(&kept)
        .and_then(|()| file.sync_all())
        .map_err(|e| WalError::io("write", &temp, e))?;
    fs::rename(&temp, path).map_err(|e| WalError::io("rename", &temp, e))
}

fn generation_of(path: &Path) -> Result<u64, WalError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    match super::files::classify(name) {
        Some(FileKind::Wal(n) | FileKind::Snapshot(n)) => Ok(n),
        _ => Err(WalError::corrupt(path, 0, "not a log file name")),
    }
}

/// A new `repair-<unix seconds>[-n]` directory inside `dir`.
fn backup_dir(dir: &Path) -> Result<PathBuf, WalError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut n = 0u32;
    loop {
        let path = match n {
            0 => dir.join(format!("repair-{now}")),
            n => dir.join(format!("repair-{now}-{n}")),
        };
        match fs::create_dir(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(WalError::io("create", &path, e)),
            Ok(()) => return Ok(path),
        }
    }
}

#[cfg(test)]
mod tests;
