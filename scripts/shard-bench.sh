#!/usr/bin/env bash
# Throughput of 1, 2 and 3 `kv serve` processes behind one `kv bench`
# (--addr A, A,B, A,B,C: keys spread by the sharded client's rendezvous
# hash), interleaved 1 2 3 1 2 3 ... so that the drift of a shared machine
# hits all alike. Servers in memory on 127.0.0.1; each load bounded in
# count and time. Prints one line per run: load, servers, round, ops/s.
#
#   scripts/shard-bench.sh [path/to/kv] [ROUNDS]
set -euo pipefail
KV=${1:-target/release/kv} ROUNDS=${2:-3}
pids=() addrs=()
for _ in 1 2 3; do
  out=$(mktemp)
  "$KV" serve --listen 127.0.0.1:0 >"$out" 2>/dev/null &
  pids+=($!)
  addr=""
  for _ in $(seq 100); do addr=$(sed -n 's/^listening on //p' "$out"); [ -n "$addr" ] && break; sleep 0.05; done
  addrs+=("$addr"); rm -f "$out"
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
lists=("${addrs[0]}" "${addrs[0]},${addrs[1]}" "${addrs[0]},${addrs[1]},${addrs[2]}")
# Every key exists on its server for the reads.
for list in "${lists[@]}"; do
  "$KV" bench --addr "$list" --workload fill --key-space 100000 --value-size 64 --pipeline 64 --duration 30 >/dev/null
done
for load in "get-depth64-4conn:--workload get --pipeline 64 --connections 4" \
            "mixed0.9-depth64-4conn:--workload mixed:0.9 --pipeline 64 --connections 4" \
            "put-depth64-4conn:--workload put --pipeline 64 --connections 4"; do
  name=${load%%:*}
  read -r -a args <<<"${load#*:}"
  for round in $(seq "$ROUNDS"); do
    for n in 1 2 3; do
      ops=$("$KV" bench --addr "${lists[$((n - 1))]}" "${args[@]}" --ops 1000000 --duration 5 \
              --value-size 64 --key-space 100000 --json | sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p')
      echo "$name $n $round $ops"
    done
  done
done
