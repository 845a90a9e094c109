//! Serve any tower `Service` over any codec, pipelined, with graceful shutdown.
//!
//! [`Server`] accepts connections from a `TcpListener`, frames each with a
//! clone of a codec, asks a [`MakeService`] for a service per connection and
//! serves it pipelined: it reads ahead, runs up to
//! [`ServeConfig::max_in_flight_per_connection`] requests of one connection at
//! once, writes the responses in request order and flushes when no more input
//! is ready.
//!
//! ```text
//!              ┌──────────── one task per connection ────────────┐
//! listener ──► │ Framed(codec) ─► service.call() × N in flight   │
//!   accept     │      ▲                 │ responses in order      │
//!              │      └── flush ◄───────┘                         │
//!              └─────────────────────────────────────────────────┘
//! ```
//!
//! Shutdown is a future passed in: when it completes the server stops
//! accepting, every connection stops reading (no new work starts), answers
//! what it had received, flushes and closes; [`Server::serve`] returns when
//! the last connection has.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tokio::net::TcpListener;
//! use wirestack::kv::{KvService, ServerCodec, Store};
//! use wirestack::server::Server;
//!
//! let listener = TcpListener::bind("127.0.0.1:7878").await?;
//! let service = KvService::new(Store::new());
//! Server::new(ServerCodec::new())
//!     .serve(listener, tower::make::Shared::new(service), async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await
//! # }
//! ```

mod connection;

pub use connection::ConnectionError;

use crate::transport::BoxError;
use connection::Connection;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;
use tower::{MakeService, Service};

/// How the server treats each connection.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The most requests of one connection being worked on or waiting to be
    /// written at once (default 128). Past it the connection stops reading,
    /// which pushes back on the client through TCP.
    pub max_in_flight_per_connection: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_in_flight_per_connection: 128,
        }
    }
}

/// A pipelined server for one codec.
#[derive(Debug, Clone)]
pub struct Server<C> {
    codec: C,
    config: ServeConfig,
}

impl<C> Server<C> {
    /// A server that frames every connection with a clone of `codec`.
    pub fn new(codec: C) -> Self {
        Server {
            codec,
            config: ServeConfig::default(),
        }
    }

    /// Replaces the connection settings.
    pub fn with_config(mut self, config: ServeConfig) -> Self {
        self.config = config;
        self
    }

    /// Accepts and serves connections until `shutdown` completes, then
    /// drains every connection and returns.
    ///
    /// `make_service` is called with each peer's address; use
    /// [`tower::make::Shared`] to serve clones of one service.
    pub async fn serve<M, Req, F>(
        self,
        listener: TcpListener,
        mut make_service: M,
        shutdown: F,
    ) -> io::Result<()>
    where
        C: Decoder<Item = Req> + Encoder<M::Response> + Clone + Send + 'static,
        <C as Decoder>::Error: fmt::Display + Send,
        <C as Encoder<M::Response>>::Error: Into<BoxError> + Send,
        M: MakeService<SocketAddr, Req>,
        M::MakeError: Into<BoxError>,
        M::Service: Send + 'static,
        M::Future: Send,
        M::Response: Send + 'static,
        M::Error: Into<BoxError> + Send,
        <M::Service as Service<Req>>::Future: Send,
        Req: Send + 'static,
        F: Future<Output = ()>,
    {
        let stop = CancellationToken::new();
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
            let transport = Framed::new(stream, self.codec.clone());
            let connection = Connection::new(
                transport,
                service,
                self.config.max_in_flight_per_connection,
                stop.clone().cancelled_owned(),
            );
            connections.spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            });
        }

        drop(listener);
        stop.cancel();
        while let Some(finished) = connections.join_next().await {
            if let Err(error) = finished {
                tracing::error!(%error, "a connection task failed while draining");
            }
        }
        Ok(())
    }
}
