//! What the server records: its handles, registered once per
//! [`Server::serve`](super::Server::serve), and each connection's
//! share — reported once per round of its loop, and its close cause when
//! it ends, however it ends.

use super::Overloaded;
use crate::metrics::{counter, gauge, label_sets, names, Counter, Gauge, Label};
use std::sync::Arc;

/// Why a connection ended, as the `cause` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseCause {
    PeerClosed,
    Shutdown,
    IdleTimeout,
    ReadTimeout,
    WriteTimeout,
    ProtocolError,
    ServiceError,
    WriteError,
    CloseAfter,
    BufferBudget,
    HandshakeFailed,
    Aborted,
}

const CAUSES: usize = 12;

static CLOSE_CAUSES: [[Label; 1]; CAUSES] = label_sets!(
    "cause":
    "peer_closed", "shutdown", "idle_timeout", "read_timeout", "write_timeout", "protocol_error",
    "service_error", "write_error", "close_after", "buffer_budget", "handshake_failed", "aborted"
);

static REFUSAL_CAUSES: [[Label; 1]; 2] = label_sets!("cause": "max_connections", "buffer_budget");

/// One server's handles.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    accepted: Counter,
    refused: Counter,
    closed: [Counter; CAUSES],
    open: Gauge,
    requests: Counter,
    requests_refused: [Counter; 2],
    received: Counter,
    sent: Counter,
}

impl ServerMetrics {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ServerMetrics {
            accepted: counter(names::SERVER_ACCEPTED, &[]),
            refused: counter(names::SERVER_REFUSED, &[]),
            closed: std::array::from_fn(|i| counter(names::SERVER_CLOSED, &CLOSE_CAUSES[i])),
            open: gauge(names::SERVER_OPEN),
            requests: counter(names::SERVER_REQUESTS, &[]),
            requests_refused: [0, 1].map(|i| counter(names::SERVER_REQUESTS_REFUSED, &REFUSAL_CAUSES[i])),
            received: counter(names::SERVER_RECEIVED_BYTES, &[]),
            sent: counter(names::SERVER_SENT_BYTES, &[]),
        })
    }

    /// A connection past the limit.
    pub(crate) fn refused(&self) {
        self.refused.increment(1);
    }

    /// Work answered through the `Overload` hook.
    pub(crate) fn overloaded(&self, reason: &Overloaded) {
        let cause = match reason {
            Overloaded::TooManyConnections { .. } => 0,
            Overloaded::BufferBudget { .. } => 1,
        };
        self.requests_refused[cause].increment(1);
    }

    /// A connection is taken on: its share, which records its close when
    /// dropped.
    pub(crate) fn accepted(self: &Arc<Self>) -> ConnectionMetrics {
        self.accepted.increment(1);
        self.open.increment(1.0);
        ConnectionMetrics {
            server: self.clone(),
            cause: None,
            read: 0,
            written: 0,
        }
    }
}

/// One connection's share of the server's metrics.
#[derive(Debug)]
pub(crate) struct ConnectionMetrics {
    server: Arc<ServerMetrics>,
    /// The first reason the connection began to close; none: the peer closed.
    cause: Option<CloseCause>,
    /// Bytes already counted.
    read: u64,
    written: u64,
}

impl ConnectionMetrics {
    /// The connection began to close for `cause` (the first one counts).
    pub(crate) fn closing(&mut self, cause: CloseCause) {
        self.cause.get_or_insert(cause);
    }

    /// A round of the connection loop: `started` requests, and the bytes
    /// read and written through the connection so far.
    pub(crate) fn round(&mut self, started: usize, read: u64, written: u64) {
        if started > 0 {
            self.server.requests.increment(started as u64);
        }
        if read > self.read {
            self.server.received.increment(read - self.read);
            self.read = read;
        }
        if written > self.written {
            self.server.sent.increment(written - self.written);
            self.written = written;
        }
    }

    pub(crate) fn overloaded(&self, reason: &Overloaded) {
        self.server.overloaded(reason);
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        let cause = self.cause.unwrap_or(CloseCause::Aborted);
        self.server.closed[cause as usize].increment(1);
        self.server.open.decrement(1.0);
    }
}
