"""pipeline(...) through the Python API: transformers' own pipeline outputs on the encoder
fixtures (`tests/fixtures/pipelines.json`, the file `cargo test` checks), text generation
with a chat template against the `trustformers` CLI, and the real SmolLM2 chat."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import trustformers as tf
from conftest import FIXTURES, read_json, real_models

CASES = read_json(FIXTURES / "pipelines.json")


def close(got, want, path="output"):
    """Equal structures, numbers within 1e-4."""
    if isinstance(want, float) or isinstance(got, float):
        assert abs(got - want) <= 1e-4, f"{path}: {got} vs {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{path}: {got} vs {want}"
        for k in want:
            close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got} vs {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} vs {want!r}"


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c['task']}-{c['model']}-{i}" for i, c in enumerate(CASES)])
def test_pipeline_outputs_match_transformers(i):
    case = CASES[i]
    pipe = tf.pipeline(case["task"], model=str(FIXTURES / case["model"]))
    inputs = case["inputs"]
    params = dict(case["params"])
    if case["task"] == "question-answering" and isinstance(inputs, dict):
        got = pipe(question=inputs["question"], context=inputs["context"], **params)
    else:
        got = pipe(inputs, **params)
    close(got, case["output"])


def test_feature_extraction_nests_as_transformers():
    pipe = tf.pipeline("feature-extraction", model=str(FIXTURES / "bert_base"))
    one = pipe("hello world")
    assert len(one) == 1 and len(one[0][0]) == 32
    many = pipe(["hello world", "hello"])
    assert len(many) == 2 and len(many[1][0]) < len(many[0][0])
    arr = pipe("hello world", return_tensors=True)
    assert isinstance(arr, np.ndarray) and arr.shape == (1, len(one[0]), 32)
    np.testing.assert_allclose(arr[0], np.array(one[0]), atol=1e-6)


def chat_model(tmp: Path, context: int = 512) -> Path:
    """The llama fixture with the character tokenizer and chat template of `serve_chat`."""
    model = tmp / "chat"
    model.mkdir()
    config = read_json(FIXTURES / "llama" / "config.json")
    config["max_position_embeddings"] = context
    (model / "config.json").write_text(json.dumps(config))
    shutil.copy(FIXTURES / "llama" / "model.safetensors", model / "model.safetensors")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIXTURES / "serve_chat" / f, model / f)
    return model


def cli() -> str:
    path = os.environ.get("TRUSTFORMERS_CLI") or str(FIXTURES.parents[1] / "target" / "debug" / "trustformers")
    if not os.path.isfile(path):
        pytest.skip(f"no trustformers binary at {path} (set TRUSTFORMERS_CLI)")
    return path


def test_text_generation_chat_matches_the_cli(tmp_path):
    model = chat_model(tmp_path)
    pipe = tf.pipeline("text-generation", model=str(model))
    messages = [{"role": "user", "content": "hello there"}]
    out = pipe(messages, max_new_tokens=12, do_sample=False)
    assert len(out) == 1 and out[0]["generated_text"][:-1] == messages
    reply = out[0]["generated_text"][-1]
    assert reply["role"] == "assistant"
    run = subprocess.run(
        [cli(), "generate", "--model", str(model), "--max-new-tokens", "12", "--json", "hello there"],
        capture_output=True, text=True, check=True,
    )
    assert reply["content"] == json.loads(run.stdout)["text"]
    # Plain text: the prompt and its continuation; new text only with return_full_text=False.
    full = pipe("abc", max_new_tokens=5)[0]["generated_text"]
    new = pipe("abc", max_new_tokens=5, return_full_text=False)[0]["generated_text"]
    assert full == "abc" + new
    ids = pipe("abc", max_new_tokens=5, return_tensors=True)[0]["generated_token_ids"]
    tok = tf.AutoTokenizer.from_pretrained(str(model))
    assert ids[: len(tok("abc").input_ids)] == tok("abc").input_ids
    batch = pipe(["abc", "de"], max_new_tokens=3)
    assert len(batch) == 2 and batch[1][0]["generated_text"].startswith("de")


def test_streamer_gives_the_generated_text(tmp_path):
    import threading

    model_dir = chat_model(tmp_path)
    tok = tf.AutoTokenizer.from_pretrained(str(model_dir))
    model = tf.AutoModelForCausalLM.from_pretrained(str(model_dir))
    inputs = tok("hello", return_tensors="np")
    streamer = tf.TextIteratorStreamer(tok, skip_prompt=True, timeout=60)
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(
            ids=model.generate(
                inputs["input_ids"], attention_mask=inputs["attention_mask"], streamer=streamer,
                max_new_tokens=16, eos_token_id=None,
            )
        )
    )
    thread.start()
    pieces = list(streamer)
    thread.join()
    new = result["ids"][0, inputs["input_ids"].shape[1] :]
    assert "".join(pieces) == tok.decode(new)
    assert len(new) == 16


@real_models
def test_smollm2_chat_pipeline():
    pipe = tf.pipeline("text-generation", model="smollm2-135m-instruct")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    out = pipe(messages, max_new_tokens=20, do_sample=False)
    reply = out[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and reply["content"].strip(), reply
    # The same reply as the CLI's greedy generation through the chat template.
    run = subprocess.run(
        [cli(), "generate", "--model", "smollm2-135m-instruct", "--max-new-tokens", "20", "--json",
         "What is the capital of France?"],
        capture_output=True, text=True, check=True,
    )
    assert reply["content"] == json.loads(run.stdout)["text"]


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_text_to_text_pipelines_match_transformers(name):
    for case in read_json(FIXTURES / name / "pipelines.json"):
        pipe = tf.pipeline(case["task"], model=str(FIXTURES / name))
        got = pipe(case["inputs"], max_new_tokens=case["max_new_tokens"])
        assert got == case["output"], case
        one = pipe(case["inputs"][0], max_new_tokens=case["max_new_tokens"])
        assert one == case["output"][:1]


def test_stop_strings_end_generation_as_in_transformers(tmp_path):
    model_dir = chat_model(tmp_path)
    tok = tf.AutoTokenizer.from_pretrained(str(model_dir))
    model = tf.AutoModelForCausalLM.from_pretrained(str(model_dir))
    prompt = tok("hello", return_tensors="np")["input_ids"]
    full = model.generate(prompt, max_new_tokens=16, eos_token_id=None)[0, prompt.shape[1] :]
    # The text of the second generated token: generation must end right after it.
    stop = tok.decode(full[1:2])
    assert stop and stop not in tok.decode(full[:1])
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(prompt, max_new_tokens=16, eos_token_id=None, stop_strings=stop)
    cut = model.generate(prompt, max_new_tokens=16, eos_token_id=None, stop_strings=[stop], tokenizer=tok)
    # The token that completes the stop string is kept, as transformers keeps it; finished
    # rows are padded.
    np.testing.assert_array_equal(cut[0, prompt.shape[1] : prompt.shape[1] + 2], full[:2])
    assert cut.shape[1] == prompt.shape[1] + 2
    new = tok.decode(full[:2])
    pipe = tf.pipeline("text-generation", model=str(model_dir))
    out = pipe("hello", max_new_tokens=16, eos_token_id=None, stop_sequence=stop, return_full_text=False)
    assert out[0]["generated_text"] == new


VISION = read_json(FIXTURES / "vision_pipelines.json")


def test_image_pipelines_match_transformers():
    """image-classification, zero-shot-image-classification and image-feature-extraction on
    the vision fixtures, against transformers' answers (PNG images: within 1e-4)."""
    images = [FIXTURES / "images" / name for name in VISION["images"][:2]]
    pipe = tf.pipeline(model=str(FIXTURES / "vit_classifier"))
    assert pipe.task == "image-classification"
    close(pipe(images), VISION["vit_classifier"]["default"][:2])
    close(pipe(str(images[0]), top_k=2), VISION["vit_classifier"]["top_k_2"][0])
    for name in ["clip", "siglip"]:
        pipe = tf.pipeline("zero-shot-image-classification", model=str(FIXTURES / name))
        got = pipe(images, candidate_labels=["dog", "cat"], hypothesis_template="a picture of the {}")
        close(got, VISION[name]["template"][:2])
    pipe = tf.pipeline("image-feature-extraction", model=str(FIXTURES / "vit_base"))
    close(pipe(images[0]), VISION["vit_base"]["features"][0])
    close(pipe(images[0], pool=True), VISION["vit_base"]["pooled"][0])
    with pytest.raises(tf.InvalidArgument):
        pipe(12)
