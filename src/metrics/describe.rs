//! [`describe`]: the unit and help text of every name, for the recorder.

use super::names::*;
use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Tells the installed recorder the unit and meaning of every metric the
/// framework records (exporters show them, Prometheus as `# HELP`). Call it
/// after installing the recorder; calling it again does no harm.
pub fn describe() {
    describe_counter!(
        CLIENT_REQUESTS,
        Unit::Count,
        "Requests a pipeline wrote to its connection."
    );
    describe_histogram!(
        CLIENT_REQUEST_DURATION,
        Unit::Seconds,
        "Time from the pass of a connection task that wrote a request to the pass that read its answer."
    );
    describe_gauge!(
        CLIENT_IN_FLIGHT,
        Unit::Count,
        "Calls queued for or awaiting an answer from a connection."
    );
    describe_counter!(
        CLIENT_FAILURES,
        Unit::Count,
        "Requests a pipeline failed, by failure kind."
    );
    describe_counter!(
        CLIENT_CONNECT_ATTEMPTS,
        Unit::Count,
        "Connect attempts of reconnect layers."
    );
    describe_counter!(
        CLIENT_CONNECT_FAILURES,
        Unit::Count,
        "Connect attempts that failed."
    );
    describe_counter!(
        CLIENT_CONNECTS,
        Unit::Count,
        "Connect attempts that made a connection."
    );
    describe_counter!(
        CLIENT_RECONNECTS,
        Unit::Count,
        "Connections made after a reconnect layer's first."
    );
    describe_counter!(CLIENT_DISCONNECTS, Unit::Count, "Connections found broken.");
    describe_histogram!(CLIENT_BACKOFF, Unit::Seconds, "Waits between connect attempts.");
    describe_gauge!(
        CLIENT_CONNECTED,
        Unit::Count,
        "Reconnect layers with a live connection."
    );
    describe_counter!(
        CLIENT_FAILED_FAST,
        Unit::Count,
        "Requests failed at once: no connection was up."
    );
    describe_counter!(CLIENT_RETRIES, Unit::Count, "Retries made, by reason.");
    describe_counter!(
        CLIENT_RETRY_BUDGET_EXHAUSTED,
        Unit::Count,
        "Retries the retry budget refused."
    );
    describe_counter!(
        CLIENT_RETRIES_UNSAFE,
        Unit::Count,
        "Failed requests not retried: they may have been applied and are not idempotent."
    );
    describe_counter!(
        CLIENT_DEADLINE_EXPIRED,
        Unit::Count,
        "Requests ended by their deadline."
    );
    describe_counter!(
        CLIENT_ENDPOINT_EJECTIONS,
        Unit::Count,
        "Router endpoints ejected after failing too often within the window."
    );
    describe_gauge!(
        CLIENT_ENDPOINTS_EJECTED,
        Unit::Count,
        "Router endpoints ejected or being probed back."
    );
    describe_counter!(
        CLIENT_REQUESTS_EJECTED,
        Unit::Count,
        "Requests failed at once because their endpoint was ejected."
    );
    describe_gauge!(
        CLIENT_POOL_CONNECTIONS,
        Unit::Count,
        "Connection services held by connection pools."
    );
    describe_counter!(SERVER_ACCEPTED, Unit::Count, "Connections taken on.");
    describe_counter!(
        SERVER_REFUSED,
        Unit::Count,
        "Connections past the connection limit."
    );
    describe_counter!(SERVER_CLOSED, Unit::Count, "Connections ended, by cause.");
    describe_gauge!(SERVER_OPEN, Unit::Count, "Connections being served.");
    describe_counter!(SERVER_REQUESTS, Unit::Count, "Requests decoded and started.");
    describe_counter!(
        SERVER_REQUESTS_REFUSED,
        Unit::Count,
        "Work answered through the overload hook, by cause."
    );
    describe_counter!(SERVER_RECEIVED_BYTES, Unit::Bytes, "Bytes read from connections.");
    describe_counter!(SERVER_SENT_BYTES, Unit::Bytes, "Bytes written to connections.");
}
