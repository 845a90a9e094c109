//! What a reconnect task records: its connects, failed attempts, backoff
//! waits and connection state, and the requests failed fast meanwhile.

use crate::metrics::{counter, gauge, histogram, label_values, names, Counter, Gauge, Histogram};
use std::time::Duration;

/// A reconnect task's handles.
#[derive(Debug)]
pub(crate) struct ReconnectMetrics {
    attempts: Counter,
    connects: Counter,
    reconnects: Counter,
    disconnects: Counter,
    backoff: Histogram,
    connected: Gauge,
    is_connected: bool,
}

label_values! {
    /// Why a connect attempt failed, as the `failure` label says it.
    enum ConnectFailure: "failure" {
        Rejected = "rejected",
        TimedOut = "timed_out",
        Other = "other",
    }
}

impl ReconnectMetrics {
    pub(crate) fn new() -> Self {
        ReconnectMetrics {
            attempts: counter(names::CLIENT_CONNECT_ATTEMPTS, &[]),
            connects: counter(names::CLIENT_CONNECTS, &[]),
            reconnects: counter(names::CLIENT_RECONNECTS, &[]),
            disconnects: counter(names::CLIENT_DISCONNECTS, &[]),
            backoff: histogram(names::CLIENT_BACKOFF),
            connected: gauge(names::CLIENT_CONNECTED),
            is_connected: false,
        }
    }

    pub(crate) fn attempt(&self) {
        self.attempts.increment(1);
    }

    /// An attempt failed: the peer refused its handshake, it timed out, or
    /// something else.
    #[cold]
    #[inline(never)]
    pub(crate) fn attempt_failed(&self, rejected: bool, timed_out: bool) {
        let failure = match (rejected, timed_out) {
            (true, _) => ConnectFailure::Rejected,
            (false, true) => ConnectFailure::TimedOut,
            (false, false) => ConnectFailure::Other,
        };
        counter(names::CLIENT_CONNECT_FAILURES, failure.labels()).increment(1);
    }

    pub(crate) fn connected(&mut self, first: bool) {
        self.connects.increment(1);
        if !first {
            self.reconnects.increment(1);
        }
        if !self.is_connected {
            self.connected.increment(1.0);
            self.is_connected = true;
        }
    }

    pub(crate) fn disconnected(&mut self) {
        self.disconnects.increment(1);
        self.down();
    }

    pub(crate) fn backoff(&self, wait: Duration) {
        self.backoff.record_many(wait.as_secs_f64(), 1);
    }

    fn down(&mut self) {
        if self.is_connected {
            self.connected.decrement(1.0);
            self.is_connected = false;
        }
    }
}

impl Drop for ReconnectMetrics {
    fn drop(&mut self) {
        self.down();
    }
}

/// A request failed at once: no connection was up.
#[cold]
#[inline(never)]
pub(crate) fn failed_fast() {
    counter(names::CLIENT_FAILED_FAST, &[]).increment(1);
}
