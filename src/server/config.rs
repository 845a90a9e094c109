//! [`ServeConfig`]: the limits a server holds every connection to.

use std::time::Duration;

/// How the server treats connections: every limit a peer could push against.
///
/// ```
/// use std::time::Duration;
/// use wirestack::server::ServeConfig;
///
/// let config = ServeConfig {
///     max_connections: 10_000,
///     idle_timeout: None,
///     read_timeout: Some(Duration::from_secs(5)),
///     ..ServeConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The most requests of one connection being worked on or waiting to be
    /// written at once (default 128). Past it the connection stops reading,
    /// which pushes back on the client through TCP.
    pub max_in_flight_per_connection: usize,
    /// The most connections served at once (default 1024). A connection
    /// past it has its first request answered through the [`Overload`](super::Overload)
    /// hook, if the protocol has an answer, and is closed.
    pub max_connections: usize,
    /// How long a connection may wait for its peer with nothing buffered
    /// and nothing in flight before it is closed (default 5 minutes;
    /// `None`: forever).
    pub idle_timeout: Option<Duration>,
    /// How long a frame that has started to arrive may take to finish
    /// before the connection is closed (default 30 s; `None`: forever).
    /// Only time spent waiting on the peer — or on the buffer pool, for a
    /// frame larger than the connection's share — counts. It also bounds the
    /// acceptor's handshake (TLS), from accept to the first byte served,
    /// together with [`handshake_timeout`](Self::handshake_timeout).
    pub read_timeout: Option<Duration>,
    /// How long the acceptor's handshake (TLS) may take, from accept to
    /// the first byte served (default 10 s; `None`: as long as
    /// [`read_timeout`](Self::read_timeout) allows). The handshake ends at
    /// the earlier of the two, so turning the read timeout off does not
    /// let a peer that never finishes its handshake hold a connection.
    pub handshake_timeout: Option<Duration>,
    /// The most connections served at once from one peer IP address
    /// (default `None`: no limit but [`max_connections`](Self::max_connections)).
    /// A connection past it is refused as one past `max_connections` is
    /// ([`Overloaded::TooManyFromAddress`](super::Overloaded::TooManyFromAddress)),
    /// so that one host cannot take every slot. Clients behind one NAT or
    /// proxy share an address: leave room for them.
    pub max_connections_per_address: Option<usize>,
    /// How long a connection with responses to write may wait for its peer
    /// to read any of them before it is closed, responses unwritten
    /// (default 30 s; `None`: forever).
    pub write_timeout: Option<Duration>,
    /// The budget of request bytes held by all connections together — read
    /// buffers plus requests in flight (default 256 MiB): each connection
    /// may hold `budget / (2 · max_connections)` on its own, and takes more
    /// from a common pool of the other half, waiting (not reading) while
    /// the pool is empty. Keep half of it above the largest frame the codec
    /// accepts: a frame larger than a share and the pool together is
    /// refused through the [`Overload`](super::Overload) hook, and closes its connection.
    pub max_buffered_request_bytes: usize,
    /// The most connections that may wait for bytes of the budget's common
    /// pool at once (default 64). A frame that needs pool bytes while this
    /// many connections already wait for them is not queued: it is
    /// answered through the [`Overload`](super::Overload) hook at once
    /// ([`Overloaded::BufferBudgetQueue`](super::Overloaded::BufferBudgetQueue))
    /// and its connection closes, so that stalled uploads cannot build a
    /// queue that every large request must wait through. `0`: no frame
    /// waits for the pool.
    pub max_pool_waiters: usize,
    /// The largest frame a connection may send before it is admitted
    /// (default 8 KiB; see [`Admission`](super::Admission) and
    /// [`Server::with_admission`](super::Server::with_admission)): for a
    /// protocol with a credential, the largest request a peer may send
    /// before it has shown it. A larger one is answered through the
    /// [`Overload`](super::Overload) hook
    /// ([`Overloaded::FrameBeforeAdmission`](super::Overloaded::FrameBeforeAdmission))
    /// and its connection closes. Before it is admitted a connection also
    /// never takes bytes from the budget's common pool. Without an
    /// admission hook every connection is admitted at once and this limit
    /// does not apply.
    pub max_unadmitted_frame_bytes: usize,
    /// How long a graceful shutdown may take (default 5 s; `None`: as long
    /// as the connections need). Past it, every connection still open is
    /// closed at once, its unwritten answers dropped; requests the service
    /// had already started are not cancelled by the server, only their
    /// answers are lost.
    pub shutdown_timeout: Option<Duration>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_in_flight_per_connection: 128,
            max_connections: 1024,
            idle_timeout: Some(Duration::from_secs(300)),
            read_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Some(Duration::from_secs(10)),
            max_connections_per_address: None,
            write_timeout: Some(Duration::from_secs(30)),
            max_buffered_request_bytes: 256 * 1024 * 1024,
            max_pool_waiters: 64,
            max_unadmitted_frame_bytes: 8 * 1024,
            shutdown_timeout: Some(Duration::from_secs(5)),
        }
    }
}
