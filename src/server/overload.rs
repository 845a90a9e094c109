//! How the server answers work it refuses: the [`Overload`] hook.
//!
//! The server refuses work in two places: a connection past
//! [`ServeConfig::max_connections`](super::ServeConfig::max_connections) (or
//! [`max_connections_per_address`](super::ServeConfig::max_connections_per_address)), and
//! a frame it will not hold: larger than a connection can ever hold of
//! [`ServeConfig::max_buffered_request_bytes`](super::ServeConfig::max_buffered_request_bytes),
//! waiting too long or behind too many others for the budget's pool, or
//! larger than a connection not yet [admitted](super::Admission) may send.
//! It is protocol-agnostic, so it cannot write a protocol's "busy" answer
//! itself: it asks an [`Overload`] for one (see [`Overloaded`] for every
//! reason).
//!
//! Why a hook and not a tower layer: both decisions are made where the
//! service stack cannot see them — before a connection has a service at all,
//! and before a frame has even been read whole — and a refused request
//! must still be answered *in its place* in the pipeline without reaching the
//! service. A tower `LoadShed` in the stack would turn overload into a
//! service error, which a pipelined server can only answer by closing the
//! connection. So the server owns the decision and the protocol owns the
//! bytes.
//!
//! ```
//! use wirestack::server::{Overload, Overloaded, Server};
//!
//! // A line protocol that answers "BUSY <reason>".
//! let overload = |reason: &Overloaded| Some(format!("BUSY {reason}"));
//! let answer: Option<String> = overload.overloaded(&Overloaded::TooManyConnections { limit: 8 });
//! assert_eq!(answer.as_deref(), Some("BUSY too many connections (limit 8)"));
//! # let _ = Server::new(tokio_util::codec::LinesCodec::new()).with_overload(overload);
//! ```

use std::fmt;
use std::time::Duration;

/// Why the server refused work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overloaded {
    /// The server already serves its maximum number of connections; this
    /// connection's first request is answered and the connection closed.
    TooManyConnections {
        /// The limit, [`ServeConfig::max_connections`](super::ServeConfig::max_connections).
        limit: usize,
    },
    /// The peer's IP address already has its maximum number of connections
    /// served; this connection's first request is answered and the
    /// connection closed.
    TooManyFromAddress {
        /// The limit, [`ServeConfig::max_connections_per_address`](super::ServeConfig::max_connections_per_address).
        limit: usize,
    },
    /// The frame being read needs bytes of the common pool, and other
    /// connections held them for the whole read timeout: it is answered
    /// without reaching the service, and the connection closes. (The wait
    /// for the pool counts against the waiter's read timeout, so no request
    /// queues without bound behind stalled uploads.)
    BufferBudgetWait {
        /// How long it waited, [`ServeConfig::read_timeout`](super::ServeConfig::read_timeout).
        waited: Duration,
    },
    /// The frame being read needs bytes of the common pool, and
    /// [`ServeConfig::max_pool_waiters`](super::ServeConfig::max_pool_waiters)
    /// connections already wait for them: it is answered at once, without
    /// reaching the service, rather than queued, and the connection closes.
    BufferBudgetQueue {
        /// The limit, [`ServeConfig::max_pool_waiters`](super::ServeConfig::max_pool_waiters).
        limit: usize,
    },
    /// The frame being read is larger than a connection may send before it
    /// is [admitted](super::Admission) (for a protocol with a credential:
    /// before it has shown it); it is answered without reaching the
    /// service, and the connection closes.
    FrameBeforeAdmission {
        /// The limit: [`ServeConfig::max_unadmitted_frame_bytes`](super::ServeConfig::max_unadmitted_frame_bytes),
        /// or the connection's share of the budget if that is smaller.
        limit: usize,
    },
    /// The frame being read is larger than a connection can ever hold of
    /// the budget (its share and the whole common pool); it is answered
    /// without reaching the service, and the connection closes.
    BufferBudget {
        /// The budget, [`ServeConfig::max_buffered_request_bytes`](super::ServeConfig::max_buffered_request_bytes).
        limit: usize,
    },
}

impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overloaded::TooManyConnections { limit } => {
                write!(f, "too many connections (limit {limit})")
            }
            Overloaded::TooManyFromAddress { limit } => {
                write!(f, "too many connections from this address (limit {limit})")
            }
            Overloaded::BufferBudgetWait { waited } => {
                write!(
                    f,
                    "the server's buffer budget stayed in use by other requests for {waited:?}; try again"
                )
            }
            Overloaded::BufferBudgetQueue { limit } => {
                write!(
                    f,
                    "too many requests wait for the server's buffer budget (limit {limit}); try again"
                )
            }
            Overloaded::FrameBeforeAdmission { limit } => {
                write!(
                    f,
                    "a request larger than {limit} bytes before the connection was admitted \
                     (authenticate first)"
                )
            }
            Overloaded::BufferBudget { limit } => {
                write!(
                    f,
                    "a request too large for the server's buffer budget of {limit} bytes"
                )
            }
        }
    }
}

/// Makes a protocol's answer to refused work.
///
/// Returning `None` means the protocol has no such answer: the server then
/// closes the connection instead (for a refused request, after writing the
/// responses before it). Closures `Fn(&Overloaded) -> Option<Resp>`
/// implement it.
pub trait Overload<Resp> {
    /// The response that refuses work for `reason`, or `None` to close.
    fn overloaded(&self, reason: &Overloaded) -> Option<Resp>;
}

impl<Resp, F> Overload<Resp> for F
where
    F: Fn(&Overloaded) -> Option<Resp>,
{
    fn overloaded(&self, reason: &Overloaded) -> Option<Resp> {
        self(reason)
    }
}

/// The default [`Overload`]: no answer, refused work closes the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refuse;

impl<Resp> Overload<Resp> for Refuse {
    fn overloaded(&self, _reason: &Overloaded) -> Option<Resp> {
        None
    }
}
