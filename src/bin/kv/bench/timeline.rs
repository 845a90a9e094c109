//! What `kv bench --plot` draws over time: for each interval of the run,
//! how many operations were answered and their latencies.
//!
//! Each connection records into a histogram of its own for the interval it
//! is in, and adds it to the shared [`Timeline`] when it moves on to the
//! next interval (or ends): one lock per connection per interval, none per
//! request.

use hdrhistogram::Histogram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most intervals a run is cut into: the interval grows with the run.
const MAX_INTERVALS: u32 = 600;
/// The shortest interval.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A histogram of one interval: 1 us to 100 s at two significant digits
/// (small: there may be hundreds).
fn interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, super::report::MAX_LATENCY_US, 2).expect("valid histogram bounds")
}

/// Latencies by interval, from the start of the load.
#[derive(Debug)]
pub(crate) struct Timeline {
    started: Instant,
    interval: Duration,
    intervals: Mutex<Vec<Histogram<u64>>>,
}

impl Timeline {
    /// A timeline for a load that starts now and lasts at most `duration`.
    pub(crate) fn new(duration: Duration) -> Self {
        Timeline {
            started: Instant::now(),
            interval: (duration / MAX_INTERVALS).max(MIN_INTERVAL),
            intervals: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    fn index(&self, at: Instant) -> usize {
        let since = at.saturating_duration_since(self.started);
        (since.as_nanos() / self.interval.as_nanos().max(1)) as usize
    }

    fn add(&self, index: usize, histogram: &Histogram<u64>) {
        let mut intervals = self.intervals.lock().unwrap_or_else(|p| p.into_inner());
        while intervals.len() <= index {
            intervals.push(interval_histogram());
        }
        // Both have the same bounds: adding cannot fail.
        let _ = intervals[index].add(histogram);
    }

    /// Every interval from the start to the last one with answers.
    pub(crate) fn intervals(&self) -> Vec<Histogram<u64>> {
        self.intervals.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One connection's recording into a [`Timeline`].
#[derive(Debug)]
pub(crate) struct Recorder<'a> {
    timeline: &'a Timeline,
    index: usize,
    current: Histogram<u64>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(timeline: &'a Timeline) -> Self {
        Recorder {
            timeline,
            index: 0,
            current: interval_histogram(),
        }
    }

    /// `count` operations answered now, each after `latency_us`.
    pub(crate) fn record(&mut self, latency_us: u64, count: u64) {
        let index = self.timeline.index(Instant::now());
        if index != self.index {
            self.flush();
            self.index = index;
        }
        let _ = self.current.record_n(latency_us, count);
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.timeline.add(self.index, &self.current);
            self.current.reset();
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_land_in_their_interval_and_add_up() {
        let timeline = Timeline::new(Duration::from_secs(1));
        assert_eq!(timeline.interval(), MIN_INTERVAL);
        {
            let mut a = Recorder::new(&timeline);
            let mut b = Recorder::new(&timeline);
            a.record(100, 3);
            b.record(200, 2);
        }
        let intervals = timeline.intervals();
        assert_eq!(intervals.iter().map(Histogram::len).sum::<u64>(), 5);
        assert_eq!(intervals.last().unwrap().max(), 200);
        // A long run is cut into at most MAX_INTERVALS.
        let long = Timeline::new(Duration::from_secs(3600));
        assert_eq!(long.interval(), Duration::from_secs(6));
    }
}
