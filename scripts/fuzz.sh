#!/usr/bin/env bash
# Runs each fuzz target for a bounded time, one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # default: 60 s each, every target
#   scripts/fuzz.sh 600 kv_request             # one target for ten minutes
#
# Targets (fuzz/fuzz_targets/): kv_request, kv_response, resp.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, coverage
# instrumentation). On a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them;
# this script sets it, so stable works as it is. Installs cargo-fuzz if
# missing. Findings land in fuzz/artifacts/TARGET/ and make the script fail;
# the corpus grows in fuzz/corpus/TARGET/ (both gitignored).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(kv_request kv_response resp)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# cargo-fuzz keeps its own build in fuzz/target; an outer CARGO_TARGET_DIR
# would mix its sanitized artifacts with the main build's.
unset CARGO_TARGET_DIR

for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    log="$(mktemp)"
    # -rss_limit_mb: a decoder that allocates what a header claims fails here.
    if ! cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=512 -print_final_stats=1 \
        >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "== $target: FINDING (see fuzz/artifacts/$target/)"
        exit 1
    fi
    grep -E '^Done [0-9]+ runs|stat::number_of_executed_units' "$log" || true
    rm -f "$log"
done
