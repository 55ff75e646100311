#!/usr/bin/env python3
"""Soak test of `trustformers serve` (not part of `cargo test`): CLIENTS concurrent
streaming clients on loopback for SECONDS, each sending chat requests back to back.

    scripts/soak_serve.py [BIN] [--clients 32] [--seconds 120] [--max-batch-size 8]
                          [--max-queue 16] [--max-tokens 64]

Bounded in count and time: at most CLIENTS requests in flight, stops starting new ones
after SECONDS, and every request has a 120 s timeout. Passes when there were no errors
other than deliberate 429s (queue full; the client waits Retry-After and goes on), every
200 stream ended with `data: [DONE]`, and the server's peak RSS (VmHWM) stayed below
model file + max_batch_size x the largest KV cache + a fixed margin. Prints a JSON summary.
"""

import argparse
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

MARGIN_MB = 400


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bin", nargs="?", default="target/release/trustformers")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--max-queue", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args()

    server = subprocess.Popen(
        [args.bin, "serve", "--model", args.model, "--port", "0",
         "--max-batch-size", str(args.max_batch_size), "--max-queue", str(args.max_queue)],
        stdout=subprocess.PIPE, text=True)
    base = "http://" + server.stdout.readline().split("http://", 1)[1].split()[0]
    deadline = time.time() + 180
    while True:
        try:
            if urllib.request.urlopen(base + "/health", timeout=5).status == 200:
                break
        except Exception:
            pass
        if time.time() > deadline:
            server.kill()
            raise SystemExit("the server did not become healthy")
        time.sleep(0.25)

    stats = {"ok": 0, "busy": 0, "errors": [], "incomplete": 0, "tokens": 0}
    lock = threading.Lock()
    stop_at = time.time() + args.seconds
    topics = ["the sea", "a city", "a cat", "the moon", "music", "rain", "a bridge", "bread"]

    def client(i):
        n = 0
        while time.time() < stop_at:
            n += 1
            body = {
                "messages": [{"role": "user", "content": f"Write about {topics[(i + n) % len(topics)]}."}],
                "max_tokens": args.max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0.7,
                "seed": i * 1000 + n,
            }
            req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    done, tokens = False, 0
                    for raw in r:
                        line = raw.decode().strip()
                        if line == "data: [DONE]":
                            done = True
                        elif line.startswith("data: "):
                            chunk = json.loads(line[6:])
                            if "error" in chunk:
                                raise RuntimeError(chunk["error"]["message"])
                            if chunk.get("usage"):
                                tokens = chunk["usage"]["completion_tokens"]
                    with lock:
                        stats["ok" if done else "incomplete"] += 1
                        stats["tokens"] += tokens
            except urllib.error.HTTPError as e:
                with lock:
                    if e.code == 429:
                        stats["busy"] += 1
                    else:
                        stats["errors"].append(f"HTTP {e.code}: {e.read()[:200]!r}")
                if e.code == 429:
                    time.sleep(float(e.headers.get("Retry-After", "1")))
            except Exception as e:  # noqa: BLE001 - every failure is reported
                with lock:
                    stats["errors"].append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start

    with open(f"/proc/{server.pid}/status") as f:
        hwm_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=30)

    # Bound: the model file, max_batch_size full KV caches (f16 for quantized weights:
    # SmolLM2 has 30 layers x 3 KV heads x 64 dims, K and V, 2 bytes, for prompt + tokens).
    from pathlib import Path
    model_mb = sum(f.stat().st_size for f in Path(os.path.expanduser("~/.cache/trustformers")).glob(
        f"{args.model}/*.gguf")) / 2**20
    kv_mb = args.max_batch_size * 30 * 3 * 64 * 2 * 2 * (256 + args.max_tokens) / 2**20
    bound_mb = model_mb + kv_mb + MARGIN_MB
    summary = {
        "clients": args.clients, "seconds": round(elapsed, 1), "completed": stats["ok"],
        "queue_full_429": stats["busy"], "incomplete": stats["incomplete"],
        "errors": len(stats["errors"]), "generated_tokens": stats["tokens"],
        "tok_s": round(stats["tokens"] / elapsed, 1), "peak_rss_mb": round(hwm_kb / 1024, 1),
        "rss_bound_mb": round(bound_mb, 1), "exit_code": code,
        "active_after": [l for l in metrics.splitlines() if l.startswith("trustformers_active_sequences")],
    }
    print(json.dumps(summary))
    for e in stats["errors"][:10]:
        print("error:", e)
    ok = (not stats["errors"] and stats["incomplete"] == 0 and stats["ok"] > 0
          and hwm_kb / 1024 < bound_mb and code == 0)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
