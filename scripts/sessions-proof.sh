#!/usr/bin/env bash
# The exactly-once proof, long: the test suite's
# `exactly_once_through_kv_client_with_lost_answers_and_repeated_kill_9`
# (tests/sessions.rs), in release, scaled up: 1,000,000 writes by 128 tasks
# through one KvClient whose connections lose 1% of answers (each with its
# connection), `kv serve --fsync always` killed with SIGKILL and restarted
# 10 times (the second outage outlasts the client's retries). Prints the
# audit of every write against the server's log (duplicates, lost
# acknowledgements, failed writes that happened: each must be 0), the
# linearizability check and the time it took (the figures in BENCHMARKS.md).
#
#   scripts/sessions-proof.sh
#   WRITES=100000 DROP=0.002 KILLS=4 scripts/sessions-proof.sh   # the suite's size
#   WINDOW=8192 scripts/sessions-proof.sh                         # kv serve --session-window
#
# About 2 GiB of memory for the history of 10^6 writes, and some 100 MB of
# log in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export SESSIONS_PROOF_WRITES="${WRITES:-1000000}"
export SESSIONS_PROOF_DROP="${DROP:-0.01}"
export SESSIONS_PROOF_KILLS="${KILLS:-10}"
export SESSIONS_PROOF_TASKS="${TASKS:-128}"
export SESSIONS_PROOF_KEYS="${KEYS:-1024}"
if [ -n "${WINDOW:-}" ]; then export SESSIONS_PROOF_WINDOW="$WINDOW"; fi
cargo build --release --bin kv --test sessions 2>&1 | grep -E "^(error|warning)" || true
start=$(date +%s.%N)
cargo test --release --test sessions -- --exact \
  exactly_once_through_kv_client_with_lost_answers_and_repeated_kill_9 --nocapture 2>&1 |
  grep -E "^Proof|writes:|^  |log records|linearizable|panicked|test result"
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "wall: %.1f s\n", e - s }'
