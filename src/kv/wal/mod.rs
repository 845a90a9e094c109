//! The write-ahead log: what makes a write answered `OK` survive a crash.
//!
//! A [`Wal`] owns a data directory and a [`Store`]. Every mutation (PUT,
//! PUT_TTL, DELETE) is appended to the log *before* it reaches the store, so
//! the store never shows a write that is not in the log, and on start
//! [`Wal::open`] rebuilds the store from the directory.
//!
//! # Writing: one writer thread, group commit
//!
//! ```text
//!  connections ──append──► channel ──► writer thread: drain everything queued,
//!  (any number)  ◄─answer── oneshot      write it in one write(2), fsync once
//!                                        (policy `always`), apply it to the
//!                                        store in log order, answer each caller
//! ```
//!
//! The writer is a plain thread doing blocking I/O: a write or an fsync
//! never occupies an async worker. Whatever arrives while it is busy is
//! written and fsynced together next time round, so under
//! [`FsyncPolicy::Always`] many concurrent or pipelined writes share one
//! fsync ([`WalStats`] counts both). Reads never touch the log: they go to
//! the store, which holds exactly the writes that were answered or are about
//! to be.
//!
//! # Fsync policies
//!
//! As Redis' `appendfsync`: [`Always`](FsyncPolicy::Always) answers a write
//! only once it is on disk; [`EverySec`](FsyncPolicy::EverySec) (the
//! default) answers once the write is in the OS and fsyncs every second, so
//! an OS crash or power loss may lose the last second (a killed process
//! loses nothing); [`Never`](FsyncPolicy::Never) leaves flushing to the OS.
//! Every policy fsyncs on shutdown and before a compaction.
//!
//! # Files and records
//!
//! The directory holds generations: `snapshot-N` (every live key as of the
//! start of `wal-N`) and the logs `wal-N`, `wal-N+1`, ... appended since.
//! A log file is an 8-byte magic and then records, each framed as its
//! length, a CRC-32 of length and payload, and the payload (the record
//! format is in the `record` module). TTLs are stored as absolute expiry
//! times in Unix milliseconds, so they mean the same after a restart.
//!
//! # Recovery
//!
//! [`Wal::open`] loads the newest complete snapshot, then replays every log
//! file after it in order; expired keys are dropped. Temp files and files
//! older than the snapshot are leftovers of an interrupted compaction and
//! are removed. A crash can only damage the *end* of the *newest* log: a
//! partial last record, a last record whose checksum fails, or zeros the
//! file system left there. That torn tail is cut off (the file is
//! truncated, with a warning) and the server starts. Damage anywhere else
//! is [`WalError::Corrupt`], naming the file and the offset, and the server
//! refuses to start rather than silently drop what was acknowledged.
//!
//! # Compaction
//!
//! When the logs since the last snapshot are over
//! [`WalConfig::compact_min_bytes`] and over
//! [`WalConfig::compact_ratio`] times the last snapshot's size (the estimate
//! of the live data), the writer, between two batches:
//!
//! 1. fsyncs `wal-N`, creates `wal-N+1` (fsynced, directory fsynced) and
//!    sends all later writes there. This is the only pause writers see.
//! 2. starts a thread that writes `snapshot-N+1.tmp` from the store, fsyncs
//!    it, renames it to `snapshot-N+1`, fsyncs the directory, and only then
//!    removes every older file.
//!
//! At rotation the store holds every record of `wal-N` and before, because
//! the writer applies records in log order and rotates between batches.
//! While the snapshot is being written the writer keeps applying records of
//! `wal-N+1`, so the snapshot may hold some of them too. That is harmless:
//! every record is a blind write of one key (set it, set it until a time,
//! remove it), so replaying all of `wal-N+1` over a snapshot that already
//! has a prefix of it ends in the same state — for each key, its last record
//! wins, and a key without records after the rotation has its
//! rotation-time value in the snapshot. Each key is read under its shard's
//! lock, so the snapshot never holds half a write.
//!
//! A crash at any step loses nothing: before the rename, recovery ignores
//! the temp file and replays `snapshot-N`, `wal-N` and `wal-N+1`; after it,
//! `snapshot-N+1` and `wal-N+1` (the older files are not needed, and are
//! removed if still there).
//!
//! # Failures
//!
//! A failed write or fsync answers that write — and every write in its batch
//! — with an error (the server answers `STORAGE`), leaves the store
//! unchanged, tries to cut the file back to its last whole record, and marks
//! the log failed: after a failed fsync the kernel may have dropped the
//! dirty pages, so nothing later could be trusted either. Every later write
//! gets [`WalError::Failed`] until the process restarts and recovers.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use wirestack::kv::wal::{Applied, FsyncPolicy, Mutation, Wal, WalConfig};
//! use wirestack::kv::Store;
//!
//! let dir = std::env::temp_dir().join(format!("wal-doc-{}", std::process::id()));
//! let config = WalConfig { fsync: FsyncPolicy::Always, ..WalConfig::default() };
//!
//! let wal = Wal::open(&dir, config.clone(), Store::new())?;
//! let put = Mutation::Put { key: Bytes::from("k"), value: Bytes::from("v"), expires_at: None };
//! assert_eq!(wal.append(put).await?, Applied::Written);
//! wal.shutdown().await?;
//!
//! // A new process: the store comes back from the directory.
//! let wal = Wal::open(&dir, config, Store::new())?;
//! assert_eq!(wal.store().get(b"k").as_deref(), Some(&b"v"[..]));
//! wal.shutdown().await?;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod compaction;
mod config;
mod error;
mod files;
mod log_file;
mod record;
mod recovery;
mod writer;

pub use config::{FsyncPolicy, UnknownFsyncPolicy, WalConfig};
pub use error::WalError;

use crate::kv::store::Store;
use bytes::Bytes;
use futures::future::{FutureExt, Shared};
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use writer::{Message, Writer};

/// One change to the store, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Set `key` to `value`, until `expires_at` (Unix milliseconds) or forever.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// Absolute expiry in Unix milliseconds; `None` clears any TTL.
        expires_at: Option<u64>,
    },
    /// Remove `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

impl Mutation {
    fn encoded_len_hint(&self) -> usize {
        match self {
            Mutation::Put { key, value, .. } => 21 + key.len() + value.len(),
            Mutation::Delete { key } => 13 + key.len(),
        }
    }
}

/// What a logged mutation did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A put was stored.
    Written,
    /// A delete was applied; `existed` if the key was there and live.
    Deleted {
        /// Whether there was a live key to remove.
        existed: bool,
    },
}

/// Counters of what the log has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended.
    pub records_written: u64,
    /// Bytes appended.
    pub bytes_written: u64,
    /// fsyncs of log files. Under [`FsyncPolicy::Always`], fewer than
    /// `records_written` means writes shared fsyncs (group commit).
    pub fsyncs: u64,
    /// Compactions finished.
    pub compactions: u64,
    /// Records (snapshot entries and log records) replayed by [`Wal::open`].
    pub records_recovered: u64,
}

#[derive(Debug, Default)]
struct Stats {
    records: AtomicU64,
    bytes: AtomicU64,
    fsyncs: AtomicU64,
    compactions: AtomicU64,
    recovered: AtomicU64,
}

/// A handle to the write-ahead log of one data directory.
///
/// Cloning is cheap; every clone appends to the same log through the same
/// writer thread, which stops when [`Wal::shutdown`] is called or the last
/// handle is dropped (fsyncing either way).
#[derive(Debug, Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    messages: mpsc::Sender<Message>,
    store: Store,
    stats: Arc<Stats>,
    dir: PathBuf,
    config: WalConfig,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, recovers its contents into
    /// `store` and starts the writer thread.
    ///
    /// This blocks on file I/O for as long as recovery takes; from async
    /// code, call it in `tokio::task::spawn_blocking`.
    pub fn open(dir: impl AsRef<Path>, config: WalConfig, store: Store) -> Result<Wal, WalError> {
        Wal::open_with(dir.as_ref(), config, store, |file| Box::new(file))
    }

    /// [`Wal::open`], with the writer appending through `log_file(file)`
    /// rather than to the log file itself (later files after a rotation go
    /// through the same wrapper): the seam where tests inject faults.
    fn open_with(
        dir: &Path,
        config: WalConfig,
        store: Store,
        log_file: impl FnOnce(File) -> Box<dyn log_file::LogFile>,
    ) -> Result<Wal, WalError> {
        let dir = dir.to_path_buf();
        let recovered = recovery::recover(&dir, &store)?;
        tracing::info!(
            dir = %dir.display(),
            records = recovered.records,
            generation = recovered.generation,
            "recovered the log"
        );
        let stats = Arc::new(Stats::default());
        stats.recovered.store(recovered.records, Relaxed);
        let writer = Writer::new(
            dir.clone(),
            store.clone(),
            config.clone(),
            stats.clone(),
            recovered,
            log_file,
        );
        let (messages, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| WalError::io("start the writer thread for", &dir, e))?;
        Ok(Wal {
            inner: Arc::new(Inner {
                messages,
                store,
                stats,
                dir,
                config,
            }),
        })
    }

    /// Logs `mutation` and applies it to the store, in the order of all
    /// appends; the returned future says what it did once it is durable as
    /// the fsync policy promises.
    ///
    /// The write happens whether or not the future is polled: call order is
    /// log order.
    pub fn append(&self, mutation: Mutation) -> Append {
        let (reply, receiver) = oneshot::channel();
        // If the writer is gone the message, and with it `reply`, is dropped:
        // the future then resolves to `Closed`.
        let _ = self.inner.messages.send(Message::Append(mutation, reply));
        Append {
            reply: receiver.shared(),
        }
    }

    /// The store this log fills and writes to. Read from it freely; write to
    /// it only through [`Wal::append`].
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &WalConfig {
        &self.inner.config
    }

    /// What the log has done so far.
    pub fn stats(&self) -> WalStats {
        let stats = &self.inner.stats;
        WalStats {
            records_written: stats.records.load(Relaxed),
            bytes_written: stats.bytes.load(Relaxed),
            fsyncs: stats.fsyncs.load(Relaxed),
            compactions: stats.compactions.load(Relaxed),
            records_recovered: stats.recovered.load(Relaxed),
        }
    }

    /// Logs everything appended before this call, fsyncs, waits for a
    /// running compaction, and stops the writer. Later appends fail with
    /// [`WalError::Closed`].
    pub async fn shutdown(&self) -> Result<(), WalError> {
        let (reply, done) = oneshot::channel();
        self.inner
            .messages
            .send(Message::Shutdown(reply))
            .map_err(|_| WalError::Closed)?;
        done.await.unwrap_or(Err(WalError::Closed))
    }
}

type Reply = Result<Applied, WalError>;

/// The future of one [`Wal::append`]: what the mutation did, once it is
/// durable as the policy promises, or why it could not be.
///
/// It can be cloned, so that something else (a read on the same
/// connection) can wait for the same write.
#[derive(Clone)]
#[must_use = "the write happens anyway, but its outcome is only known by awaiting it"]
pub struct Append {
    reply: Shared<oneshot::Receiver<Reply>>,
}

impl Append {
    /// `true` once the outcome is known, that is once awaiting it would not wait.
    pub fn is_finished(&self) -> bool {
        self.reply.peek().is_some()
    }
}

impl fmt::Debug for Append {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Append")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Future for Append {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|reply| reply.unwrap_or(Err(WalError::Closed)))
    }
}

#[cfg(test)]
mod faults;
#[cfg(test)]
mod tests;
