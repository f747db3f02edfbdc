"""Gateway overhead: the same requests straight to a provider and through the gateway, same run.

usage: AGORA_BIN=path/to/agora python bench/gateway.py [--requests 1000] [--concurrency 1,32]

Starts `agora devnet --providers 1` (node, one paid provider, gateway) and, as the baseline, a
free `agora provider` on the same machine with the same engine settings (the paid provider
needs a voucher per request, which only the gateway signs; its voucher check is counted as
gateway overhead, which flatters nothing). For each concurrency it measures a non-streaming
1-token completion (latency) and a streaming one (time to first token), p50 and p99, and
prints the added latency and the ratio gateway / direct. Targets (issue 4): p50 added <= 0.5 ms,
p99 added <= 2 ms. On a 2-core machine the model's own prefill dominates and its jitter is far
larger than the gateway's cost; read the added p50 with that in mind.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

MODEL = "SmolLM2-135M-Instruct"
CID = "bafkr4ic7j6qtx7dn2sur7uaoekluvhcot3lcr7l5p4yhhgg56mbgbvvsym"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, proc, path="/health", check=lambda r: True):
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, "process exited"
        try:
            r = httpx.get(url + path, timeout=1)
            if r.status_code == 200 and check(r):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def run(url, headers, n, concurrency, stream):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
            "temperature": 0, "stream": stream}
    times, lock, left = [], threading.Lock(), [n]

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
                            if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
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

    errors = []

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
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", default="1,32")
    args = ap.parse_args()
    binary = os.environ.get("AGORA_BIN", "target/release/agora")
    cache = Path(os.environ.get("AGORA_TEST_DATA", str(Path.home() / ".cache/agora-test")))
    data = Path(tempfile.mkdtemp())
    (data / "blobs").mkdir()
    shutil.copy(cache / "blobs" / CID, data / "blobs" / CID)
    engine = ["--context", "512", "--parallel", "8", "--threads", "1"]
    gw_port, rpc_port, direct_port = free_port(), free_port(), free_port()
    devnet = subprocess.Popen([binary, "devnet", "--data-dir", str(data), "--providers", "1",
                               "--listen", f"127.0.0.1:{gw_port}", "--rpc-listen", f"127.0.0.1:{rpc_port}",
                               "--provider-port", "0", *engine], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    direct = subprocess.Popen([binary, "provider", "--listen", f"127.0.0.1:{direct_port}",
                               "--data-dir", str(data), *engine], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        gw = f"http://127.0.0.1:{gw_port}"
        wait(gw, devnet, "/v1/models", lambda r: r.json()["data"][0]["providers"] == 1)
        wait(f"http://127.0.0.1:{direct_port}", direct)
        key = (data / "devnet/api-key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        # Warm both (channel opening, caches).
        run(gw, auth, 20, 1, False)
        run(f"http://127.0.0.1:{direct_port}", {}, 20, 1, False)
        for c in [int(x) for x in args.concurrency.split(",")]:
            for stream in (False, True):
                d50, d99 = run(f"http://127.0.0.1:{direct_port}", {}, args.requests, c, stream)
                g50, g99 = run(gw, auth, args.requests, c, stream)
                what = "ttft" if stream else "latency"
                print(f"concurrency {c:>2} {what:>7}: direct p50 {d50:7.2f} ms p99 {d99:7.2f} ms | "
                      f"gateway p50 {g50:7.2f} ms p99 {g99:7.2f} ms | added p50 {g50 - d50:+.2f} ms "
                      f"p99 {g99 - d99:+.2f} ms | ratio gateway/direct p50 {g50 / d50:.3f}")
    finally:
        for p in (devnet, direct):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
