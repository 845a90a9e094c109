//! The [`Balance`] service, its shared table of endpoints, and the choice
//! of one.

use super::config::{BalanceConfig, Choose};
use super::error::BalanceError;
use super::future::ResponseFuture;
use super::handle::BalanceHandle;
use super::load::{InFlight, Load};
use super::metrics::BalanceMetrics;
use crate::hedge::{Elsewhere, Tried};
use crate::route::outlier::{EjectionCap, Outlier};
use crate::route::{Accrual, EndpointInfo};
use crate::BoxError;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tower::util::rng::{HasherRng, Rng};
use tower::Service;

/// Makes an endpoint added at run time from its address: its pool's handle
/// (for its stats) and its stack, from its info (for the accrual in it).
pub(crate) type Make<S> = Box<dyn Fn(&str) -> Parts<S> + Send + Sync>;

/// What [`Make`] makes of an address.
pub(crate) struct Parts<S> {
    pub(crate) pool: Option<crate::pool::PoolHandle>,
    pub(crate) stack: Box<dyn FnOnce(Arc<EndpointInfo>) -> S + Send>,
}

/// Spreads calls over equivalent endpoints; see the [module docs](super).
///
/// Cheap to clone: clones share the endpoints, their load and health.
/// Always ready: the endpoint is chosen at `call`, and its stack's
/// readiness is awaited in the response future.
pub struct Balance<S> {
    pub(super) shared: Arc<Shared<S>>,
    rng: HasherRng,
}

/// What every clone of a [`Balance`] shares.
pub(super) struct Shared<S> {
    /// The endpoints, replaced whole when one is added or removed, so that
    /// a call chooses from a snapshot without holding a lock.
    endpoints: RwLock<Arc<[Arc<Endpoint<S>>]>>,
    config: BalanceConfig,
    cap: Arc<EjectionCap>,
    /// Where round robin goes next.
    next: AtomicUsize,
    next_id: AtomicU64,
    make: Option<Make<S>>,
    metrics: BalanceMetrics,
}

/// One endpoint: its id (for [`Tried`]), info (name, health), load and
/// stack.
pub(super) struct Endpoint<S> {
    id: u64,
    pub(super) info: Arc<EndpointInfo>,
    pub(super) load: Arc<Load>,
    service: S,
}

impl<S: Clone> Balance<Accrual<S>> {
    /// Balances over `endpoints`, each a name and its stack, which it wraps
    /// in an [`Accrual`] to record each call's outcome against the
    /// endpoint's health (ejection and probes, as the
    /// [router](crate::route)'s endpoints). Fails if a name is listed
    /// twice; no endpoint is fine (calls fail with
    /// [`BalanceError::NoEndpoints`] until one is [inserted](Self::insert)).
    pub fn new<N: Into<Arc<str>>>(
        endpoints: impl IntoIterator<Item = (N, S)>,
        config: BalanceConfig,
    ) -> Result<Self, BalanceError> {
        let balance = Balance::empty(config, None);
        for (name, service) in endpoints {
            balance.insert(name, service)?;
        }
        Ok(balance)
    }

    /// Adds an endpoint at run time; the calls already in flight go on as
    /// they were. Fails if one of that name is there already.
    pub fn insert(&self, name: impl Into<Arc<str>>, service: S) -> Result<(), BalanceError> {
        let config = self.shared.config.health.clone();
        self.shared
            .insert(name.into(), None, |info| Accrual::new(service, info, config))
    }
}

impl<S> Balance<S> {
    /// A balancer with no endpoint yet; `make` makes those added by address.
    pub(crate) fn empty(config: BalanceConfig, make: Option<Make<S>>) -> Self {
        let cap = EjectionCap::new(config.max_ejected_percent);
        Balance {
            shared: Arc::new(Shared {
                endpoints: RwLock::new(Arc::from(Vec::new())),
                config,
                cap,
                next: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                make,
                metrics: BalanceMetrics::new(),
            }),
            rng: HasherRng::new(),
        }
    }

    /// Adds the endpoint at `address`, made by the balancer's maker.
    pub(crate) fn add(&self, address: &str) -> Result<(), BalanceError> {
        self.shared.add(address)
    }

    /// Removes the endpoint named `name`; the calls in flight on it finish
    /// there, and no new call goes to it. `false` if there is none.
    pub fn remove(&self, name: &str) -> bool {
        self.shared.remove(name)
    }

    /// A handle on the endpoints: their state, load and counters, and
    /// adding and removing them.
    pub fn handle(&self) -> BalanceHandle
    where
        S: Send + Sync + 'static,
    {
        BalanceHandle::new(self.shared.clone())
    }

    /// Endpoints out (ejected or being probed) now.
    pub fn ejected(&self) -> usize {
        self.shared.cap.out()
    }
}

impl<S> Shared<S> {
    /// The endpoints now.
    pub(super) fn snapshot(&self) -> Arc<[Arc<Endpoint<S>>]> {
        self.endpoints.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds the endpoint `name`, its stack made by `stack` from its info.
    pub(crate) fn insert(
        &self,
        name: Arc<str>,
        pool: Option<crate::pool::PoolHandle>,
        stack: impl FnOnce(Arc<EndpointInfo>) -> S,
    ) -> Result<(), BalanceError> {
        let mut endpoints = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        if endpoints.iter().any(|endpoint| endpoint.info.name == name) {
            return Err(BalanceError::Duplicate(name.to_string()));
        }
        let outlier = Outlier {
            success_rate: self.config.success_rate,
            cap: Some(self.cap.clone()),
        };
        let info = EndpointInfo::with_outlier(name, pool, outlier);
        let endpoint = Arc::new(Endpoint {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            load: Arc::new(Load::new(self.config.default_rtt, self.config.decay)),
            service: stack(info.clone()),
            info,
        });
        let mut next: Vec<_> = endpoints.iter().cloned().collect();
        next.push(endpoint);
        *endpoints = Arc::from(next);
        self.metrics.endpoints(1.0);
        Ok(())
    }

    /// Adds the endpoint at `address`, made by the balancer's maker.
    pub(super) fn add(&self, address: &str) -> Result<(), BalanceError> {
        let make = self.make.as_ref().ok_or(BalanceError::CannotMake)?;
        let parts = make(address);
        self.insert(address.into(), parts.pool, parts.stack)
    }

    pub(super) fn remove(&self, name: &str) -> bool {
        let mut endpoints = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        let before = endpoints.len();
        let next: Vec<_> = endpoints
            .iter()
            .filter(|endpoint| &*endpoint.info.name != name)
            .cloned()
            .collect();
        if next.len() == before {
            return false;
        }
        *endpoints = Arc::from(next);
        self.metrics.endpoints(-1.0);
        tracing::debug!(endpoint = name, "endpoint removed from the balancer");
        true
    }

    /// The endpoint a copy goes to, among `endpoints`: one that is up and
    /// not `tried`, by the configured chooser. If none is up, a first copy
    /// goes to the next one in turn (its accrual refuses it at once, naming
    /// it: an ejection the cap allowed); a hedge goes nowhere.
    fn choose<'e>(
        &self,
        endpoints: &'e [Arc<Endpoint<S>>],
        tried: &Tried,
        rng: &mut HasherRng,
    ) -> Option<&'e Arc<Endpoint<S>>> {
        let eligible =
            |endpoint: &&Arc<Endpoint<S>>| endpoint.info.health.is_up() && !tried.contains(endpoint.id);
        let count = endpoints.iter().filter(eligible).count();
        let nth = |n: usize| endpoints.iter().filter(eligible).nth(n);
        match (count, self.config.choose) {
            (0, _) if tried.is_empty() && !endpoints.is_empty() => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                endpoints.get(start % endpoints.len())
            }
            (0, _) => None,
            (1, _) => nth(0),
            (_, Choose::RoundRobin) => nth(self.next.fetch_add(1, Ordering::Relaxed) % count),
            (_, choose) => {
                // Two distinct endpoints, uniformly.
                let a = rng.next_range(0..count as u64) as usize;
                let b = rng.next_range(0..count as u64 - 1) as usize;
                let b = if b >= a { b + 1 } else { b };
                let (a, b) = (nth(a)?, nth(b)?);
                let better = match choose {
                    Choose::LeastLoaded => b.load.in_flight() < a.load.in_flight(),
                    _ => {
                        let now = tokio::time::Instant::now();
                        b.load.peak_ewma_cost(now) < a.load.peak_ewma_cost(now)
                    }
                };
                Some(if better { b } else { a })
            }
        }
    }

    pub(super) fn unavailable(&self) {
        self.metrics.unavailable();
    }
}

impl<S> Drop for Shared<S> {
    fn drop(&mut self) {
        let endpoints = self.endpoints.get_mut().unwrap_or_else(|p| p.into_inner());
        self.metrics.endpoints(-(endpoints.len() as f64));
    }
}

impl<S> Clone for Balance<S> {
    fn clone(&self) -> Self {
        Balance {
            shared: self.shared.clone(),
            rng: HasherRng::new(),
        }
    }
}

impl<S> fmt::Debug for Balance<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints = self.shared.snapshot();
        f.debug_struct("Balance")
            .field("choose", &self.shared.config.choose)
            .field(
                "endpoints",
                &endpoints.iter().map(|e| &*e.info.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S, Req> Service<Req> for Balance<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self.call_elsewhere(request, &mut Tried::new()) {
            Ok(future) => future,
            Err(_) => {
                self.shared.unavailable();
                ResponseFuture::failed(BalanceError::NoEndpoints)
            }
        }
    }
}

/// A hedge's copy goes to an endpoint the call's earlier copies did not.
impl<S, Req> Elsewhere<Req> for Balance<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    fn call_elsewhere(&mut self, request: Req, tried: &mut Tried) -> Result<Self::Future, Req> {
        let endpoints = self.shared.snapshot();
        let Some(endpoint) = self.shared.choose(&endpoints, tried, &mut self.rng) else {
            return Err(request);
        };
        tried.push(endpoint.id);
        let in_flight = InFlight::new(endpoint.load.clone());
        Ok(ResponseFuture::new(
            endpoint.info.clone(),
            endpoint.service.clone(),
            request,
            in_flight,
        ))
    }

    /// The endpoint lost a hedged race: its estimate is not lowered by the
    /// time it waited, and the loss counts against its success rate.
    fn lost(future: std::pin::Pin<&mut Self::Future>) {
        future.lost();
    }
}
