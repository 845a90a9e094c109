//! The balancer's choices and ejections, on a paused clock.

use super::*;
use crate::hedge::{Elsewhere, Tried};
use crate::route::{EndpointState, Probe};
use crate::BoxError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, Service, ServiceExt};

#[derive(Debug, Clone)]
struct Get;

impl Probe for Get {
    fn probe() -> Self {
        Get
    }
}

type Endpoint = BoxCloneSyncService<Get, &'static str, BoxError>;

/// An endpoint named `name` that answers after `delay`.
fn answering(name: &'static str, delay: Duration) -> Endpoint {
    BoxCloneSyncService::new(service_fn(move |_: Get| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, BoxError>(name)
    }))
}

/// An endpoint whose every `every`-th call fails with a lost connection.
fn flaky(name: &'static str, every: usize) -> Endpoint {
    let calls = Arc::new(AtomicUsize::new(0));
    BoxCloneSyncService::new(service_fn(move |_: Get| {
        let call = calls.fetch_add(1, Ordering::Relaxed);
        async move {
            if call.is_multiple_of(every) {
                Err(BoxError::from(crate::pipeline::Error::Closed))
            } else {
                Ok(name)
            }
        }
    }))
}

/// One call, as a boxed future (which the compiler proves `Send` for a
/// spawned task, where it cannot for `Oneshot` with a boxed error).
fn get(
    balance: &Balance<crate::route::Accrual<Endpoint>>,
) -> futures::future::BoxFuture<'static, Result<&'static str, BoxError>> {
    Box::pin(balance.clone().oneshot(Get))
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "slow"];

fn five(slow: Duration) -> Vec<(&'static str, Endpoint)> {
    NAMES
        .iter()
        .map(|&name| {
            let delay = if name == "slow" { slow } else { slow / 10 };
            (name, answering(name, delay))
        })
        .collect()
}

/// How many of `calls` calls, made `concurrency` at a time, the slow
/// endpoint answered.
async fn slow_share(choose: Choose, calls: usize, concurrency: usize) -> f64 {
    let balance = Balance::new(five(Duration::from_millis(10)), BalanceConfig::new(choose)).unwrap();
    let slow = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (balance, slow) = (balance.clone(), slow.clone());
            tokio::spawn(async move {
                for _ in 0..calls / concurrency {
                    if get(&balance).await.unwrap() == "slow" {
                        slow.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    slow.load(Ordering::Relaxed) as f64 / calls as f64
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_sends_far_fewer_calls_to_a_slow_endpoint_than_round_robin() {
    let round_robin = slow_share(Choose::RoundRobin, 1000, 8).await;
    let least_loaded = slow_share(Choose::LeastLoaded, 1000, 8).await;
    let peak_ewma = slow_share(Choose::PeakEwma, 1000, 8).await;
    assert!((round_robin - 0.2).abs() < 0.01, "round robin: {round_robin}");
    assert!(
        least_loaded < round_robin,
        "least loaded {least_loaded} vs {round_robin}"
    );
    assert!(
        peak_ewma < round_robin / 4.0,
        "peak-EWMA {peak_ewma} vs {round_robin}"
    );
}

/// Four endpoints, three failing one call in four, all in one instant;
/// the endpoints out after 400 calls.
async fn out_after_flaky_calls(success_rate: Option<SuccessRate>) -> Vec<EndpointLoad> {
    let config = BalanceConfig {
        success_rate,
        // Failures within the window alone would eject them all.
        health: crate::route::HealthConfig {
            failures: 1000,
            ..Default::default()
        },
        max_ejected_percent: 25,
        ..BalanceConfig::new(Choose::RoundRobin)
    };
    let endpoints = [
        ("a", flaky("a", 4)),
        ("b", flaky("b", 4)),
        ("c", flaky("c", 4)),
        ("d", answering("d", Duration::ZERO)),
    ];
    let balance = Balance::new(endpoints, config).unwrap();
    for _ in 0..400 {
        let _ = balance.clone().oneshot(Get).await;
    }
    let stats = balance.handle().stats();
    assert_eq!(
        balance.ejected(),
        stats.iter().filter(|e| e.state != EndpointState::Up).count()
    );
    stats
        .into_iter()
        .filter(|e| e.state != EndpointState::Up)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_low_success_rate_ejects_but_never_more_than_the_cap() {
    let rule = SuccessRate {
        min_success: 0.9,
        min_requests: 20,
        window: Duration::from_secs(10),
    };
    let out = out_after_flaky_calls(Some(rule)).await;
    assert_eq!(
        out.len(),
        1,
        "a quarter of four: one out of three failing, {out:?}"
    );
    assert_ne!(out[0].name, "d", "the healthy one stays");
    assert!(
        out_after_flaky_calls(None).await.is_empty(),
        "without the rule, none"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_takes_no_call_and_is_probed_back() {
    let broken = Arc::new(AtomicBool::new(true));
    let endpoint = {
        let broken = broken.clone();
        BoxCloneSyncService::new(service_fn(move |_: Get| {
            let broken = broken.load(Ordering::Relaxed);
            async move {
                if broken {
                    Err(BoxError::from(crate::pipeline::Error::Closed))
                } else {
                    Ok("flaky")
                }
            }
        }))
    };
    let config = BalanceConfig {
        max_ejected_percent: 50,
        ..BalanceConfig::new(Choose::RoundRobin)
    };
    let balance = Balance::new(
        [("ok", answering("ok", Duration::ZERO)), ("flaky", endpoint)],
        config,
    )
    .unwrap();
    for _ in 0..10 {
        let _ = balance.clone().oneshot(Get).await;
    }
    assert_eq!(balance.ejected(), 1);
    for _ in 0..20 {
        assert_eq!(
            balance.clone().oneshot(Get).await.unwrap(),
            "ok",
            "any endpoint may answer"
        );
    }
    broken.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(balance.ejected(), 0, "a probe brought it back");
    let mut answers = std::collections::HashSet::new();
    for _ in 0..4 {
        answers.insert(balance.clone().oneshot(Get).await.unwrap());
    }
    assert_eq!(answers.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn endpoints_come_and_go_without_dropping_calls_in_flight() {
    let release = Arc::new(tokio::sync::Notify::new());
    let held = {
        let release = release.clone();
        BoxCloneSyncService::new(service_fn(move |_: Get| {
            let release = release.clone();
            async move {
                release.notified().await;
                Ok::<_, BoxError>("held")
            }
        }))
    };
    let balance = Balance::new([("held", held)], BalanceConfig::default()).unwrap();
    let in_flight: Vec<_> = (0..5).map(|_| tokio::spawn(get(&balance))).collect();
    tokio::task::yield_now().await;
    assert_eq!(balance.handle().stats()[0].in_flight, 5);
    balance.insert("new", answering("new", Duration::ZERO)).unwrap();
    assert!(balance.remove("held"));
    assert!(!balance.remove("held"));
    assert_eq!(
        balance.insert("new", answering("new", Duration::ZERO)),
        Err(BalanceError::Duplicate("new".into()))
    );
    for _ in 0..10 {
        assert_eq!(balance.clone().oneshot(Get).await.unwrap(), "new");
    }
    release.notify_waiters();
    for call in in_flight {
        assert_eq!(
            call.await.unwrap().unwrap(),
            "held",
            "a removed endpoint's calls finish there"
        );
    }
    assert!(balance.remove("new"));
    let error = balance.clone().oneshot(Get).await.unwrap_err();
    assert_eq!(
        crate::failure::Failure::of(&*error),
        crate::failure::Failure::NotSent
    );
    assert_eq!(balance.handle().add("127.0.0.1:1"), Err(BalanceError::CannotMake));
    // A call whose endpoint was ejected under it is worth sending again
    // elsewhere, unlike a router's.
    let raced = BalanceError::Ejected("a".into());
    let delivery = crate::failure::Delivery::worth_retrying(&raced);
    assert_eq!(delivery, Some(crate::failure::Delivery::NotSent));
}

#[tokio::test(start_paused = true)]
async fn a_copy_goes_elsewhere_until_every_endpoint_was_tried() {
    let mut balance = Balance::new(five(Duration::ZERO), BalanceConfig::default()).unwrap();
    let mut tried = Tried::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2 {
        std::future::poll_fn(|cx| Service::<Get>::poll_ready(&mut balance, cx))
            .await
            .unwrap();
        let Ok(call) = balance.call_elsewhere(Get, &mut tried) else {
            panic!("an endpoint is left");
        };
        assert!(seen.insert(call.await.unwrap()), "a different endpoint each time");
    }
    let mut two = Balance::new(
        [
            ("a", answering("a", Duration::ZERO)),
            ("b", answering("b", Duration::ZERO)),
        ],
        BalanceConfig::default(),
    )
    .unwrap();
    let mut tried = Tried::new();
    assert!(two.call_elsewhere(Get, &mut tried).is_ok());
    assert!(two.call_elsewhere(Get, &mut tried).is_ok());
    assert!(two.call_elsewhere(Get, &mut tried).is_err(), "both tried");
}
