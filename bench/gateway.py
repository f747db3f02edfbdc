"""Gateway overhead: the same requests straight to a provider and through the gateway, same run.

usage: python bench/gateway.py [--requests 1000] [--concurrency 1,32] [--model tiny|default]
                               [--litellm]

Starts a network of real processes (bench/network.py: node, one paid provider, gateway) and, as
the baseline, a free `agora provider` with the same model and engine settings. For each
concurrency it measures a non-streaming 1-token completion (latency) and a streaming one (time
to first token), p50 and p99, and prints the added latency and the ratio gateway / direct.
Targets (issue 4): p50 added <= 0.5 ms, p99 added <= 2 ms.

The default `--model tiny` is a random-weight model with the default model's tokenizer
(scripts/tiny-model.py) whose forward pass takes microseconds, so what is measured is the HTTP,
routing, payment and receipt work around the model rather than the jitter of a 100 ms prefill.
The paid provider checks a voucher and signs a receipt per request; the free one does neither,
so that work is counted as the gateway's, which flatters nothing.

With --litellm, LiteLLM's proxy (installed into .venv-litellm on first use) runs in front of the
same free provider and is measured in the same rounds; the last column is our added latency
divided by LiteLLM's.

The targets take turns in rounds of --round requests, so a slow minute of the machine
falls on all of them alike.
"""

import argparse
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx

from network import ROOT, Network, free_port, make_tiny_model, wait_http

LITELLM = "litellm[proxy]==1.106.2"
LITELLM_KEY = "sk-agora-bench-0123456789abcdef"


def run(url, headers, model, n, concurrency, stream):
    """`n` requests from `concurrency` threads; returns the times in ms."""
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
            "temperature": 0, "stream": stream}
    times, lock, left, errors = [], threading.Lock(), [n], []

    def worker():
        with httpx.Client(headers=headers, timeout=60) as client:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                start = time.perf_counter()
                if stream:
                    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as res:
                        assert res.status_code == 200, res.read()
                        lines = res.iter_lines()
                        for line in lines:
                            if line.startswith("data: ") and '"content":"' in line \
                                    and '"content":""' not in line:
                                break
                        elapsed = time.perf_counter() - start
                        for _ in lines:
                            pass
                else:
                    res = client.post(f"{url}/v1/chat/completions", json=body)
                    assert res.status_code == 200, res.text
                    elapsed = time.perf_counter() - start
                with lock:
                    times.append(elapsed * 1000)

    def guarded():
        try:
            worker()
        except Exception as err:  # reported below; a benchmark with failures means nothing
            errors.append(repr(err))

    threads = [threading.Thread(target=guarded) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{url}: {len(errors)} workers failed, first: {errors[0]}")
    return times


def percentiles(times):
    times = sorted(times)
    return statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)]


def start_litellm(net, direct_url, model):
    """LiteLLM's proxy in front of `direct_url`, from its own virtualenv (made on first use)."""
    venv = ROOT / ".venv-litellm"
    if not (venv / "bin/litellm").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", LITELLM], check=True)
    config = net.dir / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {direct_url}/v1
      api_key: none
""")
    port = free_port()
    env = dict(os.environ, LITELLM_MASTER_KEY=LITELLM_KEY, LITELLM_LOG="ERROR")
    log = open(net.dir / "litellm.log", "w")
    net.logs.append(log)
    net.procs["litellm"] = subprocess.Popen(
        [str(venv / "bin/litellm"), "--config", str(config), "--port", str(port)],
        stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health/liveliness", net.procs["litellm"], timeout=180)
    return url


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--model", choices=["tiny", "default"], default="tiny")
    ap.add_argument("--round", type=int, default=100)
    ap.add_argument("--litellm", action="store_true")
    args = ap.parse_args()

    engine = ("--context", "512", "--parallel", "8", "--threads", "1")
    tiny = None
    if args.model == "tiny":
        tiny = make_tiny_model(Path(os.environ.get("TMPDIR", "/tmp")) / "agora-bench-tiny.gguf")
    with Network(providers=1, model=tiny, model_name="agora-tiny" if tiny else None,
                 engine=engine) as net:
        model = net.model_name
        direct = f"http://127.0.0.1:{free_port()}"
        given = ["--model", tiny, "--model-name", model] if tiny else []
        net.spawn("direct", "provider", "--listen", direct[7:], "--data-dir", net.dir,
                  *given, *engine)
        wait_http(direct + "/health", net.procs["direct"])
        targets = {"direct": (direct, {}),
                   "gateway": (net.gateway_url, {"Authorization": f"Bearer {net.api_key}"})}
        if args.litellm:
            targets["litellm"] = (start_litellm(net, direct, model),
                                  {"Authorization": f"Bearer {LITELLM_KEY}"})
        for url, headers in targets.values():  # warm-up: channel opening, connection pools
            run(url, headers, model, 50, 1, False)
        print(f"model {model}, {args.requests} requests per target and case, "
              f"rounds of {args.round}, 1 engine thread")
        for c in [int(x) for x in args.concurrency.split(",")]:
            for stream in (False, True):
                times = {name: [] for name in targets}
                left = args.requests
                while left > 0:
                    n = min(args.round, left)
                    for name, (url, headers) in targets.items():
                        times[name] += run(url, headers, model, n, c, stream)
                    left -= n
                d50, d99 = percentiles(times["direct"])
                g50, g99 = percentiles(times["gateway"])
                what = "ttft" if stream else "latency"
                line = (f"c={c:<2} {what:>7}: direct p50 {d50:7.2f} p99 {d99:7.2f} | gateway p50 "
                        f"{g50:7.2f} p99 {g99:7.2f} | added p50 {g50 - d50:+6.2f} ms "
                        f"p99 {g99 - d99:+6.2f} ms | gateway/direct p50 {g50 / d50:.3f}")
                if "litellm" in times:
                    l50, l99 = percentiles(times["litellm"])
                    line += (f" | litellm p50 {l50:7.2f} p99 {l99:7.2f} | ours/litellm added p50 "
                             f"{(g50 - d50) / (l50 - d50):.3f}")
                print(line, flush=True)


if __name__ == "__main__":
    main()
