//! What a KV server reports about its data, through the `metrics` facade
//! (see [`crate::metrics`] for the framework's own names): the store's keys
//! and bytes, expired keys purged, and the write-ahead log's counters,
//! recovery time and health.
//!
//! The server's purge task publishes them after each purge (every
//! [`KvServerConfig::purge_interval`](super::KvServerConfig::purge_interval),
//! 100 ms by default) when metrics were [enabled](crate::metrics::enable)
//! before the server started; the recovery time is set once, at startup.
//!
//! The README's "Operating it" section lists every name with its type and
//! meaning; [`names`] defines the names (`tests/metrics.rs` checks that the
//! two agree).

use super::store::Store;
use super::wal::Wal;
use crate::metrics::{counter, enabled, gauge, Counter, Gauge};
use std::time::{Duration, UNIX_EPOCH};

/// The KV metric names, each defined once with its kind, unit and help
/// text (see [`Metric`](crate::metrics::Metric)).
pub mod names {
    crate::metrics::metric_table! {
        KEYS: Gauge, Count, "wirestack_kv_keys", [],
            "Keys held, expired keys not yet purged included.";
        STORE_BYTES: Gauge, Bytes, "wirestack_kv_store_bytes", [],
            "Memory held for the data: records and table slots.";
        EXPIRED: Counter, Count, "wirestack_kv_expired_keys_total", [],
            "Expired keys purged from memory.";
        WAL_RECORDS: Counter, Count, "wirestack_kv_wal_records_total", [],
            "Records appended to the write-ahead log.";
        WAL_BYTES: Counter, Bytes, "wirestack_kv_wal_bytes_total", [],
            "Bytes appended to the write-ahead log.";
        WAL_FSYNCS: Counter, Count, "wirestack_kv_wal_fsyncs_total", [],
            "fsyncs of log files.";
        WAL_RECORDS_PER_FSYNC: Gauge, Count, "wirestack_kv_wal_records_per_fsync", [],
            "Records appended per fsync since the log was opened.";
        WAL_COMPACTIONS: Counter, Count, "wirestack_kv_wal_compactions_total", [],
            "Compactions of the log finished.";
        WAL_LAST_COMPACTION: Gauge, Seconds, "wirestack_kv_wal_last_compaction_timestamp_seconds", [],
            "Unix time the last compaction finished (0: none).";
        WAL_RECOVERY: Gauge, Seconds, "wirestack_kv_wal_recovery_seconds", [],
            "Time taken to recover the log at startup.";
        WAL_RECOVERED: Gauge, Count, "wirestack_kv_wal_recovered_records", [],
            "Records replayed at startup.";
        STORAGE_DEGRADED: Gauge, Count, "wirestack_kv_storage_degraded", [],
            "1 from a failed write or fsync until a client's write succeeds, else 0.";
        STORAGE_ERRORS: Counter, Count, "wirestack_kv_storage_errors_total", [],
            "Writes the log failed or refused (answered STORAGE).";
    }
}

/// Tells the installed recorder the unit and meaning of every KV metric,
/// and calls [`enable`](crate::metrics::enable), as
/// [`crate::metrics::describe`] does for the framework's.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    crate::metrics::enable();
    names::METRICS.iter().for_each(crate::metrics::Metric::describe);
}

/// The log was recovered in `took`.
pub(crate) fn recovered(took: Duration) {
    gauge(names::WAL_RECOVERY).set(took.as_secs_f64());
}

/// A server's handles, published from its purge task.
#[derive(Debug)]
pub(crate) struct KvMetrics {
    enabled: bool,
    keys: Gauge,
    bytes: Gauge,
    expired: Counter,
    records: Counter,
    wal_bytes: Counter,
    fsyncs: Counter,
    per_fsync: Gauge,
    compactions: Counter,
    last_compaction: Gauge,
    recovered: Gauge,
    degraded: Gauge,
    storage_errors: Counter,
}

impl KvMetrics {
    pub(crate) fn new() -> Self {
        KvMetrics {
            enabled: enabled(),
            keys: gauge(names::KEYS),
            bytes: gauge(names::STORE_BYTES),
            expired: counter(names::EXPIRED, &[]),
            records: counter(names::WAL_RECORDS, &[]),
            wal_bytes: counter(names::WAL_BYTES, &[]),
            fsyncs: counter(names::WAL_FSYNCS, &[]),
            per_fsync: gauge(names::WAL_RECORDS_PER_FSYNC),
            compactions: counter(names::WAL_COMPACTIONS, &[]),
            last_compaction: gauge(names::WAL_LAST_COMPACTION),
            recovered: gauge(names::WAL_RECOVERED),
            degraded: gauge(names::STORAGE_DEGRADED),
            storage_errors: counter(names::STORAGE_ERRORS, &[]),
        }
    }

    /// Publishes the figures of `store` and `wal` now; `purged` expired
    /// keys were just purged. Nothing is read unless metrics were enabled.
    pub(crate) fn publish(&self, store: &Store, wal: Option<&Wal>, purged: usize) {
        if !self.enabled {
            return;
        }
        self.expired.increment(purged as u64);
        self.keys.set(store.len() as f64);
        self.bytes.set(store.bytes() as f64);
        let Some(wal) = wal else {
            return;
        };
        let stats = wal.stats();
        self.records.absolute(stats.records_written);
        self.wal_bytes.absolute(stats.bytes_written);
        self.fsyncs.absolute(stats.fsyncs);
        if stats.fsyncs > 0 {
            self.per_fsync
                .set(stats.records_written as f64 / stats.fsyncs as f64);
        }
        self.compactions.absolute(stats.compactions);
        let last = wal
            .last_compaction()
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok());
        self.last_compaction.set(last.map_or(0.0, |at| at.as_secs_f64()));
        self.recovered.set(stats.records_recovered as f64);
        self.degraded.set(if wal.failure().is_some() { 1.0 } else { 0.0 });
        self.storage_errors.absolute(stats.writes_failed);
    }
}
