#!/usr/bin/env bash
# The cost of TLS, measured: plain TCP vs TLS on 127.0.0.1, for kv serve
# (driven by `kv bench`, with and without --tls) and for redis-server (driven
# by `redis-benchmark`, with and without --tls), at pipeline depth 1 and 64,
# one connection, 64-byte values, 100,000 keys. The variants of a cell run
# interleaved (plain, TLS, plain, TLS, ...) and the table shows medians.
#
#   scripts/tls-bench.sh            # 3 runs per cell
#   RUNS=5 SCALE=0.5 scripts/tls-bench.sh
#
# Needs redis-server, redis-benchmark and redis-cli built with TLS (Debian's are),
# openssl (to make a throwaway CA and server certificate) and python3.
# Every load is bounded in count and in time; all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SCALE=${SCALE:-1}
VALUE=64
KEYS=100000

for tool in redis-server redis-benchmark redis-cli openssl python3; do
  command -v "$tool" >/dev/null || { echo "tls-bench: $tool not found" >&2; exit 2; }
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

# A CA and a server certificate for 127.0.0.1 and localhost (ECDSA P-256).
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$work/ca.key" \
  -out "$work/ca.pem" -days 2 -subj "/CN=tls-bench CA" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$work/server.key" \
  -out "$work/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -out "$work/server.pem" -days 2 -extfile "$work/ext" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_kv() { # out-file args...
  local out=$1; shift
  "$KV" serve --listen 127.0.0.1:0 "$@" >"$out" 2>/dev/null &
  pids+=("$!")
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$out")
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.05
  done
  echo "kv serve did not start" >&2; exit 2
}
kv_plain=$(start_kv "$work/kv-plain.out")
kv_tls=$(start_kv "$work/kv-tls.out" --tls-cert "$work/server.pem" --tls-key "$work/server.key")

redis_plain=$(free_port)
redis_tls=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_plain" --tls-port "$redis_tls" \
  --tls-cert-file "$work/server.pem" --tls-key-file "$work/server.key" --tls-ca-cert-file "$work/ca.pem" \
  --tls-auth-clients no --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do timeout 5 redis-cli -p "$redis_plain" ping >/dev/null 2>&1 && break; sleep 0.05; done

ops_for() { python3 -c "print(max(1000, int($1 * $SCALE)))"; }

kv_cell() { # addr op pipeline ops [tls flags...]
  local addr=$1 op=$2 depth=$3 n=$4; shift 4
  local workload=put
  [ "$op" = GET ] && workload=get
  timeout 300 "$KV" bench --addr "$addr" --workload "$workload" --pipeline "$depth" --ops "$n" \
    --value-size "$VALUE" --key-space "$KEYS" --duration 120 --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["ops_per_sec"], r["p99_us"])'
}

redis_cell() { # port op pipeline ops [tls flags...]
  local port=$1 op=$2 depth=$3 n=$4; shift 4
  timeout 300 redis-benchmark -h 127.0.0.1 -p "$port" -t "${op,,}" -c 1 -P "$depth" -n "$n" -d "$VALUE" -r "$KEYS" --csv "$@" 2>/dev/null |
    python3 -c 'import csv,sys
rows=[r for r in csv.reader(sys.stdin)]
r=rows[1]; print(r[1], round(float(r[6])*1000))'
}

results="$work/results.tsv"
: >"$results"
for op in SET GET; do
  for depth in 1 64; do
    if [ "$depth" = 1 ]; then n=$(ops_for 30000); else n=$(ops_for 1000000); fi
    for run in $(seq "$RUNS"); do
      printf 'kv\t%s\t%s\tplain\t%s\n' "$op" "$depth" "$(kv_cell "$kv_plain" "$op" "$depth" "$n")" >>"$results"
      printf 'kv\t%s\t%s\ttls\t%s\n' "$op" "$depth" "$(kv_cell "$kv_tls" "$op" "$depth" "$n" --tls-ca "$work/ca.pem")" >>"$results"
      printf 'redis\t%s\t%s\tplain\t%s\n' "$op" "$depth" "$(redis_cell "$redis_plain" "$op" "$depth" "$n")" >>"$results"
      printf 'redis\t%s\t%s\ttls\t%s\n' "$op" "$depth" \
        "$(redis_cell "$redis_tls" "$op" "$depth" "$n" --tls --cacert "$work/ca.pem")" >>"$results"
    done
    echo "  measured $op P=$depth ($n ops x $RUNS)" >&2
  done
done

python3 - "$results" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
path, runs = sys.argv[1], sys.argv[2]
cells = defaultdict(list)
order = []
for line in open(path):
    system, op, depth, mode, figures = line.rstrip("\n").split("\t")
    ops, p99 = (float(x) for x in figures.split())
    key = (system, op, depth)
    if key not in order:
        order.append(key)
    cells[key + (mode,)].append((ops, p99))
print(f"plain TCP vs TLS, 127.0.0.1, one connection, {runs} interleaved run(s) per cell (median), 64-byte values")
print()
print("| server | op | P | plain ops/s | TLS ops/s | TLS/plain | plain p99 us | TLS p99 us |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for key in order:
    plain, tls = cells[key + ("plain",)], cells[key + ("tls",)]
    p_ops = statistics.median(x[0] for x in plain); t_ops = statistics.median(x[0] for x in tls)
    p_p99 = statistics.median(x[1] for x in plain); t_p99 = statistics.median(x[1] for x in tls)
    system, op, depth = key
    print(f"| {system} | {op} | {depth} | {p_ops:,.0f} | {t_ops:,.0f} | {t_ops / p_ops:.2f}x | {p_p99:,.0f} | {t_p99:,.0f} |")
PY
