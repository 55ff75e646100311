#!/usr/bin/env python3
"""Mamba side by side, transformers against `trustformers bench` on the same CPU in the same
run: a Mamba-130M-shaped model (state-spaces/mamba-130m-hf's config: 24 layers, width 768,
state 16, kernel 4, expand 2, tied head) with transformers' random initialisation, fp32.
Prompt processing (pp128, pp512: one forward over the prompt, the last position's logits)
and generation (tg128: single-token steps from the recurrent state) at depth 0 and at depth
DEPTH (tokens already summarised by the state, untimed): a recurrent model should decode
as fast at either depth. Medians of the repetitions, tokens/s, one JSON line per system,
then a markdown table. transformers runs its PyTorch paths (no mamba_ssm / causal_conv1d
CUDA kernels on a CPU).

Usage (needs torch and transformers):
  cargo build --release -p trustformers-cli
  python scripts/bench_mamba.py [--trustformers target/release/trustformers]
      [--threads 2] [--reps 5] [--depth 4096] [--work /tmp/mamba-bench]
"""

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

CONFIG = dict(
    vocab_size=50280,
    hidden_size=768,
    num_hidden_layers=24,
    state_size=16,
    conv_kernel=4,
    expand=2,
    time_step_rank="auto",
    use_bias=False,
    use_conv_bias=True,
    residual_in_fp32=True,
    tie_word_embeddings=True,
    layer_norm_epsilon=1e-5,
)
PROMPTS = (128, 512)
GEN = 128


def make_model(path):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MambaConfig, MambaForCausalLM, PreTrainedTokenizerFast

    if (path / "tokenizer.json").exists():
        return
    torch.manual_seed(0)
    model = MambaForCausalLM(MambaConfig(**CONFIG)).eval()
    model.save_pretrained(path)
    # `trustformers bench` loads a tokenizer with the model: a word-level one over the
    # whole vocabulary (the tests feed random ids).
    vocab = {("<unk>" if i == 0 else f"w{i}"): i for i in range(CONFIG["vocab_size"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(path)


def transformers_rates(path, threads, reps, depth):
    import torch
    from transformers import DynamicCache, MambaForCausalLM

    torch.set_num_threads(threads)
    model = MambaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def ids(n):
        return torch.randint(0, vocab, (1, n), generator=g)

    def prefill(n, cache):
        out = model(ids(n), cache=cache, use_cache=True, logits_to_keep=1)
        out.logits.max().item()

    rates = {}
    with torch.no_grad():
        prefill(8, DynamicCache(config=model.config))  # warm-up
        for n in PROMPTS:
            times = []
            for _ in range(reps):
                cache = DynamicCache(config=model.config)
                start = time.perf_counter()
                prefill(n, cache)
                times.append(time.perf_counter() - start)
            rates[f"pp{n}_tok_s"] = n / statistics.median(times)
        for d in (0, depth):
            times = []
            for _ in range(reps):
                cache = DynamicCache(config=model.config)
                prefill(max(d, 1), cache)
                token = ids(1)
                start = time.perf_counter()
                for _ in range(GEN):
                    out = model(token, cache=cache, use_cache=True)
                    token = out.logits[:, -1:].argmax(-1)
                times.append(time.perf_counter() - start)
            key = f"tg{GEN}_tok_s" if d == 0 else f"tg{GEN}_d{d}_tok_s"
            rates[key] = GEN / statistics.median(times)
    return rates


def trustformers_rates(binary, path, threads, reps, depth):
    rates = {}
    for d in (0, depth):
        cmd = [
            binary, "bench", "--model", str(path), "-t", str(threads), "-r", str(reps),
            "-p", ",".join(map(str, PROMPTS)), "-n", str(GEN), "-d", str(d), "--json",
        ]
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        for key, value in out.items():
            if key.endswith("_tok_s"):
                rates[key] = value
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trustformers", default="target/release/trustformers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--depth", type=int, default=4096)
    ap.add_argument("--work", default="/tmp/mamba-bench")
    args = ap.parse_args()
    path = Path(args.work) / "mamba-130m-shaped"
    make_model(path)
    ours = trustformers_rates(args.trustformers, path, args.threads, args.reps, args.depth)
    print(json.dumps({"system": "trustformers", **ours}))
    theirs = transformers_rates(path, args.threads, args.reps, args.depth)
    print(json.dumps({"system": "transformers", **theirs}))
    print("\n| test | trustformers tok/s | transformers tok/s | ratio |\n|---|---|---|---|")
    for key in ours:
        if key in theirs:
            print(f"| {key[:-6]} | {ours[key]:.1f} | {theirs[key]:.1f} | {ours[key] / theirs[key]:.2f}x |")


if __name__ == "__main__":
    main()
