//! [`Latency`]: a cheap, bounded histogram of recent latencies, and the
//! percentile a hedge waits for.
//!
//! Log-linear buckets, as HdrHistogram's (but fixed and small): exact below
//! 16 µs, then eight buckets per power of two (at most 12.5% wide), up to
//! about 19 hours — 280 counters. Recording is one atomic add; every 64th
//! recording recomputes the percentile (a scan of the counters) into an
//! atomic that every call reads. Two windows, so old latencies age out:
//! the percentile is over the current window and the one before, and the
//! older is cleared when a window's time has passed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Values are in units of 1024 ns (about a microsecond).
const SHIFT: u32 = 10;
/// Exact buckets below this.
const LINEAR: u64 = 16;
/// Sub-buckets per power of two past `LINEAR` (3 bits).
const SUB_BITS: u32 = 3;
/// Powers of two past `LINEAR`: up to 2^36 units.
const POWERS: usize = 32;
const BUCKETS: usize = LINEAR as usize + POWERS * (1 << SUB_BITS);
/// Recomputations happen every this many recordings.
const RECOMPUTE_EVERY: u64 = 64;
/// No delay is known yet.
const UNKNOWN: u64 = u64::MAX;

fn bucket(nanos: u64) -> usize {
    let units = nanos >> SHIFT;
    if units < LINEAR {
        return units as usize;
    }
    let power = 63 - units.leading_zeros(); // >= 4
    let sub = (units >> (power - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    let index = LINEAR as usize + (power as usize - 4) * (1 << SUB_BITS) + sub as usize;
    index.min(BUCKETS - 1)
}

/// The upper bound of a bucket, in nanoseconds: the percentile errs late,
/// so a hedge is never sent earlier than the percentile asked for.
fn upper(index: usize) -> u64 {
    let units = if index < LINEAR as usize {
        index as u64 + 1
    } else {
        let rest = index - LINEAR as usize;
        let power = (rest >> SUB_BITS) as u32 + 4;
        let sub = (rest & ((1 << SUB_BITS) - 1)) as u64;
        ((1 << SUB_BITS) + sub + 1) << (power - SUB_BITS)
    };
    units << SHIFT
}

struct Window {
    counts: Box<[AtomicU64]>,
}

impl Window {
    fn new() -> Self {
        Window {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn clear(&self) {
        for count in self.counts.iter() {
            count.store(0, Ordering::Relaxed);
        }
    }
}

/// Recent latencies and the percentile of them a hedge waits for.
pub(super) struct Latency {
    windows: [Window; 2],
    current: AtomicUsize,
    rotated: Mutex<Instant>,
    window: Duration,
    percentile: f64,
    min_samples: u64,
    recorded: AtomicU64,
    /// The delay now, in nanoseconds, or `UNKNOWN`.
    delay: AtomicU64,
}

impl Latency {
    pub(super) fn new(percentile: f64, window: Duration, min_samples: u32) -> Self {
        Latency {
            windows: [Window::new(), Window::new()],
            current: AtomicUsize::new(0),
            rotated: Mutex::new(Instant::now()),
            window: window.max(Duration::from_millis(1)),
            percentile: if percentile.is_finite() {
                percentile.clamp(0.0, 1.0)
            } else {
                0.99
            },
            min_samples: u64::from(min_samples.max(1)),
            recorded: AtomicU64::new(0),
            delay: AtomicU64::new(UNKNOWN),
        }
    }

    /// Records one answer's latency.
    pub(super) fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let current = self.current.load(Ordering::Relaxed) & 1;
        self.windows[current].counts[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        let recorded = self.recorded.fetch_add(1, Ordering::Relaxed) + 1;
        if recorded.is_multiple_of(RECOMPUTE_EVERY) || recorded == self.min_samples {
            self.recompute();
        }
    }

    /// The percentile of the recent latencies, once there are enough.
    pub(super) fn delay(&self) -> Option<Duration> {
        match self.delay.load(Ordering::Relaxed) {
            UNKNOWN => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Moves to the next window if one's time has passed, then scans the
    /// counts for the percentile.
    fn recompute(&self) {
        let Ok(mut rotated) = self.rotated.try_lock() else {
            return;
        };
        let now = Instant::now();
        if now.duration_since(*rotated) >= self.window {
            let next = (self.current.load(Ordering::Relaxed) + 1) & 1;
            self.windows[next].clear();
            self.current.store(next, Ordering::Relaxed);
            *rotated = now;
        }
        let count = |index: usize| -> u64 {
            self.windows
                .iter()
                .map(|window| window.counts[index].load(Ordering::Relaxed))
                .sum()
        };
        let total: u64 = (0..BUCKETS).map(count).sum();
        if total < self.min_samples {
            self.delay.store(UNKNOWN, Ordering::Relaxed);
            return;
        }
        let rank = ((total as f64 * self.percentile).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for index in 0..BUCKETS {
            seen += count(index);
            if seen >= rank {
                self.delay.store(upper(index), Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_their_bounds_hold_their_values() {
        let mut last = 0;
        let mut values: Vec<u64> = (0..40).map(|p| 1u64 << p).collect();
        values.extend([1500, 100_000, 3_333_333, u64::MAX]);
        values.sort_unstable();
        for nanos in values {
            let index = bucket(nanos);
            assert!(index >= last, "{nanos}");
            last = index;
            if index < BUCKETS - 1 {
                assert!(upper(index) > nanos, "{nanos}: {}", upper(index));
                assert!(
                    upper(index) as f64 <= (nanos as f64 * 1.126).max(17.0 * 1024.0),
                    "{nanos}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_follows_recent_latencies_once_there_are_enough() {
        let latency = Latency::new(0.9, Duration::from_secs(10), 100);
        for _ in 0..90 {
            latency.record(Duration::from_millis(1));
        }
        assert_eq!(latency.delay(), None, "too few samples");
        for _ in 0..10 {
            latency.record(Duration::from_millis(20));
        }
        let p90 = latency.delay().expect("100 samples");
        assert!(
            p90 >= Duration::from_millis(1) && p90 < Duration::from_millis(2),
            "{p90:?}"
        );
        for _ in 0..28 {
            latency.record(Duration::from_millis(20));
        }
        let p90 = latency.delay().expect("recomputed at 128");
        assert!(
            p90 >= Duration::from_millis(20) && p90 < Duration::from_millis(23),
            "{p90:?}"
        );
        // Two windows later the old latencies are gone.
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..64 {
            latency.record(Duration::from_millis(1));
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..128 {
            latency.record(Duration::from_millis(1));
        }
        let p90 = latency.delay().expect("128 recent samples");
        assert!(p90 < Duration::from_millis(2), "{p90:?}");
    }
}
