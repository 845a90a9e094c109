//! The writer thread: the only code that appends to the log or mutates the store.

mod gather;
mod health;
mod sim;

use super::files::{create_wal, sync_dir, wal_path, MAGIC_LEN};
use super::lock::DirLock;
use super::log_file::LogFile;
use super::read::{QueuedReads, ReadReply};
use super::record::Tag;
use super::recovery::Recovered;
use super::{compaction, record, Applied, Claim, FsyncPolicy, Mutation, Stats, WalConfig, WalError};
use crate::kv::session::{Sequenced, Ticket};
use crate::kv::store::Store;
use bytes::Bytes;
use gather::Gather;
use health::Failure;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often `everysec` fsyncs.
const EVERY_SEC: Duration = Duration::from_secs(1);
/// A batch stops growing at this many encoded bytes (it may pass it by one record).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Under `always`, the log file is extended this far past the batch that
/// needs room, with zeros (see [`Writer::preallocate`]).
const PREALLOCATE: u64 = 1 << 20;
/// What preallocation writes, a piece at a time.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

pub(crate) type Reply = oneshot::Sender<Result<Applied, WalError>>;

/// What a [`Wal`](super::Wal) handle sends the writer.
#[derive(Debug)]
pub(crate) enum Message {
    /// Log and apply a mutation, unless its claim is lost first; a
    /// sequenced one with its session entry.
    Append(Mutation, Reply, Option<Arc<Claim>>, Option<Sequencing>),
    /// Read a key at this place in the order of appends (see `read.rs`),
    /// unless its claim is lost first.
    Read(Bytes, ReadReply, Option<Arc<Claim>>),
    /// Log everything sent before, fsync, stop.
    Shutdown(oneshot::Sender<Result<(), WalError>>),
}

/// What [`Writer::take`] did with a message.
pub(super) enum Taken {
    /// Took it into the batch: this many bytes of log (0 for a read or a
    /// lost operation).
    Bytes(usize),
    /// A shutdown: the batch ends here, and this waits for the close.
    Shutdown(oneshot::Sender<Result<(), WalError>>),
}

/// A sequenced write's session entry: logged in its record, and finished
/// with its answer once it is applied.
#[derive(Debug)]
pub(crate) struct Sequencing {
    pub(crate) ticket: Ticket,
    pub(crate) sequenced: Sequenced,
}

impl Sequencing {
    fn tag(&self) -> Tag {
        Tag {
            session: self.ticket.key().0,
            sequenced: self.sequenced,
        }
    }
}

/// A compaction running on a thread of its own.
#[derive(Debug)]
struct Compaction {
    generation: u64,
    /// Log bytes the snapshot will replace.
    replaces: u64,
    thread: JoinHandle<Result<u64, WalError>>,
}

#[derive(Debug)]
pub(crate) struct Writer {
    dir: PathBuf,
    store: Store,
    config: WalConfig,
    stats: Arc<Stats>,
    /// The current log file, `wal-<generation>`.
    file: Box<dyn LogFile>,
    generation: u64,
    /// Length of `file` up to its last whole record: where the next batch
    /// is written, and where a failed write is cut back to.
    file_len: u64,
    /// Length of `file`: `file_len`, or more where it was preallocated.
    /// Everything past `file_len` is zeros.
    allocated: u64,
    /// Bytes of every log file since the newest snapshot.
    wal_bytes: u64,
    /// Length of the newest snapshot: the estimate of the live data.
    snapshot_bytes: u64,
    /// Bytes written since the last fsync.
    unsynced: bool,
    last_sync: Instant,
    /// Set by a failed write or fsync, until a retry succeeds: meanwhile
    /// every write is refused (see `health`).
    failure: Option<Failure>,
    /// A failure is published: set by a failed write or fsync, cleared only
    /// by a client's write that succeeds.
    degraded: bool,
    compaction: Option<Compaction>,
    /// After a failed compaction, the next waits until the logs reach this.
    compact_again_at: u64,
    buf: Vec<u8>,
    batch: Vec<(Mutation, Reply, Option<Sequencing>)>,
    /// The reads that came with `batch`, each placed among its mutations.
    reads: QueuedReads,
    /// The data directory's lock, released only once the log is closed.
    lock: Option<DirLock>,
    /// How long a batch waits for the rest of a group of writes.
    gather: Gather,
}

impl Writer {
    pub(crate) fn new(
        dir: PathBuf,
        store: Store,
        config: WalConfig,
        stats: Arc<Stats>,
        recovered: Recovered,
        lock: DirLock,
        log_file: impl FnOnce(File) -> Box<dyn LogFile>,
    ) -> Self {
        Writer {
            dir,
            store,
            config,
            stats,
            file: log_file(recovered.file),
            generation: recovered.generation,
            file_len: recovered.file_len,
            // Recovery cut the file to its last whole record.
            allocated: recovered.file_len,
            wal_bytes: recovered.wal_bytes,
            snapshot_bytes: recovered.snapshot_bytes,
            unsynced: false,
            last_sync: Instant::now(),
            failure: None,
            degraded: false,
            compaction: None,
            compact_again_at: 0,
            buf: Vec::new(),
            batch: Vec::new(),
            reads: QueuedReads::default(),
            lock: Some(lock),
            gather: Gather::default(),
        }
    }

    /// Runs until a shutdown message, or until every handle is gone.
    pub(crate) fn run(mut self, messages: Receiver<Message>) {
        let mut shutdown = None;
        while shutdown.is_none() {
            // A message already queued when the last batch was done comes
            // from a writer that batch did not answer (see `gather`).
            let (first, waiting) = match messages.try_recv() {
                Ok(message) => (message, true),
                Err(TryRecvError::Empty) => match self.next_message(&messages) {
                    Some(message) => (message, false),
                    None => break,
                },
                Err(TryRecvError::Disconnected) => break,
            };
            // Group commit: everything that queued up while the last batch
            // was being written and fsynced goes into this one, and under
            // `always` the rest of a group of writes still arriving.
            let mut round = self
                .gather
                .round(self.config.fsync == FsyncPolicy::Always, waiting);
            let mut next = Some(first);
            let mut batch_bytes = 0;
            loop {
                while let Some(message) = next.take() {
                    round.took();
                    match self.take(message) {
                        Taken::Bytes(bytes) => batch_bytes += bytes,
                        Taken::Shutdown(reply) => {
                            shutdown = Some(reply);
                            break;
                        }
                    }
                    if batch_bytes < MAX_BATCH_BYTES {
                        next = messages.try_recv().ok();
                    }
                }
                if shutdown.is_some() || batch_bytes >= MAX_BATCH_BYTES {
                    break;
                }
                match round.wait(&messages) {
                    Some(message) => next = Some(message),
                    None => break,
                }
            }
            self.gather.finished(&round);
            self.commit();
            self.sync_if_due();
            self.compact_if_due();
        }
        let result = self.close();
        if let Some(lock) = &self.lock {
            tracing::debug!(path = %lock.path().display(), "releasing the data directory");
        }
        // Close the log file, then unlock the directory, before answering:
        // whoever waits for this shutdown can start another server on it.
        drop(self);
        if let Some(reply) = shutdown {
            let _ = reply.send(result);
        } else if let Err(error) = result {
            tracing::error!(%error, "closing the log failed");
        }
    }

    /// Takes one message into the batch being gathered. Taking a claimed
    /// operation into the batch is the moment it can no longer be cancelled
    /// or expire (see `claim.rs`); a lost one is dropped, never applied (a
    /// lost write drops its ticket here: its seq is free).
    pub(super) fn take(&mut self, message: Message) -> Taken {
        match message {
            Message::Append(mutation, reply, claim, sequencing) => {
                if claim.is_none_or(|claim| claim.take()) {
                    let bytes = mutation.encoded_len_hint();
                    self.batch.push((mutation, reply, sequencing));
                    return Taken::Bytes(bytes);
                }
            }
            Message::Read(key, reply, claim) => {
                if claim.is_none_or(|claim| claim.take()) {
                    self.reads.push(self.batch.len(), key, reply);
                }
            }
            Message::Shutdown(reply) => return Taken::Shutdown(reply),
        }
        Taken::Bytes(0)
    }

    /// Waits for the next message, fsyncing on time under `everysec` and
    /// retrying a failed log on time while idle.
    fn next_message(&mut self, messages: &Receiver<Message>) -> Option<Message> {
        loop {
            let due = match &self.failure {
                Some(failure) => failure.retry_at(),
                None if self.config.fsync == FsyncPolicy::EverySec && self.unsynced => {
                    self.last_sync + EVERY_SEC
                }
                None => return messages.recv().ok(),
            };
            match messages.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(message) => return Some(message),
                Err(RecvTimeoutError::Timeout) => {
                    self.recover_if_due();
                    self.sync_if_due();
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Writes the batch, fsyncs it if the policy says so, applies it to the
    /// store in log order, and answers every caller — the batch's reads
    /// too, each at its place among the mutations.
    fn commit(&mut self) {
        self.commit_writes();
        // Reads after the last mutation, or in a batch none of which was
        // applied (empty, or failed: the store is as before it).
        self.reads.answer_rest(&self.store);
    }

    fn commit_writes(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        if !self.recover_if_due() {
            let error = self.failure.as_ref().map(|failure| failure.error().clone());
            let error = WalError::Failed(Box::new(error.unwrap_or(WalError::Closed)));
            self.count_failed();
            for (_, reply, _) in self.batch.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
            return;
        }
        self.buf.clear();
        for (mutation, _, sequencing) in &self.batch {
            record::encode_tagged(
                mutation,
                sequencing.as_ref().map(Sequencing::tag).as_ref(),
                &mut self.buf,
            );
        }
        if let Err(error) = self.write_batch() {
            self.cut_back();
            // Every write answered before was fsynced (`always`) or is
            // still in the page cache to be fsynced (a failed write drops
            // nothing): none is at risk.
            self.fail(error.clone(), false);
            self.count_failed();
            // Not applied: the tickets are dropped unfinished.
            for (_, reply, _) in self.batch.drain(..) {
                let _ = reply.send(Err(error.clone()));
            }
            return;
        }
        // A client's write succeeded: the log is healthy again.
        self.publish(None);
        let written = self.buf.len() as u64;
        self.file_len += written;
        self.wal_bytes += written;
        self.stats.records.fetch_add(self.batch.len() as u64, Relaxed);
        self.stats.bytes.fetch_add(written, Relaxed);
        for (position, (mutation, reply, sequencing)) in self.batch.drain(..).enumerate() {
            self.reads.answer_before(position, &self.store);
            let applied = match mutation {
                Mutation::Put {
                    key,
                    value,
                    expires_at,
                } => {
                    self.store.put_until(&key, &value, expires_at);
                    Applied::Written
                }
                Mutation::Delete { key } => Applied::Deleted {
                    existed: self.store.delete(&key),
                },
            };
            // Recorded before the caller hears of it: a resend from now on
            // gets this answer.
            if let Some(sequencing) = sequencing {
                sequencing.ticket.finish(applied.status());
            }
            let _ = reply.send(Ok(applied));
        }
        // Keep a huge batch's buffer from staying around.
        if self.buf.capacity() > 2 * MAX_BATCH_BYTES {
            self.buf = Vec::new();
        }
    }

    /// The current log file.
    fn path(&self) -> PathBuf {
        wal_path(&self.dir, self.generation)
    }

    fn write_batch(&mut self) -> Result<(), WalError> {
        let end = self.file_len + self.buf.len() as u64;
        if self.config.fsync == FsyncPolicy::Always {
            self.preallocate(end);
        }
        self.file
            .write_all_at(&self.buf, self.file_len)
            .map_err(|e| WalError::io("write", &self.path(), e))?;
        self.allocated = self.allocated.max(end);
        self.unsynced = true;
        if self.config.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes sure the file reaches `end` before a batch is written up to
    /// it, by extending it with [`PREALLOCATE`] bytes of zeros more.
    ///
    /// Writing over blocks the file already has changes only data, so the
    /// fdatasync of each batch need not also write the file's length and
    /// its block map: one disk write per batch where appending needs three
    /// (`perf stat -e block:block_rq_issue` on this ext4: 2.7 requests per
    /// fdatasync appending, 1.6 preallocated; see BENCHMARKS.md). The zeros
    /// are made durable with the batch that first writes into them.
    ///
    /// Only under `always`, whose every batch is fsynced. Best effort: if
    /// the zeros cannot be written (a full disk), the batch is appended as
    /// without preallocation. Recovery cuts zeros at the end of the newest
    /// log after a crash, and the file is cut back to its last record at a
    /// rotation and on shutdown, so no other log file ever ends in zeros.
    fn preallocate(&mut self, end: u64) {
        if end <= self.allocated {
            return;
        }
        let target = (end + PREALLOCATE).next_multiple_of(4096);
        let mut at = self.allocated;
        while at < target {
            let len = (target - at).min(ZEROS.len() as u64) as usize;
            if let Err(error) = self.file.write_all_at(&ZEROS[..len], at) {
                tracing::debug!(%error, "could not preallocate the log; appending instead");
                // Leave no zeros the file's length does not account for.
                if let Err(error) = self.file.set_len(self.allocated) {
                    tracing::debug!(%error, "could not cut the preallocation back");
                }
                return;
            }
            at += len as u64;
        }
        self.allocated = target;
    }

    /// Cuts the zeros preallocated past the last record off the file and
    /// fsyncs it: before the log stops being the newest (recovery takes
    /// zeros at the end of an older log for damage) and on shutdown.
    fn cut_preallocation(&mut self) -> Result<(), WalError> {
        if self.allocated > self.file_len {
            let path = self.path();
            self.file
                .set_len(self.file_len)
                .map_err(|e| WalError::io("truncate", &path, e))?;
            self.allocated = self.file_len;
            self.file
                .sync_all()
                .map_err(|e| WalError::io("fsync", &path, e))?;
            self.stats.fsyncs.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        let started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| WalError::io("fsync", &self.path(), e))?;
        self.stats.fsyncs.fetch_add(1, Relaxed);
        self.unsynced = false;
        self.last_sync = Instant::now();
        self.gather.fsynced(self.last_sync - started);
        Ok(())
    }

    /// After a failed write, tries to cut the file back to its last whole
    /// record so that a restart does not replay what was answered STORAGE.
    /// Best effort: the log takes no writes until a retry has done it.
    fn cut_back(&mut self) {
        // Whatever happens, nothing is preallocated any more: the probe of
        // a retry cuts the file to `file_len` before the log takes writes.
        self.allocated = self.file_len;
        let cut = self
            .file
            .set_len(self.file_len)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = cut {
            tracing::error!(%error, "could not cut the failed write off the log");
        }
    }

    /// `everysec`: fsyncs when a second has passed since the last one.
    fn sync_if_due(&mut self) {
        let due = self.config.fsync == FsyncPolicy::EverySec
            && self.unsynced
            && self.failure.is_none()
            && self.last_sync.elapsed() >= EVERY_SEC;
        if due {
            if let Err(error) = self.sync() {
                // Writes already answered OK may never reach the disk.
                self.fail(error, true);
            }
        }
    }

    /// Collects a finished compaction, and starts one when the logs have
    /// outgrown the live data.
    fn compact_if_due(&mut self) {
        if let Some(running) = self.compaction.take_if(|c| c.thread.is_finished()) {
            let result = running
                .thread
                .join()
                .unwrap_or_else(|_| Err(self.compaction_panicked()));
            self.finish_compaction(running.generation, running.replaces, result);
        }
        let config = &self.config;
        let due = self.compaction.is_none()
            && self.failure.is_none()
            && self.wal_bytes >= config.compact_min_bytes.max(self.compact_again_at)
            && self.wal_bytes as f64 > config.compact_ratio * self.snapshot_bytes as f64;
        if due {
            self.start_compaction();
        }
    }

    fn start_compaction(&mut self) {
        if let Err(error) = self.rotate() {
            tracing::warn!(%error, "could not start a new log file; compaction postponed");
            self.compact_again_at = self.wal_bytes + self.config.compact_min_bytes;
            return;
        }
        let (dir, store, generation) = (self.dir.clone(), self.store.clone(), self.generation);
        let thread = std::thread::Builder::new()
            .name("wal-compaction".into())
            .spawn(move || compaction::write_snapshot(&dir, &store, generation));
        match thread {
            Ok(thread) => {
                tracing::info!(generation, log_bytes = self.wal_bytes, "compaction started");
                self.compaction = Some(Compaction {
                    generation,
                    replaces: std::mem::replace(&mut self.wal_bytes, self.file_len),
                    thread,
                });
            }
            Err(error) => {
                tracing::warn!(%error, "could not start the compaction thread");
                self.compact_again_at = self.wal_bytes + self.config.compact_min_bytes;
            }
        }
    }

    /// Makes the current log durable and moves appends to a new log file,
    /// in one step of the writer: every record before it is in the store.
    fn rotate(&mut self) -> Result<(), WalError> {
        if self.unsynced {
            // The older logs must be whole before a snapshot replaces them:
            // damage in them is no longer a torn tail but corruption.
            if let Err(error) = self.sync() {
                // Only `everysec` and `never` have unsynced writes here, and
                // they were answered.
                self.fail(error.clone(), true);
                return Err(error);
            }
        }
        // An older log must end at its last record.
        self.cut_preallocation()?;
        let generation = self.generation + 1;
        self.file.switch_to(create_wal(&self.dir, generation)?);
        self.generation = generation;
        self.file_len = MAGIC_LEN;
        self.allocated = MAGIC_LEN;
        self.wal_bytes += MAGIC_LEN;
        Ok(())
    }

    fn finish_compaction(&mut self, generation: u64, replaces: u64, result: Result<u64, WalError>) {
        match result {
            Ok(snapshot_bytes) => {
                tracing::info!(
                    generation,
                    snapshot_bytes,
                    replaced_log_bytes = replaces,
                    "compaction finished"
                );
                self.snapshot_bytes = snapshot_bytes;
                self.compact_again_at = 0;
                self.stats.compacted();
            }
            Err(error) => {
                // The older logs are still there and still replayed.
                tracing::warn!(%error, generation, "compaction failed; the logs are kept");
                self.wal_bytes += replaces;
                self.compact_again_at = self.wal_bytes + self.config.compact_min_bytes;
            }
        }
    }

    /// Waits for a running compaction and collects it.
    fn finish_running_compaction(&mut self) {
        if let Some(running) = self.compaction.take() {
            let result = running
                .thread
                .join()
                .unwrap_or_else(|_| Err(self.compaction_panicked()));
            self.finish_compaction(running.generation, running.replaces, result);
        }
    }

    /// The final fsync, after waiting for a running compaction. A failed
    /// log gets one last retry; if that fails too, closing fails only if a
    /// write answered `OK` may not be on disk.
    fn close(&mut self) -> Result<(), WalError> {
        self.finish_running_compaction();
        if self.failure.is_some() && !self.recover() {
            return self.close_failed();
        }
        if let Err(error) = self.cut_preallocation() {
            // Recovery cuts zeros at the end of the newest log.
            tracing::warn!(%error, "could not cut the preallocated zeros off the log");
        }
        if self.unsynced {
            self.sync()?;
        }
        sync_dir(&self.dir)?;
        tracing::info!(
            records_written = self.stats.records.load(Relaxed),
            fsyncs = self.stats.fsyncs.load(Relaxed),
            compactions = self.stats.compactions.load(Relaxed),
            "log closed"
        );
        Ok(())
    }

    fn compaction_panicked(&self) -> WalError {
        let error = std::io::Error::other("the compaction thread panicked");
        WalError::io("compact", &self.dir, error)
    }
}
