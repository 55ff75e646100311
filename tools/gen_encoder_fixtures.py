#!/usr/bin/env python3
"""Writes the tiny encoder fixtures under tests/fixtures/ with transformers as the reference.

Each fixture directory holds a checkpoint exactly as transformers saves it (config.json +
model.safetensors) and `expected.safetensors` with the inputs and transformers' outputs under
their field names:

  input_ids, attention_mask, token_type_ids   [2, SEQ] int64; row 1 is right-padded
  last_hidden_state, pooler_output, hidden_states.{i}     (base models)
  logits | start_logits, end_logits                       (heads)

Multiple-choice fixtures take the two rows as the two choices of one example.

GGUF fixtures (`bert_gguf`) are the safetensors fixture of the same family converted by
llama.cpp's own `convert_hf_to_gguf.py` (f32), with the reference outputs transformers gave
on the original, less what the converter drops (the pooler). They need a llama.cpp source
tree, e.g. the one inside the llama-cpp-python sdist (`vendor/llama.cpp`):

Usage (needs torch, transformers, safetensors):
  python tools/gen_encoder_fixtures.py            # every fixture
  python tools/gen_encoder_fixtures.py bert_mlm   # some
  LLAMA_CPP=/path/to/llama.cpp python tools/gen_encoder_fixtures.py bert_gguf
"""

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEQ = 10
PAD = 3

BASE = dict(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    pad_token_id=0,
    id2label={0: "negative", 1: "neutral", 2: "positive"},
)

# Every knob on somewhere: RoBERTa's padding_idx position offset, ALBERT's factorized
# embeddings and shared layer groups, ELECTRA's embedding projection, DistilBERT's own names.
ARCHS = {
    "bert": ("bert", dict(hidden_act="gelu")),
    "roberta": ("roberta", dict(pad_token_id=1, type_vocab_size=1)),
    "xlm_roberta": ("xlm-roberta", dict(pad_token_id=1, type_vocab_size=1)),
    "distilbert": (
        "distilbert",
        dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, activation="gelu"),
    ),
    "electra": ("electra", dict(embedding_size=16, hidden_act="gelu")),
    # ModernBERT: 3 layers (global, local, local), a local window shorter than the inputs.
    "modernbert": (
        "modernbert",
        dict(
            num_hidden_layers=3,
            local_attention=4,
            global_attn_every_n_layers=3,
            hidden_activation="gelu",
            classifier_pooling="mean",
            pad_token_id=0,
        ),
    ),
    # DeBERTa-v3: shared attention keys, log buckets shorter than the inputs, normed relative
    # table, no absolute positions or token types.
    "deberta_v3": (
        "deberta-v2",
        dict(
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            share_att_key=True,
            position_buckets=8,
            max_relative_positions=16,
            norm_rel_ebd="layer_norm",
            position_biased_input=False,
            type_vocab_size=0,
            layer_norm_eps=1e-7,
        ),
    ),
    # DeBERTa-v2 style: own position projections, no buckets, absolute positions, token
    # types, a narrower embedding projected up.
    "deberta_v2": (
        "deberta-v2",
        dict(
            relative_attention=True,
            pos_att_type="c2p|p2c",
            share_att_key=False,
            max_relative_positions=-1,
            position_biased_input=True,
            type_vocab_size=2,
            embedding_size=16,
            layer_norm_eps=1e-7,
        ),
    ),
    "albert": (
        "albert",
        dict(
            embedding_size=16,
            num_hidden_layers=4,
            num_hidden_groups=2,
            inner_group_num=1,
            hidden_act="gelu_new",
        ),
    ),
}

# NomicBERT (nomic-embed-text): BERT's post-norm layers with rotary positions, SwiGLU and no
# biases; the RoPE base as nomic-embed-text-v1.5's.
ARCHS["nomic_bert"] = (
    "nomic_bert",
    dict(hidden_act="silu", rope_parameters={"rope_type": "default", "rope_theta": 1000.0}),
)

# deberta-v2-xlarge's convolution after the first layer, grouped, with its own activation, on
# the DeBERTa-v2 layout above.
ARCHS["deberta_v2_conv"] = (
    "deberta-v2",
    dict(ARCHS["deberta_v2"][1], conv_kernel_size=3, conv_groups=2, conv_act="gelu"),
)

# fixture name -> (architecture, transformers class)
FIXTURES_LIST = {
    "bert_base": ("bert", "BertModel"),
    "bert_mlm": ("bert", "BertForMaskedLM"),
    "bert_seqcls": ("bert", "BertForSequenceClassification"),
    "bert_tokcls": ("bert", "BertForTokenClassification"),
    "bert_qa": ("bert", "BertForQuestionAnswering"),
    "bert_mc": ("bert", "BertForMultipleChoice"),
    "roberta_base": ("roberta", "RobertaModel"),
    "roberta_mlm": ("roberta", "RobertaForMaskedLM"),
    "roberta_seqcls": ("roberta", "RobertaForSequenceClassification"),
    "roberta_tokcls": ("roberta", "RobertaForTokenClassification"),
    "roberta_qa": ("roberta", "RobertaForQuestionAnswering"),
    "xlm_roberta_seqcls": ("xlm_roberta", "XLMRobertaForSequenceClassification"),
    "distilbert_base": ("distilbert", "DistilBertModel"),
    "distilbert_mlm": ("distilbert", "DistilBertForMaskedLM"),
    "distilbert_seqcls": ("distilbert", "DistilBertForSequenceClassification"),
    "distilbert_tokcls": ("distilbert", "DistilBertForTokenClassification"),
    "distilbert_qa": ("distilbert", "DistilBertForQuestionAnswering"),
    "electra_base": ("electra", "ElectraModel"),
    "electra_pretraining": ("electra", "ElectraForPreTraining"),
    "electra_mlm": ("electra", "ElectraForMaskedLM"),
    "electra_seqcls": ("electra", "ElectraForSequenceClassification"),
    "albert_base": ("albert", "AlbertModel"),
    "albert_mlm": ("albert", "AlbertForMaskedLM"),
    "albert_seqcls": ("albert", "AlbertForSequenceClassification"),
    # An NLI head (entailment label) for the zero-shot pipeline.
    "bert_nli": ("bert", "BertForSequenceClassification"),
    "modernbert_base": ("modernbert", "ModernBertModel"),
    "modernbert_mlm": ("modernbert", "ModernBertForMaskedLM"),
    "modernbert_seqcls": ("modernbert", "ModernBertForSequenceClassification"),
    "modernbert_tokcls": ("modernbert", "ModernBertForTokenClassification"),
    "deberta_v3_base": ("deberta_v3", "DebertaV2Model"),
    "deberta_v3_mlm": ("deberta_v3", "DebertaV2ForMaskedLM"),
    "deberta_v3_seqcls": ("deberta_v3", "DebertaV2ForSequenceClassification"),
    "deberta_v2_seqcls": ("deberta_v2", "DebertaV2ForSequenceClassification"),
    "deberta_v2_qa": ("deberta_v2", "DebertaV2ForQuestionAnswering"),
    "deberta_v2_conv_base": ("deberta_v2_conv", "DebertaV2Model"),
    "nomic_bert_base": ("nomic_bert", "NomicBertModel"),
    "nomic_bert_mlm": ("nomic_bert", "NomicBertForMaskedLM"),
    "nomic_bert_seqcls": ("nomic_bert", "NomicBertForSequenceClassification"),
}


# A 128-token WordPiece vocabulary for the BERT fixtures, so that pipelines can run on them:
# specials, punctuation, letters (whole and continuation) and the pipelines' test words.
WORDS = (
    "the a is in of and to was it he she i my this that what who where when at on "
    "paris france capital city name john lives london love hate movie good bad great "
    "terrible weather today sunny politics sports music works google born berlin germany "
    "river seine flows through tower located not very"
).split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list(".,?!'-")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


def vocab():
    tokens = SPECIALS + PUNCT + LETTERS + [f"##{c}" for c in LETTERS]
    tokens += [w for w in WORDS if w not in tokens]
    tokens += [f"##{w}" for w in ["s", "ed", "ing", "ly"] if f"##{w}" not in tokens]
    assert len(tokens) <= 128, len(tokens)
    tokens += [f"[unused{i}]" for i in range(128 - len(tokens))]
    return tokens


def save_tokenizer(out_dir):
    """A BERT WordPiece tokenizer over `vocab()`, built with `tokenizers` and saved the way
    transformers saves BertTokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizer

    tokens = vocab()
    ids = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = BertTokenizer(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    fast.save_pretrained(out_dir)
    (out_dir / "vocab.txt").write_text("\n".join(tokens) + "\n")


def randomize(model, seed):
    """Replaces transformers' tiny init with weights large enough to make outputs differ."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "LayerNorm" in name or "layer_norm" in name or "layernorm" in name.lower():
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * noise)
            else:
                p.copy_(0.15 * noise)


def inputs(vocab, pad_id, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (2, SEQ), generator=g)
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, SEQ - PAD :] = 0
    ids[1, SEQ - PAD :] = pad_id
    types = torch.zeros(2, SEQ, dtype=torch.long)
    types[0, 6:] = 1
    types[1, 4 : SEQ - PAD] = 1
    return ids, mask, types


def fixture(name, arch, cls_name, seed):
    import transformers
    from transformers import AutoConfig

    model_type, overrides = ARCHS[arch]
    cfg = dict(BASE)
    if model_type == "distilbert":
        for k in ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"]:
            cfg.pop(k)
        cfg.pop("type_vocab_size")
        cfg.pop("layer_norm_eps")
    cfg.update(overrides)
    if cls_name.endswith("QuestionAnswering"):
        cfg.pop("id2label")
        cfg["num_labels"] = 2
    if name.endswith("_nli"):
        cfg["id2label"] = {0: "contradiction", 1: "neutral", 2: "entailment"}
        cfg["label2id"] = {v: k for k, v in cfg["id2label"].items()}
    if cls_name.endswith("TokenClassification"):
        cfg["id2label"] = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(config).eval()
    randomize(model, seed)
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if model_type in ("bert", "nomic_bert"):
        save_tokenizer(out_dir)
    ids, mask, types = inputs(config.vocab_size, config.pad_token_id, seed)
    if config.model_type in ("roberta", "xlm-roberta", "modernbert") or not getattr(
        config, "type_vocab_size", 1
    ):
        types = torch.zeros_like(types)
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if config.model_type not in ("distilbert", "modernbert"):
        kwargs["token_type_ids"] = types
    with torch.no_grad():
        if cls_name.endswith("MultipleChoice"):
            out = model(**{k: v.unsqueeze(0) for k, v in kwargs.items()})
        else:
            out = model(**kwargs, output_hidden_states=True)
    tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    for field in ["last_hidden_state", "pooler_output", "logits", "start_logits", "end_logits"]:
        value = getattr(out, field, None)
        if value is not None:
            tensors[field] = value.float()
    for i, h in enumerate(getattr(out, "hidden_states", None) or []):
        tensors[f"hidden_states.{i}"] = h.float()
    save_file({k: v.clone().contiguous() for k, v in tensors.items()}, out_dir / "expected.safetensors")
    print(f"{name}: {sum(f.stat().st_size for f in out_dir.iterdir()) // 1024} KB")


# GGUF fixture -> the safetensors fixture it is converted from.
GGUF_FIXTURES = {"bert_gguf": "bert_base", "nomic_bert_gguf": "nomic_bert_hub", "bert_gguf_q8": "bert_base"}
# GGUF fixture -> the converter's --outtype (f32 unless named): `bert_gguf_q8` holds the
# linear weights as Q8_0, what an int8 GGUF encoder file ships.
GGUF_OUTTYPES = {"bert_gguf_q8": "q8_0"}


def nomic_hub_fixture():
    """`nomic_bert_base` with the config of the Hub's nomic-embed-text releases (the original
    code's names, which llama.cpp's converter reads), the same weights and outputs."""
    import json
    import shutil

    src, out = FIXTURES / "nomic_bert_base", FIXTURES / "nomic_bert_hub"
    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    hub = {
        "architectures": ["NomicBertModel"],
        "model_type": "nomic_bert",
        "vocab_size": cfg["vocab_size"],
        "n_embd": cfg["hidden_size"],
        "n_head": cfg["num_attention_heads"],
        "n_layer": cfg["num_hidden_layers"],
        "n_inner": cfg["intermediate_size"],
        # nomic-embed-text-v2's values, which the converter accepts (and reads as 512).
        "n_positions": 2048,
        "max_trained_positions": 2048,
        "layer_norm_epsilon": cfg["layer_norm_eps"],
        "rotary_emb_base": cfg["rope_parameters"]["rope_theta"],
        "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": False,
        "rotary_emb_scale_base": None,
        "rotary_scaling_factor": None,
        "activation_function": "swiglu",
        "prenorm": False,
        "causal": False,
        "qkv_proj_bias": False,
        "mlp_fc1_bias": False,
        "mlp_fc2_bias": False,
        "type_vocab_size": cfg["type_vocab_size"],
        "pad_token_id": cfg["pad_token_id"],
    }
    (out / "config.json").write_text(json.dumps(hub, indent=2) + "\n")
    for f in src.iterdir():
        if f.name != "config.json":
            shutil.copy(f, out / f.name)
    print("nomic_bert_hub written")


def gguf_fixture(name, src_name):
    """`src_name` converted by llama.cpp's convert_hf_to_gguf.py (from $LLAMA_CPP) to f32 (or
    the fixture's GGUF_OUTTYPES entry)."""
    import runpy

    from safetensors.torch import load_file

    llama_cpp = Path(os.environ["LLAMA_CPP"]).resolve()
    sys.path[:0] = [str(llama_cpp), str(llama_cpp / "gguf-py")]
    import conversion.base as base

    # The converter names the pre-tokenizer by a hash of known tokenizers' outputs; the tiny
    # fixture vocabulary is not one of them, and a BERT tokenizer has no pre-tokenizer to
    # name anyway (WordPiece splits on whitespace and punctuation).
    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "default"
    if src_name == "nomic_bert_hub":
        # The converter reads the config through AutoConfig first; transformers 5 knows
        # `nomic_bert` under other key names and would hand it defaults (768 wide, 12
        # layers) beside the Hub's `n_embd`. Without that class (the converter's case), it
        # reads config.json as it is.
        import json

        def raw_config(dir_model, is_mistral_format):
            return json.loads((Path(dir_model) / "config.json").read_text())

        base.ModelBase.load_hparams = staticmethod(raw_config)
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"tiny-{name.removesuffix('_q8').removesuffix('_gguf')}.gguf"
    argv = sys.argv
    sys.argv = ["convert_hf_to_gguf.py", str(FIXTURES / src_name), "--outtype", GGUF_OUTTYPES.get(name, "f32"), "--outfile", str(out)]
    try:
        runpy.run_path(str(llama_cpp / "convert_hf_to_gguf.py"), run_name="__main__")
    finally:
        sys.argv = argv
    expected = load_file(FIXTURES / src_name / "expected.safetensors")
    expected.pop("pooler_output", None)
    save_file(expected, out_dir / "expected.safetensors")
    print(f"{name}: {sum(f.stat().st_size for f in out_dir.iterdir()) // 1024} KB")


def main():
    only = set(sys.argv[1:])
    for seed, (name, (arch, cls_name)) in enumerate(FIXTURES_LIST.items()):
        if not only or name in only:
            fixture(name, arch, cls_name, seed)
    if not only or "nomic_bert_hub" in only:
        nomic_hub_fixture()
    for name, src in GGUF_FIXTURES.items():
        if name in only or (not only and "LLAMA_CPP" in os.environ):
            gguf_fixture(name, src)


if __name__ == "__main__":
    sys.exit(main())
