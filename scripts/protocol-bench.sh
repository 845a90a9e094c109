#!/usr/bin/env bash
# KV protocol 2.0 against 1.1, one `kv serve`, the same load generator
# (`kv bench --protocol kv` speaks 2.0, `--protocol kv1` speaks 1.1):
#
# 1. Head-of-line blocking: `kv serve --fsync always`, ONE connection,
#    64 independent calls in flight (`--depth 64`), 90% GETs of 64-byte
#    values and 10% PUTs of 64 KiB to keys of their own. Under 1.1 a GET
#    written behind a PUT waits for that PUT's fsync; under 2.0 it is
#    answered as soon as it is read. Prints the GETs' p50/p99 under each
#    and the ratio 2.0 / 1.1.
# 2. What the server's out-of-order path costs: the in-memory rows of
#    scripts/compare-redis.sh (SET and GET at c/P = 1/1, 1/16, 1/64,
#    1/1000, 50/1, 50/16), each with 2.0 and 1.1.
#
# The two protocols run interleaved (kv, kv1, kv, kv1, ...) RUNS times
# (default 3) and the medians are printed. Every load is bounded in count
# and time; all traffic stays on 127.0.0.1.
#
#   scripts/protocol-bench.sh                 # builds and measures target/release/kv
#   RUNS=5 SCALE=0.5 scripts/protocol-bench.sh
#   ONLY=hol scripts/protocol-bench.sh        # only part 1 (ONLY=cost: only part 2)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KV:-}" ]; then
  cargo build --release --quiet --bin kv
  KV=target/release/kv
fi
RUNS=${RUNS:-3}
SCALE=${SCALE:-1}
ONLY=${ONLY:-all}
command -v python3 >/dev/null || { echo "protocol-bench: python3 not found" >&2; exit 2; }
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

start_kv() { # extra args...
  "$KV" serve --listen 127.0.0.1:0 "$@" >"$work/kv.out" 2>"$work/kv.log" &
  pid=$!
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$work/kv.out")
    [ -n "$addr" ] && return
    sleep 0.05
  done
  echo "kv serve did not start" >&2; exit 2
}

stop_kv() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}

scaled() { python3 -c "print(max(1000, int($1 * $SCALE)))"; }

results="$work/results.tsv"
: >"$results"

if [ "$ONLY" = all ] || [ "$ONLY" = hol ]; then
  echo "== head-of-line: --fsync always, 1 connection, depth 64, 90% GETs of 64 B, 10% PUTs of 64 KiB" >&2
  ops=$(scaled 20000)
  for run in $(seq "$RUNS"); do
    for protocol in kv kv1; do
      rm -rf "$work/data"
      start_kv --fsync always --data-dir "$work/data"
      "$KV" bench --protocol "$protocol" --addr "$addr" --workload mixed:0.9 --depth 64 --connections 1 \
        --ops "$ops" --value-size 64 --put-value-size 65536 --key-space 1000 --duration 120 --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("hol\t'"$protocol"'\t%s\t%s\t%s" % (r["get_p50_us"], r["get_p99_us"], r["ops_per_sec"]))' >>"$results"
      stop_kv
    done
    echo "  run $run done" >&2
  done
fi

if [ "$ONLY" = all ] || [ "$ONLY" = cost ]; then
  echo "== the server's out-of-order path: in-memory rows" >&2
  start_kv
  for op in put get; do
    for cp in "1 1" "1 16" "1 64" "1 1000" "50 1" "50 16"; do
      set -- $cp
      case "$1:$2" in
        1:1) base=30000 ;; 50:1) base=200000 ;; *:16) base=400000 ;; *:64) base=1000000 ;; *) base=2000000 ;;
      esac
      ops=$(scaled "$base")
      for run in $(seq "$RUNS"); do
        for protocol in kv kv1; do
          "$KV" bench --protocol "$protocol" --addr "$addr" --workload "$op" --connections "$1" --pipeline "$2" \
            --ops "$ops" --value-size 64 --key-space 100000 --duration 120 --json |
            python3 -c 'import json,sys; r=json.load(sys.stdin); print("cost\t'"$protocol"'\t'"$op c=$1 P=$2"'\t%s\t%s" % (r["ops_per_sec"], r["p99_us"]))' >>"$results"
        done
      done
      echo "  measured $op c=$1 P=$2" >&2
    done
  done
  stop_kv
fi

python3 - "$results" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
path, runs = sys.argv[1], sys.argv[2]
hol = defaultdict(list)
cost = defaultdict(lambda: defaultdict(list))
order = []
for line in open(path):
    fields = line.rstrip("\n").split("\t")
    if fields[0] == "hol":
        _, protocol, p50, p99, ops = fields
        hol[protocol].append((float(p50), float(p99), float(ops)))
    else:
        _, protocol, cell, ops, p99 = fields
        if cell not in order:
            order.append(cell)
        cost[cell][protocol].append((float(ops), float(p99)))
med = lambda rows, i: statistics.median(r[i] for r in rows)
if hol:
    print(f"head-of-line, {runs} run(s), median: GET latency under --fsync always, depth 64, one connection")
    print()
    print("| protocol | GET p50 us | GET p99 us | ops/s |")
    print("| --- | ---: | ---: | ---: |")
    for protocol in ("kv1", "kv"):
        rows = hol[protocol]
        print(f"| {'1.1' if protocol == 'kv1' else '2.0'} | {med(rows, 0):.0f} | {med(rows, 1):.0f} | {med(rows, 2):.0f} |")
    print()
    print(f"GET p99 2.0 / 1.1: {med(hol['kv'], 1) / med(hol['kv1'], 1):.3f}")
    print()
if order:
    print(f"the server's out-of-order path, in memory, {runs} run(s), median")
    print()
    print("| cell | 1.1 ops/s | 2.0 ops/s | 2.0 / 1.1 | 1.1 p99 us | 2.0 p99 us |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for cell in order:
        v1, v2 = cost[cell]["kv1"], cost[cell]["kv"]
        print(f"| {cell} | {med(v1, 0):.0f} | {med(v2, 0):.0f} | {med(v2, 0) / med(v1, 0):.3f} | {med(v1, 1):.0f} | {med(v2, 1):.0f} |")
PY
