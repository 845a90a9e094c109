//! The simulator's seam into the log (`tests/sim.rs`; hidden from the docs,
//! not a stable interface): a log whose writer runs inline, on the caller's
//! thread, one batch per [`InlineWriter::step`], appending through a file
//! the caller supplies ([`SimLogFile`]).
//!
//! [`Wal::open`] runs the writer on a thread of its own, whose batches
//! depend on how the OS schedules it: no seed can replay that. Here the
//! simulator decides when the writer takes its queued messages, so one
//! seed gives one order of batches; and it decides when a failed log
//! retries ([`InlineWriter::retry`]) — the writer's own retry timer runs
//! on real time, which a simulation on a paused clock does not follow, so
//! it is postponed for as long as the simulator does not ask. Compaction
//! (a thread of its own) is the caller's to keep off, with a
//! `compact_min_bytes` the run never reaches; `everysec` follows real time
//! too, so the simulator uses `always` or `never`.
//!
//! Dropping the [`InlineWriter`] without a shutdown is a crash: nothing is
//! fsynced or closed, the data directory is unlocked, and every write
//! still queued fails with [`WalError::Closed`].

use super::log_file::LogFile;
use super::writer::{Message, Writer};
use super::{Wal, WalConfig, WalError};
use crate::kv::store::Store;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::mpsc;

/// What the writer does to its log file, for the simulator to delay, fail
/// or cut at a crash point. The writer calls it once or twice per batch.
pub trait SimLogFile: Send + fmt::Debug {
    /// Writes all of `buf` at `offset`: the end of the last record, which
    /// may be short of the end of the file (the writer preallocates zeros
    /// under `always` and then writes over them).
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes what was written durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes what was written and the file's length durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Appends to `next` from now on (a rotation).
    fn switch_to(&mut self, next: File);
}

#[derive(Debug)]
struct Adapter(Box<dyn SimLogFile>);

impl LogFile for Adapter {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn switch_to(&mut self, next: File) {
        self.0.switch_to(next)
    }
}

/// The writer of a log opened by [`Wal::open_inline`]: it does nothing
/// until [`step`](Self::step) is called.
#[derive(Debug)]
pub struct InlineWriter {
    writer: Writer,
    messages: mpsc::Receiver<Message>,
}

impl InlineWriter {
    /// Takes every message queued now as one batch and commits it (writes,
    /// fsyncs as the policy says, applies, answers); returns how many
    /// messages it took. A shutdown is carried out and answered.
    pub fn step(&mut self) -> usize {
        self.writer.step(&self.messages)
    }

    /// Whether the log refuses writes after a failed write or fsync.
    pub fn is_failed(&self) -> bool {
        self.writer.is_failed()
    }

    /// Retries a failed log now; `true` if it takes writes again.
    pub fn retry(&mut self) -> bool {
        self.writer.retry_now()
    }
}

impl Wal {
    /// [`Wal::open`] with no writer thread: the returned [`InlineWriter`]
    /// commits a batch when the caller steps it, and every log file is
    /// appended to through `log_file(file)`. See the module docs.
    ///
    /// The same steps as `Wal::open`'s, but the writer is returned rather
    /// than started.
    pub fn open_inline(
        dir: impl AsRef<Path>,
        config: WalConfig,
        store: Store,
        log_file: impl FnOnce(File) -> Box<dyn SimLogFile>,
    ) -> Result<(Wal, InlineWriter), WalError> {
        let (wal, writer, messages) = Wal::recover(dir.as_ref(), config, store, |file| {
            Box::new(Adapter(log_file(file)))
        })?;
        let writer = InlineWriter { writer, messages };
        Ok((wal, writer))
    }
}
