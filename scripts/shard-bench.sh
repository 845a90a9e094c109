#!/usr/bin/env bash
# The sharded client (`kv bench --addr A,B,...`) over 1, 2, 4 and 8
# `kv serve` processes, in memory on 127.0.0.1: throughput and the client's
# own CPU per operation (getrusage of the `kv bench` process, user + system,
# over the measured phase). CPU per op is the figure that holds on a small
# machine: issue 22's target is CPU per GET over 8 servers at most 1.25x
# its CPU per GET over 1 server, same run.
#
# Rounds are interleaved (1 2 4 8 1 2 4 8 ...) so that the drift of a shared
# machine hits all alike. With nproc >= 12 the servers are pinned one core
# each (cores 0-7) and the generator to the cores left (taskset); on a
# smaller machine nothing is pinned and they share the cores.
#
# Four loads: a batch of 64 (`--pipeline 64`) and 64 calls in flight
# (`--depth 64`), each in total, split over the servers, and each per
# server (`--pipeline`/`--depth` 64 x the number of servers: every server
# is sent what one server gets, as N independent generators would send it;
# `N` in a load's arguments below stands for 64 x the server count).
#
# Prints one line per run (load, servers, round, ops/s, client µs/op), then
# the median of each load and server count, and its CPU per op against one
# server's.
#
# WORKERS=N runs the generator's runtime on N worker threads (tokio reads
# TOKIO_WORKER_THREADS; the default is one per core): with WORKERS=1 a
# burst of calls and the connection tasks it wakes share one thread, so
# each server's share goes out in one write (see BENCHMARKS.md, "Per
# server").
#
# THREADS=T runs the generator thread per core instead (`kv bench
# --threads T`): T runtimes of one worker each, the connections dealt
# among them, so that it keeps that locality on a machine of many cores.
#
#   scripts/shard-bench.sh [path/to/kv] [ROUNDS] [SECONDS]
#   WORKERS=1 scripts/shard-bench.sh target/release/kv 3 3
#   THREADS=2 scripts/shard-bench.sh target/release/kv 3 3
set -euo pipefail
KV=${1:-target/release/kv} ROUNDS=${2:-3} SECONDS_PER_RUN=${3:-3}
COUNTS=(1 2 4 8)
cores=$(nproc)
server_pin=() gen_pin=()
if [ "$cores" -ge 12 ] && command -v taskset >/dev/null; then
  gen_pin=(taskset -c "8-$((cores - 1))")
  echo "# $cores cores: servers pinned to cores 0-7, one each; generator to 8-$((cores - 1))"
else
  echo "# $cores cores: nothing pinned (servers and generator share them)"
fi
pids=() addrs=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
for i in $(seq 0 7); do
  [ "$cores" -ge 12 ] && command -v taskset >/dev/null && server_pin=(taskset -c "$i")
  out=$(mktemp)
  "${server_pin[@]}" "$KV" serve --listen 127.0.0.1:0 >"$out" 2>/dev/null &
  pids+=($!)
  addr=""
  for _ in $(seq 100); do addr=$(sed -n 's/^listening on //p' "$out"); [ -n "$addr" ] && break; sleep 0.05; done
  rm -f "$out"
  [ -n "$addr" ] || { echo "server $i did not start" >&2; exit 1; }
  addrs+=("$addr")
done
list_of() { local IFS=,; echo "${addrs[*]:0:$1}"; }
results=$(mktemp)
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true; rm -f "$results"' EXIT
printf '%-18s %7s %5s %12s %14s\n' load servers round ops/s client_us/op
for load in "get-P64-4conn:--workload get --pipeline 64 --connections 4" \
            "get-depth64-4conn:--workload get --depth 64 --connections 4" \
            "get-P64/server:--workload get --pipeline N --connections 4" \
            "get-depth64/server:--workload get --depth N --connections 4"; do
  name=${load%%:*}
  for round in $(seq "$ROUNDS"); do
    for n in "${COUNTS[@]}"; do
      per_server=${load#*:}
      read -r -a args <<<"${per_server//N/$((64 * n))}"
      # GET preloads every key of the key space before the clock starts.
      json=$(${WORKERS:+env TOKIO_WORKER_THREADS="$WORKERS"} "${gen_pin[@]}" "$KV" bench --addr "$(list_of "$n")" "${args[@]}" ${THREADS:+--threads "$THREADS"} --ops 50000000 \
               --duration "$SECONDS_PER_RUN" --value-size 64 --key-space 100000 --json)
      ops=$(sed -n 's/.*"ops_per_sec":\([0-9.]*\).*/\1/p' <<<"$json")
      cpu=$(sed -n 's/.*"client_cpu_us_per_op":\([0-9.]*\).*/\1/p' <<<"$json")
      printf '%-18s %7s %5s %12.0f %14.3f\n' "$name" "$n" "$round" "$ops" "$cpu"
      echo "$name $n $ops $cpu" >>"$results"
    done
  done
done
echo
echo "# median of $ROUNDS rounds; cpu_x1 = client CPU per op / one server's"
printf '%-18s %7s %12s %14s %7s\n' load servers ops/s client_us/op cpu_x1
awk '
  { key = $1 " " $2; ops[key] = ops[key] " " $3; cpu[key] = cpu[key] " " $4; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (i = 1; i <= k; i++) {
      split(order[i], f, " "); c = median(cpu[order[i]])
      if (f[2] == 1) base[f[1]] = c
      printf "%-18s %7s %12.0f %14.3f %7.2f\n", f[1], f[2], median(ops[order[i]]), c, c / base[f[1]]
    }
  }' "$results"
