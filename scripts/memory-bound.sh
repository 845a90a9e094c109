#!/usr/bin/env bash
# The memory bound of the buffer budget with the defaults: 1024 connections
# each stalled on a PUT of a 16 MiB value (all but its last byte), against
# the default 256 MiB budget. Prints how much resident memory the
# connections take, and how much more their stalled frames take (the
# figure in BENCHMARKS.md). Heavy: 16 GiB offered through loopback, most of
# it refused by TCP flow control; about 400 MiB of memory in all.
#
#   scripts/memory-bound.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# 2048 sockets in one process (clients and the in-process server).
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo test --release --test memory a_thousand_stalled_default_limit_frames -- --ignored --nocapture 2>&1 |
  grep -E "connections:|test result"
