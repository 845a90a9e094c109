//! Writing a snapshot of the store and retiring the files it replaces.

use super::files::{remove_older_than, snapshot_path, sync_dir, temp_path};
use super::record::{encode_end, encode_put, encode_session, SNAPSHOT_MAGIC};
use super::WalError;
use crate::kv::store::Store;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `snapshot-generation` from the live contents of `store`, then
/// removes every file older than it. Returns the snapshot's length.
///
/// Called right after the writer started `wal-generation`, so the store
/// already holds every record of the older logs; records of the new log
/// that land while this runs may or may not be in the snapshot, and
/// replaying them over it gives the same state either way (see the module
/// docs). Every step is crash-safe: write a temp file, fsync it, rename it
/// into place, fsync the directory, and only then remove the old files.
pub(crate) fn write_snapshot(dir: &Path, store: &Store, generation: u64) -> Result<u64, WalError> {
    let path = snapshot_path(dir, generation);
    let temp = temp_path(&path);
    let written = write_temp(&temp, store);
    let len = match written {
        Ok(len) => len,
        Err(error) => {
            let _ = fs::remove_file(&temp);
            return Err(error);
        }
    };
    fs::rename(&temp, &path).map_err(|e| WalError::io("rename", &temp, e))?;
    sync_dir(dir)?;
    remove_older_than(dir, generation)?;
    Ok(len)
}

fn write_temp(temp: &Path, store: &Store) -> Result<u64, WalError> {
    let file = File::create(temp).map_err(|e| WalError::io("create", temp, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut record = Vec::new();
    let mut count = 0u64;
    let mut len = SNAPSHOT_MAGIC.len() as u64;
    let mut result = out.write_all(SNAPSHOT_MAGIC);
    // Each shard is read-locked only while it is visited, and a record is
    // only copied into the buffered writer under it.
    store.for_each_live(|key, value, expires_at| {
        if result.is_ok() {
            record.clear();
            encode_put(key, value, expires_at, &mut record);
            result = out.write_all(&record);
            count += 1;
            len += record.len() as u64;
        }
    });
    // The session table after the data: a session's answers say what its
    // writes did, and replaying the newer logs over both redoes any write
    // (and its entry) that landed while this ran.
    store.sessions().for_each(|session, floor, answers| {
        if result.is_ok() {
            record.clear();
            encode_session(session, floor, answers, &mut record);
            result = out.write_all(&record);
            count += 1;
            len += record.len() as u64;
        }
    });
    record.clear();
    encode_end(count, &mut record);
    len += record.len() as u64;
    result
        .and_then(|()| out.write_all(&record))
        .and_then(|()| out.flush())
        .map_err(|e| WalError::io("write", temp, e))?;
    out.get_ref()
        .sync_all()
        .map_err(|e| WalError::io("fsync", temp, e))?;
    Ok(len)
}
