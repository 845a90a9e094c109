//! One endpoint as the router and its [`Accrual`](super::Accrual) see it:
//! its [`EndpointInfo`] (name, health, pool) with the one refusal of calls
//! while it is ejected, and the [`EndpointWatch`] that records its outcomes
//! and probes it back.

use super::bounds::EndpointStack;
use super::error::Ejected;
use super::health::{Health, HealthConfig};
use super::key::Probe;
use super::outlier::Outlier;
use crate::backoff::jitter_rng;
use crate::pool::PoolHandle;
use std::error::Error;
use std::sync::{Arc, Weak};
use tower::ServiceExt;

/// What a [`RouterHandle`](super::RouterHandle) reads of an endpoint, and
/// what the router checks before routing a call to it.
#[derive(Debug)]
pub(crate) struct EndpointInfo {
    pub(crate) name: Arc<str>,
    pub(crate) health: Health,
    pub(crate) pool: Option<PoolHandle>,
}

impl EndpointInfo {
    pub(crate) fn new(name: Arc<str>, pool: Option<PoolHandle>) -> Arc<Self> {
        Self::with_outlier(name, pool, Outlier::default())
    }

    /// An endpoint that the rules of `outlier` eject too (a balancer's:
    /// see [`crate::balance`]).
    pub(crate) fn with_outlier(name: Arc<str>, pool: Option<PoolHandle>, outlier: Outlier) -> Arc<Self> {
        Arc::new(EndpointInfo {
            name,
            health: Health::with_outlier(outlier),
            pool,
        })
    }

    /// Refuses `n` calls because the endpoint is ejected: counts them as
    /// failed fast, and returns the error they fail with. Both the router's
    /// check before routing and an [`Accrual`](super::Accrual) under the
    /// retry layer refuse this way.
    pub(crate) fn refuse(&self, n: usize) -> Ejected {
        self.health.failed_fast(n);
        Ejected::new(self.name.clone())
    }
}

/// The watch kept on one endpoint, shared by every clone of its
/// [`Accrual`](super::Accrual): its info, the rule that ejects it, and the
/// stack its probes are sent on.
pub(super) struct EndpointWatch<S> {
    pub(super) info: Arc<EndpointInfo>,
    config: HealthConfig,
    /// What a probe is sent on: the stack under the accrual, so that a
    /// probe is not itself recorded.
    probe_stack: S,
}

impl<S> EndpointWatch<S> {
    pub(super) fn new(info: Arc<EndpointInfo>, config: HealthConfig, probe_stack: S) -> Arc<Self> {
        Arc::new(EndpointWatch {
            info,
            config,
            probe_stack,
        })
    }

    /// Records the outcome of a call; starts probing the endpoint with
    /// `Req::probe()` if that ejected it.
    pub(super) fn record<Req>(self: &Arc<Self>, outcome: Result<(), &(dyn Error + 'static)>)
    where
        S: EndpointStack<Req>,
        Req: Probe + Send + 'static,
    {
        let info = &self.info;
        info.health.prober.get_or_init(|| {
            let (watch, config) = (Arc::downgrade(self), self.config.clone());
            Box::new(move || {
                tokio::spawn(probe::<S, Req>(watch.clone(), config.clone()));
            })
        });
        if info.health.record(outcome, &self.config, &info.name) {
            tokio::spawn(probe::<S, Req>(Arc::downgrade(self), self.config.clone()));
        }
    }
}

/// Probes an ejected endpoint with backoff until it answers (then it is up
/// again) or every [`Accrual`](super::Accrual) of it is gone.
async fn probe<S, Req>(watch: Weak<EndpointWatch<S>>, config: HealthConfig)
where
    S: EndpointStack<Req>,
    Req: Probe,
{
    let mut rng = jitter_rng();
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(config.probe_backoff.delay(failures, &mut rng)).await;
        let Some(watch) = watch.upgrade() else {
            return;
        };
        let (health, endpoint) = (&watch.info.health, &*watch.info.name);
        health.probing();
        let stack = watch.probe_stack.clone();
        let answer = tokio::time::timeout(config.probe_timeout, stack.oneshot(Req::probe())).await;
        let error = match answer {
            Ok(Ok(_)) => {
                health.back_up();
                tracing::info!(endpoint, probes = failures + 1, "endpoint back up");
                return;
            }
            Ok(Err(error)) => error.into().to_string(),
            Err(_) => format!("no answer within {:?}", config.probe_timeout),
        };
        health.probe_failed();
        failures = failures.saturating_add(1);
        tracing::debug!(endpoint, failures, %error, "probe failed");
    }
}
