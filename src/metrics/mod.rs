//! What the framework's layers measure, through the `metrics` crate's
//! facade: the names, their labels, and [`describe`].
//!
//! Every layer records what it sees — the pipeline its requests, their
//! latency and its calls in flight, the reconnect layer its connects and
//! backoff waits, the retry layer its retries, the deadline layer its
//! expiries, the server its connections, requests and bytes. The library
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
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `wirestack_client_requests_total` | counter | | requests a pipeline wrote to its connection (each request of a batch counts) |
//! | `wirestack_client_request_duration_seconds` | histogram | | from the connection task's pass that wrote a request to the pass that read its answer |
//! | `wirestack_client_requests_in_flight` | gauge | | calls queued for or awaiting an answer from a connection, all pipelines together (a batch is one call) |
//! | `wirestack_client_request_failures_total` | counter | `failure` | requests a pipeline failed, by [`Failure`](crate::failure::Failure) kind: `timed_out`, `not_sent`, `connection`, `protocol` |
//! | `wirestack_client_connect_attempts_total` | counter | | connect attempts made by reconnect layers |
//! | `wirestack_client_connect_failures_total` | counter | `failure` | attempts that failed: `rejected` (a refused handshake), `timed_out`, `other` |
//! | `wirestack_client_connects_total` | counter | | attempts that made a connection (the first of each layer included) |
//! | `wirestack_client_reconnects_total` | counter | | connections made after a layer's first |
//! | `wirestack_client_disconnects_total` | counter | | connections found broken |
//! | `wirestack_client_backoff_seconds` | histogram | | each wait between connect attempts (its count: how many waits) |
//! | `wirestack_client_connected` | gauge | | reconnect layers with a live connection |
//! | `wirestack_client_requests_failed_fast_total` | counter | | requests failed at once with `Disconnected`: no connection was up |
//! | `wirestack_client_retries_total` | counter | `reason` | retries made: `refused`, `not_sent`, `lost_idempotent` |
//! | `wirestack_client_retry_budget_exhausted_total` | counter | | retries the retry budget refused |
//! | `wirestack_client_retries_unsafe_total` | counter | | failed requests not retried because they may have been applied and are not idempotent |
//! | `wirestack_client_deadline_expired_total` | counter | | requests the deadline layer ended with `Elapsed` |
//! | `wirestack_server_connections_accepted_total` | counter | | connections taken on (within `max_connections`) |
//! | `wirestack_server_connections_refused_total` | counter | | connections past `max_connections`, answered through `Overload` or closed |
//! | `wirestack_server_connections_closed_total` | counter | `cause` | connections ended, by cause (see below) |
//! | `wirestack_server_connections_open` | gauge | | connections being served |
//! | `wirestack_server_requests_total` | counter | | requests decoded and started |
//! | `wirestack_server_requests_refused_total` | counter | `cause` | work answered through the `Overload` hook: `max_connections`, `buffer_budget` |
//! | `wirestack_server_received_bytes_total` | counter | | bytes read from connections |
//! | `wirestack_server_sent_bytes_total` | counter | | bytes written to connections |
//!
//! A closed connection's `cause`: `peer_closed`, `shutdown`, `idle_timeout`,
//! `read_timeout` (a frame or handshake that did not finish), `write_timeout`,
//! `protocol_error` (the decoder gave up), `service_error`, `write_error`,
//! `close_after` (an answer that ends the connection), `buffer_budget` (a
//! frame too large for the budget), `handshake_failed`, `aborted` (closed
//! where it stood: the shutdown deadline passed).
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
mod layers;
mod server;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use describe::describe;

pub(crate) use facade::{counter, gauge, recorder_installed, Counter, Gauge};
pub(crate) use layers::{
    deadline_expired, failed_fast, failure_label, PipelineMetrics, ReconnectMetrics, RetryMetrics,
    RetryReason,
};
pub(crate) use server::{CloseCause, ConnectionMetrics, ServerMetrics};

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
}
