#!/usr/bin/env bash
# The largest value the log can hold, end to end: `kv serve` with limits
# just inside Wal::MAX_ENTRY_BYTES takes a PUT of a ~1 GiB value and a small
# PUT, compacts (the snapshot holds the big value), is killed with SIGKILL,
# restarts and answers both. Needs about 6 GiB of memory (the value is held
# by the client, the server's read buffer, the log's write buffer and the
# store), so it is not part of `cargo test`.
#
#   scripts/big-values.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test data_safety the_largest_value -- --ignored --nocapture
