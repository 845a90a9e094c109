//! One batch of the writer, run inline by the simulator (see `wal::sim`).

use super::{Message, Taken, Writer};
use std::sync::mpsc::Receiver;

impl Writer {
    /// What one turn of [`Writer::run`]'s loop does, with the messages
    /// queued now (none waited for), and no timed fsync or compaction.
    pub(crate) fn step(&mut self, messages: &Receiver<Message>) -> usize {
        let mut taken = 0;
        while let Ok(message) = messages.try_recv() {
            taken += 1;
            if let Taken::Shutdown(reply) = self.take(message) {
                self.commit();
                let _ = reply.send(self.close());
                return taken;
            }
        }
        // The simulator says when a failed log retries (`InlineWriter::retry`).
        if let Some(failure) = &mut self.failure {
            failure.postpone_retry();
        }
        self.commit();
        taken
    }

    /// Retries a failed log now; `true` if it takes writes again.
    pub(crate) fn retry_now(&mut self) -> bool {
        self.recover()
    }

    /// Whether the log refuses writes after a failure.
    pub(crate) fn is_failed(&self) -> bool {
        self.failure.is_some()
    }
}
