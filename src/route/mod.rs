//! Routing: one client over several endpoints, each request sent to the
//! endpoint its key belongs to.
//!
//! [`Router`] is a `Service` over one stack per endpoint (any
//! [`EndpointStack`], typically what
//! [`ClientBuilder::route`](crate::builder::ClientBuilder::route) builds:
//! deadline, retry, a [pool](crate::pool) of reconnecting pipelines):
//!
//! ```text
//!                         ┌─► endpoint "a": stack ─► pool of connections
//!   call(request) ─ key ──┼─► endpoint "b": stack ─► ...
//!    (RouteKey)  Rendezvous└─► endpoint "c": ejected ─► fails fast (Ejected)
//! ```
//!
//! * **Placement.** The protocol names a request's key ([`RouteKey`], as it
//!   says what is [idempotent](crate::retry::Idempotent)); the key's
//!   endpoint is chosen by rendezvous hashing ([`Rendezvous`]) over the
//!   endpoints' names: adding an endpoint to `n` moves `1/(n+1)` of the keys,
//!   all to the new one. A request without a key goes to any endpoint that
//!   is up. A key costs one score per endpoint; [`Router::with_placement`]
//!   chooses another [`Placement`]: `RendezvousTable` ([`RendezvousTable`])
//!   does the same over a precomputed table of slots, one lookup per key
//!   however many endpoints; `Ketama` (feature `ketama`) places keys as
//!   libmemcached does, so a client shares a memcached cluster with the
//!   ketama clients already on it.
//! * **Batches.** A [`Batch`](crate::batch::Batch) is split per endpoint,
//!   the parts are sent in parallel (each one batch to its endpoint) and
//!   the answers put back in the caller's order, one result per request.
//!   A part counts once against its endpoint.
//! * **Health.** Each endpoint's stack has an [`Accrual`] in it, which
//!   records the outcome of every call to it ([`Router::new`] wraps each
//!   stack in one; [`ClientBuilder::route`](crate::builder::ClientBuilder::route)
//!   puts it under the retry layer, to record each attempt). An endpoint
//!   that fails [`HealthConfig::failures`] times within
//!   [`HealthConfig::window`] is ejected: calls routed to it fail at once
//!   with [`Ejected`], naming it (the [failure rule](crate::failure) says
//!   "not sent"), while the other endpoints go on as before. A task probes
//!   it with the protocol's [`Probe`] request, with backoff, and brings it
//!   back when it answers. Its keys are not moved elsewhere: a key has one
//!   home, so a reader never misses a write made elsewhere meanwhile.
//! * **Observable.** Ejections, probes and returns are `tracing` events
//!   (fields `endpoint`, ...); [`RouterHandle::stats`] reads every
//!   endpoint's state and counters.
//! * **Errors** of an endpoint's stack come back wrapped in an
//!   [`EndpointError`] that names the endpoint; the failure rule looks
//!   through it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tower::{service_fn, ServiceExt};
//! use wirestack::route::{Accrual, HealthConfig, Probe, RouteKey, Router};
//!
//! // A protocol's two answers: the key of a request, and a probe.
//! #[derive(Debug)]
//! struct Get(String);
//! impl RouteKey for Get {
//!     fn route_key(&self) -> Option<&[u8]> { Some(self.0.as_bytes()) }
//! }
//! impl Probe for Get {
//!     fn probe() -> Self { Get(String::new()) }
//! }
//!
//! // Three endpoints; each answers with its name, and is wrapped in an
//! // `Accrual` that records its outcomes.
//! let endpoint = |name: &'static str| service_fn(move |_: Get| async move { Ok::<_, wirestack::BoxError>(name) });
//! let router: Router<Accrual<_>> = Router::new(
//!     [("a", endpoint("a")), ("b", endpoint("b")), ("c", endpoint("c"))],
//!     HealthConfig::default(),
//! )?;
//! let home = router.endpoint_of(b"user:42").to_string();
//! let answer = router.clone().oneshot(Get("user:42".into())).await?;
//! assert_eq!(answer, home);
//! # Ok(())
//! # }
//! ```

mod accrual;
mod batch;
mod bounds;
mod endpoint;
mod error;
mod future;
mod hash;
mod health;
#[cfg(feature = "ketama")]
mod ketama;
mod key;
mod metrics;
pub(crate) mod outlier;
mod placement;
mod recorded;
pub(crate) mod scatter;
mod service;
mod stats;
mod table;

pub use accrual::Accrual;
pub use bounds::EndpointStack;
pub(crate) use endpoint::EndpointInfo;
pub use error::{Ejected, EndpointError, RouteError};
pub use future::ResponseFuture;
pub use hash::Rendezvous;
pub use health::{EndpointState, HealthConfig};
#[cfg(feature = "ketama")]
#[cfg_attr(docsrs, doc(cfg(feature = "ketama")))]
pub use ketama::Ketama;
pub use key::{Probe, RouteKey};
pub use placement::Placement;
pub use service::Router;
pub use stats::{EndpointStats, RouterHandle};
pub use table::RendezvousTable;

#[cfg(test)]
mod tests;
