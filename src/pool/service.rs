//! The [`Pool`] service.

use super::future::{InFlight, ResponseFuture};
use super::metrics::PoolMetrics;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tower::util::rng::{HasherRng, Rng};
use tower::Service;

/// How big a [`Pool`] may grow, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most members (connections) per pool (default 1: no pool).
    pub max_connections: usize,
    /// Calls in flight on the member picked at which a new member is made,
    /// while there is room (default 32).
    pub grow_at: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 1,
            grow_at: 32,
        }
    }
}

impl PoolConfig {
    /// Up to `max_connections` members, grown at the default load.
    pub fn new(max_connections: usize) -> Self {
        PoolConfig {
            max_connections,
            ..PoolConfig::default()
        }
    }
}

/// Spreads calls over up to `max_connections` services; see the
/// [module docs](super).
///
/// Clones share the members. Always ready: the member is picked at `call`,
/// and its readiness is awaited in the response future.
pub struct Pool<S> {
    shared: Arc<Core<S>>,
    rng: HasherRng,
}

pub(super) struct Member<S> {
    service: S,
    pub(super) in_flight: AtomicUsize,
}

type Make<S> = Box<dyn Fn() -> S + Send + Sync>;

struct Core<S> {
    members: RwLock<Vec<Arc<Member<S>>>>,
    make: Make<S>,
    config: PoolConfig,
    size: Arc<AtomicUsize>,
    metrics: PoolMetrics,
}

impl<S> Drop for Core<S> {
    fn drop(&mut self) {
        self.metrics.dropped(self.size.load(Ordering::Relaxed));
    }
}

/// A cheap handle to read a [`Pool`]'s figures.
#[derive(Debug, Clone)]
pub struct PoolHandle {
    size: Arc<AtomicUsize>,
}

/// What a [`Pool`] holds; see [`PoolHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Members (connection services) the pool has made.
    pub connections: usize,
}

impl PoolHandle {
    /// A snapshot of the figures.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            connections: self.size.load(Ordering::Relaxed),
        }
    }
}

impl<S> Pool<S> {
    /// A pool whose members `make` makes; the first is made now.
    pub fn new(make: impl Fn() -> S + Send + Sync + 'static, config: PoolConfig) -> Self {
        let first = Arc::new(Member {
            service: make(),
            in_flight: AtomicUsize::new(0),
        });
        let metrics = PoolMetrics::new();
        metrics.grew(1);
        Pool {
            shared: Arc::new(Core {
                members: RwLock::new(vec![first]),
                make: Box::new(make),
                config: PoolConfig {
                    max_connections: config.max_connections.max(1),
                    grow_at: config.grow_at.max(1),
                },
                size: Arc::new(AtomicUsize::new(1)),
                metrics,
            }),
            rng: HasherRng::new(),
        }
    }

    /// A handle on the pool's size.
    pub fn handle(&self) -> PoolHandle {
        PoolHandle {
            size: self.shared.size.clone(),
        }
    }

    /// The member a call goes to: the less loaded of two picked at random,
    /// or a new one if that one is busy and there is room.
    fn pick(&mut self) -> Arc<Member<S>> {
        let shared = &*self.shared;
        let chosen = {
            let members = shared
                .members
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let len = members.len() as u64;
            let chosen = if len < 2 {
                members[0].clone()
            } else {
                let a = self.rng.next_range(0..len) as usize;
                let b = self.rng.next_range(0..len - 1) as usize;
                // Two distinct members, uniformly.
                let b = if b >= a { b + 1 } else { b };
                let (a, b) = (&members[a], &members[b]);
                if b.in_flight.load(Ordering::Relaxed) < a.in_flight.load(Ordering::Relaxed) {
                    b.clone()
                } else {
                    a.clone()
                }
            };
            if chosen.in_flight.load(Ordering::Relaxed) < shared.config.grow_at
                || members.len() >= shared.config.max_connections
            {
                return chosen;
            }
            chosen
        };
        let mut members = shared
            .members
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if members.len() >= shared.config.max_connections {
            return chosen;
        }
        let member = Arc::new(Member {
            service: (shared.make)(),
            in_flight: AtomicUsize::new(0),
        });
        members.push(member.clone());
        shared.size.store(members.len(), Ordering::Relaxed);
        shared.metrics.grew(1);
        tracing::debug!(connections = members.len(), "pool grew");
        member
    }
}

impl<S> Clone for Pool<S> {
    fn clone(&self) -> Self {
        Pool {
            shared: self.shared.clone(),
            rng: HasherRng::new(),
        }
    }
}

impl<S> fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("connections", &self.handle().stats().connections)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<S, Req> Service<Req> for Pool<S>
where
    S: Service<Req> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let member = self.pick();
        let service = member.service.clone();
        ResponseFuture::new(service, request, InFlight::new(member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn grows_under_load_up_to_its_limit_and_spreads_calls() {
        let made = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let pool = Pool::new(
            {
                let (made, release) = (made.clone(), release.clone());
                move || {
                    let id = made.fetch_add(1, Ordering::Relaxed);
                    let release = release.clone();
                    tower::service_fn(move |()| {
                        let release = release.clone();
                        async move {
                            release.notified().await;
                            Ok::<_, std::convert::Infallible>(id)
                        }
                    })
                }
            },
            PoolConfig {
                max_connections: 3,
                grow_at: 2,
            },
        );
        let calls: Vec<_> = (0..12).map(|_| tokio::spawn(pool.clone().oneshot(()))).collect();
        tokio::task::yield_now().await;
        while pool.handle().stats().connections < 3 {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        release.notify_waiters();
        let mut used = std::collections::HashSet::new();
        for call in calls {
            loop {
                release.notify_waiters();
                if call.is_finished() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            used.insert(call.await.unwrap().unwrap());
        }
        assert_eq!(made.load(Ordering::Relaxed), 3, "never past max_connections");
        assert_eq!(used.len(), 3, "every member took calls: {used:?}");
    }

    #[tokio::test]
    async fn a_lightly_loaded_pool_stays_at_one_member() {
        let pool = Pool::new(
            || tower::service_fn(|n: u8| async move { Ok::<_, std::convert::Infallible>(n) }),
            PoolConfig::new(8),
        );
        for n in 0..100 {
            assert_eq!(pool.clone().oneshot(n).await.unwrap(), n);
        }
        assert_eq!(pool.handle().stats().connections, 1);
    }
}
