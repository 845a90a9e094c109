//! [`Load`]: what a balancer knows of one endpoint's load — calls in
//! flight and a peak-EWMA of its latency — and the [`InFlight`] guard that
//! keeps both up to date for one call.
//!
//! The estimate is linkerd's and tower's `PeakEwma`: an answer slower than
//! the estimate replaces it at once (the peak); a faster one moves it by
//! `1 - e^(-elapsed/decay)` of the way, where `elapsed` is the time since
//! the last update; and reading it decays it the same way towards zero, so
//! an endpoint avoided for being slow is tried again after a while.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// One endpoint's load.
#[derive(Debug)]
pub(crate) struct Load {
    in_flight: AtomicUsize,
    ewma: Mutex<Ewma>,
    /// Calls sent to it.
    pub(super) chosen: AtomicU64,
    /// The decay's time constant, in nanoseconds.
    decay_ns: f64,
}

#[derive(Debug)]
struct Ewma {
    /// The estimate, in nanoseconds.
    nanos: f64,
    /// When it was last updated.
    at: Instant,
}

impl Ewma {
    /// Moves the estimate towards `rtt_ns` (a peak replaces it) as of `now`.
    fn update(&mut self, now: Instant, rtt_ns: f64, decay_ns: f64) -> f64 {
        if rtt_ns > self.nanos {
            self.nanos = rtt_ns;
        } else {
            let elapsed = now.saturating_duration_since(self.at).as_nanos() as f64;
            let keep = (-elapsed / decay_ns).exp();
            self.nanos = self.nanos * keep + rtt_ns * (1.0 - keep);
        }
        self.at = now;
        self.nanos
    }
}

impl Load {
    pub(crate) fn new(default_rtt: Duration, decay: Duration) -> Self {
        Load {
            in_flight: AtomicUsize::new(0),
            ewma: Mutex::new(Ewma {
                nanos: default_rtt.as_nanos() as f64,
                at: Instant::now(),
            }),
            chosen: AtomicU64::new(0),
            decay_ns: (decay.as_nanos() as f64).max(1.0),
        }
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency estimate, decayed to now.
    pub(crate) fn estimate(&self) -> Duration {
        Duration::from_nanos(self.decayed(Instant::now()) as u64)
    }

    fn decayed(&self, now: Instant) -> f64 {
        let mut ewma = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        ewma.update(now, 0.0, self.decay_ns)
    }

    /// The peak-EWMA cost at `now`: the estimate times the calls in flight
    /// plus one.
    pub(crate) fn peak_ewma_cost(&self, now: Instant) -> f64 {
        self.decayed(now) * (self.in_flight() + 1) as f64
    }

    /// Records an answer (or an abandoned call) after `rtt`, at `now`. A failure
    /// never lowers the estimate: an endpoint that fails fast must not look
    /// fast.
    fn observe(&self, rtt: Duration, now: Instant, failed: bool) {
        let mut ewma = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        let rtt_ns = rtt.as_nanos() as f64;
        let rtt_ns = if failed { rtt_ns.max(ewma.nanos) } else { rtt_ns };
        ewma.update(now, rtt_ns, self.decay_ns);
    }
}

/// One call in flight on an endpoint: counted while it lives; its latency
/// observed when it ends — answered, failed, or dropped (a hedge's loser,
/// a caller that gave up: the time it waited counts, as linkerd counts it).
#[derive(Debug)]
pub(crate) struct InFlight {
    load: Arc<Load>,
    sent: Instant,
    failed: bool,
}

impl InFlight {
    pub(crate) fn new(load: Arc<Load>) -> Self {
        load.in_flight.fetch_add(1, Ordering::Relaxed);
        load.chosen.fetch_add(1, Ordering::Relaxed);
        InFlight {
            load,
            sent: Instant::now(),
            failed: false,
        }
    }

    /// Ends the call as failed (then dropped).
    pub(crate) fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
        // One clock read for the latency and the estimate's update.
        let now = Instant::now();
        self.load
            .observe(now.saturating_duration_since(self.sent), now, self.failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    async fn answer(load: &Arc<Load>, after: Duration) {
        let call = InFlight::new(load.clone());
        tokio::time::advance(after).await;
        drop(call);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peak_counts_at_once_and_decays_slowly() {
        let load = Arc::new(Load::new(ms(1), Duration::from_secs(10)));
        answer(&load, ms(100)).await;
        assert_eq!(
            load.estimate(),
            ms(100),
            "a slower answer is the estimate at once"
        );
        // One fast answer right after barely moves it.
        answer(&load, ms(1)).await;
        let after_one = load.estimate();
        assert!(after_one > ms(99), "{after_one:?}");
        // Ten seconds of fast answers bring it most of the way down.
        let mut fast = Arc::new(Load::new(ms(100), Duration::from_secs(10)));
        for _ in 0..1000 {
            answer(&fast, ms(10)).await;
        }
        let settled = fast.estimate();
        assert!(settled < ms(45) && settled >= ms(10), "{settled:?}");
        // Idle time alone decays it towards zero: e^-1 of it after `decay`.
        fast = Arc::new(Load::new(ms(100), Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        let idle = fast.estimate().as_secs_f64() * 1000.0;
        assert!((idle - 36.8).abs() < 0.5, "{idle}");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_in_flight_weigh_the_cost_and_failures_never_lower_it() {
        let load = Arc::new(Load::new(ms(2), Duration::from_secs(10)));
        let idle = load.peak_ewma_cost(Instant::now());
        let held: Vec<_> = (0..3).map(|_| InFlight::new(load.clone())).collect();
        assert_eq!(load.in_flight(), 3);
        assert!((load.peak_ewma_cost(Instant::now()) / idle - 4.0).abs() < 1e-6);
        drop(held);
        assert_eq!(load.in_flight(), 0);
        answer(&load, ms(50)).await;
        let call = InFlight::new(load.clone());
        call.failed();
        assert!(load.estimate() >= ms(49), "a fast failure does not look fast");
        assert_eq!(load.chosen.load(Ordering::Relaxed), 5);
    }
}
