#!/usr/bin/env python3
"""The encoder-decoders' tokenizer fixtures, with transformers as the reference.

MBartTokenizer: tests/fixtures/tokenizers/mbart/ is what transformers saves for an mBART
tokenizer built from `sentencepiece.bpe.model` (the spm_bpe fixture's model) with
`src_lang="en_XX"`, `tgt_lang="ro_RO"` (tokenizer.json with fairseq's id offset and the 25
language codes); `mbart.expected.json` holds its ids (`x </s> en_XX`) for every corpus
string, their decoded text, and `ids_de_DE`: the ids with `src_lang="de_DE"` for the first 50.

MarianTokenizer: tests/fixtures/tokenizers/marian/ holds `source.spm` and `target.spm` (the spm_unigram fixture's SentencePiece model,
as Helsinki-NLP's checkpoints ship one per side), a `vocab.json` whose ids are not the
SentencePiece ids (Marian's are not: here every piece is renumbered, specials first, plus a
`>>de<<` language code), and `tokenizer_config.json`; `marian.expected.json` holds
MarianTokenizer's ids for every corpus string and the decoded text of those ids.

transformers runs Moses punctuation normalization first when `sacremoses` is installed; the
reference is made without it (as trustformers tokenizes).

Usage: python tools/gen_seq2seq_tokenizer_fixtures.py   (needs transformers, sentencepiece)
"""

import json
import shutil
from pathlib import Path

import sentencepiece as spm

ROOT = Path(__file__).resolve().parent.parent
TOK = ROOT / "tests" / "fixtures" / "tokenizers"
OUT = TOK / "marian"


def expected(tok, corpus, name, **more):
    ids = [tok(s)["input_ids"] for s in corpus]
    decoded = [tok.decode(i, skip_special_tokens=True) for i in ids]
    (TOK / f"{name}.expected.json").write_text(
        json.dumps({"corpus": corpus, "ids": ids, "decoded": decoded, **more}, ensure_ascii=False)
        + "\n"
    )


def mbart():
    import tempfile

    from transformers import MBartTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(TOK / "spm_bpe" / "tokenizer.model", Path(tmp) / "sentencepiece.bpe.model")
        Path(tmp, "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MBartTokenizer"}))
        tok = MBartTokenizer.from_pretrained(tmp, src_lang="en_XX", tgt_lang="ro_RO")
    out = TOK / "mbart"
    shutil.rmtree(out, ignore_errors=True)
    tok.save_pretrained(out)
    corpus = json.loads((TOK / "corpus.json").read_text())
    # With another source language (`src_lang="de_DE"`): `x </s> de_DE`.
    german = MBartTokenizer.from_pretrained(out, src_lang="de_DE")
    expected(
        MBartTokenizer.from_pretrained(out),
        corpus,
        "mbart",
        ids_de_DE=[german(s)["input_ids"] for s in corpus[:50]],
    )
    print(f"mbart: {len(corpus)} strings, vocab {len(tok)}")


def main():
    mbart()
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
    expected(tok, corpus, "marian")
    print(f"{len(corpus)} strings, vocab {len(vocab)}")


if __name__ == "__main__":
    main()
