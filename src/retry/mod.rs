//! Retrying what is safe to retry: the [`Retry`] middleware and its
//! [`RetryPolicy`].
//!
//! [`RetryPolicy`] decides *whether* and *when* to retry; [`Retry`] does the
//! retrying (tower's own `Retry` can use the policy too: it is a tower retry
//! [`Policy`](tower::retry::Policy)). [`Retry`] costs less per request than
//! tower's (it does not clone the inner service and the policy for every
//! call), keeps a request's [deadline](crate::deadline) — it returns the last
//! answer rather than wait for a backoff past it — and takes a
//! [`Batch`](crate::batch::Batch) as one unit.
//!
//! * The protocol says what is safe: its request type implements
//!   [`Idempotent`] and its response type [`RetryableResponse`] (a refusal
//!   such as KV `BUSY`).
//! * The framework says what happened to a failed request: the
//!   [failure rule](crate::failure) sorts its error into **not sent** (no
//!   connection, or the connection broke while the request was still
//!   queued) or **may have been sent** (the connection broke after the
//!   request was written, so the peer may have applied it and the answer
//!   been lost) — [`Delivery`](crate::failure::Delivery) — or neither.
//! * [`RetryPolicy`] retries a not-sent request always, a may-have-been-sent
//!   request only if it is idempotent, a refusal always; with a jittered
//!   exponential backoff, at most `max_retries` times, and only while a
//!   shared retry budget allows — so retries cannot multiply the load on a
//!   server that is failing.
//!
//! This module does not know the [reconnect](crate::reconnect) layer or any
//! protocol: it sees requests, responses and the failure rule's answer.
//!
//! [`Retry`] has one driver for every shape of call ([`ResponseFuture`],
//! and [`BatchFuture`] for a batch). It and tower's `Retry` driving a
//! [`RetryPolicy`] keep a call's retries in the same per-call state and
//! decide each retry with the same code (why, whether allowed, counted);
//! only ours then reports [`MaybeApplied`] — tower's returns the last
//! answer as it is.
//!
//! ## The lost-answer case
//!
//! A `PUT k v` whose connection breaks after it was written may have been
//! applied. Retrying it is safe in the sense that the store ends with
//! `k = v` either way — unless another client wrote `k` between the first
//! attempt and the retry, in which case the retry overwrites that newer
//! value. A `DELETE` retried after a lost answer deletes nothing the second
//! time and answers `NOT_FOUND`, so the caller learns "did not exist" for a
//! key it just deleted. Protocols that cannot accept these effects answer
//! `false` from [`Idempotent::is_idempotent`] for such requests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use tower::{service_fn, Layer, ServiceExt};
//! use wirestack::{pipeline, BoxError};
//! use wirestack::retry::{Idempotent, RetryPolicy, RetryableResponse};
//!
//! // A protocol's two answers: an INCR is not idempotent, a refusal is "BUSY".
//! #[derive(Clone)]
//! struct Incr;
//! impl Idempotent for Incr {
//!     fn is_idempotent(&self) -> bool { false }
//! }
//! struct Reply(&'static str);
//! impl RetryableResponse for Reply {
//!     fn is_retryable(&self) -> bool { self.0 == "BUSY" }
//! }
//!
//! // A connection that fails twice before the request is written, then
//! // refuses once, then answers.
//! let calls = Arc::new(AtomicU32::new(0));
//! let flaky = service_fn({
//!     let calls = calls.clone();
//!     move |_: Incr| {
//!         let call = calls.fetch_add(1, Ordering::Relaxed);
//!         async move {
//!             match call {
//!                 0 | 1 => Err(BoxError::from(pipeline::Error::NotSent(Arc::new(pipeline::Error::Closed)))),
//!                 2 => Ok(Reply("BUSY")),
//!                 _ => Ok(Reply("1")),
//!             }
//!         }
//!     }
//! });
//! let policy = RetryPolicy::default();
//! let stats = policy.handle();
//! let reply = policy.into_layer().layer(flaky).oneshot(Incr).await?;
//! assert_eq!(reply.0, "1");
//! assert_eq!(stats.stats().retries, 3);
//! # Ok(())
//! # }
//! ```

mod batch;
mod budget;
mod classify;
mod error;
mod future;
mod layer;
mod metrics;
mod policy;
mod service;
mod tries;

pub use batch::BatchFuture;
pub use budget::RetryBudget;
pub use classify::{Idempotent, RetryableResponse};
pub use error::MaybeApplied;
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{RetryConfig, RetryHandle, RetryPolicy, RetryStats};
pub use service::Retry;

#[cfg(test)]
mod tests;
