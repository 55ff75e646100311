"""Models through the Python API against the fixtures' stored transformers outputs (no torch
needed): decoders' logits, hidden states and greedy ids, encoders' outputs for every head,
and generate()'s beam search and left-padded batches (`generation/strategies.json`)."""

import numpy as np
import pytest
from safetensors import safe_open

import trustformers as tf
from conftest import FIXTURES, checkpoint, expected, read_json

ATOL = 1e-4


def keys(name):
    with safe_open(str(FIXTURES / name / "expected.safetensors"), "np") as f:
        return set(f.keys())


def fixtures_with(*required):
    out = []
    for d in sorted(FIXTURES.iterdir()):
        if (d / "expected.safetensors").is_file() and set(required) <= keys(d.name):
            out.append(d.name)
    return out


DECODERS = [
    n
    for n in fixtures_with("logits", "greedy_output_ids", "position_ids")
    # Encoder-decoders keep decoder inputs in their expected outputs.
    if "decoder_input_ids" not in keys(n)
]
ENCODER_TASKS = {
    "_base": tf.AutoModel,
    "_hub": tf.AutoModel,
    "_gguf": tf.AutoModel,
    "_mlm": tf.AutoModelForMaskedLM,
    "_seqcls": tf.AutoModelForSequenceClassification,
    "_nli": tf.AutoModelForSequenceClassification,
    "_tokcls": tf.AutoModelForTokenClassification,
    "_qa": tf.AutoModelForQuestionAnswering,
    "_mc": tf.AutoModelForMultipleChoice,
}
ENCODERS = [
    n
    for n in fixtures_with("input_ids", "token_type_ids")
    if any(n.endswith(s) for s in ENCODER_TASKS) and "decoder_input_ids" not in keys(n)
]


def masked_max_diff(got, want, mask):
    m = mask.astype(bool)
    return float(np.abs(got - want)[m].max())


def test_the_fixture_lists_are_not_empty():
    assert len(DECODERS) >= 60 and len(ENCODERS) >= 30, (len(DECODERS), len(ENCODERS))


@pytest.mark.parametrize("name", DECODERS)
def test_decoder_matches_transformers(name):
    model = tf.AutoModelForCausalLM.from_pretrained(checkpoint(name), dtype="float32")
    exp = expected(name)
    mask = exp["attention_mask"]
    out = model(exp["input_ids"], attention_mask=mask, position_ids=exp["position_ids"], output_hidden_states=True)
    assert out.logits.shape == exp["logits"].shape
    assert masked_max_diff(out.logits, exp["logits"], mask) <= ATOL
    assert len(out.hidden_states) == model._model.num_hidden_layers + 1
    for i, h in enumerate(out.hidden_states):
        assert masked_max_diff(h, exp[f"hidden_states.{i}"], mask) <= ATOL, f"hidden_states.{i}"
    prompt, want = exp["greedy_input_ids"], exp["greedy_output_ids"]
    if want.shape[1] <= model._model.max_position_embeddings:
        got = model.generate(prompt, max_new_tokens=want.shape[1] - prompt.shape[1], do_sample=False, eos_token_id=None)
    else:
        # generate() refuses to run past the context (transformers does not check); dynamic
        # NTK fixtures continue past it on purpose: greedy by full forward passes.
        got = prompt
        while got.shape[1] < want.shape[1]:
            step = model(got).logits[:, -1].argmax(-1)
            got = np.concatenate([got, step[:, None]], axis=1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_matches_transformers(name):
    cls = next(c for s, c in ENCODER_TASKS.items() if name.endswith(s))
    model = cls.from_pretrained(checkpoint(name))
    exp = expected(name)
    ids, mask, types = exp["input_ids"], exp["attention_mask"], exp["token_type_ids"]
    mc = cls is tf.AutoModelForMultipleChoice
    lift = (lambda a: a[None]) if mc else (lambda a: a)
    out = model(lift(ids), attention_mask=lift(mask), token_type_ids=lift(types), output_hidden_states=not mc)
    fields = {k: v for k, v in out.items() if k != "hidden_states"}
    for i, h in enumerate(out.get("hidden_states", ())):
        fields[f"hidden_states.{i}"] = h
    compared = 0
    sequence_level = cls in (tf.AutoModelForSequenceClassification, tf.AutoModelForMultipleChoice)
    for key, want in exp.items():
        if key.startswith("input") or key.endswith("_ids") or key == "attention_mask":
            continue
        assert key in fields, f"transformers gives {key}, we do not"
        got = fields[key]
        assert got.shape == want.shape, key
        per_token = key != "pooler_output" and (key != "logits" or not sequence_level)
        whole = name.startswith("deberta") and key == "hidden_states.0"
        if per_token and not mc and not whole:
            d = masked_max_diff(got, want, mask)
        else:
            d = float(np.abs(got - want).max())
        assert d <= ATOL, f"{key}: max diff {d}"
        compared += 1
    assert compared >= 1


def test_model_output_and_config_behave_like_transformers():
    model = tf.AutoModelForSequenceClassification.from_pretrained(str(FIXTURES / "bert_seqcls"))
    exp = expected("bert_seqcls")
    out = model(exp["input_ids"], attention_mask=exp["attention_mask"], token_type_ids=exp["token_type_ids"])
    assert type(out).__name__ == "SequenceClassifierOutput"
    assert out[0] is out.logits and list(out.keys()) == ["logits"]
    assert isinstance(model.config.id2label[0], str) and model.config.model_type == "bert"
    assert model.config.label2id[model.config.id2label[1]] == 1
    config = tf.AutoConfig.from_pretrained(checkpoint("llama_gguf"))
    assert config.model_type == "llama" and config["hidden_size"] == 32
    base = tf.AutoModel.from_pretrained(str(FIXTURES / "llama"))
    out = base(np.array([[1, 2, 3]]))
    assert type(out).__name__ == "BaseModelOutputWithPast" and out.last_hidden_state.shape == (1, 3, 32)


STRATEGIES = read_json(FIXTURES / "generation" / "strategies.json")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_beam_search_matches_transformers(name):
    case = STRATEGIES[name]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / name))
    prompt = np.array([case["prompt"]])
    for beam in case["beam"]:
        config = {"num_beams": 3, **beam["config"]}
        out = model.generate(prompt, return_dict_in_generate=True, output_scores=True, **config)
        want = beam["sequences"]
        assert out.sequences.shape[0] == len(want)
        for row, w in zip(out.sequences, want):
            new = row[prompt.shape[1] :].tolist()
            assert new[: len(w)] == w, config
        np.testing.assert_allclose(out.sequences_scores, beam["scores"], atol=1e-4)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_left_padded_batch_matches_transformers(name):
    case = STRATEGIES[name]["batch"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / name))
    width = max(len(p) for p in case["prompts"])
    ids = np.zeros((len(case["prompts"]), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, p in enumerate(case["prompts"]):
        ids[i, width - len(p) :] = p
        mask[i, width - len(p) :] = 1
    out = model.generate(ids, attention_mask=mask, max_new_tokens=case["max_new_tokens"], eos_token_id=case["eos_token_id"], pad_token_id=0)
    for i, (row, want) in enumerate(zip(out, case["outputs"])):
        np.testing.assert_array_equal(row[:width], ids[i])
        new = row[width:].tolist()
        assert new[: len(want)] == want
        assert all(t == 0 for t in new[len(want) :])


SEQ2SEQ = ["t5", "t5_v1_1", "mt5", "umt5", "bart", "mbart", "marian", "pegasus", "t5_gguf"]


def sources(exp):
    return [row[m.astype(bool)] for row, m in zip(exp["input_ids"], exp["attention_mask"])]


@pytest.mark.parametrize("name", SEQ2SEQ)
def test_encoder_decoder_matches_transformers(name):
    model = tf.AutoModelForSeq2SeqLM.from_pretrained(checkpoint(name))
    exp = expected(name)
    out = model(exp["input_ids"], attention_mask=exp["attention_mask"], decoder_input_ids=exp["decoder_input_ids"])
    assert float(np.abs(out.logits - exp["logits"]).max()) <= ATOL
    assert float(np.abs(out.encoder_last_hidden_state - exp["encoder_last_hidden_state"]).max()) <= ATOL
    # Greedy on the batch (the second source padded), beam search on each source alone; the
    # fixtures mark the end of a row with -1.
    gen = model.generate(exp["input_ids"], attention_mask=exp["attention_mask"], max_new_tokens=8)
    start = model.generation_config.decoder_start_token_id
    assert (gen[:, 0] == (model._model.decoder_start_token_id if start is None else start)).all()
    pad = model.generation_config.pad_token_id or 0
    for row, want in zip(gen, exp["greedy_ids"]):
        want = [int(t) for t in want if t >= 0]
        got = row[1:].tolist()
        assert got[: len(want)] == want and all(t == pad for t in got[len(want) :]), (got, want)
    for source, want in zip(sources(exp), exp["beam_ids"]):
        got = model.generate(source[None], max_new_tokens=8, num_beams=3)[0, 1:].tolist()
        want = [int(t) for t in want if t >= 0]
        assert got[: len(want)] == want and all(t == pad for t in got[len(want) :]), (got, want)
