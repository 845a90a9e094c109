//! What a pipeline records: its handles, registered when its connection
//! task is made — requests written, their latency, calls in flight — and
//! its failures by kind (the `failure` label of a [`Failure`]).

use crate::failure::Failure;
use crate::metrics::{counter, enabled, gauge, histogram, label, names, Counter, Gauge, Histogram, Label};
use std::collections::VecDeque;
use std::time::Instant;

/// The `failure` label of each [`Failure`], at its place in [`Failure::ALL`]
/// (a kind added there without a label here does not compile).
static FAILURES: [[Label; 1]; Failure::ALL.len()] = {
    const fn of(index: usize) -> [Label; 1] {
        [label("failure", Failure::ALL[index].as_str())]
    }
    [of(0), of(1), of(2), of(3), of(4), of(5)]
};

fn failure_labels(failure: Failure) -> &'static [Label] {
    &FAILURES[failure as usize]
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
/// Unless metrics were [enabled](crate::metrics::enable) when it was made,
/// none of this happens: no clock read, no note, no in-flight count.
#[derive(Debug)]
pub(crate) struct PipelineMetrics {
    /// Metrics were enabled then: latencies and calls in flight are measured.
    enabled: bool,
    requests: Counter,
    pings: Counter,
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
    /// The same for stamped requests (answered in any order).
    stamped_run: Option<(Instant, usize)>,
}

impl PipelineMetrics {
    pub(crate) fn new() -> Self {
        PipelineMetrics {
            enabled: enabled(),
            requests: counter(names::CLIENT_REQUESTS, &[]),
            pings: counter(names::CLIENT_KEEPALIVE_PINGS, &[]),
            duration: histogram(names::CLIENT_REQUEST_DURATION),
            in_flight: gauge(names::CLIENT_IN_FLIGHT),
            reported: 0,
            pass: 0,
            now: None,
            passes: VecDeque::new(),
            run: None,
            stamped_run: None,
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
        if let Some(done) = extend(&mut self.run, sent) {
            self.record(done);
        }
    }

    /// The pass read its last answer: records what it read.
    #[inline]
    pub(crate) fn answers_read(&mut self) {
        if let Some(run) = self.run.take() {
            self.record(run);
        }
        if let Some(run) = self.stamped_run.take() {
            self.record_stamped(run);
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

    /// A keepalive ping was written.
    #[inline]
    pub(crate) fn pinged(&self) {
        self.pings.increment(1);
    }

    /// For answers in any order: this pass's time, read at most once per
    /// pass, for a request written now to carry (`None` unless measuring).
    #[inline]
    pub(crate) fn stamp(&mut self) -> Option<Instant> {
        self.enabled.then(|| *self.now.get_or_insert_with(Instant::now))
    }

    /// For answers in any order: the answer to a request stamped `sent`
    /// was read. Answers to requests of one same pass read in a row are
    /// recorded with one call.
    #[inline]
    pub(crate) fn answered_stamped(&mut self, sent: Option<Instant>) {
        let Some(sent) = sent else { return };
        if let Some(done) = extend(&mut self.stamped_run, sent) {
            self.record_stamped(done);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_stamped(&mut self, (sent, n): (Instant, usize)) {
        let now = *self.now.get_or_insert_with(Instant::now);
        self.duration
            .record_many(now.saturating_duration_since(sent).as_secs_f64(), n);
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

    /// `n` cancels were written.
    #[cold]
    #[inline(never)]
    pub(crate) fn cancelled(n: usize) {
        if n > 0 {
            counter(names::CLIENT_CANCELS, &[]).increment(n as u64);
        }
    }

    /// The peer sent GOAWAY.
    #[cold]
    #[inline(never)]
    pub(crate) fn went_away() {
        counter(names::CLIENT_GOAWAYS, &[]).increment(1);
    }

    /// `n` requests failed with `error`.
    #[cold]
    #[inline(never)]
    pub(crate) fn failed(error: &super::Error, n: usize) {
        if n > 0 {
            counter(names::CLIENT_FAILURES, failure_labels(Failure::of(error))).increment(n as u64);
        }
    }
}

/// Counts one more answer to a request sent at `sent` in `run`; returns
/// the run it ends, if `sent` starts another.
#[inline]
fn extend<K: PartialEq>(run: &mut Option<(K, usize)>, sent: K) -> Option<(K, usize)> {
    match run {
        Some((at, n)) if *at == sent => {
            *n += 1;
            None
        }
        run => run.replace((sent, 1)),
    }
}

impl Drop for PipelineMetrics {
    fn drop(&mut self) {
        self.in_flight(0);
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineMetrics;

    /// Whether a pipeline measures is read when it is made. (No other
    /// unit test enables metrics: the flag is the process's.)
    #[test]
    fn a_pipeline_measures_only_if_made_after_enable() {
        let before = PipelineMetrics::new();
        crate::metrics::enable();
        let after = PipelineMetrics::new();
        assert!(!before.enabled);
        assert_eq!(after.enabled, cfg!(feature = "metrics"));
    }
}
