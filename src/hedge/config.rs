//! [`HedgeConfig`]: when a [`Hedge`](super::Hedge) sends a second copy, and
//! how many it may send.

use std::time::Duration;

/// When a [`Hedge`](super::Hedge) sends a second copy of a call, and how
/// many extra copies its budget allows.
#[derive(Debug, Clone)]
pub struct HedgeConfig {
    /// The percentile of recent latencies after which a call still
    /// unanswered gets a second copy (default 0.95: about one call in
    /// twenty would, were the budget not smaller).
    pub percentile: f64,
    /// The shortest delay, whatever the percentile says (default 0).
    pub min_delay: Duration,
    /// Answers recorded before the first hedge (default 100): until then
    /// there is no percentile to wait for, and no call is hedged.
    pub min_samples: u32,
    /// Extra copies allowed, as a share of calls (default 0.05: at most one
    /// hedge per twenty calls, sustained) — the cap on the extra load.
    pub budget_ratio: f32,
    /// Extra copies always allowed per second, however few the calls
    /// (default 1).
    pub min_per_sec: u32,
    /// How long a call's deposit in the budget counts, and how long a
    /// latency counts towards the percentile (one to two windows; default
    /// 10 s).
    pub window: Duration,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            percentile: 0.95,
            min_delay: Duration::ZERO,
            min_samples: 100,
            budget_ratio: 0.05,
            min_per_sec: 1,
            window: Duration::from_secs(10),
        }
    }
}
