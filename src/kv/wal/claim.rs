//! [`Claim`]: who decides the fate of an operation queued for the writer —
//! the writer, which takes it to apply it, or a canceller or its deadline,
//! which stop it first. Exactly one wins, by a compare-and-swap on one
//! atomic state, so "not yet applied" is never a race.

use futures::task::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering::AcqRel, Ordering::Acquire};
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;
const EXPIRED: u8 = 3;

/// Why a claimed operation was never applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// [`Claim::cancel`] won: it was cancelled before the writer took it.
    Cancelled,
    /// Its deadline had passed when the writer came to it.
    DeadlineExceeded,
}

/// The fate of one operation sent to the log's writer with
/// [`Wal::append_claimed`](super::Wal::append_claimed) or
/// [`Wal::read_claimed`](super::Wal::read_claimed).
///
/// It starts *queued*. The writer, when it takes the operation into a
/// batch (before the batch is written, so before anything of it reaches
/// the log file or the store), moves it to *taken* — unless its deadline
/// has passed, then to *lost* ([`Lost::DeadlineExceeded`]). [`cancel`](Self::cancel)
/// moves a queued one to *lost* ([`Lost::Cancelled`]). Each move is a
/// compare-and-swap from *queued*, so exactly one of them happens: a taken
/// operation is applied and answered as usual, a lost one is never
/// applied (the writer drops it) and its waiter is woken at once.
#[derive(Debug)]
pub struct Claim {
    state: AtomicU8,
    deadline: Option<Instant>,
    waker: AtomicWaker,
}

impl Claim {
    /// A queued operation that the writer may start until `deadline`.
    pub fn new(deadline: Option<Instant>) -> Arc<Claim> {
        Arc::new(Claim {
            state: AtomicU8::new(QUEUED),
            deadline,
            waker: AtomicWaker::new(),
        })
    }

    /// Cancels the operation if the writer has not taken it; `true` if it
    /// did (it will never be applied).
    pub fn cancel(&self) -> bool {
        self.lose(CANCELLED)
    }

    /// Why the operation was never applied; `None` while it is queued or
    /// once it is taken.
    pub fn lost(&self) -> Option<Lost> {
        match self.state.load(Acquire) {
            CANCELLED => Some(Lost::Cancelled),
            EXPIRED => Some(Lost::DeadlineExceeded),
            _ => None,
        }
    }

    /// `true` while neither the writer nor a canceller has decided.
    pub fn is_queued(&self) -> bool {
        self.state.load(Acquire) == QUEUED
    }

    /// Wakes `waker` when the operation is lost.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// The writer's move: `true` if it may apply the operation now.
    pub(crate) fn take(&self) -> bool {
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            self.lose(EXPIRED);
            return false;
        }
        self.state
            .compare_exchange(QUEUED, TAKEN, AcqRel, Acquire)
            .is_ok()
    }

    fn lose(&self, why: u8) -> bool {
        let lost = self.state.compare_exchange(QUEUED, why, AcqRel, Acquire).is_ok();
        if lost {
            self.waker.wake();
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_move_wins() {
        let claim = Claim::new(None);
        assert!(claim.is_queued());
        assert!(claim.take());
        assert!(!claim.cancel(), "a taken operation cannot be cancelled");
        assert_eq!(claim.lost(), None);

        let claim = Claim::new(None);
        assert!(claim.cancel());
        assert!(!claim.take(), "a cancelled operation is never taken");
        assert_eq!(claim.lost(), Some(Lost::Cancelled));
    }

    #[test]
    fn a_passed_deadline_loses_it_to_the_writer() {
        let claim = Claim::new(Some(Instant::now()));
        assert!(!claim.take());
        assert_eq!(claim.lost(), Some(Lost::DeadlineExceeded));
        assert!(!claim.cancel());
        let later = Claim::new(Instant::now().checked_add(Duration::from_secs(3600)));
        assert!(later.take());
    }

    #[test]
    fn cancel_and_take_race_to_exactly_one_winner() {
        for _ in 0..1000 {
            let claim = Claim::new(None);
            let other = claim.clone();
            let writer = std::thread::spawn(move || other.take());
            let cancelled = claim.cancel();
            let taken = writer.join().unwrap();
            assert!(cancelled != taken, "cancelled {cancelled}, taken {taken}");
        }
    }
}
