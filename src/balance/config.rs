//! [`BalanceConfig`]: how a [`Balance`](super::Balance) chooses, and when
//! it ejects an endpoint.

use crate::route::outlier::SuccessRate;
use crate::route::HealthConfig;
use std::time::Duration;

/// How a [`Balance`](super::Balance) chooses the endpoint of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Choose {
    /// Each endpoint in turn, skipping those ejected. Blind to load: a
    /// slow endpoint gets its share of the calls (the baseline).
    RoundRobin,
    /// The power of two choices on calls in flight: of two endpoints
    /// picked at random, the one with fewer calls waiting (tower's `p2c`
    /// with `PendingRequests`, and this crate's [`Pool`](crate::pool::Pool)).
    /// A slow endpoint holds its calls longer, so it is picked less — but
    /// only once calls queue on it.
    LeastLoaded,
    /// The power of two choices on a peak-EWMA of latency times the calls
    /// in flight plus one (finagle's and linkerd's default): a slower
    /// answer raises an endpoint's estimate at once, a faster one lowers it
    /// slowly (over [`BalanceConfig::decay`]), so a slow endpoint is
    /// avoided from its first slow answer and tried again as the estimate
    /// decays.
    #[default]
    PeakEwma,
}

/// How a [`Balance`](super::Balance) chooses and ejects.
#[derive(Debug, Clone)]
pub struct BalanceConfig {
    /// The chooser (default [`Choose::PeakEwma`]).
    pub choose: Choose,
    /// How fast a peak-EWMA estimate forgets: the time constant of its
    /// exponential decay (default 10 s, as linkerd). An estimate halves in
    /// about 0.7 of it when no answer comes.
    pub decay: Duration,
    /// The estimate of an endpoint that has not answered yet (default
    /// 1 ms): low enough that a new endpoint is tried, high enough that it
    /// is not flooded before its first answer.
    pub default_rtt: Duration,
    /// Ejection by failures within a window, and the probes that bring an
    /// endpoint back: the [router's](crate::route) rule (default
    /// [`HealthConfig::default`]).
    pub health: HealthConfig,
    /// Ejection by success rate too (default `Some(SuccessRate::default())`:
    /// below 80% over at least 50 calls within 10 s).
    pub success_rate: Option<SuccessRate>,
    /// The most endpoints out at once, in percent of them, as Envoy's
    /// `max_ejection_percent` (default 10; at least one may be out unless
    /// this is 0). An ejection past the cap does not happen.
    pub max_ejected_percent: u32,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            choose: Choose::default(),
            decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(1),
            health: HealthConfig::default(),
            success_rate: Some(SuccessRate::default()),
            max_ejected_percent: 10,
        }
    }
}

impl BalanceConfig {
    /// The default configuration with `choose` as the chooser.
    pub fn new(choose: Choose) -> Self {
        BalanceConfig {
            choose,
            ..BalanceConfig::default()
        }
    }
}
