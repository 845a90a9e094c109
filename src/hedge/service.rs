//! The [`Hedge`] service, its rules and counters.

use super::budget::SharedBudget;
use super::config::HedgeConfig;
use super::elsewhere::{Elsewhere, Tried};
use super::future::ResponseFuture;
use super::latency::Latency;
use super::metrics::HedgeMetrics;
use crate::batch::Batch;
use crate::retry::{Idempotent, RetryBudget};
use crate::BoxError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::retry::budget::Budget;
use tower::{Layer, Service};

/// Sends a late idempotent call's second copy to another endpoint; see the
/// [module docs](super).
///
/// Cheap to clone: clones share the latencies, the budget and the counters.
pub struct Hedge<S> {
    inner: S,
    rules: Arc<Rules>,
}

/// What every clone of a [`Hedge`] and its futures share.
pub(super) struct Rules {
    pub(super) latency: Latency,
    min_delay: Duration,
    own: RetryBudget,
    shared: Option<SharedBudget>,
    pub(super) counters: Counters,
    pub(super) metrics: HedgeMetrics,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) hedges: AtomicU64,
    pub(super) wins: AtomicU64,
    pub(super) budget_exhausted: AtomicU64,
}

impl Rules {
    /// Whether the budgets allow one more copy now: the hedge's own share,
    /// then the budget it shares with retries. (A token of the first is
    /// spent even if the second refuses: hedging errs towards fewer.)
    pub(super) fn withdraw(&self) -> bool {
        let allowed = self.own.withdraw() && self.shared.as_ref().is_none_or(|shared| shared.withdraw());
        if !allowed {
            self.counters.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            self.metrics.exhausted();
        }
        allowed
    }

    /// How long a call waits for its answer before its second copy.
    fn delay(&self) -> Option<Duration> {
        self.latency.delay().map(|delay| delay.max(self.min_delay))
    }
}

impl<S> Hedge<S> {
    /// Hedges calls to `inner` as `config` says, within a budget of its own.
    pub fn new(inner: S, config: HedgeConfig) -> Self {
        Hedge {
            inner,
            rules: Arc::new(Rules {
                latency: Latency::new(config.percentile, config.window, config.min_samples),
                min_delay: config.min_delay,
                own: RetryBudget::new(config.window, config.min_per_sec, config.budget_ratio),
                shared: None,
                counters: Counters::default(),
                metrics: HedgeMetrics::new(),
            }),
        }
    }

    /// Also draws every hedge from `budget`, which a retry layer above
    /// shares (see [`SharedBudget`]). Call before cloning.
    pub fn sharing(mut self, budget: SharedBudget) -> Self {
        if let Some(rules) = Arc::get_mut(&mut self.rules) {
            rules.shared = Some(budget);
        }
        self
    }

    /// A handle on the counters.
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle {
            rules: self.rules.clone(),
        }
    }

    /// The service under this one.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone> Clone for Hedge<S> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            rules: self.rules.clone(),
        }
    }
}

impl<S> fmt::Debug for Hedge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("delay", &self.rules.delay())
            .field("stats", &self.handle().stats())
            .finish()
    }
}

impl<S, Req> Service<Req> for Hedge<S>
where
    S: Elsewhere<Req> + Clone,
    S::Error: Into<BoxError>,
    Req: Idempotent + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let rules = &self.rules;
        rules.counters.requests.fetch_add(1, Ordering::Relaxed);
        rules.own.deposit();
        // The service made ready is the one called; a clone takes its place.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let mut tried = Tried::new();
        let delay = if request.is_idempotent() {
            rules.delay()
        } else {
            None
        };
        let Some(delay) = delay else {
            let first = match ready.call_elsewhere(request, &mut tried) {
                Ok(first) => first,
                Err(request) => ready.call(request),
            };
            return ResponseFuture::single(first, rules.clone());
        };
        match ready.call_elsewhere(request.clone(), &mut tried) {
            Ok(first) => ResponseFuture::hedged(first, (ready, request, tried), delay, rules.clone()),
            Err(request) => ResponseFuture::single(ready.call(request), rules.clone()),
        }
    }
}

/// A [`Batch`] is not hedged: it goes to one endpoint, once (a second
/// copy of a whole batch would double its load at once, and its requests
/// need not all be idempotent).
impl<S, Req> Service<Batch<Req>> for Hedge<S>
where
    S: Service<Batch<Req>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures::future::ErrInto<S::Future, BoxError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, batch: Batch<Req>) -> Self::Future {
        self.rules.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.rules.own.deposit();
        futures::TryFutureExt::err_into(self.inner.call(batch))
    }
}

/// A [`Layer`] of [`Hedge`]s sharing one set of latencies, budget and
/// counters.
#[derive(Clone)]
pub struct HedgeLayer {
    rules: Arc<Rules>,
}

impl HedgeLayer {
    /// Hedges as `config` says; with `budget`, also within the budget a
    /// retry layer shares.
    pub fn new(config: HedgeConfig, budget: Option<SharedBudget>) -> Self {
        let hedge = Hedge::new((), config);
        let hedge = match budget {
            Some(budget) => hedge.sharing(budget),
            None => hedge,
        };
        HedgeLayer { rules: hedge.rules }
    }

    /// A handle on the counters of every hedge this layer makes.
    pub fn handle(&self) -> HedgeHandle {
        HedgeHandle {
            rules: self.rules.clone(),
        }
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        Hedge {
            inner,
            rules: self.rules.clone(),
        }
    }
}

impl fmt::Debug for HedgeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("stats", &self.handle().stats())
            .finish()
    }
}

/// A cheap handle to read a [`Hedge`]'s counters.
#[derive(Clone)]
pub struct HedgeHandle {
    rules: Arc<Rules>,
}

/// What a [`Hedge`] has done; see [`HedgeHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HedgeStats {
    /// Calls made (each pays into the hedge budget).
    pub requests: u64,
    /// Second copies sent: the extra load.
    pub hedges: u64,
    /// Calls the second copy answered first.
    pub wins: u64,
    /// Second copies the budget refused.
    pub budget_exhausted: u64,
    /// The delay a call waits now before its second copy, if there are
    /// enough latencies to know it.
    pub delay: Option<Duration>,
}

impl HedgeHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> HedgeStats {
        let counters = &self.rules.counters;
        HedgeStats {
            requests: counters.requests.load(Ordering::Relaxed),
            hedges: counters.hedges.load(Ordering::Relaxed),
            wins: counters.wins.load(Ordering::Relaxed),
            budget_exhausted: counters.budget_exhausted.load(Ordering::Relaxed),
            delay: self.rules.delay(),
        }
    }
}

impl fmt::Debug for HedgeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeHandle")
            .field("stats", &self.stats())
            .finish()
    }
}
