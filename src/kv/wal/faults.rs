//! Test-only: a log file whose writes or fsyncs fail on demand, and
//! [`Wal::open_with_faults`], which opens a log that appends through one.

use super::log_file::LogFile;
use super::{Wal, WalConfig, WalError};
use crate::kv::store::Store;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// Switches that make the writes or fsyncs of a log's file fail until
/// reset. Clones share the switches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    fail_writes: Arc<AtomicBool>,
    fail_fsyncs: Arc<AtomicBool>,
}

impl Faults {
    /// Makes the writer's writes (`fail_writes`) or fsyncs fail until reset.
    pub(crate) fn inject(&self, fail_writes: bool, fail_fsyncs: bool) {
        self.fail_writes.store(fail_writes, Relaxed);
        self.fail_fsyncs.store(fail_fsyncs, Relaxed);
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
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Faults::check(&self.faults.fail_writes, "write")?;
        self.file.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Faults::check(&self.faults.fail_fsyncs, "fsync")?;
        self.file.sync_data()
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
