//! After a failed write or fsync: the log refuses writes, retries with
//! backoff, and takes writes again once a write and an fsync succeed.
//!
//! A retry cuts the file back to its last whole record, then proves the
//! disk takes a write and an fsync again with a block of zeros that it cuts
//! off afterwards (should the process die in between, recovery cuts zeros
//! at the end of the log as a torn write). If an fsync failed while writes
//! answered `OK` were not yet on disk (`everysec`, `never`), the kernel may
//! have dropped them from its cache without writing them, and a later fsync
//! would not say so: then the retry also writes a snapshot of the store,
//! which holds every answered write, so that none depends on that log.

use super::super::compaction;
use super::super::files::MAGIC_LEN;
use super::super::WalError;
use super::Writer;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// The first retry comes this long after a failure...
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// ... and each one after doubles the wait, up to this.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// The bytes of the probe write.
const PROBE: [u8; 4096] = [0; 4096];

/// Why the log refuses writes, and when it tries again.
#[derive(Debug)]
pub(super) struct Failure {
    error: WalError,
    /// An fsync failed while answered writes were unsynced.
    answered_writes_at_risk: bool,
    wait: Duration,
    retry_at: Instant,
}

impl Failure {
    pub(super) fn error(&self) -> &WalError {
        &self.error
    }

    /// When the next retry is due.
    pub(super) fn retry_at(&self) -> Instant {
        self.retry_at
    }

    /// No retry on its own for an hour: the simulator, which steps the
    /// writer on a paused clock, says when one is due (`wal::sim`).
    pub(super) fn postpone_retry(&mut self) {
        self.retry_at = Instant::now() + Duration::from_secs(3600);
    }
}

impl Writer {
    /// Stops taking writes after `error`; `answered_writes_at_risk` if an
    /// fsync failed while writes answered `OK` were unsynced.
    pub(super) fn fail(&mut self, error: WalError, answered_writes_at_risk: bool) {
        tracing::error!(%error, "the log failed; refusing writes until a retry succeeds");
        let at_risk =
            answered_writes_at_risk || self.failure.as_ref().is_some_and(|f| f.answered_writes_at_risk);
        self.publish(Some(&error));
        self.failure = Some(Failure {
            error,
            answered_writes_at_risk: at_risk,
            wait: FIRST_RETRY,
            retry_at: Instant::now() + FIRST_RETRY,
        });
    }

    /// Retries now if a retry is due; `true` if the log takes writes.
    pub(super) fn recover_if_due(&mut self) -> bool {
        match &self.failure {
            None => true,
            Some(failure) if Instant::now() < failure.retry_at => false,
            Some(_) => self.recover(),
        }
    }

    /// Tries to make the log whole and writable again; `true` on success.
    pub(super) fn recover(&mut self) -> bool {
        let Some(failure) = &self.failure else {
            return true;
        };
        let at_risk = failure.answered_writes_at_risk;
        // A running compaction may still be writing its snapshot.
        self.finish_running_compaction();
        let mut retried = self.probe();
        if retried.is_ok() && at_risk {
            retried = self.snapshot_now();
        }
        match retried {
            Ok(()) => {
                // Still degraded (published) until a client's write succeeds.
                tracing::warn!("the log takes writes again");
                self.failure = None;
                true
            }
            Err(error) => {
                self.publish(Some(&error));
                if let Some(failure) = &mut self.failure {
                    failure.wait = (failure.wait * 2).min(MAX_RETRY);
                    failure.retry_at = Instant::now() + failure.wait;
                    tracing::debug!(%error, retry_in = ?failure.wait, "the log is still failing");
                    failure.error = error;
                }
                false
            }
        }
    }

    /// Closing a log that is still failing: `Err` if a write answered `OK`
    /// may not be on disk.
    pub(super) fn close_failed(&self) -> Result<(), WalError> {
        match &self.failure {
            Some(failure) if failure.answered_writes_at_risk || self.unsynced => {
                Err(WalError::Failed(Box::new(failure.error.clone())))
            }
            Some(failure) => {
                tracing::warn!(error = %failure.error, "closing a failed log: every answered write is on disk");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Cuts the file back to its last whole record, then writes, fsyncs
    /// and cuts off a block of zeros.
    fn probe(&mut self) -> Result<(), WalError> {
        let path = self.path();
        let io = |op: &'static str| {
            let path = &path;
            move |e| WalError::io(op, path, e)
        };
        self.allocated = self.file_len;
        self.file.set_len(self.file_len).map_err(io("truncate"))?;
        self.file
            .write_all_at(&PROBE, self.file_len)
            .map_err(io("write"))?;
        self.file.sync_data().map_err(io("fsync"))?;
        self.file.set_len(self.file_len).map_err(io("truncate"))?;
        self.file.sync_data().map_err(io("fsync"))?;
        self.stats.fsyncs.fetch_add(2, Relaxed);
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Writes a snapshot of the store now, on a fresh log: every answered
    /// write is then durable whatever became of the older logs.
    fn snapshot_now(&mut self) -> Result<(), WalError> {
        if self.file_len > MAGIC_LEN {
            self.rotate()?;
        }
        let len = compaction::write_snapshot(&self.dir, &self.store, self.generation)?;
        tracing::info!(
            generation = self.generation,
            "wrote a snapshot after a failed fsync"
        );
        self.snapshot_bytes = len;
        self.wal_bytes = self.file_len;
        self.stats.compacted();
        Ok(())
    }

    /// Tells the [`Wal`](super::super::Wal) handles why the log is
    /// degraded (`None`: it is not). Cheap when nothing changes.
    pub(super) fn publish(&mut self, error: Option<&WalError>) {
        if error.is_none() && !self.degraded {
            return;
        }
        self.degraded = error.is_some();
        let mut shared = self.stats.failure.lock().unwrap_or_else(|e| e.into_inner());
        *shared = error.cloned();
    }

    /// The batch is answered with an error (`STORAGE`, from a server).
    pub(super) fn count_failed(&self) {
        self.stats
            .writes_failed
            .fetch_add(self.batch.len() as u64, Relaxed);
    }
}
