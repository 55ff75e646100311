#!/usr/bin/env python3
"""Encoder-decoder generation side by side, transformers against `trustformers generate` on
the same CPU in the same run: t5-small and bart-base shapes with random weights (made by
transformers, saved with a word-level tokenizer over the whole vocabulary), a 128-token
source, exactly 64 new tokens by greedy search (min_new_tokens = max_new_tokens = 64), fp32.
Prints one JSON line per system and model (median of the repetitions: seconds for the whole
generate() call, encoder included, and new tokens/s), then a markdown table.

Usage (needs torch and transformers):
  cargo build --release -p trustformers-cli
  python scripts/bench_seq2seq.py [--trustformers target/release/trustformers]
      [--threads 2] [--reps 5] [--src 128] [--new 64]
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

SHAPES = {
    # t5-small's config.json (Hub), as shipped.
    "t5-small": (
        "T5",
        dict(
            vocab_size=32128,
            d_model=512,
            d_kv=64,
            d_ff=2048,
            num_layers=6,
            num_heads=8,
            relative_attention_num_buckets=32,
            feed_forward_proj="relu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        ),
    ),
    # facebook/bart-base's config.json (Hub).
    "bart-base": (
        "Bart",
        dict(
            vocab_size=50265,
            d_model=768,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=12,
            decoder_attention_heads=12,
            encoder_ffn_dim=3072,
            decoder_ffn_dim=3072,
            max_position_embeddings=1024,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_eos_token_id=2,
        ),
    ),
}


def make(name, out_dir):
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    kind, kwargs = SHAPES[name]
    torch.manual_seed(0)
    config = getattr(transformers, f"{kind}Config")(**kwargs)
    model = getattr(transformers, f"{kind}ForConditionalGeneration")(config).eval()
    model.save_pretrained(out_dir)
    # Id 2 is the unknown token (a special token, which must not prefix other words).
    vocab = {("<unk>" if i == 2 else f"w{i}"): i for i in range(config.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(out_dir)
    return model


def source(n):
    # Clear of the special ids at the bottom of both vocabularies.
    return " ".join(f"w{100 + (7 * i) % 5000}" for i in range(n))


def bench_transformers(model, model_dir, text, new, threads, reps):
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok(text, return_tensors="pt").input_ids
    times = []
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
        for _ in range(reps):
            start = time.perf_counter()
            out = model.generate(
                ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, num_beams=1
            )
            times.append(time.perf_counter() - start)
    generated = out.shape[1] - 1
    return ids.shape[1], generated, statistics.median(times)


def bench_trustformers(binary, model_dir, text, new, threads, reps):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    times, generated, prompt = [], 0, 0
    for _ in range(reps + 1):
        out = subprocess.run(
            [binary, "generate", "--model", model_dir, "--max-new-tokens", str(new),
             "--min-new-tokens", str(new), "--json", text],
            env=env, check=True, capture_output=True, text=True,
        )
        v = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(v["prefill_s"] + v["decode_s"])
        generated = len(v["sequences"][0]["token_ids"])
        prompt = v["prompt_tokens"]
    return prompt, generated, statistics.median(times[1:])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trustformers", default="target/release/trustformers")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--src", type=int, default=128)
    p.add_argument("--new", type=int, default=64)
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SHAPES:
            model_dir = Path(tmp) / name
            model = make(name, model_dir)
            # The tokenizer adds no special tokens: src - 1 words and EOS by hand.
            text = source(a.src - 1) + (" w1" if name.startswith("t5") else " <unk>")
            for system in ("trustformers", "transformers"):
                if system == "transformers":
                    n_src, n_new, secs = bench_transformers(
                        model, model_dir, text, a.new, a.threads, a.reps
                    )
                else:
                    n_src, n_new, secs = bench_trustformers(
                        a.trustformers, str(model_dir), text, a.new, a.threads, a.reps
                    )
                row = {"model": name, "system": system, "source_tokens": n_src,
                       "new_tokens": n_new, "seconds": round(secs, 4),
                       "tokens_per_s": round(n_new / secs, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    print("\n| model | system | source tokens | new tokens | s (median) | new tokens/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['system']} | {r['source_tokens']} | {r['new_tokens']} "
              f"| {r['seconds']} | {r['tokens_per_s']} |")


if __name__ == "__main__":
    main()
