//! Middleware that gives every request a deadline, without a timer per
//! request when the layers below can keep it.
//!
//! [`Deadline`] does what tower's `Timeout` does — a request not answered
//! within `timeout` of its call ends with [`Elapsed`] — at a fraction of the
//! cost on a pipelined connection. tower's `Timeout` registers a timer with
//! the runtime for every request and cancels it when the answer comes; at
//! hundreds of thousands of requests a second that bookkeeping is a large
//! share of a client's CPU. Here the deadline travels down with the call
//! instead:
//!
//! * The [pipeline](crate::pipeline) stores it with the request and keeps
//!   **one timer per connection**, armed for the earliest deadline among its
//!   queued and unanswered requests. When it fires, every request whose
//!   deadline has passed is answered with a timeout (a request not yet
//!   written is never written), and the timer is re-armed for the next one.
//!   Requests answered in time cost no timer operation at all.
//! * The [retry](crate::retry) layer does not wait for a backoff that would
//!   end past the deadline: it returns the last answer instead (a refusal is
//!   reported as the refusal, not as a timeout).
//! * Wherever nothing below has promised to wake the request by its deadline
//!   — a request waiting for a connection, or handed to another task by a
//!   layer of yours — the [`ResponseFuture`] arms a timer of its own, so the
//!   deadline holds whatever the stack below is.
//!
//! How the layers below learn the deadline and make that promise is a
//! thread-local set around each `call` and `poll`, so it passes through
//! tower layers of yours that call and poll their inner service in place.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use tokio_util::codec::LinesCodec;
//! use tower::{Layer, ServiceExt};
//! use wirestack::deadline::{DeadlineLayer, Elapsed};
//! use wirestack::pipeline::Pipeline;
//!
//! // A peer that reads lines and never answers.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (socket, _) = listener.accept().await?;
//!     tokio::time::sleep(Duration::from_secs(60)).await;
//!     drop(socket);
//!     Ok::<_, std::io::Error>(())
//! });
//!
//! let transport = wirestack::transport::connect(addr, LinesCodec::new()).await?;
//! let client = DeadlineLayer::new(Duration::from_millis(50)).layer(Pipeline::<String, String>::new(transport));
//! let error = client.oneshot("hello".to_string()).await.unwrap_err();
//! assert!(error.is::<Elapsed>());
//! # Ok(())
//! # }
//! ```

pub(crate) mod context;
mod error;
mod future;
mod layer;
mod metrics;
mod service;

pub use error::Elapsed;
pub use future::ResponseFuture;
pub use layer::DeadlineLayer;
pub use service::Deadline;
