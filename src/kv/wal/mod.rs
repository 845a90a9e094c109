//! The write-ahead log: what makes a write answered `OK` survive a crash.
//!
//! The design — group commit, fsync policies, the file format, recovery,
//! compaction, failures — is documented on [`Wal`], the public face of this
//! module.

mod claim;
mod compaction;
mod config;
mod error;
mod files;
mod lock;
mod log_file;
mod read;
mod record;
mod recovery;
mod repair;
#[doc(hidden)]
pub mod sim;
mod tail;
mod writer;

pub use claim::{Claim, Lost};
pub use config::{FsyncPolicy, UnknownFsyncPolicy, WalConfig};
pub use error::WalError;
pub use read::ReadInOrder;
pub use repair::{RepairAction, RepairMode, RepairReport};

use crate::kv::session::{Sequenced, Ticket};
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
use writer::{Message, Sequencing};

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
    /// The key it changes.
    pub fn key(&self) -> &Bytes {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }

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

impl Applied {
    /// The status of its answer: `OK`, or `NOT_FOUND` for a delete of a
    /// key that was not there.
    pub fn status(self) -> crate::kv::Status {
        match self {
            Applied::Written | Applied::Deleted { existed: true } => crate::kv::Status::Ok,
            Applied::Deleted { existed: false } => crate::kv::Status::NotFound,
        }
    }
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
    /// Appends the log failed or refused (a failed write or fsync, or a
    /// log still failing): what a server answers `STORAGE`.
    pub writes_failed: u64,
}

#[derive(Debug, Default)]
struct Stats {
    records: AtomicU64,
    bytes: AtomicU64,
    fsyncs: AtomicU64,
    compactions: AtomicU64,
    recovered: AtomicU64,
    writes_failed: AtomicU64,
    /// When the last compaction finished, in Unix milliseconds (0: none yet).
    last_compaction_ms: AtomicU64,
    /// Why the log is degraded: from a failed write or fsync until a
    /// client's write succeeds (see [`Wal::failure`]).
    failure: std::sync::Mutex<Option<WalError>>,
}

impl Stats {
    /// A compaction (or a snapshot) finished now.
    fn compacted(&self) {
        self.compactions.fetch_add(1, Relaxed);
        let now = crate::kv::store::now_ms().max(1);
        self.last_compaction_ms.store(now, Relaxed);
    }
}

/// The write-ahead log of one data directory: what makes a write answered
/// `OK` survive a crash.
///
/// Cloning is cheap; every clone appends to the same log through the same
/// writer thread, which stops when [`Wal::shutdown`] is called or the last
/// handle is dropped (fsyncing either way).
///
#[doc = include_str!("design.md")]
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
    /// The largest key length plus value length one record holds, with or
    /// without an expiry, sequenced or not: 1 GiB less 46 bytes. Replay reads a longer record
    /// as damage (never as an allocation), so nothing longer is written.
    pub const MAX_ENTRY_BYTES: u64 = (record::MAX_PAYLOAD - record::PUT_OVERHEAD) as u64;

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
        let (wal, writer, receiver) = Wal::recover(dir, config, store, log_file)?;
        std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| WalError::io("start the writer thread for", dir, e))?;
        Ok(wal)
    }

    /// Everything [`open_with`](Self::open_with) does but start the writer:
    /// locks the directory, recovers the store from it, and returns the log
    /// with its writer and the writer's queue.
    fn recover(
        dir: &Path,
        config: WalConfig,
        store: Store,
        log_file: impl FnOnce(File) -> Box<dyn log_file::LogFile>,
    ) -> Result<(Wal, writer::Writer, mpsc::Receiver<Message>), WalError> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| WalError::io("create", &dir, e))?;
        // Before recovery reads anything: another server may be writing.
        let lock = lock::DirLock::acquire(&dir)?;
        let recovered = recovery::recover(&dir, &store)?;
        tracing::info!(
            dir = %dir.display(),
            records = recovered.records,
            generation = recovered.generation,
            "recovered the log"
        );
        let stats = Arc::new(Stats::default());
        stats.recovered.store(recovered.records, Relaxed);
        let writer = writer::Writer::new(
            dir.clone(),
            store.clone(),
            config.clone(),
            stats.clone(),
            recovered,
            lock,
            log_file,
        );
        let (messages, receiver) = mpsc::channel();
        let wal = Wal {
            inner: Arc::new(Inner {
                messages,
                store,
                stats,
                dir,
                config,
            }),
        };
        Ok((wal, writer, receiver))
    }

    /// Logs `mutation` and applies it to the store, in the order of all
    /// appends; the returned future says what it did once it is durable as
    /// the fsync policy promises.
    ///
    /// The write happens whether or not the future is polled: call order is
    /// log order.
    pub fn append(&self, mutation: Mutation) -> Append {
        self.send_append(mutation, None, None)
    }

    /// [`append`](Self::append), unless `claim` is lost before the writer
    /// takes the mutation (cancelled, or its deadline passed): then it is
    /// never logged nor applied, and the returned future resolves to
    /// [`WalError::Closed`] — read [`Claim::lost`] for why.
    pub fn append_claimed(&self, mutation: Mutation, claim: Arc<Claim>) -> Append {
        self.send_append(mutation, Some(claim), None)
    }

    /// [`append_claimed`](Self::append_claimed) for a SEQUENCED write:
    /// its record also carries its session entry, so the write and the
    /// entry that dedups it are durable together, and the writer finishes
    /// `ticket` with the write's answer right after applying it (before the
    /// future resolves). A write that is never applied (lost claim, a
    /// failed log) drops the ticket unfinished, which frees its `seq`.
    pub fn append_sequenced(
        &self,
        mutation: Mutation,
        claim: Arc<Claim>,
        ticket: Ticket,
        sequenced: Sequenced,
    ) -> Append {
        self.send_append(mutation, Some(claim), Some((ticket, sequenced)))
    }

    fn send_append(
        &self,
        mutation: Mutation,
        claim: Option<Arc<Claim>>,
        sequencing: Option<(Ticket, Sequenced)>,
    ) -> Append {
        let (reply, receiver) = oneshot::channel();
        let bytes = record::payload_len(&mutation, sequencing.is_some());
        if bytes > u64::from(record::MAX_PAYLOAD) {
            let limit = u64::from(record::MAX_PAYLOAD);
            let _ = reply.send(Err(WalError::TooLarge { bytes, limit }));
            return Append {
                reply: receiver.shared(),
            };
        }
        // If the writer is gone the message, and with it `reply`, is dropped:
        // the future then resolves to `Closed`.
        let sequencing = sequencing.map(|(ticket, sequenced)| Sequencing { ticket, sequenced });
        let _ = self
            .inner
            .messages
            .send(Message::Append(mutation, reply, claim, sequencing));
        Append {
            reply: receiver.shared(),
        }
    }

    /// Reads `key` at this place in the order of appends: the answer shows
    /// every [`append`](Self::append) called before this call (applied, or
    /// failed and so absent) and none called after it.
    ///
    /// The writer thread answers it between the mutations of its batch, so
    /// it waits for the appends before it (under [`FsyncPolicy::Always`],
    /// for their fsync) but not for any after it. A read that need not be
    /// ordered after particular appends is cheaper straight from
    /// [`store`](Self::store), which only ever holds applied appends.
    ///
    /// Like `append`, the read takes its place when it is called, not when
    /// the future is polled. If the log has been shut down, the store is
    /// read as it is (no append can change it any more).
    pub fn read(&self, key: Bytes) -> ReadInOrder {
        self.send_read(key, None)
    }

    /// [`read`](Self::read), unless `claim` is lost before the writer takes
    /// the read: then it is never answered by the writer (the future reads
    /// the store as a read after a shutdown would — check [`Claim::lost`]
    /// before using its answer).
    pub fn read_claimed(&self, key: Bytes, claim: Arc<Claim>) -> ReadInOrder {
        self.send_read(key, Some(claim))
    }

    fn send_read(&self, key: Bytes, claim: Option<Arc<Claim>>) -> ReadInOrder {
        let (reply, receiver) = oneshot::channel();
        // If the writer is gone the message, and with it `reply`, is dropped:
        // the future then reads the store itself.
        let _ = self.inner.messages.send(Message::Read(key.clone(), reply, claim));
        ReadInOrder::new(receiver, key, self.inner.store.clone())
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
            writes_failed: stats.writes_failed.load(Relaxed),
        }
    }

    /// When the last compaction (or snapshot after a failed fsync) since
    /// the log was opened finished, if one did.
    pub fn last_compaction(&self) -> Option<std::time::SystemTime> {
        match self.inner.stats.last_compaction_ms.load(Relaxed) {
            0 => None,
            ms => Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
        }
    }

    /// Why the log is degraded, or `None` while it is healthy: the failure
    /// of the last failed write or fsync, until a write appended after it
    /// succeeds.
    ///
    /// After a failed write or fsync the log answers every write with the
    /// failure, retries in the background (after 100 ms, then doubling up
    /// to 5 s), and takes writes again once a write and an fsync of its own
    /// succeed. That retry alone does not clear the failure: on a nearly
    /// full disk its small write fits where the next real one does not, so
    /// only a client's write that succeeds says the log is healthy again.
    pub fn failure(&self) -> Option<WalError> {
        let failure = self.inner.stats.failure.lock();
        failure.unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Logs everything appended before this call, fsyncs, waits for a
    /// running compaction, and stops the writer. Later appends fail with
    /// [`WalError::Closed`]. When it returns the log file is closed and the
    /// data directory unlocked: another log may be opened on it at once.
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
pub(crate) mod faults;
#[cfg(test)]
mod tests;
