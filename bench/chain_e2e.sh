#!/bin/sh
# End-to-end tx/s and p50/p99 latency of one agora-chain node over RPC, with the ratio to the in-process apply rate.
# Usage: bench/chain_e2e.sh [TXS] [ACCOUNTS]
set -eu
cd "$(dirname "$0")/.."
AGORA_BENCH_TXS="${1:-4000}" AGORA_BENCH_ACCOUNTS="${2:-16}" exec cargo bench -p agora-chain --bench e2e
