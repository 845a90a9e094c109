//! Test-only: a log file whose writes or fsyncs fail on demand, and
//! [`Wal::open_with_faults`], which opens a log that appends through one.

use super::log_file::LogFile;
use super::{Wal, WalConfig, WalError};
use crate::kv::store::Store;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

/// Switches that make the writes or fsyncs of a log's file fail until
/// reset. Clones share the switches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    fail_writes: Arc<AtomicBool>,
    fail_fsyncs: Arc<AtomicBool>,
    /// Writes longer than this fail (0: off): a nearly full disk.
    room: Arc<AtomicUsize>,
    hold: Arc<(Mutex<Hold>, Condvar)>,
}

/// Whether writes wait, and whether the writer is waiting in one now.
#[derive(Debug, Default)]
struct Hold {
    on: bool,
    waiting: bool,
}

impl Faults {
    /// Makes the writer's writes (`fail_writes`) or fsyncs fail until reset.
    pub(crate) fn inject(&self, fail_writes: bool, fail_fsyncs: bool) {
        self.fail_writes.store(fail_writes, Relaxed);
        self.fail_fsyncs.store(fail_fsyncs, Relaxed);
    }

    /// A nearly full disk: writes longer than `bytes` fail until
    /// [`inject`](Self::inject) or this with `None`; shorter ones succeed.
    pub(crate) fn leave_room(&self, bytes: Option<usize>) {
        self.room.store(bytes.map_or(0, |b| b.max(1)), Relaxed);
    }

    /// Makes the writer's next writes wait (inside `write_all`, so with
    /// their batch taken) until [`release`](Self::release).
    pub(crate) fn hold(&self) {
        self.hold.0.lock().unwrap().on = true;
    }

    /// Blocks until the writer is waiting in a held write.
    pub(crate) fn wait_until_held(&self) {
        let (lock, changed) = &*self.hold;
        let _held = changed
            .wait_while(lock.lock().unwrap(), |hold| !hold.waiting)
            .unwrap();
    }

    /// Lets held writes go on.
    pub(crate) fn release(&self) {
        let (lock, changed) = &*self.hold;
        lock.lock().unwrap().on = false;
        changed.notify_all();
    }

    fn wait_while_held(&self) {
        let (lock, changed) = &*self.hold;
        let mut hold = lock.lock().unwrap();
        hold.waiting = true;
        changed.notify_all();
        hold = changed.wait_while(hold, |hold| hold.on).unwrap();
        hold.waiting = false;
    }

    fn check(switch: &AtomicBool, op: &str) -> io::Result<()> {
        if switch.load(Relaxed) {
            return Err(io::Error::other(format!("injected {op} failure")));
        }
        Ok(())
    }
}

/// A real log file behind switches: while one is on, that operation fails
/// without touching the file.
#[derive(Debug)]
struct FaultyFile {
    file: File,
    faults: Faults,
}

impl LogFile for FaultyFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.faults.wait_while_held();
        Faults::check(&self.faults.fail_writes, "write")?;
        let room = self.faults.room.load(Relaxed);
        if room != 0 && buf.len() > room {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected: no space left",
            ));
        }
        LogFile::write_all_at(&mut self.file, buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Faults::check(&self.faults.fail_fsyncs, "fsync")?;
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        Faults::check(&self.faults.fail_fsyncs, "fsync")?;
        self.file.sync_all()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn switch_to(&mut self, next: File) {
        self.file = next;
    }
}

impl Wal {
    /// [`Wal::open`], with every log file the writer appends to behind the
    /// returned switches.
    pub(crate) fn open_with_faults(
        dir: impl AsRef<Path>,
        config: WalConfig,
        store: Store,
    ) -> Result<(Wal, Faults), WalError> {
        let faults = Faults::default();
        let switches = faults.clone();
        let wal = Wal::open_with(dir.as_ref(), config, store, move |file| {
            Box::new(FaultyFile {
                file,
                faults: switches,
            })
        })?;
        Ok((wal, faults))
    }
}
