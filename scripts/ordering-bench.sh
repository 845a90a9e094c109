#!/usr/bin/env bash
# What ordered pipelined reads cost: `kv bench --pipeline 64` with PUTs only
# and with half GETs (`mixed:0.5`) against `kv serve --data-dir` under
# `--fsync never` and `--fsync always`. The two loads run interleaved
# (put, mixed, put, mixed, ...) RUNS times (default 3), each against a
# fresh server and data directory; it prints every run, then the medians
# and the mixed/put ratio. With BASELINE set to another `kv` binary (say,
# one built from an older commit), its two loads join the interleaving and
# its medians are printed too. Every load is bounded in count and time; all
# traffic stays on 127.0.0.1.
#
#   scripts/ordering-bench.sh                  # builds and measures target/release/kv
#   KV=/path/to/kv BASELINE=/path/to/old/kv RUNS=5 scripts/ordering-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KV:-}" ]; then
  cargo build --release --quiet --bin kv
  KV=target/release/kv
fi
RUNS=${RUNS:-3}
OPS=${OPS:-300000}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

# measure BINARY POLICY WORKLOAD: ops/s of one bounded load against a fresh server.
measure() {
  local kv=$1 run="$work/run-$RANDOM$RANDOM" addr=
  shift
  mkdir "$run"
  "$kv" serve --listen 127.0.0.1:0 --data-dir "$run/data" --fsync "$1" >"$run/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 200); do addr=$(sed -n 's/^listening on //p' "$run/out" 2>/dev/null); [ -n "$addr" ] && break; sleep 0.05; done
  "$kv" bench --addr "$addr" --workload "$2" --pipeline 64 --ops "$OPS" --duration 20 \
    --value-size 64 --key-space 100000 --json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ops_per_sec"]))'
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
  rm -rf "$run"
}

binaries=("$KV")
[ -n "${BASELINE:-}" ] && binaries+=("$BASELINE")
for policy in never always; do
  for b in "${!binaries[@]}"; do declare -a "puts_$b=()" "mixes_$b=()"; done
  for run in $(seq "$RUNS"); do
    for b in "${!binaries[@]}"; do
      put=$(measure "${binaries[$b]}" "$policy" put)
      mixed=$(measure "${binaries[$b]}" "$policy" mixed:0.5)
      eval "puts_$b+=($put); mixes_$b+=($mixed)"
      echo "fsync $policy run $run ${binaries[$b]}: put $put ops/s, mixed:0.5 $mixed ops/s"
    done
  done
  for b in "${!binaries[@]}"; do
    eval "puts=\"\${puts_$b[*]}\"; mixes=\"\${mixes_$b[*]}\""
    python3 - "$policy" "${binaries[$b]}" "$puts" "$mixes" <<'PY'
import statistics, sys
policy, kv = sys.argv[1], sys.argv[2]
puts, mixes = [int(x) for x in sys.argv[3].split()], [int(x) for x in sys.argv[4].split()]
p, m = statistics.median(puts), statistics.median(mixes)
print(f"fsync {policy} {kv} median: put {p:,.0f} ops/s, mixed:0.5 {m:,.0f} ops/s, mixed/put {m / p:.2f}x")
PY
  done
done
