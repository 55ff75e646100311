#!/usr/bin/env python3
"""The reference side of `trustformers bench`: the same measurements (llama-bench's pp/tg tests)
for llama.cpp (through llama-cpp-python) or transformers (torch fp32 on CPU, the GGUF
dequantized by transformers' own GGUF loader), printed as the JSON object trustformers prints.

  pp N  one forward pass over N random token ids from an empty cache, tokens/s
  tg N  N single-token steps through the KV cache after one start token, tokens/s
  load_s, peak_rss_mb (this process's maximum resident set)

Usage: python tools/bench_generation.py {llama.cpp,transformers} GGUF [-t 2] [-r 5]
"""
import argparse
import json
import os
import random
import resource
import statistics
import sys
import time


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def bench_llama_cpp(path, args):
    from llama_cpp import Llama

    def load():
        return Llama(model_path=path, n_threads=args.threads, n_threads_batch=args.threads,
                     n_ctx=1024, n_batch=512, n_ubatch=512, verbose=False)

    loads = []
    for _ in range(args.repetitions):
        t = time.perf_counter()
        llm = load()
        loads.append(time.perf_counter() - t)
    vocab = llm.n_vocab()
    rng = random.Random(0)

    def pp(n):
        ids = [rng.randrange(vocab) for _ in range(n)]
        llm.reset()
        llm._ctx.kv_cache_clear()
        return timed(lambda: llm.eval(ids))

    def tg(n):
        llm.reset()
        llm._ctx.kv_cache_clear()
        tok = rng.randrange(vocab)

        def run():
            nonlocal tok
            for _ in range(n):
                llm.eval([tok])
                tok = rng.randrange(vocab)
        return timed(run)

    return loads, pp, tg


def bench_transformers(path, args):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    d, f = os.path.dirname(path), os.path.basename(path)
    loads = []
    for _ in range(args.repetitions):
        t = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
        loads.append(time.perf_counter() - t)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)

    @torch.inference_mode()
    def pp(n):
        ids = torch.randint(0, vocab, (1, n), generator=g)
        return timed(lambda: model(ids, use_cache=True))

    @torch.inference_mode()
    def tg(n):
        ids = torch.randint(0, vocab, (1, 1), generator=g)

        def run():
            out = model(ids, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            for _ in range(n - 1):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
        return timed(run)

    return loads, pp, tg


def main():
    p = argparse.ArgumentParser()
    p.add_argument("system", choices=["llama.cpp", "transformers"])
    p.add_argument("gguf")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-r", "--repetitions", type=int, default=5)
    p.add_argument("-p", "--n-prompt", default="128,512")
    p.add_argument("-n", "--n-gen", default="128")
    args = p.parse_args()
    make = bench_llama_cpp if args.system == "llama.cpp" else bench_transformers
    loads, pp, tg = make(args.gguf, args)
    out = {"system": args.system, "model": args.gguf, "threads": args.threads,
           "repetitions": args.repetitions, "load_s": statistics.median(loads)}
    for n in map(int, args.n_prompt.split(",")):
        pp(n)  # warm-up
        out[f"pp{n}_tok_s"] = statistics.median(n / pp(n) for _ in range(args.repetitions))
    for n in map(int, args.n_gen.split(",")):
        tg(min(n, 8))  # warm-up
        out[f"tg{n}_tok_s"] = statistics.median(n / tg(n) for _ in range(args.repetitions))
    # ru_maxrss is in KiB on Linux.
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
