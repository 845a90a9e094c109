//! What the framework's layers measure, through the `metrics` crate's
//! facade: the names, the seam to the facade, and `describe` (feature
//! `metrics`).
//!
//! Every layer records what it sees — the pipeline its requests, their
//! latency and its calls in flight, the reconnect layer its connects and
//! backoff waits, the retry layer its retries, the deadline layer its
//! expiries, the router its ejections, pools their connections, the server
//! its connections, requests and bytes — each through instruments kept
//! beside it (`pipeline/metrics.rs`, `server/metrics.rs`, ...). This module
//! holds what they share: the [`names`] table, the handles and their
//! registration, and the descriptions.
//!
//! The library installs no exporter: the application installs the
//! recorder it wants (Prometheus, StatsD, ...) with
//! `metrics::set_global_recorder`, then calls [`enable`] (or
//! `describe`, which calls it), **before it builds its clients and
//! servers**: each layer registers its handles, and reads whether metrics
//! are enabled, when it is built.
//!
//! With no recorder installed nothing is recorded: the handles a layer
//! holds are the facade's no-op handles (one branch each). Until [`enable`]
//! is called nothing is measured either: the pipeline reads no clock for
//! latencies and keeps no count of calls in flight, the KV server
//! publishes no store and log figures. With the cargo feature `metrics`
//! off (it is on by default) the recording calls compile to nothing and the
//! facade is not a dependency.
//!
//! Names follow Prometheus' conventions: a `wirestack_` prefix, base units
//! (seconds, bytes), `_total` on counters. Labels take a handful of fixed
//! values each (never a key, a peer or a port). The protocols add their own
//! tables (the KV store's and log's, in the `kv` module), of the same
//! [`Metric`] rows.
//!
//! The README's "Operating it" section lists every name with its type,
//! labels and meaning, and says which ones tell "overloaded", "disk
//! failing" and "clients reconnecting"; [`names`] defines each name once,
//! with its kind, unit, labels and help text (`tests/metrics.rs` checks
//! that the two agree).
//!
//! ```
//! // An application installs its recorder first, then enables and
//! // describes the names (units and help texts for exporters that show
//! // them), then builds.
//! wirestack::metrics::enable();
//! # #[cfg(feature = "metrics")]
//! wirestack::metrics::describe();
//! ```

#[cfg(feature = "metrics")]
mod describe;
mod facade;
pub mod names;
mod table;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use describe::describe;
pub use facade::enable;
pub use table::{Kind, Metric, Unit};

// For the layers' instruments (`pipeline/metrics.rs`, ...) and the
// protocols' own figures.
pub(crate) use facade::{
    counter, enabled, gauge, histogram, label, label_values, Counter, Gauge, Histogram, Label,
};
pub(crate) use table::metric_table;
