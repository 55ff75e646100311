#!/usr/bin/env python3
"""Tokenizer parity fixtures, with transformers as the reference.

Writes under tests/fixtures/tokenizers/:
  corpus.json                 520+ test strings (ASCII, accents, CJK, emoji/ZWJ, mixed scripts,
                              whitespace runs, code, numbers, long words, special-token lookalikes)
  <name>/                     small tokenizers trained here with `tokenizers`, in each file format
                              (committed): wordpiece (vocab.txt), gpt2 (vocab.json + merges.txt),
                              unigram (tokenizer.json)
  <name>.expected.json        transformers' outputs for every corpus string, pairs, batches
                              (padding, truncation with stride and overflow), offsets, decode
                              round trips, and rendered chat templates

Real tokenizers are read from the model cache that tools/fetch_models.sh fills; their expected
outputs are committed, the models are not: all-minilm-l6-v2 (tokenizer.json), smollm2 (GGUF),
gemma3 (GGUF).

Usage: python tools/gen_tokenizer_fixtures.py   (needs transformers, tokenizers, gguf)
"""

import json
import os
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizers"
CACHE = Path(os.environ.get("TRUSTFORMERS_CACHE", Path.home() / ".cache" / "trustformers"))


def corpus():
    rng = random.Random(1234)
    ascii_ = [
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "I can't believe it's not butter!",
        "They're here, aren't they? Yes, we've seen 'em.",
        "Hello , world !",
        "a",
        "",
        "Mr. Smith went to Washington D.C. on Jan. 5th.",
        "e-mail: someone@example.com, url: https://example.org/path?q=1&x=2#frag",
        "UPPER lower MiXeD CaSe",
        "don't won't shouldn't y'all o'clock",
        "Tokenization is the first step of every NLP pipeline.",
    ]
    words = ("time person year way day thing man world life hand part child eye woman place work week "
             "case point government company number group problem fact be have do say get make go know "
             "take see come think look want give use find tell ask seem feel try leave call good new first "
             "last long great little own other old right big high different small large next early young").split()
    for _ in range(90):
        n = rng.randint(1, 14)
        s = " ".join(rng.choice(words) for _ in range(n))
        s = s.capitalize() + rng.choice([".", "!", "?", "", ",", "...", ";"])
        ascii_.append(s)
    accents = [
        "café", "naïve", "Ångström", "façade", "jalapeño", "Zürich", "São Paulo", "Dvořák", "Łódź",
        "crème brûlée", "résumé", "coöperate", "Æsir", "straße", "İstanbul", "ﬁne ligature",
        "e\u0301 combining", "n\u0303o", "Ça va? Très bien!", "El niño comió piña.",
    ]
    for _ in range(30):
        accents.append(" ".join(rng.sample(accents[:20], 3)))
    cjk = [
        "你好，世界", "日本語のテキストです。", "한국어 문장입니다.", "中文和English混合", "東京タワー",
        "我爱自然语言处理", "ひらがなとカタカナ", "漢字", "안녕하세요 세계", "北京市朝阳区",
    ]
    for _ in range(40):
        cjk.append("".join(rng.sample(cjk[:10], 2)))
    emoji = [
        "😀", "👍🏽", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "❤️‍🔥", "I love 🍕 and 🍣!", "🇫🇷🇯🇵",
        "👩🏾‍💻 coding", "🤷‍♂️", "emoji at end 🎉", "🧑‍🤝‍🧑", "©️®️™️", "☃︎ vs ☃️",
    ]
    for _ in range(30):
        emoji.append(" ".join(rng.sample(emoji[:13], 2)))
    scripts = [
        "مرحبا بالعالم", "שלום עולם", "Привет, мир!", "Γειά σου Κόσμε", "नमस्ते दुनिया",
        "สวัสดีชาวโลก", "Hello مرحبا Привет 你好", "ᚠᚢᚦᚨᚱᚲ runes", "Ελληνικά and English",
        "ქართული ენა",
    ]
    for _ in range(30):
        scripts.append(" ".join(rng.sample(scripts[:10], 3)))
    whitespace = [
        "  leading spaces", "trailing spaces   ", "a  b   c    d", "tab\tseparated\tvalues",
        "line one\nline two", "windows\r\nnewline", "\n\nstarts with newlines", " ", "   ", "\t",
        "\n", "mixed \t \n whitespace", "no-break\u00a0space", "zero\u200bwidth", "ideographic\u3000space",
    ]
    for _ in range(25):
        whitespace.append(rng.choice(words) + rng.choice([" " * rng.randint(2, 6), "\t", "\n", "\n\n", " \t "]) + rng.choice(words))
    code = [
        "def foo(x):\n    return x ** 2",
        "fn main() { println!(\"hi\"); }",
        "for (int i = 0; i < n; ++i) { a[i] = i; }",
        "SELECT * FROM users WHERE id = 42;",
        "<div class=\"x\">text</div>",
        "{\"key\": [1, 2, 3], \"ok\": true}",
        "x = y if z else w  # comment",
        "if a != b && c >= d || !e {",
        "    indented_code_line()",
        "#include <stdio.h>",
        "$ cargo test --workspace -- --nocapture",
        "lambda x: x[::-1]",
    ]
    for _ in range(28):
        code.append(rng.choice(code[:12]) + "\n" + rng.choice(code[:12]))
    numbers = [
        "1234567890", "3.14159", "1,000,000", "-42", "1e-10", "0x1F", "2024-01-15", "12:34:56",
        "$19.99", "50%", "1/2", "٣٤٥", "一二三", "Ⅻ", "99 bottles", "v1.2.3",
    ]
    for _ in range(30):
        numbers.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
    long_words = [
        "pneumonoultramicroscopicsilicovolcanoconiosis",
        "Donaudampfschifffahrtsgesellschaftskapitän",
        "a" * 150,
        "x" * 99 + "y",
        "supercalifragilisticexpialidocious" * 3,
        "https://example.com/" + "verylongpath" * 10,
        "antidisestablishmentarianism",
        "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    ]
    for _ in range(12):
        long_words.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(40, 120))))
    specials = [
        "<s>", "</s>", "<unk>", "<pad>", "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]",
        "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>", "<bos>", "<eos>", "<start_of_turn>",
        "text with <s> inside", "[CLS] already [SEP]", "<|im_end|>", "< s >", "<<s>>", "[MASK]ed",
        "<0x41>", "▁", "▁▁leading metaspace", "Ġhello", "##ing",
    ]
    for _ in range(15):
        specials.append(rng.choice(specials[:25]) + " " + rng.choice(words) + " " + rng.choice(specials[:25]))
    texts = ascii_ + accents + cjk + emoji + scripts + whitespace + code + numbers + long_words + specials
    # Some mixtures of all of the above.
    pool = list(texts)
    for _ in range(40):
        texts.append(" ".join(rng.sample(pool, 3)))
    assert len(texts) >= 500, len(texts)
    return texts


PAIRS = [
    ("Hello world", "How are you?"),
    ("The first sentence is rather long and keeps going.", "Short."),
    ("", "second only"),
    ("first only", ""),
    ("café naïve", "你好，世界"),
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
]

BATCH = ["Hello world", "A much longer sentence with many more tokens in it than the first one.", "", "café 😀", "short"]

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ],
    [{"role": "user", "content": "Écris un poème 🙂 sur la mer."}],
]


def expected(tok, texts, name):
    out = {"cases": [], "pairs": [], "batches": [], "chat": []}
    for i, text in enumerate(texts):
        ids = tok(text)["input_ids"]
        plain = tok(text, add_special_tokens=False)["input_ids"]
        case = {
            "ids": ids,
            "ids_plain": plain,
            "decoded": tok.decode(ids),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
        }
        if i % 10 == 0:
            enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
            case["offsets"] = [list(o) for o in enc["offset_mapping"]]
            case["special_tokens_mask"] = enc["special_tokens_mask"]
            case["tokens"] = tok.convert_ids_to_tokens(ids)
        out["cases"].append(case)
    for a, b in PAIRS:
        enc = tok(a, b, return_token_type_ids=True)
        out["pairs"].append({"a": a, "b": b, "ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]})
    pad_ok = tok.pad_token is not None
    settings = [
        dict(truncation=True, max_length=8),
        dict(truncation=True, max_length=8, stride=2, return_overflowing_tokens=True),
    ]
    if pad_ok:
        settings += [
            dict(padding=True),
            dict(padding="max_length", max_length=24, truncation=True),
            dict(padding=True, pad_to_multiple_of=8),
        ]
    for kwargs in settings:
        for side in ["right", "left"]:
            tok.padding_side = side
            tok.truncation_side = side
            enc = tok(BATCH, **kwargs)
            out["batches"].append({
                "kwargs": {k: v for k, v in kwargs.items()},
                "side": side,
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
            })
    tok.padding_side = "right"
    tok.truncation_side = "right"
    for a, b in PAIRS[:2]:
        for strategy in ["longest_first", "only_first", "only_second"]:
            try:
                enc = tok(a, b, truncation=strategy, max_length=9)
            except Exception as e:  # transformers refuses impossible only_* truncations
                out["pairs"].append({"a": a, "b": b, "truncation": strategy, "max_length": 9, "error": str(e)[:80]})
                continue
            out["pairs"].append({"a": a, "b": b, "truncation": strategy, "max_length": 9, "ids": enc["input_ids"]})
    if getattr(tok, "chat_template", None):
        for messages in CONVERSATIONS:
            for gen in [False, True]:
                try:
                    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                except Exception as e:
                    rendered = {"error": str(e)[:120]}
                out["chat"].append({"messages": messages, "add_generation_prompt": gen, "rendered": rendered})
    path = OUT / f"{name}.expected.json"
    path.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    print(f"{name}: {path.stat().st_size // 1024} KB")


def train_small(texts):
    from tokenizers import (ByteLevelBPETokenizer, BertWordPieceTokenizer, SentencePieceUnigramTokenizer)

    train = texts[::2]
    wp = OUT / "wordpiece"
    shutil.rmtree(wp, ignore_errors=True)
    wp.mkdir(parents=True)
    t = BertWordPieceTokenizer(lowercase=True)
    t.train_from_iterator(train, vocab_size=600, min_frequency=1)
    t.save_model(str(wp))
    (wp / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))

    g = OUT / "gpt2"
    shutil.rmtree(g, ignore_errors=True)
    g.mkdir(parents=True)
    t = ByteLevelBPETokenizer()
    t.train_from_iterator(train, vocab_size=600, min_frequency=1, special_tokens=["<|endoftext|>"])
    t.save_model(str(g))
    (g / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))

    u = OUT / "unigram"
    shutil.rmtree(u, ignore_errors=True)
    u.mkdir(parents=True)
    t = SentencePieceUnigramTokenizer()
    t.train_from_iterator(train, vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", "<pad>"], unk_token="<unk>")
    t.save(str(u / "tokenizer.json"))
    (u / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
        "add_bos_token": True, "model_max_length": 256,
        "chat_template": "{% for m in messages %}{{ bos_token if loop.first }}[{{ m['role'] | upper }}] {{ m['content'] | trim }}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}",
    }))


def train_sentencepiece(texts):
    import io
    import sentencepiece as spm

    # Unigram keeps the default nmt_nfkc normalizer (a precompiled charsmap); BPE uses identity.
    for kind, vocab in [("unigram", 400), ("bpe", 600)]:
        d = OUT / f"spm_{kind}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(t for t in texts[::2] if t.strip()),
            model_writer=model,
            model_type=kind,
            vocab_size=vocab,
            byte_fallback=(kind == "bpe"),
            character_coverage=0.98,
            normalization_rule_name="nmt_nfkc" if kind == "unigram" else "identity",
            user_defined_symbols=["<sep>"],
            minloglevel=2,
        )
        (d / "tokenizer.model").write_bytes(model.getvalue())


def main():
    from transformers import AutoTokenizer, BertTokenizer, GPT2Tokenizer, LlamaTokenizer, T5Tokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    texts = corpus()
    (OUT / "corpus.json").write_text(json.dumps(texts, ensure_ascii=False, indent=0))
    train_small(texts)
    expected(BertTokenizer.from_pretrained(OUT / "wordpiece"), texts, "wordpiece")
    expected(GPT2Tokenizer.from_pretrained(OUT / "gpt2"), texts, "gpt2")
    expected(AutoTokenizer.from_pretrained(OUT / "unigram"), texts, "unigram")
    train_sentencepiece(texts)
    (OUT / "spm_unigram" / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    (OUT / "spm_bpe" / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
    expected(T5Tokenizer.from_pretrained(OUT / "spm_unigram"), texts, "spm_unigram")
    expected(LlamaTokenizer.from_pretrained(OUT / "spm_bpe"), texts, "spm_bpe")
    if os.environ.get("ONLY_SMALL"):
        return
    minilm = CACHE / "all-minilm-l6-v2"
    expected(AutoTokenizer.from_pretrained(minilm), texts, "all-minilm-l6-v2")
    smol = CACHE / "smollm2-135m-instruct"
    expected(AutoTokenizer.from_pretrained(smol, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"), texts, "smollm2")
    gemma = CACHE / "gemma-3-270m"
    expected(AutoTokenizer.from_pretrained(gemma, gguf_file="gemma-3-270m-q4_k_m.gguf"), texts, "gemma3")


if __name__ == "__main__" and not os.environ.get("GGUF_TOKENIZERS"):
    main()
    gguf_tokenizers()


def gguf_tokenizers():
    """Tokenizer-only GGUF files for the `t5` and `bert` tokenizer models, made from the small
    fixtures above: t5 from spm_unigram's pieces (reference: transformers reading the GGUF),
    bert from wordpiece's vocab.txt spelled the way llama.cpp's converter spells it (word
    starts get "▁", "##" is dropped; reference: the wordpiece fixture's own expected file)."""
    import gguf
    import sentencepiece as spm
    from transformers import AutoTokenizer

    texts = json.loads((OUT / "corpus.json").read_text())
    sp = spm.SentencePieceProcessor(model_file=str(OUT / "spm_unigram" / "tokenizer.model"))
    d = OUT / "gguf_t5"
    d.mkdir(exist_ok=True)
    w = gguf.GGUFWriter(str(d / "t5-tokenizer.gguf"), "t5")
    w.add_tokenizer_model("t5")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    w.add_token_list(pieces)
    w.add_token_scores([sp.get_score(i) for i in range(sp.get_piece_size())])
    types = []
    for i in range(sp.get_piece_size()):
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 4 if sp.is_unused(i) else 1)
    w.add_token_types(types)
    w.add_unk_token_id(sp.unk_id())
    w.add_eos_token_id(sp.eos_id())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expected(AutoTokenizer.from_pretrained(d, gguf_file="t5-tokenizer.gguf"), texts, "gguf_t5")

    d = OUT / "gguf_bert"
    d.mkdir(exist_ok=True)
    vocab = (OUT / "wordpiece" / "vocab.txt").read_text().splitlines()
    tokens, types = [], []
    for t in vocab:
        if t.startswith("[") and t.endswith("]"):
            tokens.append(t)
            types.append(3)
        elif t.startswith("##"):
            tokens.append(t[2:])
            types.append(1)
        else:
            tokens.append("\u2581" + t)
            types.append(1)
    w = gguf.GGUFWriter(str(d / "bert-tokenizer.gguf"), "bert")
    w.add_tokenizer_model("bert")
    w.add_token_list(tokens)
    w.add_token_types(types)
    for key, name in [("unk", "[UNK]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("cls", "[CLS]"), ("mask", "[MASK]")]:
        w.add_uint32(f"tokenizer.ggml.{'unknown' if key == 'unk' else 'padding' if key == 'pad' else key}_token_id", vocab.index(name))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("gguf_bert: written")


if __name__ == "__main__" and os.environ.get("GGUF_TOKENIZERS"):
    gguf_tokenizers()
