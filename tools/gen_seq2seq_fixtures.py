#!/usr/bin/env python3
"""Writes the tiny encoder-decoder fixtures under tests/fixtures/ with transformers as the
reference.

Each fixture directory holds a checkpoint exactly as transformers saves it (config.json,
generation_config.json, model.safetensors) and `expected.safetensors`:

  input_ids, attention_mask        [2, SRC] int64; row 1 is right-padded (as tokenizers pad)
  decoder_input_ids                [2, TGT] int64, starting with decoder_start_token_id
  logits                           [2, TGT, vocab]
  last_hidden_state                [2, TGT, d_model]  the decoder's final hidden state
  encoder_last_hidden_state        [2, SRC, d_model]
  greedy_ids, beam_ids             [2, n] int64: generate() on the batch (greedy), and on each
                                   row alone with num_beams=3 (rows padded with -1); both with
                                   max_new_tokens=MAX_NEW and the saved generation_config.json

Every knob is on somewhere: relative-position buckets fewer than the distances (T5), an untied
head without the output scale (T5 v1.1 / Flan-T5), per-layer relative bias (UMT5), learned
positions with BART's offset and post-LN, mBART's pre-LN with final norms, Marian's
sinusoidal positions, scaled embeddings, swish and decoder start = pad, Pegasus' pre-LN with
sinusoidal positions, and final_logits_bias that is not zero.

Usage (needs torch, transformers, safetensors):
  python tools/gen_seq2seq_fixtures.py          # every fixture
  python tools/gen_seq2seq_fixtures.py t5 bart  # some
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SRC, TGT, MAX_NEW = 12, 6, 8
VOCAB = 96

T5 = dict(
    vocab_size=VOCAB,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    relative_attention_max_distance=10,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
    initializer_factor=4.0,
)

# Without the output scale a head of initializer_factor 4 puts the logits near +-80, where
# the reference's own f32 rounding reaches 1e-4: these keep transformers' factor 1.
GATED_T5 = dict(
    T5, feed_forward_proj="gated-gelu", tie_word_embeddings=False, initializer_factor=1.0
)

# Fixtures whose checkpoint is rewritten as the Hub ships Flan-T5: transformers 5 saves a T5
# with one tied table, but Flan-T5's files hold their own `lm_head.weight` and say
# `tie_word_embeddings: false` (which transformers reads as "no output scale", and still
# loads the file's head).
UNTIED_HEAD = {"t5_v1_1"}

BART = dict(
    vocab_size=VOCAB,
    d_model=32,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=64,
    decoder_ffn_dim=48,
    max_position_embeddings=64,
    activation_function="gelu",
    # transformers' 0.02 leaves a tiny model's logits to final_logits_bias alone: a wider
    # init makes the generated ids depend on the input.
    init_std=0.3,
)

# T5's task prefixes, which the summarization and translation pipelines put before inputs,
# written into config.json as t5-small ships them (transformers 5 no longer keeps the field).
TASK_PARAMS = {
    "summarization": {"prefix": "summarize: "},
    "translation_en_to_de": {"prefix": "translate English to German: "},
}

FIXTURE_SPECS = {
    # T5 v1.0: ReLU FFN, head tied to the embeddings with the d_model^-0.5 scale.
    "t5": ("T5", dict(T5, feed_forward_proj="relu")),
    # T5 v1.1 / Flan-T5: gated-GELU, its own lm_head, no output scale, fewer decoder layers
    # than encoder layers (transformers' generate() sizes its cache by num_layers, so the
    # decoder may not be the deeper one).
    # Saved as the Hub ships Flan-T5 (see UNTIED_HEAD).
    "t5_v1_1": (
        "T5",
        dict(
            GATED_T5,
            num_layers=3,
            num_decoder_layers=2,
        ),
    ),
    "mt5": ("MT5", GATED_T5),
    # UMT5: a relative attention bias in every layer.
    "umt5": ("UMT5", GATED_T5),
    "bart": (
        "Bart",
        dict(BART, pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2),
    ),
    "mbart": (
        "MBart",
        dict(
            BART,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            scale_embedding=True,
        ),
    ),
    "marian": (
        "Marian",
        dict(
            BART,
            activation_function="swish",
            pad_token_id=VOCAB - 1,
            eos_token_id=0,
            decoder_start_token_id=VOCAB - 1,
            scale_embedding=True,
        ),
    ),
    "pegasus": (
        "Pegasus",
        dict(
            BART,
            activation_function="relu",
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            scale_embedding=True,
        ),
    ),
}


def model_class(kind):
    return "MarianMTModel" if kind == "Marian" else f"{kind}ForConditionalGeneration"


def build(kind, kwargs):
    import transformers

    config = getattr(transformers, f"{kind}Config")(**kwargs)
    return randomize(getattr(transformers, model_class(kind))(config).eval())


def randomize(model):
    """Random init leaves some tensors at 0 or 1 (biases, norms, final_logits_bias): make
    every one of them matter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.copy_(0.2 * torch.randn_like(model.final_logits_bias))
    return model


def inputs(config):
    g = torch.Generator().manual_seed(1)
    low = 3  # clear of the special ids at the bottom of the vocabulary
    ids = torch.randint(low, VOCAB - 2, (2, SRC), generator=g)
    mask = torch.ones(2, SRC, dtype=torch.long)
    ids[1, SRC - 4 :] = config.pad_token_id
    mask[1, SRC - 4 :] = 0
    dec = torch.randint(low, VOCAB - 2, (2, TGT), generator=g)
    dec[:, 0] = config.decoder_start_token_id
    return ids, mask, dec


def pad_rows(rows, value=-1):
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def untie_head(out_dir, config):
    import json

    from safetensors.torch import load_file

    weights = load_file(out_dir / "model.safetensors")
    g = torch.Generator().manual_seed(2)
    weights["lm_head.weight"] = torch.randn(config.vocab_size, config.d_model, generator=g)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    path = out_dir / "config.json"
    saved = json.loads(path.read_text())
    saved["tie_word_embeddings"] = False
    saved.pop("scale_decoder_outputs", None)
    path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


# A word-level vocabulary for the pipeline fixtures: the special tokens at the model's ids,
# then words (T5's task prefixes among them).
WORDS = (
    "summarize : translate English to German the a of and in is was it for on that with as "
    "by at from this be are an or his her they we you he she not but all were when there "
    "can more one time new some what about out up into so will no which year day people "
    "city river house book story news report world water music light night old long small "
    "great first last good high little own other many young right next early important "
    "public bad same able"
).split()

# Fixtures with a tokenizer and the pipelines transformers runs on them: (task, inputs).
PIPELINES = {
    "t5": [
        ("summarization", ["the city was new and the river was long", "a story about music"]),
        ("translation_en_to_de", ["the old house is on the river"]),
        ("text2text-generation", ["what is the news"]),
    ],
    "bart": [
        ("summarization", ["the young people of the city report the news", "a small book"]),
        ("text2text-generation", ["water and light"]),
    ],
}


def write_tokenizer(out_dir, config, words=None, punctuation=False):
    """A WordLevel tokenizer.json over `words` (default WORDS), with T5's (`x </s>`) or
    BART's (`<s> x </s>`, pairs `<s> a </s></s> b </s>`) special tokens, saved as
    transformers saves a fast tokenizer; `punctuation` splits punctuation off words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    t5 = config.model_type == "t5"
    specials = {"<pad>": 0, "</s>": 1, "<unk>": 2} if t5 else {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab = dict(specials)
    for w in words or WORDS:
        vocab.setdefault(w, len(vocab))
    assert len(vocab) <= VOCAB, len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
        if punctuation
        else pre_tokenizers.WhitespaceSplit()
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    if t5:
        tok.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", 1)]
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        **({} if t5 else {"bos_token": "<s>"}),
    )
    fast.save_pretrained(out_dir)


def write_pipelines(name, out_dir, model):
    """transformers 5 dropped the text2text pipelines; this is what transformers 4's
    `Text2TextGenerationPipeline` (and its summarization and translation subclasses) did, one
    input at a time (its default batch_size): the task's `task_specific_params` update the
    config, the `prefix` goes before each input, generate(), then decode with
    skip_special_tokens and no clean-up, under `{return_name}_text`."""
    import json

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    results = []
    for task, texts in PIPELINES[name]:
        saved = json.loads((out_dir / "config.json").read_text())
        params = saved.get("task_specific_params", {}).get(task, {})
        prefix = params.get("prefix", "")
        key = {"summarization": "summary_text", "text2text-generation": "generated_text"}.get(
            task, "translation_text"
        )
        out = []
        for text in texts:
            enc = tokenizer(prefix + text, return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False)
            out.append({key: tokenizer.decode(ids[0], skip_special_tokens=True)})
        results.append({"task": task, "inputs": texts, "max_new_tokens": MAX_NEW, "output": out})
    (out_dir / "pipelines.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"{name}: pipelines {[r['output'] for r in results]}")


def write(name):
    kind, kwargs = FIXTURE_SPECS[name]
    torch.manual_seed(0)
    model = build(kind, kwargs)
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if name in UNTIED_HEAD:
        untie_head(out_dir, model.config)
    # Reload as a user would, so the reference is what loading the saved files gives.
    import transformers

    model = getattr(transformers, model_class(kind)).from_pretrained(out_dir).eval()
    ids, mask, dec = inputs(model.config)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        greedy = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, do_sample=False
        )
        beams = [
            model.generate(
                input_ids=ids[i : i + 1, : int(mask[i].sum())],
                max_new_tokens=MAX_NEW,
                num_beams=3,
                do_sample=False,
            )[0].tolist()
            for i in range(2)
        ]
    tensors = {
        "input_ids": ids,
        "attention_mask": mask,
        "decoder_input_ids": dec,
        "logits": out.logits,
        "last_hidden_state": out.decoder_hidden_states[-1]
        if out.decoder_hidden_states
        else model.get_decoder()(
            input_ids=dec,
            encoder_hidden_states=out.encoder_last_hidden_state,
            encoder_attention_mask=mask,
        ).last_hidden_state,
        "encoder_last_hidden_state": out.encoder_last_hidden_state,
        # generate() returns the decoder start token first; the fixtures keep what follows.
        "greedy_ids": greedy[:, 1:],
        "beam_ids": pad_rows([b[1:] for b in beams]),
    }
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out_dir / "expected.safetensors"))
    if name in PIPELINES:
        if model.config.model_type == "t5":
            import json

            path = out_dir / "config.json"
            saved = json.loads(path.read_text())
            saved["task_specific_params"] = TASK_PARAMS
            path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
        write_tokenizer(out_dir, model.config)
        write_pipelines(name, out_dir, model)
    print(f"{name}: greedy {greedy[:, 1:].tolist()} beams {[b[1:] for b in beams]}")


# BART's task heads: (class suffix, extra config).
HEADS = {
    "bart_seqcls": (
        "ForSequenceClassification",
        dict(num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"}),
    ),
    "bart_qa": ("ForQuestionAnswering", dict(num_labels=2)),
    # An NLI head as bart-large-mnli's, with a tokenizer: zero-shot classification.
    "bart_nli": (
        "ForSequenceClassification",
        dict(
            num_labels=3,
            id2label={0: "contradiction", 1: "neutral", 2: "entailment"},
            label2id={"contradiction": 0, "neutral": 1, "entailment": 2},
        ),
    ),
}

NLI_WORDS = (
    "This example is about the weather sports politics music city river today sunny john "
    "loves and a paris . ,"
).split()

# transformers' zero-shot-classification pipeline on `bart_nli`: (sequence, kwargs).
ZERO_SHOT = [
    ("the weather is sunny today", {"candidate_labels": ["weather", "sports", "politics"]}),
    ("john loves music and sports", {"candidate_labels": ["music", "sports", "politics"], "multi_label": True}),
    ("paris is a city", {"candidate_labels": ["city", "river"], "hypothesis_template": "This is about {} ."}),
]


def write_head(name):
    """BART with a task head: the decoder runs on the input shifted right, the
    classification head reads the hidden state of each row's last EOS (every row ends with
    one, its padding after it), the QA head every position."""
    import transformers

    suffix, extra = HEADS[name]
    kwargs = dict(FIXTURE_SPECS["bart"][1], **extra)
    torch.manual_seed(0)
    config = transformers.BartConfig(**kwargs)
    model = randomize(getattr(transformers, f"Bart{suffix}")(config).eval())
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    model = getattr(transformers, f"Bart{suffix}").from_pretrained(out_dir).eval()
    ids, mask, _ = inputs(model.config)
    ids[0, SRC - 1] = model.config.eos_token_id
    ids[1, SRC - 5] = model.config.eos_token_id
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    tensors = {"input_ids": ids, "attention_mask": mask}
    if suffix == "ForSequenceClassification":
        tensors["logits"] = out.logits
    else:
        tensors["start_logits"] = out.start_logits
        tensors["end_logits"] = out.end_logits
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / "expected.safetensors"))
    if name == "bart_nli":
        import json

        from transformers import pipeline

        write_tokenizer(out_dir, model.config, words=NLI_WORDS, punctuation=True)
        pipe = pipeline("zero-shot-classification", model=str(out_dir))
        cases = [{"sequence": s, "kwargs": k, "output": pipe(s, **k)} for s, k in ZERO_SHOT]
        (out_dir / "zero_shot.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{name}: {[k for k in tensors]}")


def write_t5_gguf_file(path, arch, model):
    """`model` as convert_hf_to_gguf.py's `T5Model` (`t5`) or `T5EncoderModel` (`t5encoder`,
    the encoder only) writes it: its metadata keys, gguf-py's tensor names, f32."""
    import gguf

    c = model.config
    encoder_only = arch == "t5encoder"
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(512)
    w.add_embedding_length(c.d_model)
    w.add_feed_forward_length(c.d_ff)
    w.add_block_count(c.num_layers)
    if not encoder_only:
        w.add_decoder_block_count(c.num_decoder_layers)
    w.add_head_count(c.num_heads)
    w.add_key_length(c.d_kv)
    w.add_value_length(c.d_kv)
    w.add_layer_norm_eps(c.layer_norm_epsilon)
    w.add_relative_attn_buckets_count(c.relative_attention_num_buckets)
    w.add_layer_norm_rms_eps(c.layer_norm_epsilon)
    if not encoder_only:
        w.add_decoder_start_token_id(c.decoder_start_token_id)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.T5, max(c.num_layers, c.num_decoder_layers))
    for name, t in model.state_dict().items():
        if name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            continue  # the converter keeps one copy of the shared table
        if encoder_only and (name.startswith("decoder.") or name == "lm_head.weight"):
            continue
        new = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        assert new is not None, name
        w.add_tensor(new, t.float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_t5_gguf():
    """`t5_gguf`: a T5 v1.1 (gated-GELU, its own lm_head, relative_attention_max_distance 128,
    which llama.cpp assumes) written as llama.cpp's convert_hf_to_gguf.py writes T5 (its
    `T5Model`: gguf-py's tensor names, the `t5.*` metadata, f32), and transformers' outputs
    for the checkpoint it came from."""
    import tempfile

    import transformers

    kwargs = dict(GATED_T5, relative_attention_max_distance=128, num_decoder_layers=2, num_layers=3)
    torch.manual_seed(0)
    model = randomize(transformers.T5ForConditionalGeneration(transformers.T5Config(**kwargs)).eval())
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        untie_head(Path(tmp), model.config)
        model = transformers.T5ForConditionalGeneration.from_pretrained(tmp).eval()
        generation = Path(tmp, "generation_config.json").read_text()
    c = model.config
    out_dir = FIXTURES / "t5_gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "generation_config.json").write_text(generation)
    write_t5_gguf_file(out_dir / "tiny-t5.gguf", "t5", model)
    # llama.cpp's `t5encoder`: what the converter writes for a T5EncoderModel (the encoder
    # and the shared table; its expected output is `encoder_last_hidden_state`).
    write_t5_gguf_file(out_dir / "tiny-t5encoder.gguf", "t5encoder", model)
    ids, mask, dec = inputs(c)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)
        greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, do_sample=False)
        beams = [
            model.generate(input_ids=ids[i : i + 1, : int(mask[i].sum())], max_new_tokens=MAX_NEW,
                           num_beams=3, do_sample=False)[0].tolist()
            for i in range(2)
        ]
        last = model.get_decoder()(
            input_ids=dec, encoder_hidden_states=out.encoder_last_hidden_state, encoder_attention_mask=mask
        ).last_hidden_state
    tensors = {
        "input_ids": ids,
        "attention_mask": mask,
        "decoder_input_ids": dec,
        "logits": out.logits,
        "last_hidden_state": last,
        "encoder_last_hidden_state": out.encoder_last_hidden_state,
        "greedy_ids": greedy[:, 1:],
        "beam_ids": pad_rows([b[1:] for b in beams]),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / "expected.safetensors"))
    print(f"t5_gguf: greedy {greedy[:, 1:].tolist()}")


def main():
    names = sys.argv[1:] or list(FIXTURE_SPECS) + list(HEADS) + ["t5_gguf"]
    for name in names:
        if name in HEADS:
            write_head(name)
        elif name == "t5_gguf":
            write_t5_gguf()
        else:
            write(name)


if __name__ == "__main__":
    main()
