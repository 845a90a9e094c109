//! One process per data directory: exclusive advisory locks on the
//! directory itself and on its `LOCK` file, held from before recovery until
//! the log is closed.
//!
//! The locks are the operating system's (`flock(2)` on Linux, through
//! [`File::try_lock`]): the kernel drops them when the process dies, so a
//! crash never leaves a stale lock behind. The lock that counts is the one
//! on the directory: an operator who takes the process id in a refusal for
//! a stale lock and deletes `LOCK` cannot unlink it away (a second server
//! would otherwise lock a fresh `LOCK` and start on a live directory). The
//! `LOCK` file is locked too, for servers of earlier versions, and names
//! the holder's process id, so that a second server can say who holds it.
//!
//! Releasing unlocks explicitly before closing. A lock belongs to the open
//! file, not to the descriptor, and a process that forks (to spawn a child)
//! copies every descriptor until the child execs: closing ours alone could
//! leave the directory locked for a moment after [`Wal::shutdown`] returned.
//!
//! [`Wal::shutdown`]: super::Wal::shutdown

use super::WalError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The name of the lock file in a data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The exclusive lock on a data directory; released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    /// The directory, open and locked (on Unix, where a directory can be opened).
    dir: Option<File>,
    /// The `LOCK` file, open and locked.
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or fails at once with
    /// [`WalError::Locked`] if another process or another open log in this
    /// process holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, WalError> {
        let path = dir.join(LOCK_FILE);
        let dir_file = lock_dir(dir, &path)?;
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
        Ok(DirLock {
            dir: dir_file,
            file,
            path,
        })
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Unlocking releases the open file's lock even where a forked child
        // still has a copy of the descriptor; closing alone would not.
        let _ = self.file.unlock();
        if let Some(dir) = &self.dir {
            let _ = dir.unlock();
        }
    }
}

/// Locks the directory itself. `None` where a directory cannot be opened
/// as a file (not Unix) or locked: the `LOCK` file's lock is then the only
/// one.
#[cfg(unix)]
fn lock_dir(dir: &Path, lock_file: &Path) -> Result<Option<File>, WalError> {
    let file = File::open(dir).map_err(|e| WalError::io("open", dir, e))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => {
            // The holder's `LOCK` may have been deleted: then it is unknown.
            let holder = File::open(lock_file).ok().and_then(|mut f| read_holder(&mut f));
            Err(WalError::Locked {
                path: lock_file.to_path_buf(),
                holder,
            })
        }
        // Some file systems (NFS emulates `flock` with byte-range locks,
        // which need a file open for writing) cannot lock a directory: the
        // `LOCK` file's lock is then the only one, as before.
        Err(TryLockError::Error(error)) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot lock the data directory itself; relying on its LOCK file");
            Ok(None)
        }
    }
}

#[cfg(not(unix))]
fn lock_dir(_dir: &Path, _lock_file: &Path) -> Result<Option<File>, WalError> {
    Ok(None)
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

    #[test]
    fn a_copy_of_the_descriptor_does_not_hold_the_directory_after_release() {
        // What a child forked by another thread holds until it execs.
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let copies = (
            first.dir.as_ref().map(File::try_clone).transpose().unwrap(),
            first.file.try_clone().unwrap(),
        );
        drop(first);
        DirLock::acquire(dir.path()).expect("released, though a copy of the descriptor is open");
        drop(copies);
    }

    #[cfg(unix)]
    #[test]
    fn deleting_the_lock_file_does_not_free_a_directory_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        match DirLock::acquire(dir.path()) {
            Err(WalError::Locked { path, holder: None }) => {
                assert_eq!(path, dir.path().join(LOCK_FILE));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }
}
