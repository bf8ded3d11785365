#!/usr/bin/env bash
# A longer chaos run than the test command's: the chaos scenarios (kill -9 of a roster replica,
# a router replica, a gateway; Redis restart; Redis unreachable) repeated with more handshakes.
#   tools/chaos/soak.sh [RUNS [PAIRS]]     defaults: 5 runs of 40 pairs per scenario
# Each run prints "chaos <fault>: attempted N, acknowledged N, verified N, lost 0"; any loss
# fails the run. Loopback only; bounded by RUNS.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-5}"
pairs="${2:-40}"
bazel test //tests/integration:chaos_test --runs_per_test="$runs" --test_env=XC_CHAOS_PAIRS="$pairs" \
  --test_timeout=900 --test_output=all 2>&1 | grep -E "^chaos |PASSED|FAILED|passed|failed"
