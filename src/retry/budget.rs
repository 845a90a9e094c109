//! [`RetryBudget`]: how many retries the recent traffic pays for.
//!
//! The same contract as tower's
//! [`TpsBudget`](tower::retry::budget::TpsBudget) — over a sliding window,
//! retries may add at most `ratio` of the requests plus a floor of
//! `min_per_sec` — with a cheaper deposit. Every request deposits, so the
//! deposit is on the hot path of every call: here it is one atomic add to a
//! counter. Every 64th deposit (and every withdrawal, which only retries
//! make) moves what was counted into the window's current slot, reading the
//! clock and sliding the window. `TpsBudget` reads the clock and takes a
//! lock on every deposit, which `benches/layers.rs` showed as a large share
//! of the retry layer's cost.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tower::retry::budget::Budget;

/// How many deposits may pass between two looks at the clock.
const CLOCK_EVERY: u64 = 64;

/// The window is kept as this many slots, each a tenth of it.
const SLOTS: usize = 10;

/// A shared retry budget: every request deposits, every retry withdraws.
///
/// Balances are kept in thousandths of a retry so that ratios below one
/// stay exact enough: a deposit is worth `1000 * ratio`, a retry `1000`.
#[derive(Debug)]
pub struct RetryBudget {
    /// Deposits and withdrawals of each slot of the window, oldest first
    /// after `current`; the current slot is the one being written.
    slots: [AtomicI64; SLOTS],
    current: AtomicUsize,
    /// When the current slot started.
    started: Mutex<Instant>,
    slot_length: Duration,
    /// The floor: `min_per_sec * window`, in thousandths.
    reserve: i64,
    deposit_amount: i64,
    /// Every deposit ever made.
    deposits: AtomicU64,
    /// How many of `deposits` are in the slots already.
    counted: AtomicU64,
}

const RETRY_COST: i64 = 1000;

impl RetryBudget {
    /// A budget over `window` (clamped to 1 s – 60 s) that allows
    /// `min_per_sec` retries a second plus `ratio` retries per request
    /// (clamped to 0 – 1000).
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> Self {
        let window = window.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        RetryBudget {
            slots: Default::default(),
            current: AtomicUsize::new(0),
            started: Mutex::new(Instant::now()),
            slot_length: window / SLOTS as u32,
            reserve: (i64::from(min_per_sec) * window.as_secs() as i64).saturating_mul(RETRY_COST),
            deposit_amount: (f64::from(ratio) * RETRY_COST as f64) as i64,
            deposits: AtomicU64::new(0),
            counted: AtomicU64::new(0),
        }
    }

    /// Moves the window on if a slot's time has passed: expired slots are
    /// emptied and become the current one.
    fn slide(&self) {
        let Ok(mut started) = self.started.try_lock() else {
            // Another thread is sliding the window right now.
            return;
        };
        let elapsed = started.elapsed();
        if elapsed < self.slot_length {
            return;
        }
        let passed = (elapsed.as_nanos() / self.slot_length.as_nanos().max(1)).min(SLOTS as u128) as usize;
        let mut current = self.current.load(Ordering::Acquire);
        for _ in 0..passed {
            current = (current + 1) % SLOTS;
            self.slots[current].store(0, Ordering::Release);
        }
        self.current.store(current, Ordering::Release);
        *started += self.slot_length * passed as u32;
        if passed == SLOTS {
            *started = Instant::now();
        }
    }

    fn balance(&self) -> i64 {
        self.reserve
            + self
                .slots
                .iter()
                .map(|slot| slot.load(Ordering::Acquire))
                .sum::<i64>()
    }
}

impl RetryBudget {
    /// Puts the deposits made since the last time into the current slot —
    /// the one they were made in, or (if a slot's time ended meanwhile) an
    /// older one, so that they age out early rather than late — then slides
    /// the window.
    fn settle(&self) {
        let deposits = self.deposits.load(Ordering::Acquire);
        let counted = self.counted.swap(deposits, Ordering::AcqRel);
        let new = deposits.saturating_sub(counted);
        if new > 0 {
            let current = self.current.load(Ordering::Acquire);
            let amount = i64::try_from(new)
                .unwrap_or(i64::MAX)
                .saturating_mul(self.deposit_amount);
            self.slots[current].fetch_add(amount, Ordering::AcqRel);
        }
        self.slide();
    }
}

impl Budget for RetryBudget {
    fn deposit(&self) {
        if self.deposits.fetch_add(1, Ordering::Relaxed) % CLOCK_EVERY == CLOCK_EVERY - 1 {
            self.settle();
        }
    }

    fn withdraw(&self) -> bool {
        self.settle();
        if self.balance() < RETRY_COST {
            return false;
        }
        let current = self.current.load(Ordering::Relaxed);
        self.slots[current].fetch_sub(RETRY_COST, Ordering::AcqRel);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_by_the_ratio_of_requests_plus_the_floor() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
        for _ in 0..100 {
            budget.deposit();
        }
        let allowed = (0..1_000).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 20);
    }

    #[test]
    fn the_floor_allows_retries_without_traffic() {
        let budget = RetryBudget::new(Duration::from_secs(2), 5, 0.0);
        let allowed = (0..1_000).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn deposits_age_out_of_the_window() {
        let budget = RetryBudget::new(Duration::from_secs(1), 0, 1.0);
        for _ in 0..10 {
            budget.deposit();
        }
        // Pretend the whole window passed.
        *budget.started.lock().unwrap() -= Duration::from_secs(2);
        assert!(!budget.withdraw(), "old deposits no longer pay for retries");
        budget.deposit();
        assert!(budget.withdraw());
    }

    #[test]
    fn out_of_range_settings_are_clamped_not_panics() {
        let budget = RetryBudget::new(Duration::ZERO, u32::MAX, f32::NAN);
        budget.deposit();
        assert!(budget.withdraw());
        let budget = RetryBudget::new(Duration::from_secs(3600), 0, f32::INFINITY);
        budget.deposit();
        assert!(!budget.withdraw(), "a non-finite ratio pays for nothing");
    }
}
