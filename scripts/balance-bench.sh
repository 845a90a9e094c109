#!/usr/bin/env bash
# The balancer's experiment and its cost, in one run (BENCHMARKS.md,
# "Balancing and hedging"):
#
# 1. examples/balance_experiment.rs, release build: five KV servers in
#    process, each behind a delaying proxy on 127.0.0.1; CALLS GETs
#    (default 50000), CONCURRENCY at a time (default 32), through
#    ClientBuilder::balance / balance_hedged and KvClient, for round robin,
#    least-loaded and peak-EWMA, with and without hedging (p95, 5%): all
#    healthy, one endpoint slowed tenfold (nine times the healthy median
#    added by its proxy), one stalled (its proxy stops forwarding under a
#    warm client). ROUNDS rounds (default 3), each a fresh set of servers.
#    Each load is bounded in count and in time (120 s).
# 2. benches/balance.rs: what the balancer and the hedge cost per call
#    against the pool alone, with no network.
#
#   scripts/balance-bench.sh [CALLS] [CONCURRENCY] [ROUNDS]
set -euo pipefail
CALLS=${1:-50000} CONCURRENCY=${2:-32} ROUNDS=${3:-3}
cargo build --release --example balance_experiment
for round in $(seq "$ROUNDS"); do
  echo "## round $round"
  target/release/examples/balance_experiment "$CALLS" "$CONCURRENCY"
  echo
done
cargo bench --bench balance -- --noplot 2>&1 | grep -E '^(per call|Benchmarking .*: Analyzing)|time:|thrpt:' || true
