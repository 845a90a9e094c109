//! Failure accrual: when an endpoint has failed too often it is ejected,
//! and a probe brings it back.

use super::error::Ejected;
use super::metrics::EndpointMetrics;
use super::outlier::{LostRace, Outlier, Window};
use crate::backoff::Backoff;
use crate::failure::Failure;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// When an endpoint is ejected and how it is probed back.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Failures within [`window`](Self::window) that eject an endpoint
    /// (default 5). A batch sent to an endpoint counts once.
    pub failures: u32,
    /// How far back failures count (default 10 s).
    pub window: Duration,
    /// Delay before each probe of an ejected endpoint: exponential with
    /// full jitter (default 50 ms doubling to 5 s).
    pub probe_backoff: Backoff,
    /// How long a probe may take before it counts as failed (default 1 s).
    pub probe_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            failures: 5,
            window: Duration::from_secs(10),
            probe_backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
            probe_timeout: Duration::from_secs(1),
        }
    }
}

/// Where an endpoint stands. When it has failed too often it is ejected,
/// and a probe brings it back:
///
/// ```text
///   Up ──K failures within `window`──► Ejected ──backoff──► Probing
///    ▲                                   ▲                    │
///    └──────────── probe answered ───────┼────────────────────┤
///                                        └── probe failed ────┘
/// ```
///
/// What counts as a failure is decided by the [failure rule](crate::failure):
/// a request not sent (no connection), lost with its connection, timed out,
/// or met with a protocol error. An answer is never a failure, whatever it
/// says (a refusal such as `BUSY` is the endpoint working), and neither is
/// an error the framework does not know (a layer of yours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// Calls are sent to it.
    Up,
    /// It failed too often: calls routed to it fail fast with [`Ejected`]
    /// until a probe answers.
    Ejected,
    /// Ejected, and a probe is under way.
    Probing,
}

/// Starts probing an ejected endpoint: set by its accrual at its first
/// recorded call (the probe's request type is known there), for an
/// ejection that happens elsewhere (a [`lost_race`](Health::lost_race)).
pub(crate) type Prober = Box<dyn Fn() + Send + Sync>;

const UP: u8 = 0;
const EJECTED: u8 = 1;
const PROBING: u8 = 2;

/// One endpoint's health and counters.
#[derive(Default)]
pub(crate) struct Health {
    state: AtomicU8,
    /// The times of recent failures, oldest first (at most `failures`).
    recent: Mutex<VecDeque<Instant>>,
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) ejections: AtomicU64,
    pub(crate) probes: AtomicU64,
    pub(crate) probe_failures: AtomicU64,
    metrics: EndpointMetrics,
    outlier: Outlier,
    window: Window,
    pub(crate) prober: std::sync::OnceLock<Prober>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("state", &self.state())
            .field("outlier", &self.outlier)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// The health of an endpoint that the rules of `outlier` also eject.
    pub(crate) fn with_outlier(outlier: Outlier) -> Self {
        if let Some(cap) = &outlier.cap {
            cap.joined();
        }
        Health {
            state: AtomicU8::new(UP),
            recent: Mutex::default(),
            requests: AtomicU64::default(),
            failures: AtomicU64::default(),
            ejections: AtomicU64::default(),
            probes: AtomicU64::default(),
            probe_failures: AtomicU64::default(),
            metrics: EndpointMetrics::default(),
            outlier,
            window: Window::default(),
            prober: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn state(&self) -> EndpointState {
        match self.state.load(Ordering::Acquire) {
            UP => EndpointState::Up,
            EJECTED => EndpointState::Ejected,
            _ => EndpointState::Probing,
        }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    /// `n` calls routed here failed at once, the endpoint being ejected.
    pub(super) fn failed_fast(&self, n: usize) {
        self.metrics.failed_fast(n);
    }

    /// A probe is being sent.
    pub(super) fn probing(&self) {
        self.state.store(PROBING, Ordering::Release);
        self.probes.fetch_add(1, Ordering::Relaxed);
    }

    /// A probe was answered: the endpoint is up again.
    pub(super) fn back_up(&self) {
        if self.state.swap(UP, Ordering::AcqRel) != UP {
            self.metrics.back();
            if let Some(cap) = &self.outlier.cap {
                cap.returned();
            }
        }
    }

    /// A probe failed: the endpoint stays ejected.
    pub(super) fn probe_failed(&self) {
        self.probe_failures.fetch_add(1, Ordering::Relaxed);
        self.state.store(EJECTED, Ordering::Release);
    }

    /// Records the outcome of a call; `true` if it ejected the endpoint
    /// (then the caller starts the probe).
    pub(crate) fn record(
        &self,
        outcome: Result<(), &(dyn std::error::Error + 'static)>,
        config: &HealthConfig,
        endpoint: &str,
    ) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let Err(error) = outcome else {
            if self.outlier.success_rate.is_some() {
                self.window.ok();
            }
            return false;
        };
        if !counts(error) {
            return false;
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while recent
            .front()
            .is_some_and(|&at| now.duration_since(at) >= config.window)
        {
            recent.pop_front();
        }
        recent.push_back(now);
        let limit = config.failures.max(1) as usize;
        while recent.len() > limit {
            recent.pop_front();
        }
        let success = self.success_rate(now);
        if !self.is_up() {
            return false;
        }
        if recent.len() >= limit {
            recent.clear();
            drop(recent);
            return self.eject(endpoint, error, || {
                tracing::warn!(
                    endpoint,
                    failures = limit,
                    window = ?config.window,
                    %error,
                    "endpoint ejected; probing it back"
                )
            });
        }
        drop(recent);
        match success {
            Some(rate) => self.eject(endpoint, error, || {
                tracing::warn!(endpoint, success_rate = rate, %error, "endpoint ejected for its success rate; probing it back")
            }),
            None => false,
        }
    }

    /// A copy of a hedged call sent here was dropped because another
    /// endpoint answered first: it counts against the success rate (a
    /// stalled endpoint loses every race it is in, a healthy one a few),
    /// not towards the consecutive failures. `true` if that ejected the
    /// endpoint; then a probe is started, if its accrual has recorded a
    /// call (which says what a probe is) — otherwise it is not ejected.
    pub(crate) fn lost_race(&self, endpoint: &str) -> bool {
        if self.outlier.success_rate.is_none() || !self.is_up() {
            return false;
        }
        let Some(prober) = self.prober.get() else {
            return false;
        };
        let Some(rate) = self.success_rate(Instant::now()) else {
            return false;
        };
        let lost = LostRace;
        let ejected = self.eject(endpoint, &lost, || {
            tracing::warn!(
                endpoint,
                success_rate = rate,
                "endpoint ejected: it lost the hedged races it was in; probing it back"
            )
        });
        if ejected {
            prober();
        }
        ejected
    }

    /// Counts a failure in the success-rate window, if the endpoint has
    /// the rule; the window's success rate if that is below the rule's floor.
    fn success_rate(&self, now: Instant) -> Option<f64> {
        let rule = self.outlier.success_rate?;
        self.window.failed(&rule, now)
    }

    /// Ejects the endpoint, unless it is out already or its group's cap
    /// is reached; `true` if it did (then the caller starts the probe).
    fn eject(&self, endpoint: &str, error: &(dyn std::error::Error + 'static), log: impl FnOnce()) -> bool {
        if let Some(cap) = &self.outlier.cap {
            if !cap.try_eject() {
                tracing::debug!(endpoint, %error, "endpoint not ejected: its group's cap on ejections is reached");
                return false;
            }
        }
        if self
            .state
            .compare_exchange(UP, EJECTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            if let Some(cap) = &self.outlier.cap {
                cap.returned();
            }
            return false;
        }
        self.ejections.fetch_add(1, Ordering::Relaxed);
        self.metrics.ejected();
        log();
        true
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        // The ejected-endpoints gauge counts this one until it is back up.
        if !self.is_up() {
            self.metrics.back();
            if let Some(cap) = &self.outlier.cap {
                cap.returned();
            }
        }
        if let Some(cap) = &self.outlier.cap {
            cap.left();
        }
    }
}

/// Whether a failed call counts against its endpoint.
fn counts(error: &(dyn std::error::Error + 'static)) -> bool {
    // An ejection is not a new failure of the endpoint.
    if error.is::<Ejected>() {
        return false;
    }
    matches!(
        Failure::of(error),
        Failure::NotSent | Failure::Connection | Failure::TimedOut | Failure::Protocol
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconnect::error::Disconnected;
    use crate::BoxError;

    fn config() -> HealthConfig {
        HealthConfig {
            failures: 3,
            window: Duration::from_secs(1),
            ..HealthConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn k_failures_within_the_window_eject_and_older_ones_do_not_count() {
        let health = Health::default();
        let down = Disconnected::new(None);
        let config = config();
        assert!(!health.record(Err(&down), &config, "a"));
        assert!(!health.record(Err(&down), &config, "a"));
        tokio::time::advance(Duration::from_millis(1500)).await;
        // The two failures above are out of the window now.
        assert!(!health.record(Err(&down), &config, "a"));
        assert!(!health.record(Ok(()), &config, "a"));
        assert!(!health.record(Err(&down), &config, "a"));
        assert_eq!(health.state(), EndpointState::Up);
        assert!(
            health.record(Err(&down), &config, "a"),
            "the third within 1 s ejects"
        );
        assert_eq!(health.state(), EndpointState::Ejected);
        assert!(!health.record(Err(&down), &config, "a"), "ejected once");
        assert_eq!(health.ejections.load(Ordering::Relaxed), 1);
        assert_eq!(health.requests.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn answers_and_errors_of_other_layers_do_not_count() {
        let health = Health::default();
        let config = HealthConfig {
            failures: 1,
            ..HealthConfig::default()
        };
        let other: BoxError = "a layer of yours said no".into();
        assert!(!health.record(Err(&*other), &config, "a"));
        assert!(!health.record(Err(&Ejected::new("a".into())), &config, "a"));
        assert_eq!(health.state(), EndpointState::Up);
        assert!(health.record(Err(&crate::pipeline::Error::Closed), &config, "a"));
    }
}
