#!/usr/bin/env python3
"""sentence-transformers' side of `trustformers bench --task feature-extraction`: the same
sentences (batches of 32 at 16 and 128 tokens, one 16-token sentence), torch fp32 on CPU with
the same threads; prints one JSON line with the same keys.

Usage: python tools/bench_embeddings.py MODEL_DIR [-t THREADS] [-r REPS]
"""

import argparse
import json
import statistics
import time

import torch
from sentence_transformers import SentenceTransformer

# trustformers-cli/src/bench.rs ONE_TOKEN_WORDS, and its sentence rule.
WORDS = (
    "the of and to in is was he for it with as his on be at by she they from"
).split()


def sentences(tok, count, tokens):
    out = []
    for i in range(count):
        text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(tokens - 2))
        assert len(tok(text)["input_ids"]) == tokens
        out.append(text)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = SentenceTransformer(args.model, device="cpu")
    load_s = time.perf_counter() - start

    def timed(texts):
        model.encode(texts, batch_size=32)
        secs = []
        for _ in range(args.reps):
            t = time.perf_counter()
            model.encode(texts, batch_size=32)
            secs.append(time.perf_counter() - t)
        return statistics.median(secs)

    tok = model.tokenizer
    print(
        json.dumps(
            {
                "system": "sentence-transformers",
                "threads": args.threads,
                "load_s": load_s,
                "batch32_len16_sentences_per_s": 32 / timed(sentences(tok, 32, 16)),
                "batch32_len128_sentences_per_s": 32 / timed(sentences(tok, 32, 128)),
                "single_len16_ms": 1e3 * timed(sentences(tok, 1, 16)),
            }
        )
    )


if __name__ == "__main__":
    main()
