//! Group commit's gathering: how long the writer waits for the rest of a
//! group of writes before it commits a batch under `--fsync always`.
//!
//! Writes come in groups. A connection's pipelined requests are decoded and
//! appended one after another, and the writer, woken by the first, would
//! commit the first few alone — one fsync — and the rest in a second batch
//! — a second fsync before any of the group is answered. Many connections
//! each waiting for their answer split into two groups that take turns: the
//! writes that arrive during one fsync are committed together in the next,
//! while the writers just answered send their next writes into the one
//! after. Each fsync then carries half of the writers, where one fsync per
//! round could carry all of them.
//!
//! So each batch has a *target*: the messages of the last batch (their
//! senders were just answered, and a client that waits for its answer
//! sends again) plus the messages that were already waiting when it was
//! done (senders the last batch did not answer). The writer commits once
//! the batch holds its target, or once it has gathered for half the recent
//! fsync time (the [`limit`](Gather::limit), so that a writer that does not
//! come back costs the others at most that), whichever comes first. A
//! sequential client (batches of one) never waits: its one write is its
//! target. While messages flow it spins for a few microseconds between
//! them (the rest of a pipelined burst is microseconds away), and otherwise
//! sleeps until the next one arrives.
//!
//! The target is only an estimate: a writer that stopped costs one batch
//! the whole limit, and the next batch's target no longer counts it.

use super::Message;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// The longest a batch gathers, whatever the fsyncs take.
const MAX_LIMIT: Duration = Duration::from_millis(2);
/// The shortest limit, however fast the fsyncs.
const MIN_LIMIT: Duration = Duration::from_micros(20);
/// After each message, spin this long for the next before sleeping.
const SPIN: Duration = Duration::from_micros(5);

/// What the writer knows from the batches before: how big they were and
/// how long their fsyncs took.
#[derive(Debug, Default)]
pub(super) struct Gather {
    /// Messages the last batch took.
    last_batch: usize,
    /// Moving average of the fsync time, in nanoseconds (0: none yet).
    fsync_ns: u64,
}

impl Gather {
    /// The next batch's gathering. `on` under `always` (the other policies
    /// fsync no batch); `waiting`: its first message was already queued
    /// when the last batch was done.
    pub(super) fn round(&self, on: bool, waiting: bool) -> Round {
        let now = Instant::now();
        Round {
            on,
            target: self.last_batch,
            taken: 0,
            draining: waiting,
            deadline: now + self.limit(),
            last_arrival: now,
        }
    }

    /// A batch was committed that took `round.taken()` messages.
    pub(super) fn finished(&mut self, round: &Round) {
        self.last_batch = round.taken;
    }

    /// An fsync took `took`.
    pub(super) fn fsynced(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_ns = match self.fsync_ns {
            0 => ns,
            average => average - average / 8 + ns / 8,
        };
    }

    /// How long a batch may gather: half the recent fsync time, within
    /// [`MIN_LIMIT`] and [`MAX_LIMIT`].
    pub(super) fn limit(&self) -> Duration {
        Duration::from_nanos(self.fsync_ns / 2).clamp(MIN_LIMIT, MAX_LIMIT)
    }
}

/// One batch's gathering.
#[derive(Debug)]
pub(super) struct Round {
    on: bool,
    /// Commit once this many messages are taken.
    target: usize,
    taken: usize,
    /// Still taking messages that were queued when the last batch was done:
    /// each one raises the target.
    draining: bool,
    deadline: Instant,
    last_arrival: Instant,
}

impl Round {
    /// The batch took a message.
    pub(super) fn took(&mut self) {
        self.taken += 1;
        if self.draining {
            self.target += 1;
        }
    }

    /// The queue is empty: waits for the next message if the batch has not
    /// reached its target and has time left; `None`: commit now.
    pub(super) fn wait(&mut self, messages: &Receiver<Message>) -> Option<Message> {
        self.draining = false;
        if !self.on || self.taken >= self.target {
            return None;
        }
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return None;
            }
            let message = if now.duration_since(self.last_arrival) < SPIN {
                std::hint::spin_loop();
                match messages.try_recv() {
                    Ok(message) => message,
                    Err(TryRecvError::Empty) => continue,
                    Err(TryRecvError::Disconnected) => return None,
                }
            } else {
                messages.recv_timeout(self.deadline - now).ok()?
            };
            self.last_arrival = Instant::now();
            return Some(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Long enough that a test that waited it out would show.
    const LONG: Duration = Duration::from_secs(20);

    fn shutdown() -> Message {
        Message::Shutdown(tokio::sync::oneshot::channel().0)
    }

    /// A round after a batch of `last_batch`, with `limit` to gather.
    fn round(last_batch: usize, on: bool, waiting: bool, limit: Duration) -> Round {
        let gather = Gather {
            last_batch,
            fsync_ns: 0,
        };
        let mut round = gather.round(on, waiting);
        round.deadline = Instant::now() + limit;
        round
    }

    /// Sends a message after a moment, from another thread.
    fn send_later(send: mpsc::Sender<Message>) -> std::thread::JoinHandle<mpsc::Sender<Message>> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1));
            send.send(shutdown()).unwrap();
            send
        })
    }

    #[test]
    fn a_batch_that_holds_its_target_commits_at_once() {
        let (_send, receive) = mpsc::channel();
        let mut round = round(1, true, false, LONG);
        round.took();
        let started = Instant::now();
        assert!(round.wait(&receive).is_none());
        assert!(started.elapsed() < LONG, "it did not wait");
    }

    #[test]
    fn a_batch_waits_for_the_writers_the_last_one_answered() {
        let (send, receive) = mpsc::channel();
        let mut round = round(2, true, false, LONG);
        round.took();
        let sender = send_later(send);
        assert!(matches!(round.wait(&receive), Some(Message::Shutdown(_))));
        round.took();
        let started = Instant::now();
        assert!(round.wait(&receive).is_none(), "target reached");
        assert!(started.elapsed() < LONG);
        drop(sender.join().unwrap());
    }

    #[test]
    fn messages_already_waiting_raise_the_target() {
        let (send, receive) = mpsc::channel();
        // Two were queued when the last batch (of one) was done: the
        // target is three.
        let mut round = round(1, true, true, LONG);
        round.took();
        round.took();
        let sender = send_later(send);
        assert!(round.wait(&receive).is_some(), "the third is waited for");
        round.took();
        assert_eq!(round.taken, 3);
        assert!(round.wait(&receive).is_none());
        drop(sender.join().unwrap());
    }

    #[test]
    fn a_batch_stops_waiting_at_its_limit() {
        let (_send, receive) = mpsc::channel();
        let limit = Duration::from_millis(1);
        let mut round = round(10, true, false, limit);
        round.took();
        let started = Instant::now();
        assert!(round.wait(&receive).is_none());
        assert!(started.elapsed() >= limit);
    }

    #[test]
    fn without_always_nothing_waits() {
        let (send, receive) = mpsc::channel();
        let mut round = round(10, false, false, LONG);
        round.took();
        let sender = send_later(send);
        assert!(round.wait(&receive).is_none());
        drop(sender.join().unwrap());
    }

    #[test]
    fn the_limit_follows_the_fsync_time_within_bounds() {
        let mut gather = Gather::default();
        assert_eq!(gather.limit(), MIN_LIMIT);
        gather.fsynced(Duration::from_micros(400));
        assert_eq!(gather.limit(), Duration::from_micros(200));
        gather.fsynced(Duration::from_secs(1));
        assert_eq!(gather.limit(), MAX_LIMIT);
        let mut next = Gather::default();
        let mut round = next.round(true, false);
        round.took();
        round.took();
        next.finished(&round);
        assert_eq!(next.round(true, false).target, 2);
    }
}
