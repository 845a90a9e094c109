//! What a pool records: the connection services it holds.

use crate::metrics::{gauge, names, Gauge};

/// A pool's handle on the connections gauge.
#[derive(Debug)]
pub(crate) struct PoolMetrics {
    connections: Gauge,
}

impl PoolMetrics {
    pub(crate) fn new() -> Self {
        PoolMetrics {
            connections: gauge(names::CLIENT_POOL_CONNECTIONS),
        }
    }

    /// The pool now holds `n` more connection services.
    pub(crate) fn grew(&self, n: usize) {
        self.connections.increment(n as f64);
    }

    /// The pool, holding `n`, is gone.
    pub(crate) fn dropped(&self, n: usize) {
        self.connections.decrement(n as f64);
    }
}
