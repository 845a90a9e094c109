#!/usr/bin/env bash
# kv serve and redis-server side by side, on 127.0.0.1, driven by the same
# load generator (`kv bench`, with --protocol kv or --protocol resp): the
# same operation, value size, key space, connections and pipeline depth, the
# same engine. redis-benchmark's figure for redis is an extra column.
#
#   scripts/compare-redis.sh            # one run per cell
#   RUNS=3 scripts/compare-redis.sh     # the median of three runs per cell
#   SCALE=0.2 scripts/compare-redis.sh  # a fifth of the operations (quick look)
#   REDIS_BENCHMARK=0 scripts/compare-redis.sh  # without the redis-benchmark column
#   MEMORY=0 scripts/compare-redis.sh   # without the memory measurement
#   ONLY=durable RUNS=5 scripts/compare-redis.sh  # the durable rows alone,
#                                       # with each run's kv/redis ratio
#
# Prints one table: throughput and p99 of both, and the ratios kv/redis
# (throughput: higher is better for kv; p99: lower is better for kv), and
# redis-benchmark's throughput and p99 for redis. Then
# the durable case (kv --fsync always vs redis appendfsync always) and the
# memory of 1,000,000 keys with 64-byte values.
#
# Needs redis-server, redis-benchmark and redis-cli (Debian: redis-server,
# redis-tools) and python3 for the table. Every load is bounded in count and
# in time; all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
SCALE=${SCALE:-1}
VALUE=64
KEYS=100000
REDIS_PORT=${REDIS_PORT:-16379}

for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "compare-redis: $tool not found" >&2; exit 2; }
done
cargo build --release --quiet --bin kv
KV=target/release/kv

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ops_for() { # connections pipeline -> operation count
  local base
  case "$1:$2" in
    1:1) base=30000 ;; 50:1) base=200000 ;; 16:1) base=100000 ;;
    *:16) base=400000 ;; *:64) base=1000000 ;; *) base=2000000 ;;
  esac
  python3 -c "print(max(1000, int($base * $SCALE)))"
}

redis_pid=""
kv_pid=""
kv_addr=""

start_redis() { # extra args...
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --dir "$work" "$@" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server did not start" >&2; exit 2
}

stop_redis() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
}

start_kv() { # extra args...
  "$KV" serve --listen 127.0.0.1:0 "$@" >"$work/kv.out" 2>"$work/kv.log" &
  kv_pid=$!
  pids+=("$kv_pid")
  for _ in $(seq 100); do
    kv_addr=$(sed -n 's/^listening on //p' "$work/kv.out")
    [ -n "$kv_addr" ] && return
    sleep 0.05
  done
  echo "kv serve did not start" >&2; exit 2
}

stop_kv() {
  kill -TERM "$kv_pid" 2>/dev/null || true
  wait "$kv_pid" 2>/dev/null || true
}

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

# One cell: prints "ops_per_sec p99_us".
bench_cell() { # protocol addr op(SET|GET) connections pipeline ops
  local workload=put
  [ "$3" = GET ] && workload=get
  "$KV" bench --protocol "$1" --addr "$2" --workload "$workload" --connections "$4" --pipeline "$5" --ops "$6" \
    --value-size "$VALUE" --key-space "$KEYS" --duration 120 --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ops_per_sec"], r["p99_us"])'
}

redis_benchmark_cell() { # op(SET|GET) connections pipeline ops
  redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t "${1,,}" -c "$2" -P "$3" -n "$4" -d "$VALUE" -r "$KEYS" --csv 2>/dev/null |
    python3 -c 'import csv,sys
rows=[r for r in csv.reader(sys.stdin)]
r=rows[1]; print(r[1], round(float(r[6])*1000))'
}

results="$work/results.tsv"
: >"$results"
measure() { # label op connections pipeline
  local n
  n=$(ops_for "$3" "$4")
  for run in $(seq "$RUNS"); do
    printf '%s\t%s\t%s\t%s\tkv\t%s\n' "$1" "$2" "$3" "$4" "$(bench_cell kv "$kv_addr" "$2" "$3" "$4" "$n")" >>"$results"
    printf '%s\t%s\t%s\t%s\tredis\t%s\n' "$1" "$2" "$3" "$4" \
      "$(bench_cell resp "127.0.0.1:$REDIS_PORT" "$2" "$3" "$4" "$n")" >>"$results"
    if [ "${REDIS_BENCHMARK:-1}" = 1 ]; then
      printf '%s\t%s\t%s\t%s\tredis-benchmark\t%s\n' "$1" "$2" "$3" "$4" \
        "$(redis_benchmark_cell "$2" "$3" "$4" "$n")" >>"$results"
    fi
  done
  echo "  measured $1 $2 c=$3 P=$4 ($n ops x $RUNS)" >&2
}

ONLY=${ONLY:-}
if [ "$ONLY" = durable ]; then MEMORY=0; fi
if [ -z "$ONLY" ] || [ "$ONLY" = memory ]; then
echo "== in memory (redis: no persistence; kv: no data dir)" >&2
start_redis --appendonly no
start_kv
for op in SET GET; do
  for cp in "1 1" "1 16" "1 64" "1 1000" "50 1" "50 16"; do
    measure memory "$op" $cp
  done
done
stop_redis
stop_kv
fi

if [ "$ONLY" = memory ]; then
  :
elif "$KV" serve --help | grep -q -- '--fsync'; then
  echo "== durable (kv --fsync always, redis appendfsync always)" >&2
  start_redis --appendonly yes --appendfsync always
  start_kv --fsync always --data-dir "$work/kv-data"
  for cp in "1 64" "16 1"; do
    measure durable SET $cp
  done
  stop_redis
  stop_kv
else
  echo "== durable: skipped, this kv has no --fsync" >&2
fi

if [ "${MEMORY:-1}" = 1 ]; then
echo "== memory: 1,000,000 keys, $VALUE-byte values" >&2
start_redis --appendonly no
before=$(rss_kib "$redis_pid")
python3 - "$VALUE" <<'PY' | redis-cli -p "$REDIS_PORT" --pipe >/dev/null
import sys
value = "x" * int(sys.argv[1])
out = sys.stdout
for n in range(1_000_000):
    key = f"key:{n:012d}"
    out.write(f"*3\r\n$3\r\nSET\r\n${len(key)}\r\n{key}\r\n${len(value)}\r\n{value}\r\n")
PY
redis_keys=$(redis-cli -p "$REDIS_PORT" dbsize)
redis_bytes=$(( ($(rss_kib "$redis_pid") - before) * 1024 ))
stop_redis
start_kv
before=$(rss_kib "$kv_pid")
"$KV" bench --addr "$kv_addr" --workload fill --key-space 1000000 --pipeline 1000 --value-size "$VALUE" --json >/dev/null
kv_bytes=$(( ($(rss_kib "$kv_pid") - before) * 1024 ))
stop_kv
printf 'memory\t-\t-\t-\tredis\t%s %s\n' "$redis_bytes" "$redis_keys" >>"$results"
printf 'memory\t-\t-\t-\tkv\t%s 1000000\n' "$kv_bytes" >>"$results"
fi

python3 - "$results" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
path, runs = sys.argv[1], sys.argv[2]
cells = defaultdict(lambda: defaultdict(list))
memory = {}
order = []
for line in open(path):
    label, op, c, p, system, figures = line.rstrip("\n").split("\t")
    a, b = figures.split()
    if label == "memory" and op == "-":
        memory[system] = (int(a), int(b))
        continue
    key = (label, op, c, p)
    if key not in order:
        order.append(key)
    cells[key][system].append((float(a), float(b)))
print(f"kv serve vs redis-server, 127.0.0.1, {runs} run(s) per cell (median), 64-byte values, 100k keys")
print("both driven by kv bench (--protocol kv / resp); redis-benchmark against redis as an extra column")
print()
print(f"| mode | op | c | P | redis ops/s | kv ops/s | kv/redis | redis p99 us | kv p99 us | kv/redis p99 | redis-benchmark ops/s | redis-benchmark p99 us |")
print(f"| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
def med(values, i):
    return statistics.median(x[i] for x in values) if values else float("nan")
for key in order:
    r = cells[key]["redis"]; k = cells[key]["kv"]; b = cells[key].get("redis-benchmark", [])
    r_ops, k_ops, b_ops = med(r, 0), med(k, 0), med(b, 0)
    r_p99, k_p99, b_p99 = med(r, 1), med(k, 1), med(b, 1)
    label, op, c, p = key
    print(f"| {label} | {op} | {c} | {p} | {r_ops:,.0f} | {k_ops:,.0f} | {k_ops / r_ops:.2f}x | {r_p99:,.0f} | {k_p99:,.0f} | {k_p99 / max(r_p99, 1):.2f}x | {b_ops:,.0f} | {b_p99:,.0f} |")
if int(runs) > 1:
    print()
    print("each run (kv, then redis, interleaved): kv/redis throughput")
    for key in order:
        r = cells[key]["redis"]; k = cells[key]["kv"]
        label, op, c, p = key
        ratios = ", ".join(f"{kv[0] / rd[0]:.2f}x" for kv, rd in zip(k, r))
        print(f"{label} {op} c={c} P={p}: {ratios}")
if memory:
    print()
    print("| memory, 1M keys x 64 B | RSS growth | keys | bytes per key |")
    print("| --- | ---: | ---: | ---: |")
    for system in ("redis", "kv"):
        if system in memory:
            total, keys = memory[system]
            print(f"| {system} | {total / 2**20:,.1f} MiB | {keys:,} | {total / max(keys, 1):.0f} |")
PY
