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
//! * When the connection fails every waiting caller gets an [`Error`] at once,
//!   and the service answers `poll_ready` with an error from then on, so that
//!   a reconnect layer knows to replace it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tower::ServiceExt;
//! use wirestack::kv::{self, ClientCodec, Request, Status};
//! use wirestack::pipeline::Pipeline;
//!
//! let server = kv::spawn_server("127.0.0.1:0", kv::ServerConfig::default()).await?;
//! let transport = wirestack::transport::connect(server.local_addr(), ClientCodec::new()).await?;
//! let pipeline = Pipeline::new(transport);
//!
//! let response = pipeline.oneshot(Request::Ping { payload: "hi".into() }).await?;
//! assert_eq!(response.status, Status::Ok);
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod client;
mod dispatch;
mod error;

pub use client::{Builder, Pipeline, ResponseFuture};
pub use dispatch::Dispatch;
pub use error::Error;
