//! The in-order pipelining multiplexer: many callers, one connection.
//!
//! [`Pipeline`] is a tower [`Service`](tower::Service) over any
//! [`Transport`](crate::transport::Transport). Many tasks share one
//! connection by cloning the service. A background task ([`Dispatch`]) owns
//! the transport:
//!
//! ```text
//!  caller ─┐                    ┌──────────── Dispatch task ───────────┐
//!  caller ─┼─► queue (bounded ──►  write every queued request, flush   │──► socket
//!  caller ─┘   by max_in_flight) │  once; match responses in order    ◄──── socket
//!                               └──────────────────────────────────────┘
//! ```
//!
//! * Requests are written in the order they were called; responses are
//!   matched to callers in that same order (the protocol must answer in
//!   order, as HTTP/1.1 pipelining, RESP and the KV protocol do).
//! * Requests that queue up while the connection is busy are written together
//!   and flushed once (write coalescing): under concurrency this pipelines
//!   automatically, without callers batching by hand.
//! * At most `max_in_flight` requests are queued or unanswered; past that
//!   `poll_ready` waits (backpressure).
//! * A [`Batch`](crate::batch::Batch) is one call: one message, charged its
//!   length against `max_in_flight`, written back to back, completed once.
//! * Deadlines set by a [`Deadline`](crate::deadline::Deadline) layer above
//!   are kept here with one timer per connection, not one per request (see
//!   [`crate::deadline`]).
//! * With [`Builder::keepalive`] and a ping of the protocol (a request the
//!   builder makes with the function it is given), a connection that has
//!   received nothing for the interval writes the ping in line with the
//!   callers' requests and reads its answer in their place; nothing
//!   received within the timeout after it fails the connection with
//!   [`Error::Unresponsive`] (see [`crate::keepalive`]). Off by default.
//! * When the connection fails every waiting caller gets an [`Error`] at once,
//!   and the service answers `poll_ready` with an error from then on, so that
//!   a reconnect layer knows to replace it.
//!
//! ## Cancellation
//!
//! A caller that drops its [`ResponseFuture`] cancels only itself. Dropped
//! *before* the connection task wrote the request, the request is never
//! sent; dropped *after*, the request has reached the peer and will be
//! answered, and that answer is read and discarded in its place, so every
//! other caller still gets its own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tokio_util::codec::LinesCodec;
//! use tower::{service_fn, ServiceExt};
//! use wirestack::pipeline::Pipeline;
//! use wirestack::server::Server;
//!
//! // An echo server for lines of text, on a free loopback port.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let echo = service_fn(|line: String| async move { Ok::<_, std::convert::Infallible>(line) });
//! tokio::spawn(Server::new(LinesCodec::new()).serve(
//!     listener,
//!     tower::make::Shared::new(echo),
//!     std::future::pending(),
//! ));
//!
//! let transport = wirestack::transport::connect(addr, LinesCodec::new()).await?;
//! let pipeline = Pipeline::new(transport);
//! // Ten callers share the connection; their lines go out in one write.
//! let answers = futures::future::try_join_all(
//!     (0..10).map(|i| pipeline.clone().oneshot(format!("line {i}"))),
//! )
//! .await?;
//! assert_eq!(answers[7], "line 7");
//! # Ok(())
//! # }
//! ```

mod batch;
mod client;
mod connect;
mod dispatch;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod keepalive;
mod message;
mod metrics;
mod sweep;
#[cfg(test)]
mod tests;
mod writes;

// What the tagged multiplexer shares with this one.
pub(crate) use batch::{call_batch, BatchFlow, BatchQueue};
pub(crate) use client::Permit;
pub(crate) use dispatch::{fail_unwritten, Status};
pub(crate) use message::{BatchReply, Message, Reply};
pub(crate) use metrics::PipelineMetrics;
pub(crate) use sweep::Sweep;
pub(crate) use writes::{poll_watch, Step, Writes};

pub use batch::BatchFuture;
pub use client::{Builder, Pipeline, ResponseFuture};
pub use connect::{MakeFuture, MakeMultiplexer, MakePipeline, Spawn, SpawnFuture};
pub use dispatch::Dispatch;
pub use error::Error;
pub use keepalive::{NoPing, Ping, Pinger};
