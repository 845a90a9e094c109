//! The balancer's experiment (BENCHMARKS.md, "Balancing and hedging"):
//! five KV servers in process, each behind a delaying proxy on 127.0.0.1,
//! one of them slowed tenfold, then stalled; a bounded load of GETs
//! through the whole client stack with round robin, least-loaded and
//! peak-EWMA, with and without hedging. Prints a Markdown table.
//!
//! ```text
//! cargo run --release --example balance_experiment -- [CALLS] [CONCURRENCY] [DECAY_MS]
//! ```
//!
//! `scripts/balance-bench.sh` runs it with the figures' settings.

#[path = "../tests/common/balance_experiment.rs"]
mod experiment;
#[path = "../tests/common/proxy.rs"]
mod proxy;

use experiment::{run, run_with, Cluster, Load, Outcome, Setup};
use std::time::Duration;
use wirestack::balance::Choose;
use wirestack::hedge::HedgeConfig;

const SLOW: usize = 4;

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn row(scenario: &str, setup: &Setup, outcome: &Outcome) {
    let chooser = match setup.choose {
        Choose::RoundRobin => "round robin",
        Choose::LeastLoaded => "least-loaded",
        _ => "peak-EWMA",
    };
    let hedge = match &setup.hedge {
        Some(config) => format!(
            "p{:.0}, {:.0}%",
            config.percentile * 100.0,
            config.budget_ratio * 100.0
        ),
        None => "—".into(),
    };
    println!(
        "| {scenario} | {chooser} | {hedge} | {} | {} | {} | {} | {:.1}% | {:.2}% | {} |",
        ms(outcome.percentile(0.5)),
        ms(outcome.percentile(0.99)),
        ms(outcome.percentile(0.999)),
        ms(outcome.latencies.last().copied().unwrap_or_default()),
        outcome.marked_share * 100.0,
        outcome.extra() * 100.0,
        outcome.failures,
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let decay = args
        .next()
        .and_then(|a| a.parse().ok())
        .map(Duration::from_millis);
    let load = Load {
        calls,
        warmup: calls / 10,
        concurrency,
        time_limit: Duration::from_secs(120),
        deadline: Duration::from_secs(2),
    };
    let cluster = Cluster::start(5).await;
    let choosers = [Choose::RoundRobin, Choose::LeastLoaded, Choose::PeakEwma];
    let hedge = HedgeConfig::default();
    let setups: Vec<Setup> = choosers
        .iter()
        .map(|&choose| Setup {
            choose,
            hedge: None,
            decay,
        })
        .chain(choosers.iter().map(|&choose| Setup {
            choose,
            hedge: Some(hedge.clone()),
            decay,
        }))
        .collect();

    println!(
        "{calls} GETs, {concurrency} at a time, after {} to warm up; five KV servers behind proxies.\n",
        load.warmup
    );
    println!("| endpoints | chooser | hedge | p50 ms | p99 ms | p99.9 ms | max ms | to the marked one | extra copies | failed |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut healthy = Vec::new();
    for setup in &setups {
        let outcome = run(&cluster, setup, load, SLOW).await;
        row("all healthy", setup, &outcome);
        healthy.push(outcome);
    }
    // Ten times slower: the median of the healthy round robin run, nine
    // more times over.
    let delay = healthy[0].percentile(0.5) * 9;
    cluster.proxies[SLOW].set_delay(delay);
    let mut slow = Vec::new();
    for setup in &setups {
        let outcome = run(&cluster, setup, load, SLOW).await;
        row(&format!("one +{} ms", ms(delay)), setup, &outcome);
        slow.push(outcome);
    }
    cluster.proxies[SLOW].set_delay(Duration::ZERO);
    let mut stalled = Vec::new();
    for setup in [&setups[2], &setups[5]] {
        cluster.proxies[SLOW].stall(false);
        let outcome = run_with(&cluster, setup, load, SLOW, || cluster.proxies[SLOW].stall(true)).await;
        row("one stalled", setup, &outcome);
        stalled.push(outcome);
    }
    cluster.proxies[SLOW].stall(false);

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!();
    println!(
        "peak-EWMA, one slow: p99 {} ms = {:.2}× the all-healthy p99 {} ms (target ≤ 1.5×)",
        ms(slow[2].percentile(0.99)),
        ratio(slow[2].percentile(0.99), healthy[2].percentile(0.99)),
        ms(healthy[2].percentile(0.99)),
    );
    println!(
        "peak-EWMA + hedging, one slow: p99.9 {} ms = {:.2}× the all-healthy (unhedged) p99.9 {} ms (target ≤ 2×), extra copies {:.2}% (target ≤ 5%)",
        ms(slow[5].percentile(0.999)),
        ratio(slow[5].percentile(0.999), healthy[2].percentile(0.999)),
        ms(healthy[2].percentile(0.999)),
        slow[5].extra() * 100.0,
    );
    let hedged = &stalled[1];
    println!(
        "one stalled, peak-EWMA + hedging: {} failed, max {} ms, hedge delay {} ms; unhedged: {} failed (the {} s deadline)",
        hedged.failures,
        ms(hedged.latencies.last().copied().unwrap_or_default()),
        hedged.hedges.delay.map_or("—".into(), ms),
        stalled[0].failures,
        load.deadline.as_secs(),
    );
    cluster.shutdown().await;
}
