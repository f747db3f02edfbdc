#!/usr/bin/env bash
# Model fetch benchmark: the default model (98 MB) fetched and verified by `agora model fetch`
# from 1 and from 3 peers on loopback, against a raw `curl` download of the same file from the
# same server, in the same run. Each figure is the best of $AGORA_BENCH_RUNS (default 10) and
# includes the fetcher's process start, tree check, per-MiB verification, fsync and rename.
# Prints:
#   fetch 1 peer / curl     (target >= 0.8)
#   fetch 3 peers / curl    (target >= 0.8)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${AGORA_BENCH_RUNS:-10}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --workspace --bin agora
agora="$target/release/agora"
seed="${AGORA_TEST_DATA:-$HOME/.cache/agora-test}"
cid="$("$agora" model fetch-default --data-dir "$seed" | awk '{print $1}')"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

ports=(18931 18932 18933)
for port in "${ports[@]}"; do
    "$agora" model serve --listen "127.0.0.1:$port" --data-dir "$seed" >/dev/null &
    pids+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/blobs/$cid/tree" && break
        sleep 0.1
    done
done
size="$(stat -c %s "$seed/blobs/$cid")"

best() { sort -g | head -1; }
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

raw="$(for _ in $(seq "$runs"); do
    rm -f "$work/raw"
    curl -sf -o "$work/raw" -w '%{time_total}\n' "http://127.0.0.1:${ports[0]}/blobs/$cid"
done | best)"

fetch() {
    for _ in $(seq "$runs"); do
        rm -rf "$work/data"
        start="$(now)"
        "$agora" model fetch "$cid" --no-discovery --data-dir "$work/data" "$@" >/dev/null 2>&1
        end="$(now)"
        calc "$end - $start"
    done | best
}
one="$(fetch --peer "http://127.0.0.1:${ports[0]}")"
three="$(fetch --peer "http://127.0.0.1:${ports[0]}" --peer "http://127.0.0.1:${ports[1]}" --peer "http://127.0.0.1:${ports[2]}")"

mbps() { calc "round($size / $1 / 1e6)"; }
echo "blob: $cid ($size bytes)"
printf 'curl (raw, 1 server)   %6.3f s  %5s MB/s\n' "$raw" "$(mbps "$raw")"
printf 'fetch, 1 peer          %6.3f s  %5s MB/s\n' "$one" "$(mbps "$one")"
printf 'fetch, 3 peers         %6.3f s  %5s MB/s\n' "$three" "$(mbps "$three")"
printf 'fetch 1 peer / curl    %.2f  (target >= 0.8)\n' "$(calc "$raw / $one")"
printf 'fetch 3 peers / curl   %.2f  (target >= 0.8)\n' "$(calc "$raw / $three")"
