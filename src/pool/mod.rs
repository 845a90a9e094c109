//! Middleware that spreads calls over several connections to one endpoint:
//! a pool that grows lazily and picks by power of two choices.
//!
//! [`Pool`] holds up to [`PoolConfig::max_connections`] connection services
//! (typically [`Reconnect`](crate::reconnect::Reconnect)s, each keeping one
//! pipelined connection alive), made by a function it is given:
//!
//! * **Least loaded of two.** Each call picks two members at random and
//!   goes to the one with fewer calls in flight (a batch is one call) —
//!   the power of two choices, as tower's `p2c` balancer does it.
//! * **Lazily grown.** It starts with one member; when the member picked
//!   already has [`PoolConfig::grow_at`] calls in flight and the pool is
//!   not full, a new member is made and takes the call. A pool under light
//!   load stays at one connection.
//!
//! A pipelined connection already carries many callers at once; more
//! connections help when one connection's task (one core) or socket is the
//! bottleneck, or to keep one slow answer from delaying the ones behind it.
//!
//! Why not tower's `balance::p2c::Balance`: it needs `&mut self` to pick
//! and is not `Clone`, so sharing it among tasks takes a `Buffer` — one
//! more channel and task hop per request — and its members come from a
//! `Discover` stream, where this pool makes its own on demand. This one is
//! shared by clones, picks with tower's random source, and counts load as
//! tower's `PendingRequests` does (calls in flight), on an atomic.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tower::{service_fn, ServiceExt};
//! use wirestack::pool::{Pool, PoolConfig};
//!
//! let pool = Pool::new(
//!     || service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n + 1) }),
//!     PoolConfig { max_connections: 4, grow_at: 8 },
//! );
//! assert_eq!(pool.clone().oneshot(1).await?, 2);
//! assert_eq!(pool.handle().stats().connections, 1, "grown only under load");
//! # Ok(())
//! # }
//! ```

mod future;
mod metrics;
mod service;

pub use future::ResponseFuture;
pub use service::{Pool, PoolConfig, PoolHandle, PoolStats};
