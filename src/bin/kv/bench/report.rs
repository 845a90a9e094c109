//! [`BenchReport`]: what a load measured, as text or JSON.

use super::cpu::CpuTime;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::Duration;

/// What a load measured.
#[derive(Debug, Clone)]
pub(crate) struct BenchReport {
    /// Operations answered (errors included).
    pub ops: u64,
    /// Operations answered with an error status or lost with a connection.
    pub errors: u64,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Latency of every operation, in microseconds.
    pub latency_us: Histogram<u64>,
    /// With `--depth`: the latency of GETs and of PUTs apart.
    pub kinds: Option<Kinds>,
    /// With a timeline: latencies by interval of `interval` from the start.
    pub intervals: Vec<Histogram<u64>>,
    pub interval: Duration,
    /// This process's CPU time (every thread, user and system, from
    /// `getrusage`) over the measured phase: from the first request to the
    /// last answer, connecting and preloading left out.
    pub client_cpu: CpuTime,
}

/// The kind of an operation, for the latencies recorded apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Get,
    Put,
}

/// Latencies of GETs and PUTs apart, in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Kinds {
    pub get_us: Histogram<u64>,
    pub put_us: Histogram<u64>,
}

impl Kinds {
    fn of(&self, kind: Kind) -> &Histogram<u64> {
        match kind {
            Kind::Get => &self.get_us,
            Kind::Put => &self.put_us,
        }
    }
}

impl BenchReport {
    /// Operations per second.
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The client's CPU time per operation, in microseconds (user and
    /// system, every thread of this process).
    pub(crate) fn client_cpu_us_per_op(&self) -> f64 {
        self.client_cpu.total().as_secs_f64() * 1e6 / self.ops.max(1) as f64
    }

    /// The latency at quantile `q` (0.0 to 1.0), in microseconds.
    pub(crate) fn percentile_us(&self, q: f64) -> u64 {
        self.latency_us.value_at_quantile(q)
    }

    /// Records one operation of `kind` that took `latency_us`.
    pub(crate) fn record(&mut self, kind: Kind, latency_us: u64) {
        self.ops += 1;
        // Every histogram holds 1 us to its maximum, which callers clamp to.
        let _ = self.latency_us.record(latency_us);
        if let Some(kinds) = &mut self.kinds {
            let _ = match kind {
                Kind::Get => kinds.get_us.record(latency_us),
                Kind::Put => kinds.put_us.record(latency_us),
            };
        }
    }

    /// Adds what another part of the load measured.
    /// Takes what `timeline` recorded by interval, if the load kept one.
    pub(crate) fn add_timeline(&mut self, timeline: Option<&super::timeline::Timeline>) {
        if let Some(timeline) = timeline {
            self.interval = timeline.interval();
            self.intervals = timeline.intervals();
        }
    }

    pub(crate) fn add(&mut self, part: &BenchReport) {
        self.ops += part.ops;
        self.errors += part.errors;
        // Every histogram has the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&part.latency_us);
        if let Some(theirs) = &part.kinds {
            let ours = self.kinds.get_or_insert_with(Kinds::new);
            let _ = ours.get_us.add(&theirs.get_us);
            let _ = ours.put_us.add(&theirs.put_us);
        }
    }

    /// One JSON object: ops, seconds, ops_per_sec, p50_us, p95_us, p99_us,
    /// p999_us, max_us, errors, client_cpu_us_per_op, client_cpu_user_s,
    /// client_cpu_sys_s; with GETs and PUTs recorded apart, also
    /// `get_` and `put_` `ops`, `p50_us`, `p99_us`, `p999_us`.
    pub(crate) fn to_json(&self) -> String {
        let mut kinds = String::new();
        if let Some(recorded) = &self.kinds {
            for (name, kind) in [("get", Kind::Get), ("put", Kind::Put)] {
                let histogram = recorded.of(kind);
                let _ = write!(
                    kinds,
                    ",\"{name}_ops\":{},\"{name}_p50_us\":{},\"{name}_p99_us\":{},\"{name}_p999_us\":{}",
                    histogram.len(),
                    histogram.value_at_quantile(0.50),
                    histogram.value_at_quantile(0.99),
                    histogram.value_at_quantile(0.999),
                );
            }
        }
        format!(
            "{{\"ops\":{},\"seconds\":{:.6},\"ops_per_sec\":{:.1},\"p50_us\":{},\"p95_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"errors\":{},\"client_cpu_us_per_op\":{:.4},\"client_cpu_user_s\":{:.6},\"client_cpu_sys_s\":{:.6}{kinds}}}",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.percentile_us(0.50),
            self.percentile_us(0.95),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
            self.latency_us.max(),
            self.errors,
            self.client_cpu_us_per_op(),
            self.client_cpu.user.as_secs_f64(),
            self.client_cpu.system.as_secs_f64(),
        )
    }

    /// A human-readable summary with a latency histogram table.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ops in {:.3} s: {:.0} ops/s, {} errors",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops_per_sec(),
            self.errors
        );
        let _ = writeln!(
            out,
            "latency us: p50 {}  p95 {}  p99 {}  p99.9 {}  max {}",
            self.percentile_us(0.50),
            self.percentile_us(0.95),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
            self.latency_us.max()
        );
        let _ = writeln!(
            out,
            "client CPU: {:.3} us/op ({:.3} s user + {:.3} s system)",
            self.client_cpu_us_per_op(),
            self.client_cpu.user.as_secs_f64(),
            self.client_cpu.system.as_secs_f64()
        );
        if let Some(recorded) = &self.kinds {
            for (name, kind) in [("GET", Kind::Get), ("PUT", Kind::Put)] {
                let histogram = recorded.of(kind);
                let _ = writeln!(
                    out,
                    "{name} ({} ops) us: p50 {}  p99 {}  p99.9 {}  max {}",
                    histogram.len(),
                    histogram.value_at_quantile(0.50),
                    histogram.value_at_quantile(0.99),
                    histogram.value_at_quantile(0.999),
                    histogram.max()
                );
            }
        }
        let _ = writeln!(out, "{:>12}  {:>10}  {:>8}", "<= us", "count", "cumul %");
        let total = self.latency_us.len().max(1);
        let mut cumulative = 0u64;
        for bucket in self.latency_us.iter_log(16, 2.0) {
            let count = bucket.count_since_last_iteration();
            if count == 0 {
                continue;
            }
            cumulative += count;
            let _ = writeln!(
                out,
                "{:>12}  {:>10}  {:>7.3}%",
                bucket.value_iterated_to(),
                count,
                100.0 * cumulative as f64 / total as f64
            );
        }
        out
    }
}

impl BenchReport {
    pub(crate) fn empty() -> Self {
        BenchReport {
            ops: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
            kinds: None,
            intervals: Vec::new(),
            interval: Duration::ZERO,
            client_cpu: CpuTime::default(),
        }
    }

    /// This report, recording GETs and PUTs apart too.
    pub(crate) fn with_kinds(mut self) -> Self {
        self.kinds = Some(Kinds::new());
        self
    }
}

impl Kinds {
    fn new() -> Self {
        Kinds {
            get_us: new_histogram(),
            put_us: new_histogram(),
        }
    }
}

/// The highest latency the histogram holds, in microseconds.
pub(crate) const MAX_LATENCY_US: u64 = 100_000_000;

fn new_histogram() -> Histogram<u64> {
    // 1 us to 100 s at 3 significant figures: constant, valid bounds.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}
