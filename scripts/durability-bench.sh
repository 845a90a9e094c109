#!/usr/bin/env bash
# PUT throughput and latency of `kv serve --data-dir` under each fsync
# policy: sequential, pipelined (depth 64), and 16 connections; with the
# records written per fsync (the group-commit gain), read from the server's
# closing log line. Every load is bounded in count and time; all traffic
# stays on 127.0.0.1.
#
#   scripts/durability-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin kv
KV=target/release/kv
work=$(mktemp -d)
trap 'pkill -f "$KV serve --listen 127.0.0.1:0 --data-dir $work" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "| fsync | load | ops/s | p50 us | p99 us | records | fsyncs | records per fsync |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for policy in always everysec never; do
  for load in "sequential:1:1" "pipelined-64:1:64" "16-connections:16:1"; do
    IFS=: read -r name connections depth <<<"$load"
    ops=200000
    [ "$policy" = always ] && [ "$depth" = 1 ] && ops=20000
    dir="$work/$policy-$name"
    KV_LOG=info "$KV" serve --listen 127.0.0.1:0 --data-dir "$dir" --fsync "$policy" \
      >"$work/out" 2>"$work/log" &
    pid=$!
    for _ in $(seq 100); do addr=$(sed -n 's/^listening on //p' "$work/out"); [ -n "$addr" ] && break; sleep 0.05; done
    json=$("$KV" bench --addr "$addr" --workload put --connections "$connections" --pipeline "$depth" \
      --ops "$ops" --duration 20 --value-size 64 --key-space 100000 --json)
    kill -TERM "$pid"
    wait "$pid"
    python3 - "$policy" "$name" "$json" "$work/log" <<'PY'
import json, re, sys
policy, name, report, log = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), open(sys.argv[4]).read()
m = re.search(r"records_written\D*(\d+)\D+fsyncs\D*(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", log))
records, fsyncs = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
per = f"{records / fsyncs:.1f}" if fsyncs else "-"
print(f"| {policy} | {name} | {report['ops_per_sec']:,.0f} | {report['p50_us']} | {report['p99_us']} | {records:,} | {fsyncs:,} | {per} |")
PY
  done
done
