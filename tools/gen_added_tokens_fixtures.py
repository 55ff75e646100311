#!/usr/bin/env python3
"""transformers' add_tokens / add_special_tokens on tokenizer fixtures ->
tests/fixtures/tokenizers/added_tokens.json.

For each tokenizer: two plain tokens added (one holding a space), then special tokens (a
new pad token and an additional special token); per text, the ids, and the text decoded
with and without special tokens; the counts add_* returned and len(tokenizer).

Usage: python tools/gen_added_tokens_fixtures.py   (needs transformers)
"""
import json
from pathlib import Path

from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "tokenizers" / "added_tokens.json"

NAMES = ["tokenizers/unigram", "bert_base", "t5", "generation/stop_tokenizer"]
PLAIN = ["zqxword", "two zq"]
SPECIAL = {"pad_token": "<newpad>", "additional_special_tokens": ["<extra>"]}
TEXTS = ["a zqxword and two zq here", "the <extra> mark<newpad> end", "two zqxword<extra>"]


def main():
    out = {"plain": PLAIN, "special": SPECIAL, "texts": TEXTS, "tokenizers": {}}
    for name in NAMES:
        tok = AutoTokenizer.from_pretrained(FIXTURES / name)
        before = len(tok)
        plain = tok.add_tokens(PLAIN)
        special = tok.add_special_tokens(SPECIAL)
        rows = []
        for text in TEXTS:
            ids = tok(text)["input_ids"]
            rows.append({
                "ids": ids,
                "decoded": tok.decode(ids),
                "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            })
        out["tokenizers"][name] = {
            "len_before": before,
            "added_plain": plain,
            "added_special": special,
            "len_after": len(tok),
            "pad_token_id": tok.pad_token_id,
            "encodings": rows,
        }
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
