#!/usr/bin/env python3
"""transformers' generate() strategies on the tiny decoder fixtures -> tests/fixtures/generation/strategies.json.

For each fixture model (loaded from tests/fixtures/NAME, eager attention, float32):
  beam:  beam search with num_beams=3 under several settings (length_penalty, early_stopping,
         num_return_sequences, an EOS id that the beams actually produce); returned sequences
         (new tokens only, trailing padding removed) and sequences_scores.
  batch: greedy generation of three prompts of different lengths, left-padded with 0, with an
         EOS id that ends one row early; new tokens per row (padding after EOS removed).

Usage: python tools/gen_strategy_fixtures.py   (needs torch, transformers)
"""
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "generation" / "strategies.json"
PAD = 0


def strip(row, prompt_len, eos):
    """New tokens up to and including the first EOS (transformers pads after it)."""
    new = row[prompt_len:]
    for i, t in enumerate(new):
        if t in eos:
            return new[: i + 1]
    return new


def beam_cases(model, prompt):
    greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8,
                            do_sample=False, pad_token_id=PAD)[0, prompt.shape[1]:].tolist()
    # An EOS id the search will meet early, so finished hypotheses compete with running ones.
    eos = greedy[2]
    settings = [
        {"max_new_tokens": 8, "eos_token_id": [eos]},
        {"max_new_tokens": 8, "eos_token_id": [eos], "num_return_sequences": 3},
        {"max_new_tokens": 8, "eos_token_id": [eos], "length_penalty": 0.0, "num_return_sequences": 2},
        {"max_new_tokens": 8, "eos_token_id": [eos], "length_penalty": 2.0, "early_stopping": True, "num_return_sequences": 3},
        {"max_new_tokens": 8, "eos_token_id": [eos], "length_penalty": 1.5, "early_stopping": "never", "num_return_sequences": 3},
        {"max_new_tokens": 6, "eos_token_id": [greedy[0], greedy[1]], "num_return_sequences": 3},
        {"max_new_tokens": 10, "eos_token_id": [1], "repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "num_return_sequences": 2},
    ]
    # transformers cannot reorder RWKV's state between beams: its beam search reruns the
    # whole sequence at each step instead (use_cache=False), which gives the same numbers.
    no_cache = {"use_cache": False} if model.config.model_type == "rwkv" else {}
    cases = []
    for s in settings:
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), num_beams=3, do_sample=False,
                             pad_token_id=PAD, return_dict_in_generate=True, output_scores=True,
                             **no_cache, **s)
        cases.append({
            "config": s,
            "sequences": [strip(r, prompt.shape[1], s["eos_token_id"]) for r in out.sequences.tolist()],
            "scores": out.sequences_scores.tolist(),
        })
    return cases


def batch_case(model, prompt):
    rows = [prompt[0].tolist(), prompt[0, 3:].tolist(), prompt[0, 6:].tolist()]
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    # Greedy continuations of the shortest row, to pick an EOS id that ends it early.
    short = model.generate(ids[2:, width - len(rows[2]):], max_new_tokens=8, do_sample=False,
                           pad_token_id=PAD)[0, len(rows[2]):].tolist()
    eos = [short[3]]
    # RWKV: transformers' cached generation of a batch (not of one row) disagrees with its
    # own full forward on this fixture (it picks 121 where a forward over the same tokens,
    # and each row generated alone, give 9): the reference reruns the sequence instead.
    no_cache = {"use_cache": False} if model.config.model_type == "rwkv" else {}
    out = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=PAD,
                         eos_token_id=eos, **no_cache)
    return {
        "prompts": rows,
        "eos_token_id": eos,
        "max_new_tokens": 8,
        "outputs": [strip(r, width, eos) for r in out.tolist()],
    }


def main():
    result = {}
    for name in ["llama", "mistral", "qwen2", "qwen3", "mamba", "mamba2", "rwkv"]:
        model = AutoModelForCausalLM.from_pretrained(FIXTURES / name, attn_implementation="eager",
                                                     dtype=torch.float32).eval()
        g = torch.Generator().manual_seed(11)
        prompt = torch.randint(3, model.config.vocab_size, (1, 9), generator=g)
        with torch.no_grad():
            result[name] = {
                "prompt": prompt[0].tolist(),
                "beam": beam_cases(model, prompt),
                "batch": batch_case(model, prompt),
            }
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
