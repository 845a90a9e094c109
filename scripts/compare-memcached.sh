#!/usr/bin/env bash
# kv serve and memcached side by side, on 127.0.0.1, driven by the same load
# generator (`kv bench`, with --protocol kv or --protocol memcache): the same
# operation, value size, key space, connections and pipeline depth, the same
# engine. The sibling of scripts/compare-redis.sh.
#
#   scripts/compare-memcached.sh            # one run per cell
#   RUNS=3 scripts/compare-memcached.sh     # the median of three runs per cell
#   SCALE=0.2 scripts/compare-memcached.sh  # a fifth of the operations (quick look)
#   THREADS=2 scripts/compare-memcached.sh  # memcached's worker threads (-t, default 4 as memcached's)
#
# Prints one table: throughput and p99 of both, and the ratios kv/memcached
# (throughput: higher is better for kv; p99: lower is better for kv).
# memcached speaks its meta protocol here (`ms`/`mg`, with the opaque
# token `kv bench`'s codec checks answers against); kv serve keeps its
# data in memory, as memcached does.
#
# Needs memcached (Debian: memcached) and python3 for the table. Every load
# is bounded in count and in time; all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-1}
SCALE=${SCALE:-1}
THREADS=${THREADS:-4}
VALUE=64
KEYS=100000
MEMCACHED_PORT=${MEMCACHED_PORT:-21211}

for tool in memcached python3; do
  command -v "$tool" >/dev/null || { echo "compare-memcached: $tool not found" >&2; exit 2; }
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

memcached_pid=""
kv_pid=""
kv_addr=""

start_memcached() {
  # -u: memcached refuses to run as root without it (ignored otherwise).
  memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -t "$THREADS" -m 1024 -u nobody >"$work/memcached.log" 2>&1 &
  memcached_pid=$!
  pids+=("$memcached_pid")
  for _ in $(seq 100); do
    python3 - "$MEMCACHED_PORT" <<'PY' 2>/dev/null && return
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5)
s.sendall(b"mn\r\n")
assert s.recv(16) == b"MN\r\n"
PY
    sleep 0.05
  done
  echo "memcached did not start" >&2; exit 2
}

stop_memcached() {
  kill "$memcached_pid" 2>/dev/null || true
  wait "$memcached_pid" 2>/dev/null || true
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

# One cell: prints "ops_per_sec p99_us".
bench_cell() { # protocol addr op(SET|GET) connections pipeline ops
  local workload=put
  [ "$3" = GET ] && workload=get
  "$KV" bench --protocol "$1" --addr "$2" --workload "$workload" --connections "$4" --pipeline "$5" --ops "$6" \
    --value-size "$VALUE" --key-space "$KEYS" --duration 120 --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ops_per_sec"], r["p99_us"])'
}

results="$work/results.tsv"
: >"$results"
measure() { # op connections pipeline
  local n
  n=$(ops_for "$2" "$3")
  for run in $(seq "$RUNS"); do
    printf '%s\t%s\t%s\tkv\t%s\n' "$1" "$2" "$3" "$(bench_cell kv "$kv_addr" "$1" "$2" "$3" "$n")" >>"$results"
    printf '%s\t%s\t%s\tmemcached\t%s\n' "$1" "$2" "$3" \
      "$(bench_cell memcache "127.0.0.1:$MEMCACHED_PORT" "$1" "$2" "$3" "$n")" >>"$results"
  done
  echo "  measured $1 c=$2 P=$3 ($n ops x $RUNS)" >&2
}

echo "== in memory (kv: no data dir; memcached -t $THREADS)" >&2
start_memcached
start_kv
for op in SET GET; do
  for cp in "1 1" "1 16" "1 64" "1 1000" "50 1" "50 16"; do
    measure "$op" $cp
  done
done
stop_memcached
stop_kv

python3 - "$results" "$RUNS" "$THREADS" <<'PY'
import statistics, sys
from collections import defaultdict
path, runs, threads = sys.argv[1], sys.argv[2], sys.argv[3]
cells = defaultdict(lambda: defaultdict(list))
order = []
for line in open(path):
    op, c, p, system, figures = line.rstrip("\n").split("\t")
    a, b = figures.split()
    key = (op, c, p)
    if key not in order:
        order.append(key)
    cells[key][system].append((float(a), float(b)))
print(f"kv serve vs memcached -t {threads}, 127.0.0.1, {runs} run(s) per cell (median), 64-byte values, 100k keys")
print("both driven by kv bench (--protocol kv / memcache)")
print()
print("| op | c | P | memcached ops/s | kv ops/s | kv/memcached | memcached p99 us | kv p99 us | kv/memcached p99 |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
def med(values, i):
    return statistics.median(x[i] for x in values) if values else float("nan")
for key in order:
    m = cells[key]["memcached"]; k = cells[key]["kv"]
    m_ops, k_ops = med(m, 0), med(k, 0)
    m_p99, k_p99 = med(m, 1), med(k, 1)
    op, c, p = key
    print(f"| {op} | {c} | {p} | {m_ops:,.0f} | {k_ops:,.0f} | {k_ops / m_ops:.2f}x | {m_p99:,.0f} | {k_p99:,.0f} | {k_p99 / max(m_p99, 1):.2f}x |")
PY
