#!/usr/bin/env python3
"""Python `tokenizers` side of the encode benchmark (benches/encode.rs in trustformers-tokenizers):
the same tokenizer (SmolLM2's, as transformers builds it from the GGUF), the same corpus, median of
runs. Prints MiB/s for encode_batch on the corpus and encode on 1 MB / 2 MB strings."""
import json
import os
import statistics
import time
from pathlib import Path

from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("TRUSTFORMERS_CACHE", Path.home() / ".cache" / "trustformers"))


def median_time(f, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    tok = AutoTokenizer.from_pretrained(CACHE / "smollm2-135m-instruct", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    backend = tok.backend_tokenizer
    texts = json.loads((ROOT / "tests/fixtures/tokenizers/corpus.json").read_text()) * 8
    size = sum(len(t.encode()) for t in texts)
    backend.encode_batch(texts)
    t = median_time(lambda: backend.encode_batch(texts, add_special_tokens=True), 20)
    print(f"encode_batch/corpus: {t * 1e3:.1f} ms, {size / t / 2**20:.2f} MiB/s ({len(texts)} texts, {size} bytes)")
    joined = " ".join(texts)
    for mb in [1, 2]:
        text = (joined * (1 + (mb << 20) // len(joined)))[: mb << 20]
        t = median_time(lambda: backend.encode(text), 5)
        print(f"encode_long/{mb}MB: {t:.3f} s, {len(text.encode()) / t / 2**20:.2f} MiB/s")


if __name__ == "__main__":
    main()
