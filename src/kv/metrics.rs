//! What a KV server reports about its data, through the `metrics` facade
//! (see [`crate::metrics`] for the framework's own names): the store's keys
//! and bytes, expired keys purged, and the write-ahead log's counters,
//! recovery time and health.
//!
//! The server's purge task publishes them after each purge (every
//! [`KvServerConfig::purge_interval`](super::KvServerConfig::purge_interval),
//! 100 ms by default) when a recorder was installed before the server
//! started; the recovery time is set once, at startup.
//!
//! The README's "Operating it" section lists every name with its type and
//! meaning; [`names`] holds the names.

use super::store::Store;
use super::wal::Wal;
use crate::metrics::{counter, gauge, recorder_installed, Counter, Gauge};
use std::time::{Duration, UNIX_EPOCH};

/// The KV metric names, each spelled here once.
pub mod names {
    /// Gauge: keys held.
    pub const KEYS: &str = "wirestack_kv_keys";
    /// Gauge (bytes): memory held for the data.
    pub const STORE_BYTES: &str = "wirestack_kv_store_bytes";
    /// Counter: expired keys purged.
    pub const EXPIRED: &str = "wirestack_kv_expired_keys_total";
    /// Counter: log records appended.
    pub const WAL_RECORDS: &str = "wirestack_kv_wal_records_total";
    /// Counter (bytes): appended to the log.
    pub const WAL_BYTES: &str = "wirestack_kv_wal_bytes_total";
    /// Counter: fsyncs of log files.
    pub const WAL_FSYNCS: &str = "wirestack_kv_wal_fsyncs_total";
    /// Gauge: records per fsync since the log was opened.
    pub const WAL_RECORDS_PER_FSYNC: &str = "wirestack_kv_wal_records_per_fsync";
    /// Counter: compactions finished.
    pub const WAL_COMPACTIONS: &str = "wirestack_kv_wal_compactions_total";
    /// Gauge (Unix seconds): when the last compaction finished.
    pub const WAL_LAST_COMPACTION: &str = "wirestack_kv_wal_last_compaction_timestamp_seconds";
    /// Gauge (seconds): recovery time at startup.
    pub const WAL_RECOVERY: &str = "wirestack_kv_wal_recovery_seconds";
    /// Gauge: records replayed at startup.
    pub const WAL_RECOVERED: &str = "wirestack_kv_wal_recovered_records";
    /// Gauge: 1 while the log refuses writes.
    pub const STORAGE_DEGRADED: &str = "wirestack_kv_storage_degraded";

    /// Every name above.
    pub const ALL: &[&str] = &[
        KEYS,
        STORE_BYTES,
        EXPIRED,
        WAL_RECORDS,
        WAL_BYTES,
        WAL_FSYNCS,
        WAL_RECORDS_PER_FSYNC,
        WAL_COMPACTIONS,
        WAL_LAST_COMPACTION,
        WAL_RECOVERY,
        WAL_RECOVERED,
        STORAGE_DEGRADED,
    ];
}

/// Tells the installed recorder the unit and meaning of every KV metric
/// (see also [`crate::metrics::describe`]).
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, Unit};
    use names::*;
    describe_gauge!(
        KEYS,
        Unit::Count,
        "Keys held, expired keys not yet purged included."
    );
    describe_gauge!(
        STORE_BYTES,
        Unit::Bytes,
        "Memory held for the data: records and table slots."
    );
    describe_counter!(EXPIRED, Unit::Count, "Expired keys purged from memory.");
    describe_counter!(
        WAL_RECORDS,
        Unit::Count,
        "Records appended to the write-ahead log."
    );
    describe_counter!(WAL_BYTES, Unit::Bytes, "Bytes appended to the write-ahead log.");
    describe_counter!(WAL_FSYNCS, Unit::Count, "fsyncs of log files.");
    describe_gauge!(
        WAL_RECORDS_PER_FSYNC,
        Unit::Count,
        "Records appended per fsync since the log was opened."
    );
    describe_counter!(WAL_COMPACTIONS, Unit::Count, "Compactions of the log finished.");
    describe_gauge!(
        WAL_LAST_COMPACTION,
        Unit::Seconds,
        "Unix time the last compaction finished (0: none)."
    );
    describe_gauge!(
        WAL_RECOVERY,
        Unit::Seconds,
        "Time taken to recover the log at startup."
    );
    describe_gauge!(WAL_RECOVERED, Unit::Count, "Records replayed at startup.");
    describe_gauge!(
        STORAGE_DEGRADED,
        Unit::Count,
        "1 while the log refuses writes, else 0."
    );
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
}

impl KvMetrics {
    pub(crate) fn new() -> Self {
        KvMetrics {
            enabled: recorder_installed(),
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
        }
    }

    /// Publishes the figures of `store` and `wal` now; `purged` expired
    /// keys were just purged. Nothing is read without a recorder.
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
    }
}
