"""How the package behaves around the engine: threads share a model safely (the GIL is
released in every call), Ctrl-C stops a generation, bad inputs raise the fitting exception
class with a useful message, and the real all-MiniLM-L6-v2 gives sentence-transformers'
embeddings."""

import _thread
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from safetensors.numpy import load_file

import trustformers as tf
from conftest import FIXTURES, read_json, real_models


def test_four_threads_give_the_sequential_results():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    encoder = tf.SentenceTransformer(str(FIXTURES / "bert_base"))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 128, size=(1, 5 + i)) for i in range(8)]
    sentences = [["hello world", "the weather is sunny"], ["john lives in london"]] * 4

    def work(i):
        ids = model.generate(prompts[i], max_new_tokens=12, eos_token_id=None)
        logits = model(prompts[i]).logits
        emb = encoder.encode(sentences[i])
        return ids, logits, emb

    sequential = [work(i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(work, range(8)))
    for (a_ids, a_logits, a_emb), (b_ids, b_logits, b_emb) in zip(sequential, concurrent):
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_logits, b_logits)
        np.testing.assert_array_equal(a_emb, b_emb)


def test_the_gil_is_released_during_generation():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "mamba"))
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    start = time.perf_counter()
    model.generate(np.array([[5, 6, 7]]), max_new_tokens=3000, eos_token_id=None)
    end = time.perf_counter()
    stop.set()
    t.join()
    during = [x for x in ticks if start < x < end]
    # A thread starved by a held GIL would tick a handful of times at most.
    assert len(during) >= min(20, (end - start) / 0.002), (len(during), end - start)


def test_ctrl_c_stops_generation_with_keyboard_interrupt():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "mamba"))
    seen = []

    class Interrupting(tf.BaseStreamer):
        def put(self, value):
            seen.append(value)
            if len(seen) == 4:
                _thread.interrupt_main()  # what Ctrl-C does

        def end(self):
            pass

    with pytest.raises(KeyboardInterrupt):
        model.generate(np.array([[5, 6, 7]]), max_new_tokens=5000, eos_token_id=None, streamer=Interrupting())
        time.sleep(1)  # the interrupt must not get this far
    assert len(seen) < 100
    # Without a streamer too: Ctrl-C from a timer while generation runs in Rust.
    timer = threading.Timer(0.2, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        model.generate(np.array([[5, 6, 7]]), max_new_tokens=10**6, eos_token_id=None)
        time.sleep(5)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    "call,exc,message",
    [
        (lambda m: m(np.array([[1.5, 2.0]])), ValueError, "integers"),
        (lambda m: m(np.array([1, 2, 3])), ValueError, "shape"),
        (lambda m: m(np.array([[1, 2]]), attention_mask=np.array([[1, 1, 1]])), ValueError, "shape"),
        (lambda m: m(np.array([[1, 100000]])), ValueError, "outside"),
        (lambda m: m(np.array([[-1, 2]])), ValueError, "outside"),
        (lambda m: m(np.zeros((1, 0), dtype=np.int64)), ValueError, "empty"),
        (lambda m: m(np.array([[1, 2]]), bogus=1), ValueError, "bogus"),
        (lambda m: m.generate(np.array([[1, 2]]), num_beams=0), ValueError, "num_beams"),
        (lambda m: m.generate(np.array([[1, 2]]), max_new_tokens=0), ValueError, "max_new_tokens"),
        (lambda m: m.generate(np.array([[1, 2]]), do_sample=True, temperature=-1.0), ValueError, "temperature"),
        (lambda m: m.generate(np.array([[1, 2]]), top_p=2.0), ValueError, "top_p"),
        (lambda m: m.generate(np.array([[1, 2]]), no_such_option=3), ValueError, "no_such_option"),
        (lambda m: m.generate(np.array([[1, 2]]), output_attentions=True), ValueError, "output_attentions"),
        (lambda m: m.generate(np.array([[1, 2]]), guidance_scale=1.5, num_beams=2), ValueError, "guidance_scale"),
        (lambda m: m.generate(np.array([[1, 2]]), guidance_scale=1.5, negative_prompt_ids=np.array([[3]])), ValueError, "negative_prompt_ids"),
        (lambda m: m.generate(np.array([[1, 2]]), watermarking_config={"bias": 2.0}), ValueError, "watermarking_config"),
        (lambda m: m.generate(np.array([[1, 2]]), encoder_repetition_penalty=-1.0), ValueError, "encoder_repetition_penalty"),
        (lambda m: m.generate(np.array([[1, 2]]), do_sample=True, top_h=0.0), ValueError, "top_h"),
        (lambda m: m.generate(np.array([[1, 2]]), sequence_bias={(1, 500): 1.0}), ValueError, "vocabulary"),
        (lambda m: m.generate(np.array([[1, 2]]), sequence_bias=[[[], 1.0]]), ValueError, "sequence_bias"),
        (lambda m: m.generate(np.array([[1, 2]]), do_sample=True, epsilon_cutoff=1.5), ValueError, "epsilon_cutoff"),
        (lambda m: m.generate(np.array([[1, 2]]), exponential_decay_length_penalty=(2,)), ValueError, "exponential_decay"),
        (lambda m: m.generate(np.array([[1, 2]]), exponential_decay_length_penalty=(2, 1.5), eos_token_id=None), ValueError, "eos_token_id"),
        (lambda m: m.generate(np.array([[1, 2]]), max_new_tokens=10**6), ValueError, "context"),
        (lambda m: m.generate(np.array([[1, 2]]), num_beams=2, streamer=tf.TextStreamer(None)), ValueError, "beam"),
    ],
)
def test_bad_model_inputs_raise_value_errors(call, exc, message):
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    with pytest.raises(exc, match=message) as info:
        call(model)
    assert isinstance(info.value, tf.TrustformersError)


def test_bad_files_and_names_raise_the_fitting_class(tmp_path):
    with pytest.raises(FileNotFoundError):
        tf.AutoModelForCausalLM.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        tf.AutoTokenizer.from_pretrained("./no/such/dir")
    with pytest.raises(ValueError, match="known model"):
        tf.AutoModelForCausalLM.from_pretrained("not a model name")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(OSError) as info:
        tf.AutoModelForCausalLM.from_pretrained(str(bad))
    assert isinstance(info.value, tf.TrustformersError) and "bad.gguf" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError):
        tf.AutoTokenizer.from_pretrained(str(empty))
    (empty / "config.json").write_text("{not json")
    with pytest.raises(OSError, match="config.json"):
        tf.AutoModelForCausalLM.from_pretrained(str(empty))
    with pytest.raises(ValueError, match="text-encoder|text encoder"):
        tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "bert_base"))
    with pytest.raises(ValueError, match="dtype"):
        tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"), dtype="int3")
    with pytest.raises(ValueError, match="CPU"):
        tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"), device_map="cuda")


def test_bad_tokenizer_and_pipeline_arguments():
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "bert_base"))
    with pytest.raises(ValueError):
        tok(123)
    with pytest.raises(ValueError):
        tok("a", padding="sideways")
    with pytest.raises(ValueError):
        tok("a", max_length=-3)
    with pytest.raises(ValueError):
        tok.decode([[1, 2], [3, 4]])
    with pytest.raises(ValueError):
        tok.decode([1.5])
    with pytest.raises(ValueError, match="chat template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="unknown task"):
        tf.pipeline("image-to-dance", model=str(FIXTURES / "bert_base"))
    with pytest.raises(ValueError, match="candidate_labels"):
        tf.pipeline("zero-shot-classification", model=str(FIXTURES / "bert_nli"))("hello")
    with pytest.raises(ValueError, match="unknown parameters"):
        tf.pipeline("fill-mask", model=str(FIXTURES / "bert_mlm"))("a [MASK] b", topk=2)
    with pytest.raises(ValueError):
        tf.SentenceTransformer(str(FIXTURES / "bert_base")).encode(["a"], batch_size=0)


def test_set_seed_makes_sampling_repeat():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    prompt = np.array([[5, 6, 7, 8]])
    tf.set_seed(42)
    a = model.generate(prompt, do_sample=True, max_new_tokens=10, eos_token_id=None)
    b = model.generate(prompt, do_sample=True, max_new_tokens=10, eos_token_id=None)
    tf.set_seed(42)
    c = model.generate(prompt, do_sample=True, max_new_tokens=10, eos_token_id=None)
    d = model.generate(prompt, do_sample=True, max_new_tokens=10, eos_token_id=None)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, d)
    seeded = [model.generate(prompt, do_sample=True, max_new_tokens=10, seed=7, eos_token_id=None) for _ in range(2)]
    np.testing.assert_array_equal(*seeded)


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_q8_embeddings_are_close_to_float32_and_only_for_encoders():
    sentences = ["hello world", "the weather is sunny", "john lives in london"]
    f32 = tf.SentenceTransformer(str(FIXTURES / "bert_base")).encode(sentences)
    q8 = tf.SentenceTransformer(str(FIXTURES / "bert_base"), dtype="q8").encode(sentences)
    assert not np.array_equal(f32, q8)
    assert min(cosine(a, b) for a, b in zip(f32, q8)) >= 0.999
    with pytest.raises(ValueError, match="encoder models"):
        tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"), dtype="q8")
    with pytest.raises(ValueError, match="unknown dtype"):
        tf.SentenceTransformer(str(FIXTURES / "bert_base"), dtype="q4")


@real_models
def test_all_minilm_matches_sentence_transformers():
    texts = read_json(FIXTURES / "all_minilm_sentences.json")
    want = load_file(str(FIXTURES / "all_minilm_reference.safetensors"))["embeddings"]
    model = tf.SentenceTransformer("all-MiniLM-L6-v2")
    got = model.encode(texts, batch_size=32)
    assert got.shape == want.shape == (len(texts), 384) and got.dtype == np.float32
    worst = min(cosine(g, w) for g, w in zip(got, want))
    assert worst >= 0.99999, worst
    one = model.encode(texts[0])
    assert one.shape == (384,)
    assert cosine(one, want[0]) >= 0.99999
    normed = model.encode(texts[:4], normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-5)
    assert model.get_sentence_embedding_dimension() == 384
