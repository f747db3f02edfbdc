#!/usr/bin/env bash
# Provider benchmark against llama.cpp's own tools, measured in the same run on the default
# model with 2 threads. Prints one ratio per line:
#   engine decode / llama-bench tg, provider decode / llama-bench tg   (target >= 0.95)
#   provider aggregate tok/s (8 streams) / llama-server --parallel 8   (target >= 1.0)
#   score() over a 256-token answer / generating it                    (target <= 0.5)
# llama-bench and llama-server are built from the llama.cpp tree inside llama-cpp-python's
# source package (cached under ~/.cache/agora-bench; nothing of it enters this repository).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup --python
threads="${AGORA_BENCH_THREADS:-2}"
bench_dir="$HOME/.cache/agora-bench"
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$bench_dir"

if [ ! -x "$bench_dir/bin/llama-server" ]; then
    echo "building llama-bench and llama-server (once)..." >&2
    tmp="$(mktemp -d)"
    python3 -m pip download -q --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d "$tmp"
    tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
    src="$(echo "$tmp"/llama_cpp_python-*/vendor/llama.cpp)"
    cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >/dev/null
    cmake --build "$tmp/build" -j "$(nproc)" --target llama-bench llama-server >/dev/null
    mkdir -p "$bench_dir/bin"
    cp "$tmp"/build/bin/llama-bench "$tmp"/build/bin/llama-server "$bench_dir/bin/"
    cp "$tmp"/build/bin/*.so* "$bench_dir/bin/" 2>/dev/null || true
    rm -rf "$tmp"
fi
export LD_LIBRARY_PATH="$bench_dir/bin:${LD_LIBRARY_PATH:-}"

cargo test --release --locked --workspace --no-run
agora="$target/release/agora"
data="${AGORA_TEST_DATA:-$HOME/.cache/agora-test}"
model="$("$agora" model fetch-default --data-dir "$data" | awk '{print $2}')"

echo "== llama-bench" >&2
lb="$("$bench_dir/bin/llama-bench" -m "$model" -t "$threads" -p 512 -n 128 -o json)"
pp="$(echo "$lb" | python3 -c 'import json,sys; r=json.load(sys.stdin); print([x["avg_ts"] for x in r if x["n_prompt"]>0][0])')"
tg="$(echo "$lb" | python3 -c 'import json,sys; r=json.load(sys.stdin); print([x["avg_ts"] for x in r if x["n_gen"]>0][0])')"

echo "== engine in-process" >&2
eng="$(AGORA_BENCH_THREADS="$threads" "$target/release/examples/engine_bench" | tail -1)"

port=18431
echo "== agora provider over HTTP" >&2
"$agora" provider --listen "127.0.0.1:$port" --data-dir "$data" --threads "$threads" --parallel 8 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.3; done
ours="$(.venv/bin/python bench/load.py "http://127.0.0.1:$port" SmolLM2-135M-Instruct --concurrency 8)"
kill $pid; wait $pid 2>/dev/null || true

echo "== llama-server --parallel 8" >&2
"$bench_dir/bin/llama-server" -m "$model" -t "$threads" --parallel 8 -c 16384 --port "$port" --host 127.0.0.1 >/dev/null 2>&1 &
pid=$!
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.3; done
theirs="$(.venv/bin/python bench/load.py "http://127.0.0.1:$port" SmolLM2-135M-Instruct --concurrency 8)"
kill $pid; wait $pid 2>/dev/null || true

python3 - "$pp" "$tg" "$eng" "$ours" "$theirs" <<'PY'
import json, sys
pp, tg = float(sys.argv[1]), float(sys.argv[2])
eng, ours, theirs = (json.loads(a) for a in sys.argv[3:6])
print(f"llama-bench: pp512 {pp:.1f} tok/s, tg128 {tg:.1f} tok/s")
print(f"engine: {eng}")
print(f"provider: {ours}")
print(f"llama-server: {theirs}")
print(f"ratio engine_decode/llama_bench_tg = {eng['decode_tok_s']/tg:.3f}")
print(f"ratio engine_prefill/llama_bench_pp = {eng['prefill_tok_s']/pp:.3f}")
print(f"ratio provider_decode/llama_bench_tg = {ours['decode_tok_s']/tg:.3f}  (target >= 0.95)")
print(f"ratio provider_aggregate8/llama_server_aggregate8 = {ours['aggregate_tok_s']/theirs['aggregate_tok_s']:.3f}  (target >= 1.0)")
print(f"ratio score/generate (256 tokens) = {eng['score_over_generate']:.3f}  (target <= 0.5)")
PY
