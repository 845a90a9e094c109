#!/usr/bin/env bash
# Two builds of `kv serve` against each other, interleaved A B A B so that
# the drift of a shared machine hits both alike: for each load, ROUNDS
# rounds of a fresh server from A then from B (10,000 keys of 64 bytes
# filled first), `kv bench` from B, bounded in count and time, on
# 127.0.0.1. Prints one line per run: load, side, round, ops/s.
#
#   scripts/ab-kv.sh path/to/A/kv path/to/B/kv [ROUNDS]
set -euo pipefail
A=$1 B=$2 ROUNDS=${3:-3}
run() { # bin, bench args...
  local bin=$1; shift
  local out; out=$(mktemp)
  "$bin" serve --listen 127.0.0.1:0 >"$out" 2>/dev/null &
  local pid=$! addr=""
  for _ in $(seq 100); do addr=$(sed -n 's/^listening on //p' "$out"); [ -n "$addr" ] && break; sleep 0.05; done
  "$B" bench --addr "$addr" --workload fill --key-space 10000 --value-size 64 --ops 10000 --duration 10 >/dev/null
  "$B" bench --addr "$addr" "$@" --ops 400000 --duration 8 --value-size 64 --key-space 10000 --json
  kill -TERM "$pid"; wait "$pid" || true; rm -f "$out"
}
for load in "get-depth64:--workload get --pipeline 64 --connections 1" \
            "get-16conn:--workload get --pipeline 1 --connections 16" \
            "put-depth64-4conn:--workload put --pipeline 64 --connections 4" \
            "put-depth64:--workload put --pipeline 64 --connections 1"; do
  name=${load%%:*}
  read -r -a args <<<"${load#*:}"
  for round in $(seq "$ROUNDS"); do
    for side in A B; do
      bin=$A; [ "$side" = B ] && bin=$B
      ops=$(run "$bin" "${args[@]}" | sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p')
      echo "$name $side $round $ops"
    done
  done
done
