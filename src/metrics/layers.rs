//! What the client layers record: the pipeline's handles, the reconnect
//! task's, the retry policy's, and the rare events recorded where they
//! happen (a request failed fast, a deadline expired).

use super::facade::{counter, gauge, histogram, label, recorder_installed, Counter, Gauge, Histogram, Label};
use super::names;
use crate::failure::Failure;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The `failure` label's value for a [`Failure`].
pub(crate) fn failure_label(failure: Failure) -> &'static str {
    match failure {
        Failure::TimedOut => "timed_out",
        Failure::NotSent => "not_sent",
        Failure::Connection => "connection",
        Failure::Protocol => "protocol",
        Failure::Rejected => "rejected",
        Failure::Other => "other",
    }
}

static FAILURES: [[Label; 1]; 6] = [
    [label("failure", "timed_out")],
    [label("failure", "not_sent")],
    [label("failure", "connection")],
    [label("failure", "protocol")],
    [label("failure", "rejected")],
    [label("failure", "other")],
];

fn failure_labels(failure: Failure) -> &'static [Label] {
    let index = match failure {
        Failure::TimedOut => 0,
        Failure::NotSent => 1,
        Failure::Connection => 2,
        Failure::Protocol => 3,
        Failure::Rejected => 4,
        Failure::Other => 5,
    };
    &FAILURES[index]
}

/// The pass of a connection task a request was written in: a number, so
/// that a request in flight carries four bytes for its latency, not a time.
pub(crate) type Pass = u32;

/// A pipeline's handles, registered when its connection task is made.
///
/// Latency is measured at the granularity of the connection task's passes:
/// a pass that writes requests reads the clock once and notes its number
/// and time; a pass that reads answers reads the clock once, and every
/// answer to requests of one same earlier pass is recorded with one call.
/// Without a recorder none of this happens: no clock read, no note.
#[derive(Debug)]
pub(crate) struct PipelineMetrics {
    /// A recorder was installed then: latencies are measured.
    enabled: bool,
    requests: Counter,
    duration: Histogram,
    in_flight: Gauge,
    /// This pipeline's share of the in-flight gauge.
    reported: usize,
    pass: Pass,
    /// This pass's time, once read.
    now: Option<Instant>,
    /// The passes that wrote requests not all answered yet, oldest first,
    /// with their times (answers come in order: the oldest is at the front).
    passes: VecDeque<(Pass, Instant)>,
    /// Answers read in this pass to requests of one same pass: which, how many.
    run: Option<(Pass, usize)>,
}

impl PipelineMetrics {
    pub(crate) fn new() -> Self {
        PipelineMetrics {
            enabled: recorder_installed(),
            requests: counter(names::CLIENT_REQUESTS, &[]),
            duration: histogram(names::CLIENT_REQUEST_DURATION),
            in_flight: gauge(names::CLIENT_IN_FLIGHT),
            reported: 0,
            pass: 0,
            now: None,
            passes: VecDeque::new(),
            run: None,
        }
    }

    /// A new pass of the connection task starts.
    #[inline]
    pub(crate) fn new_pass(&mut self) {
        self.pass = self.pass.wrapping_add(1);
        self.now = None;
    }

    /// A request is written in this pass: the pass it belongs to.
    #[inline]
    pub(crate) fn sent(&mut self) -> Pass {
        if self.enabled && self.passes.back().is_none_or(|(pass, _)| *pass != self.pass) {
            let now = *self.now.get_or_insert_with(Instant::now);
            self.passes.push_back((self.pass, now));
        }
        self.pass
    }

    /// `n` requests were written.
    #[inline]
    pub(crate) fn written(&self, n: usize) {
        if n > 0 {
            self.requests.increment(n as u64);
        }
    }

    /// The answer to a request written in pass `sent` was read.
    #[inline]
    pub(crate) fn answered(&mut self, sent: Pass) {
        if !self.enabled {
            return;
        }
        match &mut self.run {
            Some((pass, n)) if *pass == sent => *n += 1,
            run => {
                if let Some(done) = run.replace((sent, 1)) {
                    self.record(done);
                }
            }
        }
    }

    /// The pass read its last answer: records what it read.
    #[inline]
    pub(crate) fn answers_read(&mut self) {
        if let Some(run) = self.run.take() {
            self.record(run);
        }
    }

    #[cold]
    #[inline(never)]
    fn record(&mut self, (sent, n): (Pass, usize)) {
        // Passes before `sent` are answered in full: answers come in order.
        while self.passes.front().is_some_and(|(pass, _)| *pass != sent) {
            self.passes.pop_front();
        }
        if let Some((_, at)) = self.passes.front() {
            let now = *self.now.get_or_insert_with(Instant::now);
            self.duration
                .record_many(now.saturating_duration_since(*at).as_secs_f64(), n);
        }
    }

    /// The connection holds `calls` calls now.
    #[inline]
    pub(crate) fn in_flight(&mut self, calls: usize) {
        if self.enabled && calls != self.reported {
            if calls > self.reported {
                self.in_flight.increment((calls - self.reported) as f64);
            } else {
                self.in_flight.decrement((self.reported - calls) as f64);
            }
            self.reported = calls;
        }
    }

    /// `n` requests failed with `error`.
    #[cold]
    #[inline(never)]
    pub(crate) fn failed(error: &crate::pipeline::Error, n: usize) {
        if n > 0 {
            counter(names::CLIENT_FAILURES, failure_labels(Failure::of(error))).increment(n as u64);
        }
    }
}

impl Drop for PipelineMetrics {
    fn drop(&mut self) {
        self.in_flight(0);
    }
}

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

static CONNECT_FAILURES: [[Label; 1]; 3] = [
    [label("failure", "rejected")],
    [label("failure", "timed_out")],
    [label("failure", "other")],
];

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
        let labels = match (rejected, timed_out) {
            (true, _) => &CONNECT_FAILURES[0],
            (false, true) => &CONNECT_FAILURES[1],
            (false, false) => &CONNECT_FAILURES[2],
        };
        counter(names::CLIENT_CONNECT_FAILURES, labels).increment(1);
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

/// A request's deadline passed.
#[cold]
#[inline(never)]
pub(crate) fn deadline_expired() {
    counter(names::CLIENT_DEADLINE_EXPIRED, &[]).increment(1);
}

/// Why a retry was made, as the `reason` label says it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RetryReason {
    Refused,
    NotSent,
    LostIdempotent,
}

static RETRY_REASONS: [[Label; 1]; 3] = [
    [label("reason", "refused")],
    [label("reason", "not_sent")],
    [label("reason", "lost_idempotent")],
];

/// A retry policy's handles.
#[derive(Debug)]
pub(crate) struct RetryMetrics {
    retries: [Counter; 3],
    budget_exhausted: Counter,
    unsafe_to_retry: Counter,
}

impl RetryMetrics {
    pub(crate) fn new() -> Self {
        RetryMetrics {
            retries: [0, 1, 2].map(|i| counter(names::CLIENT_RETRIES, &RETRY_REASONS[i])),
            budget_exhausted: counter(names::CLIENT_RETRY_BUDGET_EXHAUSTED, &[]),
            unsafe_to_retry: counter(names::CLIENT_RETRIES_UNSAFE, &[]),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn retried(&self, reason: RetryReason) {
        self.retries[reason as usize].increment(1);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn budget_exhausted(&self) {
        self.budget_exhausted.increment(1);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn unsafe_to_retry(&self) {
        self.unsafe_to_retry.increment(1);
    }
}

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
