//! The framework's metric names, each defined once: its kind, unit, labels
//! and help text beside it (see [`Metric`](super::Metric)).
//!
//! [`ALL`] lists the names, [`METRICS`] the rows;
//! `describe()` hands the rows to the recorder, and the
//! README's "Operating it" table lists the same names, kinds and labels
//! (`tests/metrics.rs` checks that the two agree).

super::metric_table! {
    CLIENT_REQUESTS: Counter, Count, "wirestack_client_requests_total", [],
        "Requests a multiplexer (pipeline or tagged) wrote to its connection.";
    CLIENT_REQUEST_DURATION: Histogram, Seconds, "wirestack_client_request_duration_seconds", [],
        "Time from the pass of a connection task that wrote a request to the pass that read its answer.";
    CLIENT_IN_FLIGHT: Gauge, Count, "wirestack_client_requests_in_flight", [],
        "Calls queued for or awaiting an answer from a connection.";
    CLIENT_FAILURES: Counter, Count, "wirestack_client_request_failures_total", ["failure"],
        "Requests a multiplexer failed, by failure kind.";
    CLIENT_CANCELS: Counter, Count, "wirestack_client_cancels_sent_total", [],
        "Cancels a tagged multiplexer wrote for requests whose callers stopped waiting.";
    CLIENT_KEEPALIVE_PINGS: Counter, Count, "wirestack_client_keepalive_pings_total", [],
        "Keepalive pings written to connections that were silent for the interval.";
    CLIENT_GOAWAYS: Counter, Count, "wirestack_client_goaways_received_total", [],
        "GOAWAY messages received: connections that take no new requests.";
    CLIENT_CONNECT_ATTEMPTS: Counter, Count, "wirestack_client_connect_attempts_total", [],
        "Connect attempts of reconnect layers.";
    CLIENT_CONNECT_FAILURES: Counter, Count, "wirestack_client_connect_failures_total", ["failure"],
        "Connect attempts that failed.";
    CLIENT_CONNECTS: Counter, Count, "wirestack_client_connects_total", [],
        "Connect attempts that made a connection.";
    CLIENT_RECONNECTS: Counter, Count, "wirestack_client_reconnects_total", [],
        "Connections made after a reconnect layer's first.";
    CLIENT_DISCONNECTS: Counter, Count, "wirestack_client_disconnects_total", [],
        "Connections found broken.";
    CLIENT_BACKOFF: Histogram, Seconds, "wirestack_client_backoff_seconds", [],
        "Waits between connect attempts.";
    CLIENT_CONNECTED: Gauge, Count, "wirestack_client_connected", [],
        "Reconnect layers with a live connection.";
    CLIENT_FAILED_FAST: Counter, Count, "wirestack_client_requests_failed_fast_total", [],
        "Requests failed at once: no connection was up.";
    CLIENT_RETRIES: Counter, Count, "wirestack_client_retries_total", ["reason"],
        "Retries made, by reason.";
    CLIENT_RETRY_BUDGET_EXHAUSTED: Counter, Count, "wirestack_client_retry_budget_exhausted_total", [],
        "Retries the retry budget refused.";
    CLIENT_RETRIES_UNSAFE: Counter, Count, "wirestack_client_retries_unsafe_total", [],
        "Failed requests not retried: they may have been applied and are not idempotent.";
    CLIENT_DEADLINE_EXPIRED: Counter, Count, "wirestack_client_deadline_expired_total", [],
        "Requests ended by their deadline.";
    CLIENT_ENDPOINT_EJECTIONS: Counter, Count, "wirestack_client_endpoint_ejections_total", [],
        "Router and balancer endpoints ejected: too many failures within the window, or (balancers) too low a success rate.";
    CLIENT_ENDPOINTS_EJECTED: Gauge, Count, "wirestack_client_endpoints_ejected", [],
        "Router and balancer endpoints ejected or being probed back.";
    CLIENT_REQUESTS_EJECTED: Counter, Count, "wirestack_client_requests_ejected_total", [],
        "Requests failed at once because their endpoint was ejected.";
    CLIENT_BALANCE_ENDPOINTS: Gauge, Count, "wirestack_client_balance_endpoints", [],
        "Endpoints in balancers.";
    CLIENT_BALANCE_UNAVAILABLE: Counter, Count, "wirestack_client_balance_unavailable_total", [],
        "Calls a balancer failed at once: it had no endpoint.";
    CLIENT_HEDGES: Counter, Count, "wirestack_client_hedges_total", [],
        "Second copies of late idempotent calls sent by hedges: the extra load.";
    CLIENT_HEDGE_WINS: Counter, Count, "wirestack_client_hedge_wins_total", [],
        "Hedged calls whose second copy answered first.";
    CLIENT_HEDGE_BUDGET_EXHAUSTED: Counter, Count, "wirestack_client_hedge_budget_exhausted_total", [],
        "Second copies a hedge's budget refused.";
    CLIENT_POOL_CONNECTIONS: Gauge, Count, "wirestack_client_pool_connections", [],
        "Connection services held by connection pools.";
    SERVER_ACCEPTED: Counter, Count, "wirestack_server_connections_accepted_total", [],
        "Connections taken on.";
    SERVER_REFUSED: Counter, Count, "wirestack_server_connections_refused_total", [],
        "Connections past the connection limit.";
    SERVER_CLOSED: Counter, Count, "wirestack_server_connections_closed_total", ["cause"],
        "Connections ended, by cause.";
    SERVER_OPEN: Gauge, Count, "wirestack_server_connections_open", [],
        "Connections being served.";
    SERVER_REQUESTS: Counter, Count, "wirestack_server_requests_total", [],
        "Requests decoded and started.";
    SERVER_REQUESTS_REFUSED: Counter, Count, "wirestack_server_requests_refused_total", ["cause"],
        "Work answered through the overload hook, by cause.";
    SERVER_RECEIVED_BYTES: Counter, Bytes, "wirestack_server_received_bytes_total", [],
        "Bytes read from connections.";
    SERVER_SENT_BYTES: Counter, Bytes, "wirestack_server_sent_bytes_total", [],
        "Bytes written to connections.";
    SERVER_GOAWAYS: Counter, Count, "wirestack_server_goaways_total", ["cause"],
        "GOAWAYs written: connections told they read no more requests, by cause.";
}
