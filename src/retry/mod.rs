//! Retrying what is safe to retry: a tower retry [`Policy`](tower::retry::Policy).
//!
//! tower's [`Retry`](tower::retry::Retry) middleware does the retrying; this
//! module decides *whether* and *when*:
//!
//! * The protocol says what is safe: its request type implements
//!   [`Idempotent`] and its response type [`RetryableResponse`] (a refusal
//!   such as KV `BUSY`).
//! * The framework says what happened to a failed request
//!   ([`Delivery`]): **not sent** — the [reconnect](crate::reconnect) layer
//!   had no connection and failed fast with
//!   [`Disconnected`](crate::reconnect::error::Disconnected), or the
//!   connection broke while the request was still queued
//!   ([`pipeline::Error::NotSent`](crate::pipeline::Error::NotSent)) — or
//!   **may have been sent** — the [`Pipeline`](crate::pipeline::Pipeline)
//!   connection broke after the request was written, so the peer may have
//!   applied it and the answer been lost.
//! * [`RetryPolicy`] retries a not-sent request always, a may-have-been-sent
//!   request only if it is idempotent, a refusal always; with a jittered
//!   exponential backoff, at most `max_retries` times, and only while a
//!   shared retry budget allows — so retries cannot multiply the load on a
//!   server that is failing.
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
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tower::{Layer, ServiceExt};
//! use wirestack::kv::{self, ClientCodec, Request};
//! use wirestack::reconnect::{ReconnectLayer, TcpConnector};
//! use wirestack::retry::RetryPolicy;
//!
//! let server = kv::spawn_server("127.0.0.1:0", kv::ServerConfig::default()).await?;
//! let policy = RetryPolicy::default();
//! let stats = policy.handle();
//! let service = tower::ServiceBuilder::new()
//!     .layer(policy.into_layer())
//!     .layer(ReconnectLayer::new(server.local_addr()))
//!     .service(TcpConnector::<_, Request>::new(ClientCodec::new()));
//!
//! service.oneshot(Request::Get { key: "k".into() }).await?;
//! assert_eq!(stats.stats().retries, 0);
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod budget;
mod classify;
mod policy;

pub use budget::RetryBudget;
pub use classify::{Delivery, Idempotent, RetryableResponse};
pub use policy::{RetryConfig, RetryHandle, RetryPolicy, RetryStats};
