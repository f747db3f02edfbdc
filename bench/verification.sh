#!/usr/bin/env bash
# Verification benchmarks (issue 5):
#   1. the cost of one check against generating the same answer (256 tokens, each sampling
#      rule, every core), and the network's overhead at the gateway's default sampling rate;
#   2. the detection table: each cheating provider x $CHEAT_JOBS jobs and the honest provider x
#      $HONEST_JOBS jobs through a real gateway, every transcript checked (the integration
#      test at bench size);
#   3. the calibration over $CALIBRATION_JOBS honest jobs (worst margin per test).
# Needs a release build: `cargo test --release --workspace --no-run` (scripts/test does it); the
# detection table runs through the same `--workspace` invocation, so llama.cpp is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
CHEAT_JOBS="${CHEAT_JOBS:-100}"
HONEST_JOBS="${HONEST_JOBS:-1000}"
CALIBRATION_JOBS="${CALIBRATION_JOBS:-1000}"

echo "== check cost vs generation"
"$target/release/examples/check_cost" 256 3

echo "== detection table ($CHEAT_JOBS jobs per cheat, $HONEST_JOBS honest)"
# The table is printed whether or not the test passes (it fails when any cheat passes or any
# honest job is flagged); each cheat that passed is listed with its margins.
AGORA_DETECTION_JOBS="$CHEAT_JOBS" AGORA_DETECTION_HONEST_JOBS="$HONEST_JOBS" \
    cargo test --release --locked --workspace --test tests -- --nocapture --exact \
    verification::every_cheater_is_caught_and_no_honest_answer_is_flagged 2>&1 |
    grep -E '^(provider|honest|canned answer|truncated, billed in full|forged, prefilled|requantized to Q2_K|another model)( +[0-9]+){3} +[0-9.inf]+-[0-9.inf]+ *$|^provider +jobs|job [0-9]+ passed|^honest job|test result' |
    awk '!seen[$0]++' || true

echo "== calibration ($CALIBRATION_JOBS honest jobs)"
"$target/release/examples/calibrate" "$CALIBRATION_JOBS"
