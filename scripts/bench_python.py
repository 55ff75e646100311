#!/usr/bin/env python3
"""The Python package against the Rust CLI and sentence-transformers, in one run:

- sentence embeddings (all-MiniLM-L6-v2): `trustformers bench --task feature-extraction`,
  `trustformers.SentenceTransformer.encode`, `trustformers.pipeline("feature-extraction")`
  and sentence-transformers (torch fp32), on the same sentences (batches of 32 at 16 and 128
  tokens, one 16-token sentence), interleaved ROUNDS times; medians;
- greedy generation (SmolLM2-135M-Instruct Q4_1): `trustformers generate --json` against
  `AutoModelForCausalLM.generate`, the same prompt and exactly NEW tokens
  (min_new_tokens = max_new_tokens), tokens/s over prefill + decode; medians.

Run it from a venv with the release wheel (`maturin build --release` in
crates/trustformers-py, then `pip install` it), torch and sentence-transformers installed,
after `cargo build --release -p trustformers-cli` and tools/fetch_models.sh. Nothing else
should run meanwhile (2 cores).

Usage: python scripts/bench_python.py [--threads 2] [--reps 5] [--rounds 2] [--new 128]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("TRUSTFORMERS_CACHE", Path.home() / ".cache" / "trustformers"))
MINILM = CACHE / "all-minilm-l6-v2"
SMOLLM2 = CACHE / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The history of the printing press begins"

# crates/trustformers-cli/src/bench.rs ONE_TOKEN_WORDS, and its sentence rule.
WORDS = "the of and to in is was he for it with as his on be at by she they from".split()


def sentences(count, tokens):
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(tokens - 2)) for i in range(count)]


def timed(fn, reps):
    fn()  # warm-up
    secs = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        secs.append(time.perf_counter() - start)
    return statistics.median(secs)


def embed_results(encode, reps):
    b16, b128, one = sentences(32, 16), sentences(32, 128), sentences(1, 16)
    return {
        "batch32_len16_sentences_per_s": 32 / timed(lambda: encode(b16), reps),
        "batch32_len128_sentences_per_s": 32 / timed(lambda: encode(b128), reps),
        "single_len16_ms": 1e3 * timed(lambda: encode(one), reps),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--cli", default=str(ROOT / "target" / "release" / "trustformers"))
    args = ap.parse_args()

    import torch
    import trustformers as tf
    from sentence_transformers import SentenceTransformer as StSentenceTransformer

    torch.set_num_threads(args.threads)
    ours_st = tf.SentenceTransformer(str(MINILM))
    ours_fe = tf.pipeline("feature-extraction", model=str(MINILM))
    theirs = StSentenceTransformer(str(MINILM), device="cpu")
    tok = tf.AutoTokenizer.from_pretrained(str(SMOLLM2))
    model = tf.AutoModelForCausalLM.from_pretrained(str(SMOLLM2))
    prompt = tok(PROMPT, return_tensors="np")["input_ids"]

    rows = {k: [] for k in ("cli", "python", "pipeline", "sentence-transformers")}
    gen = {"cli": [], "python": []}
    for _ in range(args.rounds):
        out = subprocess.run(
            [args.cli, "bench", "--task", "feature-extraction", "--model", str(MINILM),
             "-t", str(args.threads), "-r", str(args.reps), "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
        rows["cli"].append(json.loads(out.strip().splitlines()[-1]))
        rows["python"].append(embed_results(lambda s: ours_st.encode(s, batch_size=32), args.reps))
        rows["pipeline"].append(
            embed_results(lambda s: ours_fe(s, batch_size=32, return_tensors=True), args.reps)
        )
        rows["sentence-transformers"].append(embed_results(lambda s: theirs.encode(s, batch_size=32), args.reps))
        for _ in range(args.reps):
            out = subprocess.run(
                [args.cli, "generate", "--model", str(SMOLLM2), "--raw", "--json",
                 "--max-new-tokens", str(args.new), "--min-new-tokens", str(args.new), PROMPT],
                check=True, capture_output=True, text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            assert len(r["token_ids"]) == args.new, r
            gen["cli"].append(args.new / (r["prefill_s"] + r["decode_s"]))
            start = time.perf_counter()
            ids = model.generate(prompt, max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False)
            secs = time.perf_counter() - start
            assert ids.shape[1] - prompt.shape[1] == args.new
            gen["python"].append(args.new / secs)

    keys = ("batch32_len16_sentences_per_s", "batch32_len128_sentences_per_s", "single_len16_ms")
    med = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in rows.items()}
    summary = {
        "threads": args.threads,
        "reps": args.reps,
        "rounds": args.rounds,
        "embeddings": med,
        "embeddings_all_rounds": rows,
        "generate_tok_s": {k: statistics.median(v) for k, v in gen.items()},
        "generate_tok_s_all": gen,
        "new_tokens": args.new,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    print(json.dumps(summary))
    print()
    print("| system | batch 32 x 16 tok (sent/s) | batch 32 x 128 tok (sent/s) | one 16-tok sentence (ms) |")
    print("|---|---|---|---|")
    names = {
        "cli": "`trustformers bench` (Rust)",
        "python": "`trustformers.SentenceTransformer.encode`",
        "pipeline": "`trustformers.pipeline(\"feature-extraction\")`",
        "sentence-transformers": "sentence-transformers (torch fp32)",
    }
    for name, r in med.items():
        print(f"| {names[name]} | {r[keys[0]]:.1f} | {r[keys[1]]:.1f} | {r[keys[2]]:.2f} |")
    c, p = med["cli"], med["python"]
    print(f"| Python / Rust | {p[keys[0]] / c[keys[0]]:.3f}x | {p[keys[1]] / c[keys[1]]:.3f}x | {c[keys[2]] / p[keys[2]]:.3f}x |")
    g = summary["generate_tok_s"]
    print()
    print(f"greedy generation, {args.new} tokens: CLI {g['cli']:.1f} tok/s, Python {g['python']:.1f} tok/s "
          f"({g['python'] / g['cli']:.3f}x)")


if __name__ == "__main__":
    main()
