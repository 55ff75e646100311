#!/usr/bin/env python3
"""Aggregate generation speed of an OpenAI-compatible server under concurrent streams.

    scripts/bench_serve.py URL [--streams 1,4,8,16] [--prompt-tokens 128] [--new-tokens 128]

For each number of streams: that many clients each stream one `/v1/completions` request
(a prompt of exactly --prompt-tokens token ids, --new-tokens new tokens with the EOS ids
biased out so every stream runs to the end), all started together. Prints one JSON line per
level: aggregate generated tokens/s (all tokens / wall time), and time to first token
(p50, max) in ms. Works against `trustformers serve` and llama.cpp's `llama-server`.
Standard library only.
"""

import argparse
import json
import statistics
import threading
import time
import urllib.request


def one_stream(url, body, out):
    start = time.perf_counter()
    first = None
    tokens = 0
    # Servers that send no usage: one streamed piece per token.
    pieces = 0
    req = urllib.request.Request(
        url + "/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for c in chunk.get("choices", []):
                if c.get("text"):
                    pieces += 1
                    if first is None:
                        first = time.perf_counter()
    out.append({"ttft": (first or time.perf_counter()) - start, "tokens": tokens or pieces,
                "end": time.perf_counter()})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--streams", default="1,4,8,16")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--eos", default="0,1,2", help="token ids to bias out")
    p.add_argument("--label", default="")
    p.add_argument("--ttft-under-load", type=int, default=0, metavar="N",
                   help="also: with N streams generating, the TTFT of 5 new requests sent one by one")
    args = p.parse_args()
    for n in [int(x) for x in args.streams.split(",")]:
        results = []
        threads = []
        start = time.perf_counter()
        for i in range(n):
            # Distinct prompts (no shared prefix), ids in a common range of vocabularies.
            prompt = [100 + (i * 37 + j * 11) % 5000 for j in range(args.prompt_tokens)]
            body = {
                "prompt": prompt,
                "max_tokens": args.new_tokens,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
                "logit_bias": {e: -100 for e in args.eos.split(",")},
            }
            t = threading.Thread(target=one_stream, args=(args.url, body, results))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        wall = max(r["end"] for r in results) - start
        tokens = sum(r["tokens"] for r in results)
        ttft = sorted(r["ttft"] for r in results)
        print(json.dumps({
            "system": args.label or args.url,
            "streams": n,
            "generated_tokens": tokens,
            "wall_s": round(wall, 2),
            "aggregate_tok_s": round(tokens / wall, 1),
            "ttft_p50_ms": round(statistics.median(ttft) * 1e3, 1),
            "ttft_max_ms": round(ttft[-1] * 1e3, 1),
        }), flush=True)
    if args.ttft_under_load:
        ttft_under_load(args)


def ttft_under_load(args):
    n = args.ttft_under_load
    body = lambda i, new: {  # noqa: E731
        "prompt": [100 + (i * 37 + j * 11) % 5000 for j in range(args.prompt_tokens)],
        "max_tokens": new, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": {e: -100 for e in args.eos.split(",")},
    }
    background, threads = [], []
    for i in range(n):
        t = threading.Thread(target=one_stream, args=(args.url, body(i, 4 * args.new_tokens), background))
        t.start()
        threads.append(t)
    time.sleep(8)  # the background prompts are in; they are generating
    probes = []
    for k in range(5):
        one_stream(args.url, body(1000 + k, 2), probes)
    for t in threads:
        t.join()
    ttft = sorted(r["ttft"] for r in probes)
    print(json.dumps({
        "system": args.label or args.url,
        "ttft_under_load_streams": n,
        "probe_ttft_p50_ms": round(statistics.median(ttft) * 1e3, 1),
        "probe_ttft_max_ms": round(ttft[-1] * 1e3, 1),
    }), flush=True)


if __name__ == "__main__":
    main()
