//! The data directory: file names, and the crash-safe steps that create,
//! list and remove its files.

use super::record::WAL_MAGIC;
use super::WalError;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Magic bytes at the start of each file.
pub(crate) const MAGIC_LEN: u64 = WAL_MAGIC.len() as u64;

/// `wal-N`: the records logged in generation `N`.
pub(crate) fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("wal-{generation:020}"))
}

/// `snapshot-N`: every live key as of the start of `wal-N` (or later).
pub(crate) fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:020}"))
}

/// A snapshot being written; never read, deleted on the next start.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// What a file in the data directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Wal(u64),
    Snapshot(u64),
    Temp,
}

pub(crate) fn classify(name: &str) -> Option<FileKind> {
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    let generation = |digits: &str| {
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    };
    if let Some(digits) = name.strip_prefix("wal-") {
        return generation(digits).map(FileKind::Wal);
    }
    if let Some(digits) = name.strip_prefix("snapshot-") {
        return generation(digits).map(FileKind::Snapshot);
    }
    None
}

/// Makes the directory's entries (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WalError::io("fsync the directory", dir, e))
}

/// Creates (or empties) log file `generation`, writes its magic, and makes
/// the file and its name durable. Returns it open for writing.
pub(crate) fn create_wal(dir: &Path, generation: u64) -> Result<File, WalError> {
    let path = wal_path(dir, generation);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|e| WalError::io("create", &path, e))?;
    file.write_all(WAL_MAGIC)
        .map_err(|e| WalError::io("write", &path, e))?;
    file.sync_all().map_err(|e| WalError::io("fsync", &path, e))?;
    sync_dir(dir)?;
    open_for_writing(&path)
}

/// Opens a log file for the writer, which writes at explicit offsets (not
/// `O_APPEND`: under `always` the file may be preallocated past its last
/// record).
pub(crate) fn open_for_writing(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open", path, e))
}

/// Removes every snapshot and log file older than `generation`: they are
/// covered by `snapshot-generation`, which must be durable already.
pub(crate) fn remove_older_than(dir: &Path, generation: u64) -> Result<(), WalError> {
    for (kind, path) in list(dir)? {
        let old = match kind {
            FileKind::Wal(n) | FileKind::Snapshot(n) => n < generation,
            FileKind::Temp => false,
        };
        if old {
            fs::remove_file(&path).map_err(|e| WalError::io("remove", &path, e))?;
        }
    }
    sync_dir(dir)
}

/// The directory's log, snapshot and temp files; other names are ignored.
pub(crate) fn list(dir: &Path) -> Result<Vec<(FileKind, PathBuf)>, WalError> {
    let entries = fs::read_dir(dir).map_err(|e| WalError::io("list", dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("list", dir, e))?;
        if let Some(kind) = entry.file_name().to_str().and_then(classify) {
            files.push((kind, entry.path()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_generation_and_parse_back() {
        let dir = Path::new("/d");
        let name = |p: PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(classify(&name(wal_path(dir, 7))), Some(FileKind::Wal(7)));
        assert_eq!(
            classify(&name(snapshot_path(dir, u64::MAX))),
            Some(FileKind::Snapshot(u64::MAX))
        );
        assert_eq!(
            classify(&name(temp_path(&snapshot_path(dir, 3)))),
            Some(FileKind::Temp)
        );
        assert_eq!(classify("wal-12"), None);
        assert_eq!(classify("notes.txt"), None);
        assert!(name(wal_path(dir, 9)) < name(wal_path(dir, 10)));
    }
}
