//! Outlier detection beyond [`HealthConfig::failures`](super::HealthConfig::failures),
//! for a [balancer](crate::balance)'s endpoints: Envoy's success-rate
//! (failure-percentage) rule, and its cap on the share of a group's
//! endpoints out at once. A router's endpoints have neither.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Envoy's failure-percentage outlier detection: an endpoint whose share
/// of successful calls within [`window`](Self::window) falls below
/// [`min_success`](Self::min_success), over at least
/// [`min_requests`](Self::min_requests) calls, is ejected — and probed
/// back as one ejected by consecutive failures is. It catches an endpoint
/// that fails one call in three, which the consecutive-failures rule
/// ([`HealthConfig::failures`](super::HealthConfig::failures)) never sees. What counts as a failure is
/// the same: the [failure rule](crate::failure)'s not sent, lost, timed
/// out, protocol error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessRate {
    /// Below this share of successes (0.0 – 1.0) the endpoint is ejected
    /// (default 0.8).
    pub min_success: f64,
    /// Calls within the window before the rule judges (default 50).
    pub min_requests: u32,
    /// How far back calls count (default 10 s): the counts start again
    /// at the first failure after a window has passed.
    pub window: Duration,
}

impl Default for SuccessRate {
    fn default() -> Self {
        SuccessRate {
            min_success: 0.8,
            min_requests: 50,
            window: Duration::from_secs(10),
        }
    }
}

/// The cap on the endpoints of one group (a balancer's) that may be out at
/// once, as Envoy's `max_ejection_percent`: an ejection that would pass it
/// does not happen, so a fault that makes every endpoint fail (a bad
/// deploy, the client's own network) leaves most of them serving.
#[derive(Debug)]
pub(crate) struct EjectionCap {
    /// Endpoints ejected or being probed now.
    out: AtomicUsize,
    /// Endpoints in the group.
    members: AtomicUsize,
    max_percent: u32,
}

impl EjectionCap {
    pub(crate) fn new(max_percent: u32) -> Arc<Self> {
        Arc::new(EjectionCap {
            out: AtomicUsize::new(0),
            members: AtomicUsize::new(0),
            max_percent: max_percent.min(100),
        })
    }

    pub(crate) fn joined(&self) {
        self.members.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn left(&self) {
        self.members.fetch_sub(1, Ordering::AcqRel);
    }

    /// How many may be out at once: `max_percent` of the members, rounded
    /// down, but at least one (as Envoy) unless the cap is zero.
    fn allowed(&self) -> usize {
        if self.max_percent == 0 {
            return 0;
        }
        let members = self.members.load(Ordering::Acquire);
        (members * self.max_percent as usize / 100).max(1)
    }

    /// Takes a place among the ejected, if the cap leaves one.
    pub(super) fn try_eject(&self) -> bool {
        let allowed = self.allowed();
        self.out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| {
                (out < allowed).then_some(out + 1)
            })
            .is_ok()
    }

    /// An ejected endpoint is back (or gone).
    pub(super) fn returned(&self) {
        let _ = self
            .out
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |out| out.checked_sub(1));
    }

    /// Endpoints out now.
    pub(crate) fn out(&self) -> usize {
        self.out.load(Ordering::Acquire)
    }
}

/// What ejects an endpoint besides [`HealthConfig::failures`]: a
/// [`SuccessRate`] rule, and the [`EjectionCap`] of its group. A router's
/// endpoints have neither; a balancer's have both.
#[derive(Debug, Default)]
pub(crate) struct Outlier {
    pub(crate) success_rate: Option<SuccessRate>,
    pub(crate) cap: Option<Arc<EjectionCap>>,
}

/// The calls of the current success-rate window.
#[derive(Debug, Default)]
pub(super) struct Window {
    ok: AtomicU64,
    failed: AtomicU64,
    started: Mutex<Option<Instant>>,
}

impl Window {
    /// A call succeeded.
    pub(super) fn ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure (the window started again if `rule.window` has
    /// passed); the window's success rate if it is below the rule's floor
    /// over enough calls (then the counts start again).
    pub(super) fn failed(&self, rule: &SuccessRate, now: Instant) -> Option<f64> {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if started.is_none_or(|at| now.duration_since(at) >= rule.window) {
            *started = Some(now);
            self.ok.store(0, Ordering::Relaxed);
            self.failed.store(0, Ordering::Relaxed);
        }
        let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.ok.load(Ordering::Relaxed) + failed;
        if total < u64::from(rule.min_requests.max(1)) {
            return None;
        }
        let rate = 1.0 - failed as f64 / total as f64;
        if rate >= rule.min_success {
            return None;
        }
        *started = None;
        Some(rate)
    }
}

/// Why an endpoint that lost its hedged races was ejected.
#[derive(Debug)]
pub(super) struct LostRace;

impl std::fmt::Display for LostRace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another endpoint answered the hedged calls first")
    }
}

impl std::error::Error for LostRace {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_allows_its_share_and_at_least_one() {
        let cap = EjectionCap::new(40);
        for _ in 0..5 {
            cap.joined();
        }
        assert!(cap.try_eject() && cap.try_eject(), "two of five");
        assert!(!cap.try_eject(), "not a third");
        cap.returned();
        assert!(cap.try_eject());
        let small = EjectionCap::new(10);
        small.joined();
        small.joined();
        assert!(small.try_eject(), "at least one");
        assert!(!small.try_eject());
        let none = EjectionCap::new(0);
        none.joined();
        assert!(!none.try_eject(), "a cap of zero ejects none");
        none.returned();
        assert_eq!(none.out(), 0, "never below zero");
    }

    #[tokio::test(start_paused = true)]
    async fn the_success_rate_is_judged_over_enough_calls_of_one_window() {
        let rule = SuccessRate {
            min_success: 0.8,
            min_requests: 10,
            window: Duration::from_secs(10),
        };
        let window = Window::default();
        // The first failure starts the window.
        assert_eq!(window.failed(&rule, Instant::now()), None);
        for _ in 0..7 {
            window.ok();
        }
        // 7 of 9: too few calls to judge.
        assert_eq!(window.failed(&rule, Instant::now()), None);
        // 7 of 10 is below 80%.
        let rate = window.failed(&rule, Instant::now()).expect("judged");
        assert!((rate - 0.7).abs() < 1e-9, "{rate}");
        // The counts start again (at this failure); calls older than the
        // window do not count.
        assert_eq!(window.failed(&rule, Instant::now()), None);
        for _ in 0..20 {
            window.ok();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..9 {
            assert_eq!(
                window.failed(&rule, Instant::now()),
                None,
                "a new window: under ten calls"
            );
        }
    }
}
