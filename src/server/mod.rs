//! Serve any tower `Service` over any codec, pipelined, with graceful shutdown.
//!
//! [`Server`] accepts connections from a `TcpListener`, frames each with a
//! clone of a codec, asks a [`MakeService`](tower::MakeService) for a service per connection and
//! serves it pipelined: it reads ahead, runs up to
//! [`ServeConfig::max_in_flight_per_connection`] requests of one connection at
//! once, writes the responses in request order — or, for a tagged
//! protocol, each as soon as it is ready — and flushes when no more input
//! is ready.
//!
//! ```text
//!              ┌──────────── one task per connection ────────────┐
//! listener ──► │ Framed(codec) ─► service.call() × N in flight   │
//!   accept     │      ▲                 │ responses in order,     │
//!              │      │                 │ or by tag when ready    │
//!              │      └── flush ◄───────┘                         │
//!              └─────────────────────────────────────────────────┘
//! ```
//!
//! ## Order of answers
//!
//! By default every answer leaves in request order, as HTTP/1.1, RESP and
//! KV 1.1 need. A protocol whose requests carry a tag (KV 2.0, HTTP/2,
//! memcached's opaque) says so through [`Server::with_order`] ([`Order`]):
//! then a tagged request's answer leaves as soon as the service has it,
//! ahead of slower requests read before it; an untagged request's answer
//! still waits for every request read before it; a cancel is served and
//! answers nothing; a tag reused while in flight ends the connection. The
//! limits below hold the same for every kind of request: a tagged request
//! counts against the in-flight limit, and holds its bytes of the budget,
//! until its answer is taken to be written. The common case — a service
//! that answers at once — costs no allocation either way.
//!
//! ## Limits
//!
//! Everything a peer can make the server hold or wait for is bounded by a
//! [`ServeConfig`] field, each with a default.
//!
//! * **Connections**: past [`ServeConfig::max_connections`], or past
//!   [`ServeConfig::max_connections_per_address`] from one peer IP address,
//!   a new connection's first request gets the protocol's overloaded answer
//!   (see [`Overload`]) and the connection is closed.
//! * **Handshakes** (TLS) must finish within
//!   [`ServeConfig::handshake_timeout`] and the read timeout, whichever is
//!   shorter.
//! * **Idle connections** are closed after [`ServeConfig::idle_timeout`].
//! * **Slow peers**: a frame that started but does not finish within
//!   [`ServeConfig::read_timeout`] closes the connection (slowloris); so does
//!   a peer that reads none of its responses for [`ServeConfig::write_timeout`].
//! * **Pipelining**: at most [`ServeConfig::max_in_flight_per_connection`]
//!   requests per connection are worked on or waiting to be written; past
//!   it the connection stops reading, which pushes back through TCP.
//! * **Memory**: the request bytes all connections hold (read buffers plus
//!   requests in flight) never exceed
//!   [`ServeConfig::max_buffered_request_bytes`], however many peers stall
//!   in the middle of a frame, and no peer can take another's room. Each
//!   connection has a share of its own, `budget / (2 · max_connections)`
//!   (128 KiB with the defaults): requests that fit in it are never delayed
//!   or refused because of other connections. Past its share a connection
//!   takes bytes from a common pool (the other half), first come first
//!   served, before it reads them, and stops reading while the pool is
//!   empty, which pushes back on its peer through TCP; with
//!   [`Server::with_frame_size`] it takes a whole frame's bytes at once. A
//!   peer that stalls while holding pool bytes is closed by the read
//!   timeout, and the wait for pool bytes counts against the waiter's read
//!   timeout too: past it, the frame is answered through [`Overload`]
//!   ([`Overloaded::BufferBudgetWait`]) and the connection closes, so no
//!   request queues without bound behind stalled uploads. At most
//!   [`ServeConfig::max_pool_waiters`] connections wait for the pool at
//!   once: past it a frame that would wait is answered through
//!   [`Overload`] at once ([`Overloaded::BufferBudgetQueue`]) and its
//!   connection closes. A frame larger than a share and the whole pool
//!   together is answered through [`Overload`] and closes its connection.
//! * **Before admission** (for a protocol with a credential, see
//!   [`Server::with_admission`]): a connection's frames are at most
//!   [`ServeConfig::max_unadmitted_frame_bytes`] long — a longer one is
//!   answered through [`Overload`] ([`Overloaded::FrameBeforeAdmission`])
//!   as soon as its header says so, and its connection closes — and it
//!   never takes bytes of the common pool.
//!
//! A panic in a service or codec ends only its connection's task; the accept
//! loop logs it and goes on.
//!
//! ## Hooks
//!
//! * [`Server::with_acceptor`]: what is done with each accepted stream
//!   before it is framed ([`Accept`]): nothing ([`PlainTcp`], the default)
//!   or a handshake — TLS with the `tls` feature. The handshake runs on the
//!   connection's task, within [`ServeConfig::handshake_timeout`] and
//!   [`ServeConfig::read_timeout`].
//! * [`Server::with_overload`]: the protocol's answer to refused work
//!   ([`Overload`]).
//! * [`Server::with_close_after`]: which answers end their connection
//!   ([`CloseAfter`]), such as a refused credential.
//! * [`Server::with_order`]: which answers may leave before others, and
//!   the protocol's GOAWAY ([`Order`]).
//! * [`Server::with_frame_size`] / [`Server::with_codec_frame_size`]: how
//!   long a frame is from its header (see Limits), for the budget.
//! * [`Server::with_admission`]: whether a connection has shown the
//!   protocol's credential, asked of its service ([`Admission`]); until it
//!   has, the limits before admission hold (see Limits).
//!
//! Shutdown is a future passed in: when it completes the server stops
//! accepting, every connection stops reading (no new work starts), tells
//! its peer so through the protocol's GOAWAY if its [`Order`] has one,
//! answers everything it had read, flushes and closes (after a GOAWAY,
//! lingering until the peer closes, 2 s at most, so that what the peer
//! still sends does not reset the connection under its answers); [`Server::serve`]
//! returns when the last connection has — or, at the latest, after
//! [`ServeConfig::shutdown_timeout`], when the connections still open are
//! closed where they stand (a peer that reads slowly cannot hold the
//! process). A connection closed for being idle sends the GOAWAY too: both
//! are closes the server decides while the peer may still be sending, and
//! the GOAWAY tells it that what it sent and got no answer to was never
//! read, so it may send it again elsewhere (see [`Order`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use futures::{SinkExt, StreamExt};
//! use tokio_util::codec::{Framed, LinesCodec};
//! use tokio_util::sync::CancellationToken;
//! use wirestack::server::{ServeConfig, Server};
//!
//! // A line protocol: every line is answered with its length.
//! let count = tower::service_fn(|line: String| async move {
//!     Ok::<_, std::convert::Infallible>(line.len().to_string())
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let stop = CancellationToken::new();
//! let server = tokio::spawn(
//!     Server::new(LinesCodec::new())
//!         .with_config(ServeConfig { max_connections: 256, ..ServeConfig::default() })
//!         .serve(listener, tower::make::Shared::new(count), stop.clone().cancelled_owned()),
//! );
//!
//! let mut client = Framed::new(tokio::net::TcpStream::connect(addr).await?, LinesCodec::new());
//! client.send("hello").await?;
//! assert_eq!(client.next().await.transpose()?.as_deref(), Some("5"));
//!
//! stop.cancel(); // stop accepting, answer what was read, close
//! server.await??;
//! # Ok(())
//! # }
//! ```

mod accept;
mod admission;
mod bounds;
mod budget;
mod close;
mod config;
mod connection;
mod metrics;
mod order;
mod overload;
mod per_address;
#[cfg(test)]
mod tagged_lines;
#[cfg(test)]
mod tests;

pub use accept::{Accept, PlainTcp};
pub use admission::{Admission, AdmitAll};
pub use bounds::{MakeConnectionService, ServeCodec};
pub use close::{CloseAfter, KeepOpen};
pub use config::ServeConfig;
pub use connection::ConnectionError;
pub use order::{InOrder, Order};
pub use overload::{Overload, Overloaded, Refuse};

use crate::BoxError;
use budget::{Budget, FrameSize};
use bytes::BytesMut;
use connection::{Connection, Hooks, Metered};
use metrics::{CloseCause, ServerMetrics};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::{Encoder, Framed};
use tokio_util::sync::CancellationToken;

/// How long a refused connection is given to send a request and read its answer.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);
/// The most refused connections being answered at once; past it, refused
/// connections are closed without an answer.
const MAX_REFUSALS_IN_PROGRESS: usize = 64;

/// A pipelined server for one codec.
///
/// `O` makes the protocol's answer to refused work (see [`Overload`]); by
/// default ([`Refuse`]) refused work closes the connection. `A` is the
/// [`Accept`]or each TCP stream goes through ([`PlainTcp`] by default),
/// `K` says which answers close their connection ([`CloseAfter`]; by
/// default, [`KeepOpen`], none does), and `R` which answers may leave
/// before others and what the protocol's GOAWAY is ([`Order`]; by default,
/// [`InOrder`]: every answer in request order, no GOAWAY).
#[derive(Debug, Clone)]
pub struct Server<C, O = Refuse, A = PlainTcp, K = KeepOpen, R = InOrder, D = AdmitAll> {
    codec: C,
    config: ServeConfig,
    overload: O,
    frame_size: Option<FrameSize<C>>,
    acceptor: A,
    close: K,
    order: R,
    admission: D,
}

impl<C> Server<C> {
    /// A server that frames every connection with a clone of `codec`.
    pub fn new(codec: C) -> Self {
        Server {
            codec,
            config: ServeConfig::default(),
            overload: Refuse,
            frame_size: None,
            acceptor: PlainTcp,
            close: KeepOpen,
            order: InOrder,
            admission: AdmitAll,
        }
    }
}

impl<C, O, A, K, R, D> Server<C, O, A, K, R, D> {
    /// Replaces the connection settings.
    pub fn with_config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets how refused work is answered: past the connection limits, and
    /// a frame the buffer budget will not hold (see [`Overloaded`]).
    pub fn with_overload<O2>(self, overload: O2) -> Server<C, O2, A, K, R, D> {
        Server {
            codec: self.codec,
            config: self.config,
            overload,
            frame_size: self.frame_size,
            acceptor: self.acceptor,
            close: self.close,
            order: self.order,
            admission: self.admission,
        }
    }

    /// Sets what is done with each accepted TCP stream before it is framed:
    /// a TLS handshake, say (see [`Accept`]).
    pub fn with_acceptor<A2>(self, acceptor: A2) -> Server<C, O, A2, K, R, D> {
        Server {
            codec: self.codec,
            config: self.config,
            overload: self.overload,
            acceptor,
            close: self.close,
            frame_size: self.frame_size,
            order: self.order,
            admission: self.admission,
        }
    }

    /// Sets which answers close their connection once written (see
    /// [`CloseAfter`]).
    pub fn with_close_after<K2>(self, close: K2) -> Server<C, O, A, K2, R, D> {
        Server {
            codec: self.codec,
            config: self.config,
            overload: self.overload,
            acceptor: self.acceptor,
            close,
            frame_size: self.frame_size,
            order: self.order,
            admission: self.admission,
        }
    }

    /// Sets the order answers leave each connection in, and the
    /// protocol's GOAWAY (see [`Order`]): a tagged protocol's answers leave
    /// as soon as they are ready.
    ///
    /// ```
    /// use wirestack::multiplex::Tag;
    /// use wirestack::server::{Order, Server};
    ///
    /// /// Lines "<tag> <text>", answered in any order; others in order.
    /// #[derive(Clone)]
    /// struct TaggedLines;
    ///
    /// impl Order<String, String> for TaggedLines {
    ///     fn tag(&self, line: &String) -> Option<Tag> {
    ///         line.split_once(' ')?.0.parse().ok()
    ///     }
    ///     fn goaway(&self, reason: &str) -> Option<String> {
    ///         Some(format!("0 GOAWAY {reason}"))
    ///     }
    /// }
    /// # let _ = Server::new(tokio_util::codec::LinesCodec::new()).with_order(TaggedLines);
    /// ```
    pub fn with_order<R2>(self, order: R2) -> Server<C, O, A, K, R2, D> {
        Server {
            codec: self.codec,
            config: self.config,
            overload: self.overload,
            acceptor: self.acceptor,
            close: self.close,
            frame_size: self.frame_size,
            order,
            admission: self.admission,
        }
    }

    /// Sets which connections are admitted to the server's full limits
    /// (see [`Admission`]): until its service says so, a connection's
    /// frames are limited to
    /// [`ServeConfig::max_unadmitted_frame_bytes`] and never take bytes
    /// of the buffer budget's common pool. For a protocol with a
    /// credential, so that peers who have not shown it cannot take what
    /// authenticated ones need.
    ///
    /// ```
    /// use wirestack::server::Server;
    ///
    /// /// A connection's service that knows whether its peer logged in.
    /// #[derive(Clone, Default)]
    /// struct Session {
    ///     logged_in: bool,
    /// }
    ///
    /// let server = Server::new(tokio_util::codec::LinesCodec::new())
    ///     .with_admission(|session: &Session| session.logged_in);
    /// # let _ = server;
    /// ```
    pub fn with_admission<D2>(self, admission: D2) -> Server<C, O, A, K, R, D2> {
        Server {
            codec: self.codec,
            config: self.config,
            overload: self.overload,
            acceptor: self.acceptor,
            close: self.close,
            frame_size: self.frame_size,
            order: self.order,
            admission,
        }
    }

    /// Tells the server how long a frame is from its first bytes: given a
    /// read buffer that starts with a frame, `frame_size` returns the whole
    /// frame's length once its header is there (`None` before, or if the
    /// protocol cannot tell).
    ///
    /// With it, a connection that needs more than its share of
    /// [`ServeConfig::max_buffered_request_bytes`] for a frame reserves the
    /// whole frame from the common pool before reading on, so half-read
    /// frames never wait on each other; without it, a connection takes
    /// pool bytes as it reads. It is only asked about frames larger than a
    /// connection's share, never on the fast path. A protocol whose framing
    /// depends on the connection (on a negotiated version) uses
    /// [`with_codec_frame_size`](Self::with_codec_frame_size) instead.
    ///
    /// ```
    /// use wirestack::server::Server;
    ///
    /// // A protocol whose frames start with a 4-byte big-endian length.
    /// let frame_size = |buffered: &[u8]| -> Option<usize> {
    ///     let header: [u8; 4] = buffered.get(..4)?.try_into().ok()?;
    ///     Some(4 + u32::from_be_bytes(header) as usize)
    /// };
    /// let server = Server::new(tokio_util::codec::LengthDelimitedCodec::new()).with_frame_size(frame_size);
    /// # let _ = server;
    /// ```
    pub fn with_frame_size(
        self,
        frame_size: impl Fn(&[u8]) -> Option<usize> + Send + Sync + 'static,
    ) -> Self {
        self.with_codec_frame_size(move |_: &C, buffered: &[u8]| frame_size(buffered))
    }

    /// Like [`with_frame_size`](Self::with_frame_size), but `frame_size`
    /// is also given the connection's codec, as it stands when the frame
    /// starts: for a protocol whose header depends on what the connection
    /// negotiated (its version), which its codec knows.
    ///
    /// ```
    /// use tokio_util::codec::LinesCodec;
    /// use wirestack::server::Server;
    ///
    /// // A line is as long as its newline says, at most the codec's limit.
    /// let frame_size = |codec: &LinesCodec, buffered: &[u8]| -> Option<usize> {
    ///     let end = buffered.iter().position(|&b| b == b'\n')?;
    ///     Some((end + 1).min(codec.max_length().saturating_add(1)))
    /// };
    /// let server = Server::new(LinesCodec::new_with_max_length(4096)).with_codec_frame_size(frame_size);
    /// # let _ = server;
    /// ```
    pub fn with_codec_frame_size(
        mut self,
        frame_size: impl Fn(&C, &[u8]) -> Option<usize> + Send + Sync + 'static,
    ) -> Self {
        self.frame_size = Some(FrameSize::new(frame_size));
        self
    }

    /// Accepts and serves connections until `shutdown` completes, then
    /// drains every connection (within [`ServeConfig::shutdown_timeout`])
    /// and returns.
    ///
    /// `make_service` is called with each peer's address; use
    /// [`tower::make::Shared`] to serve clones of one service.
    pub async fn serve<M, Req>(
        self,
        listener: TcpListener,
        mut make_service: M,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        M: MakeConnectionService<Req>,
        C: ServeCodec<M::Response, Request = Req>,
        O: Overload<M::Response> + Clone + Send + 'static,
        A: Accept,
        K: CloseAfter<M::Response> + Clone + Send + 'static,
        R: Order<Req, M::Response> + Clone + Send + 'static,
        D: Admission<M::Service> + Clone + Send + 'static,
        Req: Send + 'static,
    {
        let stop = CancellationToken::new();
        let budget = Budget::new(
            self.config.max_buffered_request_bytes,
            self.config.max_connections,
            self.config.max_pool_waiters,
        );
        let connection_slots = Arc::new(Semaphore::new(self.config.max_connections));
        let per_address = per_address::PerAddress::new(self.config.max_connections_per_address);
        let handshake_timeout = match (self.config.read_timeout, self.config.handshake_timeout) {
            (Some(read), Some(handshake)) => Some(read.min(handshake)),
            (read, handshake) => read.or(handshake),
        };
        let refusal_slots = Arc::new(Semaphore::new(MAX_REFUSALS_IN_PROGRESS));
        let metrics = ServerMetrics::new();
        let limits = connection::Limits {
            max_in_flight: self.config.max_in_flight_per_connection,
            idle_timeout: self.config.idle_timeout,
            read_timeout: self.config.read_timeout,
            write_timeout: self.config.write_timeout,
            max_unadmitted_frame: self.config.max_unadmitted_frame_bytes,
        };
        // Owned by this future: if it is dropped (aborted), so is every
        // connection, as when a process dies.
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);

        loop {
            let (stream, peer) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(finished) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(error) = finished {
                        if error.is_panic() {
                            tracing::error!(%error, "a connection task panicked; the server goes on");
                        }
                    }
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, or a connection reset before
                        // it was accepted: wait a moment rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let address_slot = match per_address.try_acquire(peer.ip()) {
                Ok(address_slot) => address_slot,
                Err(limit) => {
                    metrics.refused();
                    let reason = Overloaded::TooManyFromAddress { limit };
                    self.refuse(stream, peer, reason, &refusal_slots, &mut connections, &metrics);
                    continue;
                }
            };
            let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
                metrics.refused();
                let reason = Overloaded::TooManyConnections {
                    limit: self.config.max_connections,
                };
                self.refuse(stream, peer, reason, &refusal_slots, &mut connections, &metrics);
                continue;
            };
            let service = match futures::future::poll_fn(|cx| make_service.poll_ready(cx)).await {
                Ok(()) => make_service.make_service(peer).await,
                Err(error) => Err(error),
            };
            let service = match service {
                Ok(service) => service,
                Err(error) => {
                    let error: BoxError = error.into();
                    tracing::warn!(%error, %peer, "could not make a service for a connection");
                    continue;
                }
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
            }
            let (acceptor, codec) = (self.acceptor.clone(), self.codec.clone());
            let hooks = Hooks {
                overload: self.overload.clone(),
                close: self.close.clone(),
                order: self.order.clone(),
                frame_size: self.frame_size.clone(),
                admission: self.admission.clone(),
            };
            let (budget, limits, stop) = (budget.clone(), limits.clone(), stop.clone());
            // Counts the connection closed when dropped, however it ends.
            let mut counted = metrics.accepted();
            connections.spawn(async move {
                // Held until the connection ends, even by a panic.
                let _slots = (slot, address_slot);
                let Some(io) = accept::handshake(&acceptor, stream, peer, handshake_timeout, &stop).await
                else {
                    counted.closing(CloseCause::HandshakeFailed);
                    return;
                };
                let transport = Framed::new(Metered::new(io), codec);
                let connection = Connection::<_, (C, M::Service, O, K, R, D), Req>::new(
                    transport,
                    service,
                    hooks,
                    budget,
                    limits,
                    stop.cancelled_owned(),
                    counted,
                );
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            });
        }

        drop(listener);
        stop.cancel();
        let deadline = self
            .config
            .shutdown_timeout
            .map(|limit| tokio::time::Instant::now() + limit);
        loop {
            let finished = match deadline {
                None => connections.join_next().await,
                Some(deadline) => match tokio::time::timeout_at(deadline, connections.join_next()).await {
                    Ok(finished) => finished,
                    Err(_) => {
                        tracing::warn!(
                            open = connections.len(),
                            "shutdown deadline passed: closing the connections still open"
                        );
                        connections.shutdown().await;
                        break;
                    }
                },
            };
            match finished {
                None => break,
                Some(Err(error)) if error.is_panic() => {
                    tracing::error!(%error, "a connection task failed while draining");
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Answers a connection past a limit, if the protocol has an answer,
    /// and closes it.
    fn refuse<Resp>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        reason: Overloaded,
        refusal_slots: &Arc<Semaphore>,
        connections: &mut JoinSet<()>,
        metrics: &ServerMetrics,
    ) where
        C: Encoder<Resp> + Clone,
        O: Overload<Resp>,
        A: Accept,
    {
        tracing::debug!(%peer, %reason, "refusing a connection");
        let Some(response) = self.overload.overloaded(&reason) else {
            return;
        };
        metrics.overloaded(&reason);
        let mut answer = BytesMut::new();
        if self.codec.clone().encode(response, &mut answer).is_err() {
            return;
        }
        let Ok(slot) = refusal_slots.clone().try_acquire_owned() else {
            return;
        };
        let acceptor = self.acceptor.clone();
        connections.spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(REFUSAL_GRACE, async move {
                answer_and_close(acceptor.accept(stream).await?, answer).await
            })
            .await;
        });
    }
}

/// Waits for the peer's first request to start, answers it with `answer`,
/// then reads and discards until the peer closes.
///
/// Answering before the peer has asked anything would be a response with no
/// request outstanding, which an in-order client rightly treats as a broken
/// connection rather than as its first answer. Draining before closing keeps
/// unread input from resetting the connection and destroying the answer
/// before the peer reads it.
async fn answer_and_close(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    answer: BytesMut,
) -> io::Result<()> {
    let mut discard = [0u8; 1024];
    if stream.read(&mut discard).await? == 0 {
        return Ok(());
    }
    stream.write_all(&answer).await?;
    stream.shutdown().await?;
    while stream.read(&mut discard).await? != 0 {}
    Ok(())
}
