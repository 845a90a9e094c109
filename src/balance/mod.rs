//! Balancing: one client over several *equivalent* endpoints — replicas,
//! stateless servers, a Redis primary and its replicas for reads — each
//! call sent to the one likely to answer soonest.
//!
//! [`Balance`] is a `Service` over one stack per endpoint (typically what
//! [`ClientBuilder::balance`](crate::builder::ClientBuilder::balance)
//! builds: an [`Accrual`](crate::route::Accrual) over a
//! [pool](crate::pool) of reconnecting connections):
//!
//! ```text
//!                       ┌─► "a": cost = rtt(a) × (in flight(a) + 1) ─► pool
//!   call(request) ─ p2c ┼─► "b": ...                                    (the cheaper
//!                       └─► "c": ejected ─► not chosen                   of two at random)
//! ```
//!
//! * **Choice.** By default the power of two choices over a peak-EWMA of
//!   latency weighted by calls in flight ([`Choose::PeakEwma`]), as
//!   finagle's `Balancers.p2cPeakEwma` and linkerd2-proxy (tower's
//!   `PeakEwma`) do it: two endpoints picked at random, the call goes to the
//!   cheaper. A slow answer raises an estimate at once and a fast one lowers
//!   it slowly, so one slow endpoint among five stops taking a fifth of the
//!   calls after its first slow answers; the estimate decays while the
//!   endpoint is avoided, so it is tried again later. Two at random rather
//!   than the best of all: no herd on the one that looks best, and no scan.
//!   [`Choose::RoundRobin`] and [`Choose::LeastLoaded`] (p2c on calls in
//!   flight, as the [pool](crate::pool) chooses) are there to compare
//!   (`BENCHMARKS.md` has the experiment).
//! * **Ejection.** Each endpoint's stack has the router's
//!   [`Accrual`](crate::route::Accrual): K failures within a window eject
//!   it, and a task probes it back with the protocol's
//!   [`Probe`](crate::route::Probe) — the same code, not a copy. A
//!   balancer adds Envoy's other two rules: ejection by success rate
//!   ([`SuccessRate`], Envoy's failure-percentage detection, per endpoint)
//!   and a cap on the share of endpoints out at once
//!   ([`BalanceConfig::max_ejected_percent`], Envoy's
//!   `max_ejection_percent`), so that a fault on the client's side does not
//!   eject everything. Unlike the router, a call never goes to an ejected
//!   endpoint while another is up: any endpoint may answer it.
//! * **At run time.** [`Balance::insert`], [`Balance::remove`] and
//!   [`BalanceHandle::add`]/[`remove`](BalanceHandle::remove) change the
//!   endpoints; a call chooses from a snapshot of them, and a call in flight
//!   on a removed endpoint finishes there.
//! * **Hedging.** A [`Hedge`](crate::hedge::Hedge) above a balancer sends a
//!   late call's second copy to another endpoint: the balancer implements
//!   [`Elsewhere`](crate::hedge::Elsewhere), choosing among the endpoints
//!   the call has not tried.
//! * **Errors** of an endpoint's stack come back wrapped in an
//!   [`EndpointError`](crate::route::EndpointError) that names it; a call
//!   with no endpoint at all fails with [`BalanceError::NoEndpoints`].
//!
//! Why not tower's `balance::p2c::Balance`: it needs `&mut self` to choose
//! and is not `Clone` (sharing it takes a `Buffer`: a channel and a task
//! hop per call), its endpoints come from a `Discover` stream, and it
//! knows no ejection. This one is shared by clones, as the [pool](crate::pool)
//! and the [router](crate::route) are.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tower::{service_fn, ServiceExt};
//! use wirestack::balance::{Balance, BalanceConfig, Choose};
//! use wirestack::route::Probe;
//!
//! #[derive(Debug)]
//! struct Ping;
//! impl Probe for Ping {
//!     fn probe() -> Self { Ping }
//! }
//!
//! let endpoint = |name: &'static str| service_fn(move |_: Ping| async move { Ok::<_, wirestack::BoxError>(name) });
//! let balance = Balance::new([("a", endpoint("a")), ("b", endpoint("b"))], BalanceConfig::new(Choose::RoundRobin))?;
//! let first = balance.clone().oneshot(Ping).await?;
//! let second = balance.clone().oneshot(Ping).await?;
//! assert_ne!(first, second, "round robin");
//!
//! // Endpoints come and go at run time.
//! balance.insert("c", endpoint("c"))?;
//! assert!(balance.remove("a"));
//! assert_eq!(balance.handle().stats().len(), 2);
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod future;
mod handle;
mod load;
mod metrics;
mod service;

pub use crate::route::outlier::SuccessRate;
pub use config::{BalanceConfig, Choose};
pub use error::BalanceError;
pub use future::ResponseFuture;
pub use handle::{BalanceHandle, EndpointLoad};
pub use service::Balance;
pub(crate) use service::Parts;

#[cfg(test)]
mod tests;
