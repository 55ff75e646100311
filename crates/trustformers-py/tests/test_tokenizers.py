"""Tokenizers through the Python API against transformers' outputs on the tokenizer parity
corpus (the files `cargo test`'s parity test reads): ids with and without special tokens,
offsets, special-token masks, tokens, decoded text, pairs, padded and truncated batches,
and rendered chat templates."""

import numpy as np
import pytest

import trustformers as tf
from conftest import FIXTURES, read_json, real_models

TOK = FIXTURES / "tokenizers"
CORPUS = read_json(TOK / "corpus.json")
BATCH = [
    "Hello world",
    "A much longer sentence with many more tokens in it than the first one.",
    "",
    "café 😀",
    "short",
]


def check(name, path, keep=lambda text: True):
    tok = tf.AutoTokenizer.from_pretrained(str(path))
    exp = read_json(TOK / f"{name}.expected.json")
    failures = []

    def fail(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r} want {want!r}")

    for text, case in zip(CORPUS, exp["cases"]):
        if not keep(text):
            continue
        enc = tok(text, return_offsets_mapping="offsets" in case, return_special_tokens_mask=True)
        fail(f"ids of {text!r}", enc["input_ids"], case["ids"])
        fail(f"plain ids of {text!r}", tok(text, add_special_tokens=False)["input_ids"], case["ids_plain"])
        fail(f"encode of {text!r}", tok.encode(text), case["ids"])
        fail(f"decode of {text!r}", tok.decode(case["ids"]), case["decoded"])
        fail(f"decode(skip) of {text!r}", tok.decode(case["ids"], skip_special_tokens=True), case["decoded_skip"])
        if "offsets" in case:
            fail(f"offsets of {text!r}", [list(o) for o in enc["offset_mapping"]], case["offsets"])
            fail(f"special_tokens_mask of {text!r}", enc["special_tokens_mask"], case["special_tokens_mask"])
            fail(f"tokens of {text!r}", tok.convert_ids_to_tokens(enc["input_ids"]), case["tokens"])
    for pair in exp["pairs"]:
        kwargs = {}
        if "truncation" in pair:
            kwargs = {"truncation": pair["truncation"], "max_length": pair.get("max_length")}
        try:
            enc = tok(pair["a"], pair["b"], **kwargs)
        except ValueError as e:
            if "error" not in pair:
                failures.append(f"pair {pair['a']!r}/{pair['b']!r}: {e}")
            continue
        if "error" in pair:
            failures.append(f"pair {pair['a']!r}/{pair['b']!r}: transformers refused, got {enc['input_ids']}")
            continue
        fail(f"pair {pair['a']!r}/{pair['b']!r}", enc["input_ids"], pair["ids"])
        if "token_type_ids" in pair:
            got = tok(pair["a"], pair["b"], return_token_type_ids=True, **kwargs)["token_type_ids"]
            fail(f"pair types {pair['a']!r}/{pair['b']!r}", got, pair["token_type_ids"])
    for b in exp["batches"]:
        kwargs = dict(b["kwargs"])
        tok.padding_side = b["side"]
        tok.truncation_side = b["side"]
        enc = tok(BATCH, **kwargs)
        fail(f"batch {kwargs} {b['side']}", (enc["input_ids"], enc["attention_mask"]), (b["input_ids"], b["attention_mask"]))
    tok.padding_side = tok.truncation_side = "right"
    for chat in exp["chat"]:
        try:
            got = tok.apply_chat_template(chat["messages"], add_generation_prompt=chat["add_generation_prompt"], tokenize=False)
        except ValueError as e:
            got = None
            if chat["rendered"] is not None:
                failures.append(f"chat {chat['messages']}: {e}")
        fail(f"chat {chat['messages']}", got, chat["rendered"])
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("name", ["wordpiece", "gpt2", "unigram", "spm_unigram", "spm_bpe"])
def test_tokenizer_files_match_transformers(name):
    check(name, TOK / name)


def test_gguf_tokenizer_matches_transformers():
    check("gguf_t5", TOK / "gguf_t5" / "t5-tokenizer.gguf")


@real_models
@pytest.mark.parametrize(
    "name,model",
    [
        ("all-minilm-l6-v2", "all-minilm-l6-v2"),
        ("smollm2", "smollm2-135m-instruct"),
        ("gemma3", "gemma-3-270m"),
    ],
)
def test_real_tokenizers_match_transformers(name, model):
    check(name, model)


def test_batch_encoding_and_tensors():
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "bert_base"))
    enc = tok(["hello world", "hello"], padding=True, return_tensors="np")
    assert isinstance(enc, tf.BatchEncoding)
    assert enc.input_ids is enc["input_ids"]
    assert list(enc) == ["input_ids", "token_type_ids", "attention_mask"]
    assert enc["input_ids"].dtype == np.int64 and enc["input_ids"].shape[0] == 2
    assert enc["attention_mask"][1].tolist().count(0) > 0
    with pytest.raises(ValueError, match="padding"):
        tok(["hello world", "hello"], return_tensors="np")
    assert tok.batch_decode(enc["input_ids"], skip_special_tokens=True) == ["hello world", "hello"]
    assert tok.cls_token == "[CLS]" and tok.convert_tokens_to_ids("[CLS]") == tok.cls_token_id
    assert tok.convert_ids_to_tokens(tok.cls_token_id) == "[CLS]"
    assert len(tok) == tok.vocab_size == len(tok.get_vocab())


def test_pad_token_can_be_set_as_in_transformers():
    tok = tf.AutoTokenizer.from_pretrained(str(TOK / "gpt2"))
    with pytest.raises(ValueError, match="pad"):
        tok(["a", "bb cc"], padding=True)
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    enc = tok(["a", "bb cc"], padding=True)
    assert enc["input_ids"][0][0] == tok.eos_token_id and enc["attention_mask"][0][0] == 0
    with pytest.raises(ValueError, match="vocabulary"):
        tok.pad_token = "<not a token>"


def test_split_words_and_word_ids_as_in_transformers():
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "bert_tokcls"))
    words = ["john", "lives", "in", "londonish"]
    enc = tok(words, is_split_into_words=True)
    ids = enc["input_ids"]
    # transformers 5.25's outputs on this fixture's tokenizer.
    assert ids == [2, 87, 88, 65, 89, 45, 55, 44, 3]
    assert enc.word_ids() == [None, 0, 1, 2, 3, 3, 3, 3, None]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    word_ids = enc.word_ids()
    assert word_ids[0] is None and word_ids[-1] is None
    assert sorted({w for w in word_ids if w is not None}) == [0, 1, 2, 3]
    # Every word's tokens decode back to the word.
    for i, w in enumerate(words):
        pieces = [t for t, wid in zip(ids, word_ids) if wid == i]
        assert tok.decode(pieces).replace(" ", "") == w
    batch = tok([words, ["paris"]], is_split_into_words=True, padding=True, return_tensors="np")
    assert batch["input_ids"][1].tolist() == [2, 82, 3, 0, 0, 0, 0, 0, 0]
    assert batch.word_ids(1) == [None, 0, None, None, None, None, None, None, None]
    # Plain text has word ids too (the pre-tokenizer's words).
    assert tok("john lives").word_ids() == [None, 0, 1, None]


ADDED = read_json(FIXTURES / "tokenizers" / "added_tokens.json")


@pytest.mark.parametrize("name", sorted(ADDED["tokenizers"]))
def test_added_tokens_match_transformers(name):
    want = ADDED["tokenizers"][name]
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / name))
    assert len(tok) == want["len_before"]
    assert tok.add_tokens(ADDED["plain"]) == want["added_plain"]
    assert tok.add_special_tokens(ADDED["special"]) == want["added_special"]
    assert len(tok) == want["len_after"] and tok.pad_token_id == want["pad_token_id"]
    assert tok.pad_token == ADDED["special"]["pad_token"]
    assert tok.special_tokens_map["additional_special_tokens"] == ADDED["special"]["additional_special_tokens"]
    for text, w in zip(ADDED["texts"], want["encodings"]):
        ids = tok(text)["input_ids"]
        assert ids == w["ids"], text
        assert tok.decode(ids) == w["decoded"]
        assert tok.decode(ids, skip_special_tokens=True) == w["decoded_skip"]
    # Adding them again adds nothing.
    assert tok.add_tokens(ADDED["plain"]) == 0


def test_adding_tokens_refuses_what_is_not_a_token():
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "t5"))
    for bad in ([""], [3], None):
        with pytest.raises(ValueError, match="new_tokens"):
            tok.add_tokens(bad)
    with pytest.raises(ValueError, match="special token name"):
        tok.add_special_tokens({"pad": "<p>"})
    with pytest.raises(ValueError, match="add_special_tokens"):
        tok.pad_token = "<not-in-vocab>"
