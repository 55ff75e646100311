#!/usr/bin/env python3
"""transformers' logits processors on fixed score tensors -> tests/fixtures/generation/processors.json.

Each case: the processor and its arguments, input_ids [2, 8], scores [2, 40] in, scores out
(-inf written as null)."""
import json
import math
from pathlib import Path

import torch
from transformers.generation import logits_process as lp

# One-token biases, prefixes that end row 0 ([1], [4, 1]) or row 1 ([9, 10]), one that ends
# neither, and a token biased twice.
SEQUENCE_BIAS = [((5,), 1.5), ((1, 12), 2.0), ((4, 1, 11), -3.0), ((9, 10, 6), 0.5),
                 ((3, 4), 2.0), ((1, 5), 0.25), ((17,), -2.0)]

# Each row's source (encoder input): row 0 holds the bigram (1, 9) after its last token 1,
# row 1 two bigrams after its last token 10.
SOURCE = [[1, 9, 3, 12], [10, 6, 10, 13]]

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "generation" / "processors.json"


def main():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 40, generator=g) * 3
    scores[0, 5] = scores[0, 6]  # a tie
    input_ids = torch.tensor([[1, 9, 3, 7, 9, 3, 4, 1], [2, 2, 5, 6, 7, 8, 9, 10]])
    prompt_len = 5
    cases = [
        ("temperature", {"temperature": 0.7}, lp.TemperatureLogitsWarper(0.7)),
        ("top_k", {"top_k": 5}, lp.TopKLogitsWarper(top_k=5)),
        ("top_p", {"top_p": 0.8}, lp.TopPLogitsWarper(top_p=0.8)),
        ("min_p", {"min_p": 0.1}, lp.MinPLogitsWarper(min_p=0.1)),
        ("typical_p", {"typical_p": 0.9}, lp.TypicalLogitsWarper(mass=0.9)),
        ("repetition_penalty", {"repetition_penalty": 1.3}, lp.RepetitionPenaltyLogitsProcessor(1.3)),
        ("no_repeat_ngram_size", {"no_repeat_ngram_size": 2}, lp.NoRepeatNGramLogitsProcessor(2)),
        ("logit_bias", {"logit_bias": [[3, 2.5], [7, -1.0]]}, lp.SequenceBiasLogitsProcessor({(3,): 2.5, (7,): -1.0})),
        ("bad_words_ids", {"bad_words_ids": [[5], [1, 9], [4, 1, 11]]}, lp.NoBadWordsLogitsProcessor([[5], [1, 9], [4, 1, 11]], eos_token_id=2)),
        ("min_new_tokens", {"min_new_tokens": 5, "eos_token_id": [2, 3]}, lp.MinNewTokensLengthLogitsProcessor(prompt_len, 5, [2, 3])),
        ("forced_eos", {"max_length": 9, "eos_token_id": [2]}, lp.ForcedEOSTokenLogitsProcessor(9, [2])),
        ("suppress_tokens", {"suppress_tokens": [5, 7, 39]}, lp.SuppressTokensLogitsProcessor([5, 7, 39])),
        # Fires when the sequence is begin_index long: the Rust test's prompt length is
        # set so that it does (8 = the whole input), as generate() sets begin_index.
        ("begin_suppress_tokens", {"begin_suppress_tokens": [3, 9], "prompt_len": 8},
         lp.SuppressTokensAtBeginLogitsProcessor([3, 9], 8)),
        ("begin_suppress_tokens_later", {"begin_suppress_tokens": [3, 9], "prompt_len": 7},
         lp.SuppressTokensAtBeginLogitsProcessor([3, 9], 7)),
        ("sequence_bias", {"sequence_bias": SEQUENCE_BIAS},
         lp.SequenceBiasLogitsProcessor([[list(k), v] for k, v in SEQUENCE_BIAS])),
        ("epsilon_cutoff", {"epsilon_cutoff": 0.02}, lp.EpsilonLogitsWarper(0.02)),
        ("epsilon_cutoff_keep", {"epsilon_cutoff": 0.5, "min_tokens_to_keep": 3},
         lp.EpsilonLogitsWarper(0.5, min_tokens_to_keep=3)),
        ("eta_cutoff", {"eta_cutoff": 0.05}, lp.EtaLogitsWarper(0.05)),
        ("eta_cutoff_keep", {"eta_cutoff": 0.9, "min_tokens_to_keep": 2},
         lp.EtaLogitsWarper(0.9, min_tokens_to_keep=2)),
        ("exponential_decay_length_penalty",
         {"exponential_decay_length_penalty": [1, 1.5], "eos_token_id": [2, 3, 11]},
         lp.ExponentialDecayLengthPenalty((1, 1.5), [2, 3, 11], prompt_len)),
        ("renormalize_logits", {}, lp.LogitNormalization()),
        ("top_h", {"top_h": 0.4}, lp.TopHLogitsWarper(0.4)),
        ("encoder_repetition_penalty", {"encoder_repetition_penalty": 1.5, "source": SOURCE},
         lp.EncoderRepetitionPenaltyLogitsProcessor(1.5, torch.tensor(SOURCE))),
        ("encoder_no_repeat_ngram_size", {"encoder_no_repeat_ngram_size": 2, "source": SOURCE},
         lp.EncoderNoRepeatNGramLogitsProcessor(2, torch.tensor(SOURCE))),
        ("encoder_no_repeat_ngram_size_1", {"encoder_no_repeat_ngram_size": 1, "source": SOURCE},
         lp.EncoderNoRepeatNGramLogitsProcessor(1, torch.tensor(SOURCE))),
        ("top_h_all", {"top_h": 1.0}, lp.TopHLogitsWarper(1.0)),
    ]
    out = {"input_ids": input_ids.tolist(), "prompt_len": prompt_len, "scores": scores.tolist(), "cases": []}
    for name, args, proc in cases:
        res = proc(input_ids, scores.clone())
        out["cases"].append({
            "name": name,
            "args": args,
            "scores": [[None if math.isinf(x) and x < 0 else x for x in row] for row in res.tolist()],
        })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
