//! [`RetryPolicy`]: which failures to retry, how often, and how soon.

use super::budget::RetryBudget;
use super::classify::{Idempotent, RetryableResponse};
use super::metrics::RetryMetrics;
use super::tries::{Resend, Tries};
use crate::backoff::{jitter_rng, Backoff};
use crate::failure::Delivery;
use crate::BoxError;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::retry::budget::Budget;
use tower::retry::Policy;

/// How a [`RetryPolicy`] retries.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Most retries of one request after its first attempt (default 8).
    pub max_retries: u32,
    /// Delay before each retry (default 25 ms doubling to 1 s, full jitter).
    pub backoff: Backoff,
    /// Retries allowed, as a share of requests: each request deposits one
    /// token and each retry withdraws `1 / retry_ratio` (default 0.2: at
    /// most one retry per five requests, sustained).
    pub retry_ratio: f32,
    /// Retries always allowed per second, however few requests are made, so
    /// that a quiet client can still ride out a blip (default 10).
    pub min_retries_per_sec: u32,
    /// How long a deposit counts (default 10 s; between 1 and 60 s).
    pub budget_window: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 8,
            backoff: Backoff::new(Duration::from_millis(25), Duration::from_secs(1)),
            retry_ratio: 0.2,
            min_retries_per_sec: 10,
            budget_window: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    fn budget(&self) -> RetryBudget {
        RetryBudget::new(self.budget_window, self.min_retries_per_sec, self.retry_ratio)
    }
}

/// What a [`RetryPolicy`] has done so far; see [`RetryHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Requests made (a [`Batch`](crate::batch::Batch) is one): each pays
    /// into the retry budget. With tower's `Retry`, counted when the first
    /// attempt completes.
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
    /// Retries refused because the budget was spent.
    pub budget_exhausted: u64,
    /// Retries not made because the request may have been sent and is not
    /// idempotent.
    pub unsafe_to_retry: u64,
}

/// A policy's rules — what it allows: retries, backoff, budget — and what
/// it counted, shared by its clones. (`pub`
/// in this private module only as a [`Shape`](super::future::Shape)'s
/// argument; not nameable outside the crate.)
pub struct Rules {
    budget: Box<dyn Budget + Send + Sync>,
    backoff: Backoff,
    max_retries: u32,
    requests: AtomicU64,
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    unsafe_to_retry: AtomicU64,
    metrics: RetryMetrics,
}

/// A cheap handle to read a [`RetryPolicy`]'s counters.
#[derive(Clone)]
pub struct RetryHandle {
    rules: Arc<Rules>,
}

impl RetryHandle {
    pub(super) fn new(rules: Arc<Rules>) -> Self {
        RetryHandle { rules }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RetryStats {
        let rules = &self.rules;
        RetryStats {
            requests: rules.requests.load(Ordering::Relaxed),
            retries: rules.retries.load(Ordering::Relaxed),
            budget_exhausted: rules.budget_exhausted.load(Ordering::Relaxed),
            unsafe_to_retry: rules.unsafe_to_retry.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for RetryHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandle")
            .field("stats", &self.stats())
            .finish()
    }
}

/// A tower retry [`Policy`] that retries only what is safe, with backoff,
/// under a budget.
///
/// A failed attempt is retried when
///
/// * the response is a refusal ([`RetryableResponse::is_retryable`]), or
/// * the request was **not sent** ([`Delivery::NotSent`]: no connection), or
/// * the request **may have been sent** ([`Delivery::MaybeSent`]: the
///   connection broke under it) *and* it is [`Idempotent`];
///
/// and then only while the request has retries left
/// ([`RetryConfig::max_retries`]) and the shared budget allows one: a
/// [`RetryBudget`] that every request pays into and every retry draws from, so
/// that retries add at most `retry_ratio` to the load a failing server sees
/// (plus a small floor per second). Anything else — a timeout, a
/// load-shed refusal, a protocol error — is returned as it is.
///
/// Each retry waits a jittered exponential [`Backoff`] and is a `tracing`
/// event at `DEBUG`.
///
/// Clones share the budget and counters; tower's `Retry` clones the policy
/// per request, which is where the per-request attempt count lives.
#[derive(Clone)]
pub struct RetryPolicy {
    rules: Arc<Rules>,
    /// The call's retries, when tower's `Retry` drives it.
    tries: Tries,
}

impl RetryPolicy {
    /// A policy with `config` and its [`RetryBudget`].
    pub fn new(config: RetryConfig) -> Self {
        let budget = config.budget();
        Self::with_budget(config, budget)
    }

    /// A policy with `config`'s backoff and retry limit and a budget of your
    /// own (`config`'s budget fields are ignored).
    pub fn with_budget(config: RetryConfig, budget: impl Budget + Send + Sync + 'static) -> Self {
        RetryPolicy {
            rules: Arc::new(Rules {
                budget: Box::new(budget),
                backoff: config.backoff,
                max_retries: config.max_retries,
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                budget_exhausted: AtomicU64::new(0),
                unsafe_to_retry: AtomicU64::new(0),
                metrics: RetryMetrics::new(),
            }),
            tries: Tries::default(),
        }
    }

    /// A handle to read the counters.
    pub fn handle(&self) -> RetryHandle {
        RetryHandle {
            rules: self.rules.clone(),
        }
    }

    /// A [`RetryLayer`](super::RetryLayer) with this policy: this crate's
    /// [`Retry`](super::Retry), which keeps a request's deadline and takes
    /// [`Batch`](crate::batch::Batch)es. (The policy is also a tower retry
    /// `Policy`: `tower::retry::RetryLayer::new(policy)` works too.)
    pub fn into_layer(self) -> super::RetryLayer {
        super::RetryLayer::new(self)
    }

    pub(super) fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(RetryConfig::default())
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("attempts", &self.tries.attempts())
            .field("backoff", &self.rules.backoff)
            .field("max_retries", &self.rules.max_retries)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules").finish_non_exhaustive()
    }
}

/// Why a retry is made: for the trace, and the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Refused,
    NotSent,
    LostIdempotent,
}

impl Reason {
    /// Every reason, in the order declared.
    pub(super) const ALL: [Reason; 3] = [Reason::Refused, Reason::NotSent, Reason::LostIdempotent];

    /// Its `reason` label.
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            Reason::Refused => "refused",
            Reason::NotSent => "not_sent",
            Reason::LostIdempotent => "lost_idempotent",
        }
    }
}

impl Rules {
    /// A request is made: it counts, and pays into the budget.
    pub(super) fn on_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.budget.deposit();
    }

    /// Why retrying a request after this outcome is safe, or `None` if it
    /// is not (or would not help).
    pub(super) fn reason<Req: Idempotent, Resp: RetryableResponse>(
        &self,
        request: &Req,
        outcome: Result<&Resp, &(dyn std::error::Error + 'static)>,
    ) -> Option<Reason> {
        match outcome {
            Ok(response) if response.is_retryable() => Some(Reason::Refused),
            Ok(_) => None,
            Err(error) => match Delivery::worth_retrying(error) {
                Some(Delivery::NotSent) => Some(Reason::NotSent),
                Some(Delivery::MaybeSent) if request.is_idempotent() => Some(Reason::LostIdempotent),
                Some(Delivery::MaybeSent) => {
                    self.unsafe_to_retry.fetch_add(1, Ordering::Relaxed);
                    self.metrics.unsafe_to_retry();
                    tracing::debug!(%error, "not retrying: the request may have been applied and is not idempotent");
                    None
                }
                None => None,
            },
        }
    }

    /// The delay before retry number `attempts + 1`, if one is allowed: the
    /// request has retries left, the backoff ends before its deadline, and
    /// the budget pays for it.
    pub(super) fn allow(&self, attempts: u32, reason: Reason, deadline: Option<Instant>) -> Option<Duration> {
        if attempts >= self.max_retries {
            tracing::debug!(attempts, ?reason, "not retrying: no retries left");
            return None;
        }
        let delay = self.backoff.delay(attempts, &mut jitter_rng());
        if deadline.is_some_and(|deadline| Instant::now() + delay >= deadline) {
            tracing::debug!(
                attempts,
                ?reason,
                ?delay,
                "not retrying: the backoff would end past the deadline"
            );
            return None;
        }
        if !self.budget.withdraw() {
            self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            self.metrics.budget_exhausted();
            tracing::debug!(?reason, "not retrying: retry budget exhausted");
            return None;
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.metrics.retried(reason);
        tracing::debug!(retry = attempts + 1, ?reason, ?delay, "retrying");
        Some(delay)
    }
}

impl<Req, Resp> Policy<Req, Resp, BoxError> for RetryPolicy
where
    Req: Idempotent + Clone,
    Resp: RetryableResponse,
{
    // Boxed: a retry is rare, and an inline `Sleep` would make every
    // request's future larger to move around.
    type Future = Pin<Box<tokio::time::Sleep>>;

    fn retry(&mut self, request: &mut Req, result: &mut Result<Resp, BoxError>) -> Option<Self::Future> {
        let rules = &*self.rules;
        if self.tries.attempts() == 0 {
            rules.on_request();
        }
        let reason = rules.reason(request, result.as_ref().map_err(|error| &**error as _));
        let delay = self.tries.retry(rules, Resend::after(reason?), None)?;
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}
