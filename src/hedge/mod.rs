//! Hedged requests: a late idempotent call's second copy, sent to another
//! endpoint, the first answer taken — within a budget of extra load.
//!
//! One slow or stalled endpoint among several puts the calls that reach it
//! at its latency; a [balancer](crate::balance) learns to avoid it, but the
//! calls already on it wait. [`Hedge`] sends such a call again elsewhere
//! once it has waited longer than most calls do, as finagle's
//! `BackupRequestFilter` and gRPC's hedging policy do:
//!
//! * **When.** After a delay taken from the observed latency: a
//!   percentile ([`HedgeConfig::percentile`], p95 by default) of the
//!   answers of the last one to two windows, kept in a small log-linear
//!   histogram (finagle derives its delay the same way; gRPC takes a fixed
//!   one). Until [`HedgeConfig::min_samples`] answers are in, nothing is
//!   hedged. A call the budget refuses tries again after twice the wait,
//!   up to six times, so that a call stuck on a stalled endpoint is
//!   answered as soon as the budget allows.
//! * **What.** Only a request the protocol says is
//!   [idempotent](crate::retry::Idempotent) — a `GET`, never an `INCR` —
//!   since both copies may be applied. One second copy at most. A
//!   [`Batch`](crate::batch::Batch) goes whole to one endpoint, never
//!   hedged.
//! * **Where.** Elsewhere: the service under the hedge implements
//!   [`Elsewhere`] (a [`Balance`](crate::balance::Balance) does), and the
//!   hedge hands it the [`Tried`] endpoints of the call, so the copy goes
//!   to an endpoint the first did not. With no other endpoint up, there is
//!   no second copy.
//! * **The race.** The first answer wins; the other copy is dropped,
//!   which is the framework's cancel: a pipeline discards its answer, a
//!   multiplexer with a cancel frame sends one. A copy that fails while
//!   the other is on its way is forgotten, and the other awaited.
//! * **How many.** A budget ([`HedgeConfig::budget_ratio`], 5% of calls by
//!   default, plus a small floor per second): the same sliding-window
//!   [`RetryBudget`](crate::retry::RetryBudget) the retry layer uses, not
//!   a copy. With [`Hedge::sharing`] a hedge also draws from the retry
//!   layer's budget ([`SharedBudget`]), so when a cluster is failing and
//!   retries spend that budget, hedges stop: a slow cluster is not sent
//!   double its load. [`ClientBuilder::balance_hedged`](crate::builder::ClientBuilder::balance_hedged)
//!   builds it so.
//!
//! [`HedgeHandle::stats`] counts calls, hedges, hedges that won and hedges
//! the budget refused; the same are metrics (see [`crate::metrics::names`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use std::time::Duration;
//! use tower::util::BoxCloneSyncService;
//! use tower::{service_fn, ServiceExt};
//! use wirestack::balance::{Balance, BalanceConfig, Choose};
//! use wirestack::hedge::{Hedge, HedgeConfig};
//! use wirestack::retry::Idempotent;
//! use wirestack::route::Probe;
//!
//! #[derive(Debug, Clone)]
//! struct Get;
//! impl Idempotent for Get { fn is_idempotent(&self) -> bool { true } }
//! impl Probe for Get { fn probe() -> Self { Get } }
//!
//! // Two endpoints: "fast" answers in 1 ms, "stuck" never.
//! let fast = service_fn(|_: Get| async { tokio::time::sleep(Duration::from_millis(1)).await; Ok::<_, wirestack::BoxError>("fast") });
//! let stuck = service_fn(|_: Get| async { std::future::pending::<()>().await; Ok::<_, wirestack::BoxError>("stuck") });
//! // Round robin, so that every other call goes to "stuck" first.
//! let endpoints = [("fast", BoxCloneSyncService::new(fast)), ("stuck", BoxCloneSyncService::new(stuck))];
//! let balance = Balance::new(endpoints, BalanceConfig::new(Choose::RoundRobin))?;
//! let hedge = Hedge::new(balance, HedgeConfig { min_samples: 1, ..HedgeConfig::default() });
//! assert_eq!(hedge.clone().oneshot(Get).await?, "fast"); // a first latency to go by
//! for _ in 0..6 {
//!     // Whichever endpoint a call goes to first, "fast" answers it.
//!     assert_eq!(hedge.clone().oneshot(Get).await?, "fast");
//! }
//! assert_eq!(hedge.handle().stats().wins, 3);
//! # Ok(())
//! # }
//! ```

mod budget;
mod config;
mod elsewhere;
mod future;
mod latency;
mod metrics;
mod service;

pub use budget::SharedBudget;
pub use config::HedgeConfig;
pub use elsewhere::{Elsewhere, Tried};
pub use future::ResponseFuture;
pub use service::{Hedge, HedgeHandle, HedgeLayer, HedgeStats};

#[cfg(test)]
mod tests;
