"""Streaming load against any OpenAI-compatible server: single-stream and concurrent tok/s.

usage: python bench/load.py URL MODEL [--concurrency N] [--max-tokens N] [--extra JSON]
Prints JSON: ttft_ms (median), decode_tok_s (single stream), aggregate_tok_s (N streams).
"""

import argparse
import json
import statistics
import threading
import time

import httpx

PROMPTS = [
    "Write a long story about a lighthouse keeper and a storm.",
    "Explain in detail how a steam engine works.",
    "Describe the history of the printing press at length.",
    "Write a detailed travel guide to Lisbon.",
    "Explain the water cycle to a child, with many examples.",
    "Write a long letter from a sailor to his family.",
    "Describe how bread is made, step by step, in detail.",
    "Tell a long fairy tale about a clever fox.",
]


def stream_once(client, url, model, prompt, max_tokens, extra):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    start = time.perf_counter()
    first = None
    tokens = 0
    with client.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as res:
        res.raise_for_status()
        for line in res.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    end = time.perf_counter()
    return start, first or end, end, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("model")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--extra", default="{}")
    args = ap.parse_args()
    extra = json.loads(args.extra)
    client = httpx.Client()
    stream_once(client, args.url, args.model, "hi", 4, extra)  # warm-up

    singles = [stream_once(client, args.url, args.model, PROMPTS[i], args.max_tokens, extra) for i in range(3)]
    ttft = statistics.median((f - s) * 1000 for s, f, _, _ in singles)
    decode = statistics.median((n - 1) / (e - f) for _, f, e, n in singles if n > 1 and e > f)

    results = [None] * args.concurrency

    def worker(i):
        results[i] = stream_once(httpx.Client(), args.url, args.model, PROMPTS[i % len(PROMPTS)], args.max_tokens, extra)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.perf_counter()
    total = sum(r[3] for r in results)
    print(json.dumps({"ttft_ms": round(ttft, 1), "decode_tok_s": round(decode, 2),
                      "aggregate_tok_s": round(total / (t1 - t0), 2), "aggregate_tokens": total}))


if __name__ == "__main__":
    main()
