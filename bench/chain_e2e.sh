#!/bin/sh
# Finalized tx/s and p50/p99 finality of agora-chain validators on loopback over RPC, with the ratio to the in-process apply rate.
# Usage: bench/chain_e2e.sh [TXS] [ACCOUNTS] [VALIDATORS]   (bench/chain_e2e.sh 4000 16 4: four validators)
set -eu
cd "$(dirname "$0")/.."
AGORA_BENCH_TXS="${1:-4000}" AGORA_BENCH_ACCOUNTS="${2:-16}" AGORA_BENCH_VALIDATORS="${3:-1}" exec cargo bench -p agora-chain --bench e2e
