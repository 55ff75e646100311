#!/usr/bin/env python3
"""transformers' pipeline outputs on the tiny BERT fixtures (tests/fixtures/bert_*), the
reference for the Rust pipelines: tests/fixtures/pipelines.json, a list of
{"task", "model", "inputs", "params", "output", "transformers"} cases.

transformers 5 removed the question-answering pipeline: those cases come from transformers
4.57, run separately; each run replaces only the cases it can compute.

Usage (needs torch, transformers):
  python tools/gen_pipeline_fixtures.py                       # transformers 5: all but QA
  PYTHONPATH=/path/to/transformers-4.57 python tools/gen_pipeline_fixtures.py question-answering
"""

import json
import sys
from pathlib import Path

from transformers import pipeline

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

CONTEXT = (
    "john was born in berlin . he lives in london and works at google . "
    "the river seine flows through paris , the capital of france . "
    "paris is a great city and the weather is sunny today ."
)

CASES = [
    ("fill-mask", "bert_mlm", "the capital of france is [MASK] .", {}),
    ("fill-mask", "bert_mlm", ["i [MASK] this movie", "he works at [MASK] ."], {"top_k": 3}),
    ("fill-mask", "bert_mlm", "the [MASK] is sunny", {"targets": ["weather", "city", "paris"]}),
    ("text-classification", "bert_seqcls", "i love this movie", {}),
    ("text-classification", "bert_seqcls", ["i love this movie", "the weather is terrible today"], {"top_k": None}),
    ("text-classification", "bert_seqcls", "a good movie", {"top_k": 2, "function_to_apply": "sigmoid"}),
    ("text-classification", "bert_seqcls", "a bad movie", {"top_k": None, "function_to_apply": "none"}),
    ("text-classification", "bert_seqcls", {"text": "who is john ?", "text_pair": "john lives in paris"}, {}),
    ("token-classification", "bert_tokcls", "john lives in london and works at google", {"aggregation_strategy": "none"}),
    ("token-classification", "bert_tokcls", "john lives in london and works at google", {"aggregation_strategy": "simple"}),
    ("token-classification", "bert_tokcls", "johnny lived in londonish , germany", {"aggregation_strategy": "first"}),
    ("token-classification", "bert_tokcls", "johnny lived in londonish , germany", {"aggregation_strategy": "average"}),
    ("token-classification", "bert_tokcls", "johnny lived in londonish , germany", {"aggregation_strategy": "max"}),
    ("question-answering", "bert_qa", {"question": "where does john live ?", "context": CONTEXT}, {}),
    ("question-answering", "bert_qa", {"question": "what is the capital of france ?", "context": CONTEXT}, {"top_k": 3, "max_answer_len": 4}),
    ("question-answering", "bert_qa", {"question": "who works at google ?", "context": CONTEXT}, {"max_seq_len": 32, "doc_stride": 8, "top_k": 2}),
    ("question-answering", "bert_qa", {"question": "where is the tower ?", "context": CONTEXT}, {"handle_impossible_answer": True}),
    ("zero-shot-classification", "bert_nli", "the weather is sunny today", {"candidate_labels": ["weather", "sports", "politics"]}),
    ("zero-shot-classification", "bert_nli", "john loves music and sports", {"candidate_labels": ["music", "sports", "politics"], "multi_label": True}),
    ("zero-shot-classification", "bert_nli", "paris is a city", {"candidate_labels": ["city", "river"], "hypothesis_template": "this is about {} ."}),
]


def plain(x):
    """Pipeline outputs as JSON values (numpy scalars to Python)."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item"):
        return x.item()
    return x


def main():
    import transformers

    only = set(sys.argv[1:])
    path = FIXTURES / "pipelines.json"
    kept = json.loads(path.read_text()) if path.exists() else []
    done = {task for task, *_ in CASES if not only or task in only}
    if transformers.__version__.startswith("5."):
        done.discard("question-answering")
    out = [c for c in kept if c["task"] not in done]
    pipes = {}
    for task, model, inputs, params in CASES:
        if task not in done:
            continue
        key = (task, model)
        if key not in pipes:
            pipes[key] = pipeline(task, model=str(FIXTURES / model), device="cpu")
        pipe = pipes[key]
        if task == "question-answering":
            result = pipe(**inputs, **params)
        elif task == "zero-shot-classification":
            result = pipe(inputs, **params)
        else:
            result = pipe(inputs, **params)
        out.append(
            {
                "task": task,
                "model": model,
                "inputs": inputs,
                "params": params,
                "output": plain(result),
                "transformers": transformers.__version__,
            }
        )
    order = [t for t, *_ in CASES]
    out.sort(key=lambda c: order.index(c["task"]))
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(out)} cases")


if __name__ == "__main__":
    sys.exit(main())
