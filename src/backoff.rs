//! Exponential backoff with full jitter: how long to wait before trying again.
//!
//! One [`Backoff`] spaces the [reconnect](crate::reconnect) layer's connect
//! attempts and the [retry](crate::retry) layer's retries; neither layer
//! knows the other.

use std::time::Duration;
use tower::util::rng::{HasherRng, Rng};

/// How long to wait before the next attempt after a run of failures:
/// exponential growth from `base` up to `cap`, with full jitter.
///
/// The ceiling for the `n`th consecutive failure (counting from 0) is
/// `min(cap, base × 2ⁿ)`; the delay is drawn uniformly from `[base, ceiling]`.
/// The jitter spreads the attempts of many clients that lost the same server
/// at the same moment, so that they do not come back in lockstep; the floor of
/// `base` means a loop driven by a `Backoff` never spins, whatever the draw.
///
/// ```
/// use std::time::Duration;
/// use wirestack::backoff::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
/// assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
/// assert_eq!(backoff.ceiling(40), Duration::from_secs(5));
///
/// let mut rng = tower::util::rng::HasherRng::new();
/// let delay = backoff.delay(3, &mut rng);
/// assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(800));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Delays from `base` (the first) growing ×2 per failure up to `cap`.
    /// A `cap` below `base` is raised to `base`; a zero `base` is one
    /// millisecond, so that waiting always waits.
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Backoff {
            base,
            cap: cap.max(base),
        }
    }

    /// The shortest delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The longest delay.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The longest delay after `failures + 1` consecutive failures:
    /// `min(cap, base × 2^failures)`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A delay drawn uniformly from `[base, ceiling(failures)]`.
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(failures);
        let spread = ceiling.saturating_sub(self.base);
        // Full jitter over the spread, at nanosecond resolution.
        let nanos = u64::try_from(spread.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            rng.next_range(0..nanos.saturating_add(1).max(1))
        };
        self.base + Duration::from_nanos(jitter)
    }
}

impl Default for Backoff {
    /// 100 ms, doubling up to 5 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// A random number source for jitter; each clone draws its own sequence.
pub(crate) fn jitter_rng() -> HasherRng {
    HasherRng::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        let ceilings: Vec<_> = (0..6).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff.ceiling(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn delays_stay_within_base_and_ceiling() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        let mut rng = jitter_rng();
        for failures in 0..40 {
            for _ in 0..50 {
                let delay = backoff.delay(failures, &mut rng);
                assert!(delay >= backoff.base(), "{delay:?}");
                assert!(delay <= backoff.ceiling(failures), "{delay:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_secs(10));
        let mut rng = jitter_rng();
        let delays: std::collections::HashSet<_> = (0..20).map(|_| backoff.delay(12, &mut rng)).collect();
        assert!(delays.len() > 10, "full jitter draws distinct delays: {delays:?}");
    }

    #[test]
    fn degenerate_settings_still_wait() {
        let backoff = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(backoff.delay(5, &mut jitter_rng()), Duration::from_millis(1));
    }
}
