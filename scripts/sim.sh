#!/usr/bin/env bash
# Runs N random seeds of the deterministic simulator (tests/sim.rs) and
# reports how many ran, how many failed and the seeds per second; each
# failing seed is printed with its replay command and trace.
#
#   scripts/sim.sh N [FIRST_SEED]      # FIRST_SEED: random if not given
#   SIM_PROFILE=release scripts/sim.sh 1000
#   SIM_FEATURES=sim-mutations ...     # with the mutations compiled in (off)
#
# Replay one seed: SIM_SEED=<seed> cargo test --test sim replay -- --nocapture
# (SIM_TRACE=1 prints its whole trace).
set -euo pipefail
N=${1:?usage: scripts/sim.sh N [FIRST_SEED]}
FIRST=${2:-$(( (RANDOM << 30) + (RANDOM << 15) + RANDOM ))}
args=(--test sim)
[ "${SIM_PROFILE:-debug}" = release ] && args+=(--release)
[ -n "${SIM_FEATURES:-}" ] && args+=(--features "$SIM_FEATURES")
cargo test "${args[@]}" --no-run
SIM_SEEDS=$N SIM_FIRST=$FIRST cargo test "${args[@]}" replay -- --nocapture --test-threads 1 \
  | grep -v '^running\|^test result\|^$'
