#!/usr/bin/env bash
# The kv-vs-redis plots of BENCHMARKS.md: kv serve and redis-server on
# 127.0.0.1, each driven by `kv bench` (--protocol kv / --protocol resp: the
# same engine and load), each run writing its HdrHistogram percentile
# distribution (--hdr-out) and its plot (--plot) into docs/plots/.
#
#   scripts/plot-vs-redis.sh                  # GET, 4 connections, depth 16
#   WORKLOAD=put CONNECTIONS=1 PIPELINE=64 scripts/plot-vs-redis.sh
#   OPS=200000 SECONDS_MAX=5 scripts/plot-vs-redis.sh
#
# Needs redis-server. Every load is bounded in count and time; all traffic
# stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKLOAD=${WORKLOAD:-get}
CONNECTIONS=${CONNECTIONS:-4}
PIPELINE=${PIPELINE:-16}
OPS=${OPS:-2000000}
SECONDS_MAX=${SECONDS_MAX:-10}
REDIS_PORT=${REDIS_PORT:-16379}
OUT=${OUT:-docs/plots}

command -v redis-server >/dev/null || { echo "plot-vs-redis: redis-server not found" >&2; exit 2; }
cargo build --release --quiet --bin kv
KV=target/release/kv
mkdir -p "$OUT"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
"$KV" serve --listen 127.0.0.1:0 >"$work/kv.out" 2>"$work/kv.log" &
pids+=($!)
for _ in $(seq 100); do
  [ -s "$work/kv.out" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
kv_addr=$(sed -n 's/^listening on //p' "$work/kv.out")

name="$WORKLOAD-c$CONNECTIONS-p$PIPELINE"
common=(--workload "$WORKLOAD" --connections "$CONNECTIONS" --pipeline "$PIPELINE"
  --ops "$OPS" --duration "$SECONDS_MAX" --value-size 64 --key-space 100000)
echo "== kv ($kv_addr)"
"$KV" bench --protocol kv --addr "$kv_addr" "${common[@]}" \
  --hdr-out "$OUT/kv-$name.hdr" --plot "$OUT/kv-$name.svg"
echo "== redis (127.0.0.1:$REDIS_PORT)"
"$KV" bench --protocol resp --addr "127.0.0.1:$REDIS_PORT" "${common[@]}" \
  --hdr-out "$OUT/redis-$name.hdr" --plot "$OUT/redis-$name.svg"
ls -l "$OUT"/*"$name"*
