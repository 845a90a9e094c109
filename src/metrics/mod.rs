//! What the framework's layers measure, through the `metrics` crate's
//! facade: the names, their labels, and `describe` (feature `metrics`).
//!
//! Every layer records what it sees — the pipeline its requests, their
//! latency and its calls in flight, the reconnect layer its connects and
//! backoff waits, the retry layer its retries, the deadline layer its
//! expiries, the router its ejections, pools their connections, the server
//! its connections, requests and bytes — each through instruments kept
//! beside it (`pipeline/metrics.rs`, `server/metrics.rs`, ...). This module
//! holds what they share: the [`names`], the handles and their
//! registration, and the descriptions. The library
//! installs no exporter: the application installs the recorder it wants
//! (Prometheus, StatsD, ...) with `metrics::set_global_recorder`, **before
//! it builds its clients and servers**, since each layer registers its
//! handles when it is built.
//!
//! With no recorder installed nothing is recorded and nothing is measured:
//! the handles a layer holds are the facade's no-op handles (one branch
//! each), and the pipeline reads no clock for latencies. With the cargo
//! feature `metrics` off (it is on by default) the recording calls compile
//! to nothing and the facade is not a dependency.
//!
//! Names follow Prometheus' conventions: a `wirestack_` prefix, base units
//! (seconds, bytes), `_total` on counters. Labels take a handful of fixed
//! values each (never a key, a peer or a port). The protocols add their own
//! (the KV store's and log's, in the `kv` module).
//!
//! The README's "Operating it" section lists every name with its type,
//! labels and meaning, and says which ones tell "overloaded", "disk
//! failing" and "clients reconnecting"; [`names`] holds the names
//! (`tests/metrics.rs` checks that the two agree).
//!
//! ```
//! // An application installs its recorder first, then describes the names
//! // (units and help texts for exporters that show them), then builds.
//! # #[cfg(feature = "metrics")]
//! wirestack::metrics::describe();
//! ```

#[cfg(feature = "metrics")]
mod describe;
mod facade;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use describe::describe;

// For the layers' instruments (`pipeline/metrics.rs`, ...) and the
// protocols' own figures.
pub(crate) use facade::{
    counter, gauge, histogram, label, recorder_installed, Counter, Gauge, Histogram, Label,
};

/// The metric names, each spelled here once.
pub mod names {
    /// Counter: requests a pipeline wrote to its connection.
    pub const CLIENT_REQUESTS: &str = "wirestack_client_requests_total";
    /// Histogram (seconds): a request's time between write and answer.
    pub const CLIENT_REQUEST_DURATION: &str = "wirestack_client_request_duration_seconds";
    /// Gauge: calls queued or awaiting an answer.
    pub const CLIENT_IN_FLIGHT: &str = "wirestack_client_requests_in_flight";
    /// Counter, label `failure`: requests a pipeline failed.
    pub const CLIENT_FAILURES: &str = "wirestack_client_request_failures_total";
    /// Counter: connect attempts.
    pub const CLIENT_CONNECT_ATTEMPTS: &str = "wirestack_client_connect_attempts_total";
    /// Counter, label `failure`: failed connect attempts.
    pub const CLIENT_CONNECT_FAILURES: &str = "wirestack_client_connect_failures_total";
    /// Counter: connections made.
    pub const CLIENT_CONNECTS: &str = "wirestack_client_connects_total";
    /// Counter: connections made after a layer's first.
    pub const CLIENT_RECONNECTS: &str = "wirestack_client_reconnects_total";
    /// Counter: connections found broken.
    pub const CLIENT_DISCONNECTS: &str = "wirestack_client_disconnects_total";
    /// Histogram (seconds): each wait between connect attempts.
    pub const CLIENT_BACKOFF: &str = "wirestack_client_backoff_seconds";
    /// Gauge: reconnect layers with a live connection.
    pub const CLIENT_CONNECTED: &str = "wirestack_client_connected";
    /// Counter: requests failed at once, no connection being up.
    pub const CLIENT_FAILED_FAST: &str = "wirestack_client_requests_failed_fast_total";
    /// Counter, label `reason`: retries made.
    pub const CLIENT_RETRIES: &str = "wirestack_client_retries_total";
    /// Counter: retries the budget refused.
    pub const CLIENT_RETRY_BUDGET_EXHAUSTED: &str = "wirestack_client_retry_budget_exhausted_total";
    /// Counter: failures not retried: maybe applied, not idempotent.
    pub const CLIENT_RETRIES_UNSAFE: &str = "wirestack_client_retries_unsafe_total";
    /// Counter: requests ended by their deadline.
    pub const CLIENT_DEADLINE_EXPIRED: &str = "wirestack_client_deadline_expired_total";
    /// Counter: router endpoints ejected after failing too often.
    pub const CLIENT_ENDPOINT_EJECTIONS: &str = "wirestack_client_endpoint_ejections_total";
    /// Gauge: router endpoints ejected (or being probed) now.
    pub const CLIENT_ENDPOINTS_EJECTED: &str = "wirestack_client_endpoints_ejected";
    /// Counter: requests failed at once, their endpoint being ejected.
    pub const CLIENT_REQUESTS_EJECTED: &str = "wirestack_client_requests_ejected_total";
    /// Gauge: connection services held by pools.
    pub const CLIENT_POOL_CONNECTIONS: &str = "wirestack_client_pool_connections";
    /// Counter: connections taken on.
    pub const SERVER_ACCEPTED: &str = "wirestack_server_connections_accepted_total";
    /// Counter: connections refused past the limit.
    pub const SERVER_REFUSED: &str = "wirestack_server_connections_refused_total";
    /// Counter, label `cause`: connections ended.
    pub const SERVER_CLOSED: &str = "wirestack_server_connections_closed_total";
    /// Gauge: connections being served.
    pub const SERVER_OPEN: &str = "wirestack_server_connections_open";
    /// Counter: requests started.
    pub const SERVER_REQUESTS: &str = "wirestack_server_requests_total";
    /// Counter, label `cause`: work refused through the `Overload` hook.
    pub const SERVER_REQUESTS_REFUSED: &str = "wirestack_server_requests_refused_total";
    /// Counter (bytes): read from connections.
    pub const SERVER_RECEIVED_BYTES: &str = "wirestack_server_received_bytes_total";
    /// Counter (bytes): written to connections.
    pub const SERVER_SENT_BYTES: &str = "wirestack_server_sent_bytes_total";

    /// Every name above.
    pub const ALL: &[&str] = &[
        CLIENT_REQUESTS,
        CLIENT_REQUEST_DURATION,
        CLIENT_IN_FLIGHT,
        CLIENT_FAILURES,
        CLIENT_CONNECT_ATTEMPTS,
        CLIENT_CONNECT_FAILURES,
        CLIENT_CONNECTS,
        CLIENT_RECONNECTS,
        CLIENT_DISCONNECTS,
        CLIENT_BACKOFF,
        CLIENT_CONNECTED,
        CLIENT_FAILED_FAST,
        CLIENT_RETRIES,
        CLIENT_RETRY_BUDGET_EXHAUSTED,
        CLIENT_RETRIES_UNSAFE,
        CLIENT_DEADLINE_EXPIRED,
        CLIENT_ENDPOINT_EJECTIONS,
        CLIENT_ENDPOINTS_EJECTED,
        CLIENT_REQUESTS_EJECTED,
        CLIENT_POOL_CONNECTIONS,
        SERVER_ACCEPTED,
        SERVER_REFUSED,
        SERVER_CLOSED,
        SERVER_OPEN,
        SERVER_REQUESTS,
        SERVER_REQUESTS_REFUSED,
        SERVER_RECEIVED_BYTES,
        SERVER_SENT_BYTES,
    ];
}
