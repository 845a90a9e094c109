//! What the server records: its handles, registered once per
//! [`Server::serve`](super::Server::serve), and each connection's
//! share — reported once per round of its loop, and its close cause when
//! it ends, however it ends.

use super::Overloaded;
use crate::metrics::{counter, gauge, label_values, names, Counter, Gauge};
use std::sync::Arc;

label_values! {
    /// Why a connection ended, as the `cause` label says it.
    pub(crate) enum CloseCause: "cause" {
        PeerClosed = "peer_closed",
        Shutdown = "shutdown",
        IdleTimeout = "idle_timeout",
        ReadTimeout = "read_timeout",
        WriteTimeout = "write_timeout",
        ProtocolError = "protocol_error",
        ServiceError = "service_error",
        WriteError = "write_error",
        CloseAfter = "close_after",
        TagInUse = "tag_in_use",
        BufferBudget = "buffer_budget",
        FrameBeforeAdmission = "frame_before_admission",
        HandshakeFailed = "handshake_failed",
        Aborted = "aborted",
    }
}

label_values! {
    /// Why a connection sent the protocol's GOAWAY, as the `cause` label
    /// says it.
    pub(crate) enum GoawayCause: "cause" {
        Shutdown = "shutdown",
        IdleTimeout = "idle_timeout",
    }
}

label_values! {
    /// Why work was answered through the `Overload` hook, as the `cause`
    /// label says it.
    enum Refusal: "cause" {
        MaxConnections = "max_connections",
        MaxConnectionsPerAddress = "max_connections_per_address",
        BufferBudget = "buffer_budget",
        BufferBudgetWait = "buffer_budget_wait",
        BufferBudgetQueue = "buffer_budget_queue",
        FrameBeforeAdmission = "frame_before_admission",
    }
}

/// One server's handles.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    accepted: Counter,
    refused: Counter,
    closed: [Counter; CloseCause::ALL.len()],
    open: Gauge,
    requests: Counter,
    requests_refused: [Counter; Refusal::ALL.len()],
    received: Counter,
    sent: Counter,
    goaways: [Counter; GoawayCause::ALL.len()],
}

impl ServerMetrics {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ServerMetrics {
            accepted: counter(names::SERVER_ACCEPTED, &[]),
            refused: counter(names::SERVER_REFUSED, &[]),
            closed: CloseCause::ALL.map(|cause| counter(names::SERVER_CLOSED, cause.labels())),
            open: gauge(names::SERVER_OPEN),
            requests: counter(names::SERVER_REQUESTS, &[]),
            requests_refused: Refusal::ALL
                .map(|cause| counter(names::SERVER_REQUESTS_REFUSED, cause.labels())),
            received: counter(names::SERVER_RECEIVED_BYTES, &[]),
            sent: counter(names::SERVER_SENT_BYTES, &[]),
            goaways: GoawayCause::ALL.map(|cause| counter(names::SERVER_GOAWAYS, cause.labels())),
        })
    }

    /// A connection past the limit.
    pub(crate) fn refused(&self) {
        self.refused.increment(1);
    }

    /// Work answered through the `Overload` hook.
    pub(crate) fn overloaded(&self, reason: &Overloaded) {
        let cause = match reason {
            Overloaded::TooManyConnections { .. } => Refusal::MaxConnections,
            Overloaded::TooManyFromAddress { .. } => Refusal::MaxConnectionsPerAddress,
            Overloaded::BufferBudget { .. } => Refusal::BufferBudget,
            Overloaded::BufferBudgetWait { .. } => Refusal::BufferBudgetWait,
            Overloaded::BufferBudgetQueue { .. } => Refusal::BufferBudgetQueue,
            Overloaded::FrameBeforeAdmission { .. } => Refusal::FrameBeforeAdmission,
        };
        self.requests_refused[cause as usize].increment(1);
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

    /// The connection wrote the protocol's GOAWAY.
    pub(crate) fn goaway(&self, cause: GoawayCause) {
        self.server.goaways[cause as usize].increment(1);
    }
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        let cause = self.cause.unwrap_or(CloseCause::Aborted);
        self.server.closed[cause as usize].increment(1);
        self.server.open.decrement(1.0);
    }
}
