//! The balancer and the hedge through the whole client stack, against
//! five KV servers on 127.0.0.1, each behind a delaying proxy: the
//! experiment of `BENCHMARKS.md` ("Balancing and hedging"), on a small
//! load, asserting only what holds whatever the machine's speed — never a
//! latency. The figures come from `scripts/balance-bench.sh`.

#[path = "common/balance_experiment.rs"]
mod experiment;
#[path = "common/proxy.rs"]
mod proxy;

use experiment::{run, run_with, Cluster, Load, Setup};
use std::time::Duration;
use wirestack::balance::Choose;
use wirestack::hedge::HedgeConfig;

const SLOW: usize = 4;

fn load() -> Load {
    Load {
        calls: 2000,
        warmup: 200,
        concurrency: 16,
        time_limit: Duration::from_secs(60),
        deadline: Duration::from_secs(5),
    }
}

fn plain(choose: Choose) -> Setup {
    Setup {
        choose,
        hedge: None,
        decay: None,
    }
}

/// The delay that makes one endpoint about ten times slower than the
/// others: nine times their median, measured here (at least 2 ms, so that
/// the slow endpoint stands out from a busy machine's noise).
async fn tenfold(cluster: &Cluster) -> Duration {
    let healthy = run(cluster, &plain(Choose::RoundRobin), load(), SLOW).await;
    assert_eq!(healthy.failures, 0);
    (healthy.percentile(0.5) * 9).max(Duration::from_millis(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_sends_far_fewer_calls_to_a_slow_endpoint_than_round_robin() {
    let cluster = Cluster::start(5).await;
    let delay = tenfold(&cluster).await;
    cluster.proxies[SLOW].set_delay(delay);
    let round_robin = run(&cluster, &plain(Choose::RoundRobin), load(), SLOW).await;
    let least_loaded = run(&cluster, &plain(Choose::LeastLoaded), load(), SLOW).await;
    let peak_ewma = run(&cluster, &plain(Choose::PeakEwma), load(), SLOW).await;
    for outcome in [&round_robin, &least_loaded, &peak_ewma] {
        assert_eq!(outcome.failures, 0, "every call answered");
        assert_eq!(outcome.calls, load().calls);
    }
    let shares = (
        round_robin.marked_share,
        least_loaded.marked_share,
        peak_ewma.marked_share,
    );
    assert!(
        (round_robin.marked_share - 0.2).abs() < 0.02,
        "round robin sends a fifth: {shares:?}"
    );
    assert!(least_loaded.marked_share < round_robin.marked_share, "{shares:?}");
    assert!(
        peak_ewma.marked_share < round_robin.marked_share / 4.0,
        "{shares:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_stays_within_its_budget_and_only_hedges_late_calls() {
    let cluster = Cluster::start(5).await;
    let delay = tenfold(&cluster).await;
    cluster.proxies[SLOW].set_delay(delay);
    // Round robin sends a fifth of the calls to the slow endpoint: at the
    // 75th percentile of the latencies, each of those is late.
    let hedged = Setup {
        choose: Choose::RoundRobin,
        hedge: Some(HedgeConfig {
            percentile: 0.75,
            ..HedgeConfig::default()
        }),
        decay: None,
    };
    let outcome = run(&cluster, &hedged, load(), SLOW).await;
    assert_eq!(outcome.failures, 0);
    let stats = outcome.hedges;
    assert_eq!(stats.requests, load().calls as u64);
    // Far more late calls than the budget pays for.
    assert!(stats.budget_exhausted > 0, "{stats:?}");
    assert!(stats.hedges > 0 && stats.wins > 0, "{stats:?}");
    // 5% of the calls, plus the floor of one a second over the window
    // (10 s), plus what the warmup's calls deposited.
    let allowed = 0.05 * (load().calls + load().warmup) as f64 + 10.0;
    assert!((stats.hedges as f64) <= allowed, "{stats:?} > {allowed}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_endpoints_calls_are_answered_by_the_others() {
    let cluster = Cluster::start(5).await;
    let load = Load {
        deadline: Duration::from_secs(2),
        ..load()
    };
    let hedged = Setup {
        choose: Choose::PeakEwma,
        hedge: Some(HedgeConfig::default()),
        decay: None,
    };
    // A warm client (every endpoint answered, the hedge knows the
    // latencies) sees one endpoint stall.
    let stall = || cluster.proxies[SLOW].stall(true);
    let stalled = run_with(&cluster, &hedged, load, SLOW, stall).await;
    assert!(
        stalled.marked_copies > 0,
        "calls went to the stalled endpoint: {stalled:?}"
    );
    assert_eq!(
        stalled.failures, 0,
        "every call answered, none waited for its deadline: {stalled:?}"
    );
    assert!(stalled.hedges.wins > 0, "{stalled:?}");
    // The same without hedging: the calls sent to the stalled endpoint wait
    // for their deadline.
    cluster.proxies[SLOW].stall(false);
    let stall = || cluster.proxies[SLOW].stall(true);
    let unhedged = run_with(&cluster, &plain(Choose::PeakEwma), load, SLOW, stall).await;
    assert!(unhedged.failures > 0, "{unhedged:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_added_and_removed_at_run_time_drop_no_call() {
    use wirestack::builder::ClientBuilder;
    use wirestack::kv::{ClientCodec, KvClient, Request};
    let cluster = Cluster::start(3).await;
    let addrs = cluster.addrs();
    let stack = ClientBuilder::new(ClientCodec::new())
        .timeout(Duration::from_secs(10))
        .balancing(wirestack::balance::BalanceConfig::new(Choose::RoundRobin))
        .balance::<Request, _>(&addrs[..2])
        .unwrap();
    let handle = stack.balance_handle().cloned().unwrap();
    let client = KvClient::new(stack);
    for _ in 0..20 {
        client.get("k").await.unwrap();
    }
    // Calls held in flight on the first endpoint (its proxy stalls)...
    cluster.proxies[0].stall(true);
    let held: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("k").await })
        })
        .collect();
    while handle.stats()[0].in_flight < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... while it is removed and a third is added.
    assert!(handle.remove(&addrs[0]));
    handle.add(&addrs[2]).unwrap();
    assert!(handle.add(&addrs[2]).is_err(), "listed twice");
    for _ in 0..40 {
        client.get("k").await.unwrap();
    }
    let stats = handle.stats();
    assert_eq!(stats.len(), 2);
    assert!(
        stats.iter().all(|e| e.chosen > 0),
        "the new one takes calls: {stats:?}"
    );
    cluster.proxies[0].stall(false);
    for call in held {
        call.await.unwrap().unwrap();
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_client_sends_a_batch_whole_to_one_endpoint() {
    use wirestack::builder::ClientBuilder;
    use wirestack::kv::{ClientCodec, KvClient, Request};
    let cluster = Cluster::start(2).await;
    let stack = ClientBuilder::new(ClientCodec::new())
        .balance_hedged::<Request, _>(cluster.addrs())
        .unwrap();
    let handle = stack.balance_handle().cloned().unwrap();
    let client = KvClient::new(stack.clone());
    client
        .put_many((0..50).map(|i| (format!("k{i}"), format!("v{i}"))))
        .await
        .unwrap();
    let chosen: Vec<u64> = handle.stats().iter().map(|e| e.chosen).collect();
    assert_eq!(chosen.iter().sum::<u64>(), 1, "one copy of the batch: {chosen:?}");
    assert_eq!(stack.hedge_stats().hedges, 0);
    assert_eq!(stack.hedge_stats().requests, 1);
    cluster.shutdown().await;
}
