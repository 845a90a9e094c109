//! What a router records for each endpoint: ejections, the endpoints out
//! now, and the requests failed at once while out.

use crate::metrics::{counter, gauge, names, Counter, Gauge};

/// A router endpoint's handles, registered when the router is built.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    ejections: Counter,
    ejected: Gauge,
    failed_fast: Counter,
}

impl EndpointMetrics {
    pub(crate) fn new() -> Self {
        EndpointMetrics {
            ejections: counter(names::CLIENT_ENDPOINT_EJECTIONS, &[]),
            ejected: gauge(names::CLIENT_ENDPOINTS_EJECTED),
            failed_fast: counter(names::CLIENT_REQUESTS_EJECTED, &[]),
        }
    }

    /// The endpoint was ejected.
    #[cold]
    #[inline(never)]
    pub(crate) fn ejected(&self) {
        self.ejections.increment(1);
        self.ejected.increment(1.0);
    }

    /// The endpoint is up again, or its router is gone while it was out.
    #[cold]
    #[inline(never)]
    pub(crate) fn back(&self) {
        self.ejected.decrement(1.0);
    }

    /// `n` requests routed to the ejected endpoint failed at once.
    #[cold]
    #[inline(never)]
    pub(crate) fn failed_fast(&self, n: usize) {
        self.failed_fast.increment(n as u64);
    }
}

impl Default for EndpointMetrics {
    fn default() -> Self {
        EndpointMetrics::new()
    }
}
