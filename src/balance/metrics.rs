//! What a balancer records: its endpoints, and the calls it had nowhere to
//! send.

use crate::metrics::{counter, gauge, names, Counter, Gauge};

/// A balancer's handles, registered when it is built.
#[derive(Debug)]
pub(crate) struct BalanceMetrics {
    endpoints: Gauge,
    unavailable: Counter,
}

impl BalanceMetrics {
    pub(crate) fn new() -> Self {
        BalanceMetrics {
            endpoints: gauge(names::CLIENT_BALANCE_ENDPOINTS),
            unavailable: counter(names::CLIENT_BALANCE_UNAVAILABLE, &[]),
        }
    }

    /// `n` endpoints joined (negative: left).
    pub(crate) fn endpoints(&self, n: f64) {
        self.endpoints.increment(n);
    }

    /// A call found no endpoint.
    #[cold]
    #[inline(never)]
    pub(crate) fn unavailable(&self) {
        self.unavailable.increment(1);
    }
}
