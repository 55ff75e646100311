#!/usr/bin/env python3
"""Prompt lookup decoding against plain greedy search, through the Python package on
SmolLM2-135M-Instruct (Q4_1 GGUF): a chat turn whose answer quotes its input (a paragraph
to copy with its spelling fixed), NEW new tokens, greedy with and without
`prompt_lookup_num_tokens`, interleaved REPS times; medians of the seconds and tokens/s, and
whether the ids are the same.

Run it from a venv with the release wheel (`pip install ./crates/trustformers-py`), after
tools/fetch_models.sh. Nothing else should run meanwhile.

Usage: python scripts/bench_prompt_lookup.py [--reps 5] [--new 128] [--lookup 10]
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import trustformers as tf

CACHE = Path(os.environ.get("TRUSTFORMERS_CACHE", Path.home() / ".cache" / "trustformers"))
SMOLLM2 = CACHE / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PARAGRAPH = (
    "The printing press was invented by Johannes Gutenberg around 1440. It used movable metal "
    "type, oil based ink and a wooden press adapted from the screw presses used to make wine. "
    "Within a few decades printing shops had spread to more than two hundred cities across "
    "Europe, and the price of books fell so far that ordinary people could afford to own them."
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--lookup", type=int, default=10)
    args = ap.parse_args()
    tok = tf.AutoTokenizer.from_pretrained(str(SMOLLM2))
    model = tf.AutoModelForCausalLM.from_pretrained(str(SMOLLM2))
    messages = [{"role": "user", "content": "Copy this paragraph exactly:\n\n" + PARAGRAPH}]
    ids = np.array([tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)])
    runs = {"greedy": [], "prompt lookup": []}
    outputs = {}
    for _ in range(args.reps):
        for name, extra in (("greedy", {}), ("prompt lookup", {"prompt_lookup_num_tokens": args.lookup})):
            start = time.perf_counter()
            out = model.generate(ids, max_new_tokens=args.new, do_sample=False, **extra)
            runs[name].append(time.perf_counter() - start)
            outputs[name] = out[0, ids.shape[1]:].tolist()
    new = {k: len(v) for k, v in outputs.items()}
    result = {
        "model": str(SMOLLM2),
        "prompt_tokens": int(ids.shape[1]),
        "new_tokens": new,
        "same_ids": outputs["greedy"] == outputs["prompt lookup"],
        "lookup": args.lookup,
        "median_s": {k: statistics.median(v) for k, v in runs.items()},
        "tokens_per_s": {k: new[k] / statistics.median(v) for k, v in runs.items()},
        "text": tok.decode(outputs["greedy"], skip_special_tokens=True)[:200],
    }
    result["speedup"] = result["median_s"]["greedy"] / result["median_s"]["prompt lookup"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
