"""generate() beyond ids, against transformers' stored outputs (`generation/scores.json`,
from tools/gen_scores_fixtures.py; no torch needed): `output_scores` / `output_logits`,
beam indices, the logits processors transformers has beyond the common ones, stop strings
in beam search and for encoder-decoders, streamers for encoder-decoders."""

import threading

import numpy as np
import pytest

import trustformers as tf
from conftest import FIXTURES, read_json

SCORES = read_json(FIXTURES / "generation" / "scores.json")
ATOL = 1e-4


def assert_steps(got, want):
    """A tuple of [rows, vocab] arrays against the stored steps (null: -inf)."""
    assert isinstance(got, tuple) and len(got) == len(want)
    for g, w in zip(got, want):
        w = np.array([[-np.inf if x is None else x for x in row] for row in w], dtype=np.float32)
        assert g.shape == w.shape and g.dtype == np.float32
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w))
        finite = ~np.isneginf(w)
        np.testing.assert_allclose(g[finite], w[finite], atol=ATOL)


def left_padded(prompts):
    width = max(map(len, prompts))
    ids = np.zeros((len(prompts), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = p
        mask[i, width - len(p) :] = 1
    return ids, mask


def test_greedy_scores_and_logits_match_transformers():
    case = SCORES["llama_greedy"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    ids, mask = left_padded(case["prompts"])
    settings = dict(case["settings"])
    # transformers' own forms: sequence_bias as a dict of tuples, the decay as a tuple.
    settings["sequence_bias"] = {tuple(k): v for k, v in settings["sequence_bias"]}
    settings["exponential_decay_length_penalty"] = tuple(settings["exponential_decay_length_penalty"])
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         output_logits=True, **settings)
    assert type(out).__name__ == "GenerateDecoderOnlyOutput"
    np.testing.assert_array_equal(out.sequences[:, ids.shape[1] :], case["new"])
    assert_steps(out.scores, case["scores"])
    assert_steps(out.logits, case["logits"])
    # Only what was asked for.
    only = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_logits=True, **settings)
    assert only.scores is None and len(only.logits) == len(case["logits"])


def test_beam_search_scores_logits_and_indices_match_transformers():
    case = SCORES["llama_beam"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    prompt = np.array(case["prompts"])
    out = model.generate(prompt, return_dict_in_generate=True, output_scores=True, output_logits=True,
                         **case["settings"])
    assert type(out).__name__ == "GenerateBeamDecoderOnlyOutput"
    # Finished hypotheses are filled as transformers fills them (pad 0 gives way to EOS).
    np.testing.assert_array_equal(out.sequences[:, prompt.shape[1] :], case["new"])
    np.testing.assert_allclose(out.sequences_scores, case["sequences_scores"], atol=ATOL)
    np.testing.assert_array_equal(out.beam_indices, case["beam_indices"])
    assert_steps(out.scores, case["scores"])
    assert_steps(out.logits, case["logits"])
    # sequences_scores come with output_scores only, as in transformers.
    plain = model.generate(prompt, return_dict_in_generate=True, **case["settings"])
    assert plain.sequences_scores is None and plain.scores is None


def test_encoder_decoder_scores_and_logits_match_transformers():
    case = SCORES["t5_greedy"]
    model = tf.AutoModelForSeq2SeqLM.from_pretrained(str(FIXTURES / "t5"))
    width = max(map(len, case["sources"]))
    ids = np.array([s + [0] * (width - len(s)) for s in case["sources"]])
    mask = np.array([[1] * len(s) + [0] * (width - len(s)) for s in case["sources"]])
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         output_logits=True, **case["settings"])
    assert type(out).__name__ == "GenerateEncoderDecoderOutput"
    np.testing.assert_array_equal(out.sequences[:, 1:], case["new"])
    assert_steps(out.scores, case["scores"])
    assert_steps(out.logits, case["logits"])


def test_processors_over_the_input_match_transformers():
    case = SCORES["llama_encoder"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    ids, mask = left_padded(case["prompts"])
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         **case["settings"])
    np.testing.assert_array_equal(out.sequences[:, ids.shape[1] :], case["new"])
    assert_steps(out.scores, case["scores"])
    case = SCORES["t5_encoder"]
    model = tf.AutoModelForSeq2SeqLM.from_pretrained(str(FIXTURES / "t5"))
    width = max(map(len, case["sources"]))
    ids = np.array([s + [0] * (width - len(s)) for s in case["sources"]])
    mask = np.array([[1] * len(s) + [0] * (width - len(s)) for s in case["sources"]])
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         **case["settings"])
    np.testing.assert_array_equal(out.sequences[:, 1:], case["new"])
    assert_steps(out.scores, case["scores"])
    beams = model.generate(ids, attention_mask=mask, num_beams=3, **case["settings"])
    np.testing.assert_array_equal(beams[:, 1:], case["beam_new"])


def test_stop_strings_end_beams_as_in_transformers():
    case = SCORES["stop_strings_beam"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "generation" / "stop_tokenizer"))
    prompt = np.array([case["prompt"]])
    assert tok("the quick brown", return_tensors="np")["input_ids"].tolist() == prompt.tolist()
    out = model.generate(prompt, stop_strings=case["stop_strings"], tokenizer=tok, return_dict_in_generate=True,
                         output_scores=True, **case["settings"])
    # The third hypothesis ends at the stop string; without an EOS id transformers fills
    # with -1.
    np.testing.assert_array_equal(out.sequences, case["sequences"])
    np.testing.assert_allclose(out.sequences_scores, case["sequences_scores"], atol=ATOL)
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(prompt, stop_strings=case["stop_strings"], **case["settings"])


def t5():
    model = tf.AutoModelForSeq2SeqLM.from_pretrained(str(FIXTURES / "t5"))
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "t5"))
    return model, tok, tok(["a tiny test sentence"], return_tensors="np")["input_ids"]


def test_encoder_decoder_streams_its_text():
    model, tok, ids = t5()
    full = model.generate(ids, max_new_tokens=8)
    streamer = tf.TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=60)
    thread = threading.Thread(target=model.generate, kwargs=dict(input_ids=ids, max_new_tokens=8, streamer=streamer))
    thread.start()
    text = "".join(streamer)
    thread.join()
    assert text == tok.decode(full[0], skip_special_tokens=True)
    # The decoder start token is what the streamer sees first, as transformers gives it.
    seen = []

    class Recorder(tf.BaseStreamer):
        def put(self, value):
            seen.append(np.asarray(value).reshape(-1).tolist())

        def end(self):
            seen.append("end")

    model.generate(ids, max_new_tokens=8, streamer=Recorder())
    assert seen[0] == [full[0, 0]] and [s[0] for s in seen[1:-1]] == full[0, 1:].tolist()[: len(seen) - 2]
    assert seen[-1] == "end"
    with pytest.raises(ValueError, match="beam"):
        model.generate(ids, num_beams=2, streamer=Recorder())


def test_encoder_decoder_stops_at_stop_strings():
    model, tok, ids = t5()
    # The tiny model repeats itself: no repeated token, so that a later one is new text.
    full = model.generate(ids, max_new_tokens=8, eos_token_id=None, no_repeat_ngram_size=1)[0, 1:]
    # The first token whose text has not appeared yet.
    at = next(i for i in range(1, len(full)) if tok.decode(full[i : i + 1]) not in tok.decode(full[:i]))
    stop = tok.decode(full[at : at + 1], skip_special_tokens=True)
    cut = model.generate(ids, max_new_tokens=8, eos_token_id=None, no_repeat_ngram_size=1, stop_strings=stop,
                         tokenizer=tok)[0, 1:]
    # Ends with the token that completes the stop string (kept, as transformers keeps it).
    assert cut.tolist() == full[: at + 1].tolist()
    # Beam search: a hypothesis whose text reaches the stop string ends there (its last
    # token completes it; without an EOS id transformers fills the rest with -1).
    settings = dict(max_new_tokens=8, eos_token_id=None, no_repeat_ngram_size=1, num_beams=3, num_return_sequences=3)
    plain = model.generate(ids, **settings)[0, 1:]
    at = next(i for i in range(1, len(plain)) if tok.decode(plain[i : i + 1]) not in tok.decode(plain[:i]))
    stop = tok.decode(plain[at : at + 1], skip_special_tokens=True)
    out = model.generate(ids, stop_strings=stop, tokenizer=tok, **settings)[:, 1:]
    ended = 0
    for row in out.tolist():
        new = [t for t in row if t >= 0]
        assert all(stop not in tok.decode(new[:i]) for i in range(len(new))), (new, stop)
        ended += stop in tok.decode(new)
    assert ended >= 1


def test_a_streamer_and_stop_strings_together():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    tok = tf.AutoTokenizer.from_pretrained(str(FIXTURES / "generation" / "stop_tokenizer"))
    prompt = tok("the quick brown", return_tensors="np")["input_ids"]
    suppress = [0, 1, 2] + list(range(len(tok), 128))
    full = model.generate(prompt, max_new_tokens=8, eos_token_id=None, suppress_tokens=suppress)[0, prompt.shape[1] :]
    stop = tok.decode(full[1:2]).strip()
    assert stop and stop not in tok.decode(full[:1])
    streamer = tf.TextIteratorStreamer(tok, skip_prompt=True, timeout=60)
    kwargs = dict(input_ids=prompt, max_new_tokens=8, eos_token_id=None, suppress_tokens=suppress,
                  stop_strings=[stop], tokenizer=tok, streamer=streamer)
    thread = threading.Thread(target=model.generate, kwargs=kwargs)
    thread.start()
    text = "".join(streamer)
    thread.join()
    assert text == tok.decode(full[:2])


def test_suppressed_tokens_never_come_and_begin_suppression_only_first():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    prompt = np.array([[5, 9, 14, 3]])
    greedy = model.generate(prompt, max_new_tokens=6)[0, 4:].tolist()
    out = model.generate(prompt, max_new_tokens=6, suppress_tokens=[greedy[0]])[0, 4:].tolist()
    assert greedy[0] not in out
    first = model.generate(prompt, max_new_tokens=6, begin_suppress_tokens=[greedy[0]])[0, 4:].tolist()
    assert first[0] != greedy[0]
    # Through a GenerationConfig as well, and renormalized scores are log-probabilities.
    config = tf.GenerationConfig(max_new_tokens=2, renormalize_logits=True, remove_invalid_values=True)
    out = model.generate(prompt, generation_config=config, return_dict_in_generate=True, output_scores=True)
    for step in out.scores:
        assert abs(float(np.exp(step.astype(np.float64)).sum()) - 1.0) < 1e-4


def test_sampling_cutoffs_keep_the_likely_tokens():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    prompt = np.array([[5, 9, 14, 3]])
    for cutoff in ({"epsilon_cutoff": 0.02}, {"eta_cutoff": 0.05}):
        out = model.generate(prompt, max_new_tokens=1, do_sample=True, seed=3, return_dict_in_generate=True,
                             output_scores=True, output_logits=True, **cutoff)
        scores, logits = out.scores[0][0], out.logits[0][0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        kept = ~np.isneginf(scores)
        # Every kept token is at least as likely as every dropped one, and the pick is kept.
        assert kept.any() and (~kept).any()
        assert probs[kept].min() >= probs[~kept].max()
        assert kept[out.sequences[0, -1]]


def test_hidden_states_of_every_step_match_transformers():
    case = SCORES["llama_hidden"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    ids = np.array(case["prompts"])
    out = model.generate(ids, return_dict_in_generate=True, output_hidden_states=True, **case["settings"])
    np.testing.assert_array_equal(out.sequences[:, ids.shape[1] :], case["new"])
    assert out.scores is None and len(out.hidden_states) == len(case["hidden_states"])
    for got, want in zip(out.hidden_states, case["hidden_states"]):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, np.array(w, dtype=np.float32), atol=ATOL)
    with pytest.raises(ValueError, match="output_hidden_states"):
        model.generate(ids, num_beams=2, return_dict_in_generate=True, output_hidden_states=True, **case["settings"])
    with pytest.raises(ValueError, match="output_attentions"):
        model.generate(ids, return_dict_in_generate=True, output_attentions=True, **case["settings"])


def test_beam_search_batches_line_up_their_steps_as_transformers():
    case = SCORES["llama_beam_batch"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    out = model.generate(np.array(case["prompts"]), return_dict_in_generate=True, output_scores=True,
                         output_logits=True, **case["settings"])
    np.testing.assert_array_equal(out.sequences, case["sequences"])
    np.testing.assert_allclose(out.sequences_scores, case["sequences_scores"], atol=ATOL)
    np.testing.assert_array_equal(out.beam_indices, case["beam_indices"])
    assert_steps(out.scores, case["scores"])
    assert_steps(out.logits, case["logits"])


def test_classifier_free_guidance_matches_transformers():
    case = SCORES["llama_guidance"]
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    ids, mask = left_padded(case["prompts"])
    out = model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                         output_logits=True, **case["settings"])
    np.testing.assert_array_equal(out.sequences[:, ids.shape[1] :], case["new"])
    assert_steps(out.scores, case["scores"])
    assert_steps(out.logits, case["logits"])


def test_prompt_lookup_gives_greedy_ids():
    model = tf.AutoModelForCausalLM.from_pretrained(str(FIXTURES / "llama"))
    for prompt in ([[5, 9, 14, 3]], [[40, 41, 42, 43, 40, 41]]):
        greedy = model.generate(np.array(prompt), max_new_tokens=20, eos_token_id=None)
        fast = model.generate(np.array(prompt), max_new_tokens=20, eos_token_id=None, prompt_lookup_num_tokens=4,
                              max_matching_ngram_size=3)
        np.testing.assert_array_equal(fast, greedy)
    with pytest.raises(ValueError, match="prompt_lookup_num_tokens"):
        model.generate(np.array([[5, 9]]), do_sample=True, prompt_lookup_num_tokens=3)
