#!/usr/bin/env python3
"""The MarianTokenizer fixture, with transformers as the reference: tests/fixtures/tokenizers/
marian/ holds `source.spm` and `target.spm` (the spm_unigram fixture's SentencePiece model,
as Helsinki-NLP's checkpoints ship one per side), a `vocab.json` whose ids are not the
SentencePiece ids (Marian's are not: here every piece is renumbered, specials first, plus a
`>>de<<` language code), and `tokenizer_config.json`; `marian.expected.json` holds
MarianTokenizer's ids for every corpus string and the decoded text of those ids.

transformers runs Moses punctuation normalization first when `sacremoses` is installed; the
reference is made without it (as trustformers tokenizes).

Usage: python tools/gen_marian_tokenizer_fixture.py   (needs transformers, sentencepiece)
"""

import json
import shutil
from pathlib import Path

import sentencepiece as spm

ROOT = Path(__file__).resolve().parent.parent
TOK = ROOT / "tests" / "fixtures" / "tokenizers"
OUT = TOK / "marian"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    model = TOK / "spm_unigram" / "tokenizer.model"
    for side in ("source.spm", "target.spm"):
        shutil.copy(model, OUT / side)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    vocab = {"</s>": 0, "<unk>": 1, ">>de<<": 2}
    # Reversed, so no id agrees with the SentencePiece model's.
    for p in reversed(pieces):
        vocab.setdefault(p, len(vocab))
    vocab.setdefault("<pad>", len(vocab))
    (OUT / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1) + "\n")
    (OUT / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "MarianTokenizer", "source_lang": "en", "target_lang": "de"})
        + "\n"
    )

    from transformers import MarianTokenizer

    tok = MarianTokenizer.from_pretrained(OUT)
    corpus = json.loads((TOK / "corpus.json").read_text())
    corpus = corpus + [">>de<< Hello world", ">>de<<x"]
    ids = [tok(s)["input_ids"] for s in corpus]
    decoded = [tok.decode(i, skip_special_tokens=True) for i in ids]
    (TOK / "marian.expected.json").write_text(
        json.dumps({"corpus": corpus, "ids": ids, "decoded": decoded}, ensure_ascii=False) + "\n"
    )
    print(f"{len(corpus)} strings, vocab {len(vocab)}")


if __name__ == "__main__":
    main()
