//! Middleware that keeps a connection alive: when it breaks, make a new one.
//!
//! [`Reconnect`] owns a *connector* — any `Service<Target>` whose response is
//! a connection service, such as
//! [`MakePipeline`](crate::pipeline::MakePipeline) over a
//! [`TcpConnector`](crate::transport::TcpConnector), which makes a
//! [`Pipeline`](crate::pipeline::Pipeline) over TCP and a codec — and a
//! background task that uses it:
//!
//! ```text
//!             ┌─────────── reconnect task (one per Reconnect and its clones) ──────────┐
//!             │ connect ──ok──► publish Connected(gen n) ──► wait for "gen n broke" ─┐  │
//!             │    ▲ └─err/timeout──► publish Down ──► sleep(backoff) ──┐            │  │
//!             │    └────────────────────────────────────────────────────┴────────────┘  │
//!             └────────────────────────────────────────────────────────────────────────┘
//!  handles:   poll_ready: inner.poll_ready(); an error there means "gen n broke" → report
//!             call: Connected → send · Connecting → wait for the attempt · Down → fail fast
//! ```
//!
//! * **Shared, cheap to clone.** Every clone reads the current connection from
//!   a `tokio::sync::watch` channel and holds its own clone of it (a
//!   `Pipeline` clone shares the one socket). Only the task connects, so one
//!   attempt runs at a time however many callers notice the failure.
//! * **Failure is noticed by callers.** A connection service signals that it
//!   is broken by failing `poll_ready`, as `Pipeline` does once its socket
//!   failed; the first handle that sees it reports the generation broken and
//!   the task replaces it. No request is ever sent on a connection known
//!   broken.
//! * **Backoff.** Failed attempts are spaced by a [`Backoff`]: exponential from
//!   `base` to `cap` with full jitter, never less than `base`, so the loop
//!   never spins. Each attempt has its own connect timeout. A connection that
//!   breaks soon after it was made counts as a failure too, so a peer that
//!   accepts and drops cannot make it spin either. After
//!   [`max_attempts`](ReconnectConfig::max_attempts) failures in a row the
//!   task waits for demand before it tries again; so it does at once after
//!   a handshake the peer [refused](crate::failure::Failure::Rejected) (a
//!   wrong credential), which trying again by itself would only repeat.
//! * **Fail fast while down.** Once an attempt has failed, calls fail at once
//!   with [`Disconnected`](error::Disconnected) — nothing queues without bound
//!   behind a dead endpoint. Such a request was never sent, which is what
//!   lets the [retry](crate::retry) layer retry it whatever it does.
//! * **Observable.** Each failed attempt, lost connection and reconnect is a
//!   `tracing` event; [`ReconnectHandle::stats`] counts them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tokio_util::codec::LinesCodec;
//! use tower::ServiceExt;
//! use wirestack::pipeline::{self, MakePipeline};
//! use wirestack::reconnect::{Reconnect, ReconnectConfig};
//! use wirestack::transport::TcpConnector;
//! # use wirestack::server::Server;
//!
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # let echo = tower::service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line) });
//! # tokio::spawn(Server::new(LinesCodec::new()).serve(listener, tower::make::Shared::new(echo), std::future::pending()));
//! // A line-echo server listens on `addr`.
//! let connector = MakePipeline::<_, String>::new(TcpConnector::new(LinesCodec::new()), pipeline::Builder::new());
//! let service = Reconnect::new(connector, addr, ReconnectConfig::default());
//! service.wait_connected().await?;
//!
//! let stats = service.handle();
//! assert_eq!(service.clone().oneshot("hello".to_string()).await?, "hello");
//! assert_eq!(stats.stats().connects, 1);
//! # Ok(())
//! # }
//! ```
//!
//! [`Backoff`]: crate::backoff::Backoff

pub mod error;
mod future;
mod layer;
mod metrics;
mod service;

pub use future::ResponseFuture;
pub use layer::{ReconnectConfig, ReconnectLayer};
pub use service::{Reconnect, ReconnectHandle, ReconnectStats};
