//! One process per data directory: an exclusive advisory lock on its
//! `LOCK` file, held from before recovery until the log is closed.
//!
//! The lock is the operating system's (`flock(2)` on Linux, through
//! [`File::try_lock`]): it is released when the file is closed, which the
//! kernel also does when the process dies, so a crash never leaves a stale
//! lock behind. The holder writes its process id into the file, so that a
//! second server can say who holds it.

use super::WalError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The name of the lock file in a data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The exclusive lock on a data directory; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// Held open: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or fails at once with
    /// [`WalError::Locked`] if another process or another open log in this
    /// process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, WalError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| WalError::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                return Err(WalError::Locked { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(WalError::io("lock", &path, e)),
        }
        // Ours now: say who holds it. Only informative, so failures to write
        // it do not matter.
        let pid = std::process::id().to_string();
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()));
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The process id the holder wrote, if it can be read.
fn read_holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_fails_naming_the_file_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        match DirLock::acquire(dir.path()) {
            Err(WalError::Locked { path, holder }) => {
                assert_eq!(path, dir.path().join(LOCK_FILE));
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        // Released with the file: the next one gets it.
        DirLock::acquire(dir.path()).unwrap();
    }
}
