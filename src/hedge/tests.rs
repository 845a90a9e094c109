//! The hedge's timer, its choice of endpoint, its budget and its race, on
//! a paused clock, over a real [`Balance`](crate::balance::Balance).

use super::*;
use crate::balance::{Balance, BalanceConfig, Choose};
use crate::retry::{Idempotent, RetryBudget};
use crate::route::{Accrual, Probe};
use crate::BoxError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceExt};

/// A request that says whether it is idempotent.
#[derive(Debug, Clone)]
struct Call {
    idempotent: bool,
}

const GET: Call = Call { idempotent: true };
const INCR: Call = Call { idempotent: false };

impl Idempotent for Call {
    fn is_idempotent(&self) -> bool {
        self.idempotent
    }
}

impl Probe for Call {
    fn probe() -> Self {
        GET
    }
}

type Endpoint = BoxCloneSyncService<Call, &'static str, BoxError>;

/// Counts the calls of an endpoint that were dropped before they answered.
#[derive(Default)]
struct Cancelled(AtomicUsize);

struct Guard(Arc<Cancelled>, bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            self.0 .0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An endpoint that answers after `delay`, counting calls cancelled.
fn endpoint(name: &'static str, delay: Duration, cancelled: Arc<Cancelled>) -> Endpoint {
    BoxCloneSyncService::new(service_fn(move |_: Call| {
        let guard = Guard(cancelled.clone(), false);
        async move {
            let mut guard = guard;
            tokio::time::sleep(delay).await;
            guard.1 = true;
            Ok::<_, BoxError>(name)
        }
    }))
}

/// A hedge over round robin between "fast" (1 ms) and "slow" (100 ms).
fn fast_and_slow(config: HedgeConfig) -> (Hedge<Balance<Accrual<Endpoint>>>, Arc<Cancelled>) {
    over_fast_and_slow(config, BalanceConfig::new(Choose::RoundRobin))
}

fn over_fast_and_slow(
    config: HedgeConfig,
    balancing: BalanceConfig,
) -> (Hedge<Balance<Accrual<Endpoint>>>, Arc<Cancelled>) {
    let cancelled = Arc::new(Cancelled::default());
    let endpoints = [
        (
            "fast",
            endpoint("fast", Duration::from_millis(1), cancelled.clone()),
        ),
        (
            "slow",
            endpoint("slow", Duration::from_millis(100), cancelled.clone()),
        ),
    ];
    let balance = Balance::new(endpoints, balancing).unwrap();
    (Hedge::new(balance, config), cancelled)
}

fn config() -> HedgeConfig {
    HedgeConfig {
        percentile: 0.5,
        min_samples: 1,
        budget_ratio: 1.0,
        min_per_sec: 0,
        ..HedgeConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_call_is_answered_by_a_copy_sent_elsewhere_and_the_loser_is_cancelled() {
    let (hedge, cancelled) = fast_and_slow(config());
    assert_eq!(
        hedge.clone().oneshot(GET).await.unwrap(),
        "fast",
        "round robin starts at fast"
    );
    let delay = hedge.handle().stats().delay.expect("one latency is enough here");
    assert!(
        delay >= Duration::from_millis(1) && delay < Duration::from_millis(2),
        "{delay:?}"
    );
    // The next goes to slow first; its copy to fast answers.
    let started = Instant::now();
    assert_eq!(hedge.clone().oneshot(GET).await.unwrap(), "fast");
    assert!(
        started.elapsed() < Duration::from_millis(10),
        "{:?}",
        started.elapsed()
    );
    let stats = hedge.handle().stats();
    assert_eq!((stats.requests, stats.hedges, stats.wins), (2, 1, 1));
    assert_eq!(cancelled.0.load(Ordering::Relaxed), 1, "slow's copy was dropped");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_is_not_idempotent_is_never_hedged() {
    let (hedge, _) = fast_and_slow(config());
    // The same through a layer, whose handle counts what its hedges do.
    let layer = HedgeLayer::new(config(), None);
    let layered = tower::Layer::layer(&layer, hedge.get_ref().clone());
    layered.clone().oneshot(GET).await.unwrap();
    assert_eq!(layered.clone().oneshot(INCR).await.unwrap(), "slow");
    assert_eq!(layer.handle().stats().requests, 2);
    assert_eq!(layer.handle().stats().hedges, 0);
    hedge.clone().oneshot(GET).await.unwrap();
    assert_eq!(
        hedge.clone().oneshot(INCR).await.unwrap(),
        "slow",
        "waits for slow"
    );
    assert_eq!(hedge.handle().stats().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_before_enough_latencies_are_known() {
    let (hedge, _) = fast_and_slow(HedgeConfig {
        min_samples: 100,
        ..config()
    });
    for _ in 0..10 {
        hedge.clone().oneshot(GET).await.unwrap();
    }
    assert_eq!(hedge.handle().stats().hedges, 0);
    assert_eq!(hedge.handle().stats().delay, None);
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_the_extra_copies() {
    let (hedge, _) = fast_and_slow(HedgeConfig {
        budget_ratio: 0.1,
        ..config()
    });
    for _ in 0..400 {
        hedge.clone().oneshot(GET).await.unwrap();
    }
    let stats = hedge.handle().stats();
    // Half the calls go to slow first, and each would be hedged.
    assert!(stats.hedges <= 40, "{stats:?}");
    assert!(stats.hedges >= 30, "the budget is spent, not hoarded: {stats:?}");
    assert!(stats.budget_exhausted >= 150, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_budget_shared_with_retries_that_is_spent_stops_hedges() {
    let (hedge, _) = fast_and_slow(config());
    let spent = SharedBudget::new(RetryBudget::new(Duration::from_secs(10), 0, 0.0));
    let hedge = hedge.sharing(spent);
    for _ in 0..20 {
        hedge.clone().oneshot(GET).await.unwrap();
    }
    let stats = hedge.handle().stats();
    assert_eq!(stats.hedges, 0, "{stats:?}");
    assert!(stats.budget_exhausted >= 9, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_the_budget_refused_is_hedged_once_the_budget_refills() {
    // No floor; a call pays a quarter of a hedge.
    let (hedge, _) = fast_and_slow(HedgeConfig {
        budget_ratio: 0.25,
        ..config()
    });
    hedge.clone().oneshot(GET).await.unwrap();
    // Five calls paid for one hedge: of the two calls sent to slow first,
    // one is hedged at once and the other refused.
    let late: Vec<_> = (0..4).map(|_| tokio::spawn(hedge.clone().oneshot(GET))).collect();
    // (The timer wheel ticks in milliseconds: the refusal is at 3 ms,
    // the next try at 6 ms.)
    tokio::time::sleep(Duration::from_micros(2900)).await;
    assert_eq!(
        hedge.handle().stats().budget_exhausted,
        1,
        "{:?}",
        hedge.handle().stats()
    );
    // Four more calls (not hedged themselves) pay for another.
    let more: Vec<_> = (0..4)
        .map(|_| tokio::spawn(hedge.clone().oneshot(INCR)))
        .collect();
    for call in late {
        assert_eq!(call.await.unwrap().unwrap(), "fast", "hedged on the next try");
    }
    let stats = hedge.handle().stats();
    assert_eq!((stats.hedges, stats.wins), (2, 2), "{stats:?}");
    for call in more {
        call.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_loses_every_race_is_ejected() {
    let balancing = BalanceConfig {
        success_rate: Some(crate::balance::SuccessRate {
            min_requests: 10,
            ..Default::default()
        }),
        max_ejected_percent: 50,
        ..BalanceConfig::new(Choose::RoundRobin)
    };
    let (hedge, _) = over_fast_and_slow(config(), balancing);
    assert_eq!(hedge.clone().oneshot(GET).await.unwrap(), "fast");
    // Slow answers once (an INCR is not hedged): its accrual now knows
    // how to probe it.
    assert_eq!(hedge.clone().oneshot(INCR).await.unwrap(), "slow");
    for _ in 0..40 {
        assert_eq!(hedge.clone().oneshot(GET).await.unwrap(), "fast");
    }
    let balance = hedge.get_ref();
    assert_eq!(balance.ejected(), 1, "{:?}", balance.handle().stats());
    let stats = hedge.handle().stats();
    assert!(
        stats.wins >= 9 && stats.wins < 20,
        "ejected after about ten lost races: {stats:?}"
    );
}
