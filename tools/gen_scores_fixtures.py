#!/usr/bin/env python3
"""transformers' generate() with return_dict_in_generate, output_scores and output_logits on
the tiny fixtures -> tests/fixtures/generation/scores.json.

  llama greedy:   three prompts left-padded with 0 (an EOS id that ends one row early), with
                  the repetition penalty (which skips the padding), suppress_tokens,
                  begin_suppress_tokens, sequence_bias, the exponential decay length
                  penalty and renormalize_logits: sequences, scores, logits.
  llama beam:     beam search (3 beams, two returned) of one prompt: sequences,
                  sequences_scores, scores (the processed log-softmax of every beam), logits,
                  beam_indices.
  t5 greedy:      the encoder-decoder fixture on two sources (the second right-padded):
                  sequences, scores, logits.
  encoder:        encoder_repetition_penalty and encoder_no_repeat_ngram_size on the llama
                  fixture (left-padded prompts) and on t5 (right-padded sources; greedy with
                  scores, and beam search).
  beam batch:     beam search over two prompts whose searches end after different numbers
                  of steps, with scores, logits and beam indices.
  guidance:       classifier-free guidance (guidance_scale) on left-padded prompts.
  hidden states:  output_hidden_states on two unpadded prompts of the llama fixture.
  stop strings:   beam search of the llama fixture with a small BPE tokenizer made here
                  (generation/stop_tokenizer; transformers' StopStringCriteria cannot read the
                  fixtures' word-level ones), ending at a stop string the search meets:
                  sequences and sequences_scores.

Scores of -inf are written as null; new tokens only are kept in "new" (prompt or decoder
start left out, padding after EOS kept as transformers returns it).

Usage: python tools/gen_scores_fixtures.py   (needs torch, transformers)
"""
import json
import math
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "generation" / "scores.json"


def rows(t):
    return [[None if math.isinf(x) and x < 0 else round(x, 6) for x in r] for r in t.tolist()]


def steps(out):
    return {
        "scores": [rows(s) for s in out.scores],
        "logits": [rows(s) for s in out.logits],
    }


def llama_cases():
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(5)
    prompt = torch.randint(3, model.config.vocab_size, (9,), generator=g).tolist()
    prompts = [prompt, prompt[3:], prompt[6:]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    plain = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    first = plain[:, width].tolist()
    settings = {
        "max_new_tokens": 6,
        "eos_token_id": [plain[2, width + 3].item()],
        "pad_token_id": 0,
        "repetition_penalty": 1.3,
        "suppress_tokens": [first[1]],
        "begin_suppress_tokens": [first[0]],
        "sequence_bias": [[[first[2]], 1.5], [[prompt[-1], 7], 2.0], [[11], -1.0]],
        "exponential_decay_length_penalty": [2, 1.4],
        "renormalize_logits": True,
    }
    bias = {tuple(k): v for k, v in settings["sequence_bias"]}
    kwargs = {**settings, "sequence_bias": bias, "exponential_decay_length_penalty": (2, 1.4)}
    out = model.generate(ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True,
                         output_scores=True, output_logits=True, **kwargs)
    greedy = {
        "prompts": prompts,
        "settings": settings,
        "new": out.sequences[:, width:].tolist(),
        **steps(out),
    }
    beam_settings = {"max_new_tokens": 5, "num_beams": 3, "num_return_sequences": 2,
                     "eos_token_id": [plain[0, width + 2].item()], "pad_token_id": 0}
    p = torch.tensor([prompt])
    out = model.generate(p, attention_mask=torch.ones_like(p), do_sample=False,
                         return_dict_in_generate=True, output_scores=True, output_logits=True,
                         **beam_settings)
    beam = {
        "prompts": [prompt],
        "settings": beam_settings,
        "new": out.sequences[:, len(prompt):].tolist(),
        "sequences_scores": out.sequences_scores.tolist(),
        "beam_indices": out.beam_indices.tolist(),
        **steps(out),
    }
    return greedy, beam


def t5_case():
    model = AutoModelForSeq2SeqLM.from_pretrained(FIXTURES / "t5", dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(7)
    sources = [torch.randint(3, model.config.vocab_size, (7,), generator=g).tolist()]
    sources.append(sources[0][2:])
    pad = model.generation_config.pad_token_id or 0
    width = max(map(len, sources))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in sources])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sources])
    settings = {"max_new_tokens": 5, "no_repeat_ngram_size": 2}
    out = model.generate(ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True,
                         output_scores=True, output_logits=True, **settings)
    return {
        "sources": sources,
        "settings": settings,
        "new": out.sequences[:, 1:].tolist(),
        **steps(out),
    }


TEXT = (
    "the quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat near the door "
    "and a small bird sings in the tall green tree as the sun rises over quiet hills"
)


def stop_tokenizer():
    """A Metaspace BPE of 100 tokens (transformers' StopStringCriteria cannot read the
    character tokenizers of the other fixtures), written next to scores.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = OUT.parent / "stop_tokenizer"
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=100, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([TEXT] * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(out)
    return AutoTokenizer.from_pretrained(out)


def stop_string_cases():
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    tok = stop_tokenizer()
    prompt = tok("the quick brown", return_tensors="pt")["input_ids"]
    # Only the tokenizer's ordinary tokens (the model's vocabulary is larger).
    suppress = [0, 1, 2] + list(range(len(tok), model.config.vocab_size))
    settings = {"max_new_tokens": 8, "num_beams": 3, "num_return_sequences": 3, "eos_token_id": None,
                "pad_token_id": 0, "suppress_tokens": suppress}
    plain = model.generate(prompt, do_sample=False, **settings)[0, prompt.shape[1]:]
    stop = tok.decode(plain[2:3]).strip()
    assert stop and stop not in tok.decode(plain[:2])
    out = model.generate(prompt, do_sample=False, stop_strings=[stop], tokenizer=tok,
                         return_dict_in_generate=True, output_scores=True, **settings)
    beam = {
        "prompt": prompt[0].tolist(),
        "settings": settings,
        "stop_strings": [stop],
        "plain": plain.tolist(),
        "sequences": out.sequences.tolist(),
        "sequences_scores": out.sequences_scores.tolist(),
    }
    return beam


def hidden_case():
    """output_hidden_states on two unpadded prompts (a padded position's hidden state is
    whatever the masked attention makes of it)."""
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(13)
    ids = torch.randint(3, model.config.vocab_size, (2, 5), generator=g)
    settings = {"max_new_tokens": 3, "pad_token_id": 0, "eos_token_id": None}
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, return_dict_in_generate=True,
                         output_hidden_states=True, **settings)
    return {
        "prompts": ids.tolist(),
        "settings": settings,
        "new": out.sequences[:, ids.shape[1]:].tolist(),
        "hidden_states": [[layer.tolist() for layer in step] for step in out.hidden_states],
    }


def guidance_case():
    """Classifier-free guidance (guidance_scale, no negative prompt) on left-padded prompts."""
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(17)
    prompt = torch.randint(3, model.config.vocab_size, (7,), generator=g).tolist()
    prompts = [prompt, prompt[3:]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    settings = {"max_new_tokens": 5, "pad_token_id": 0, "eos_token_id": None, "guidance_scale": 1.7}
    out = model.generate(ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True,
                         output_scores=True, output_logits=True, **settings)
    return {"prompts": prompts, "settings": settings, "new": out.sequences[:, width:].tolist(), **steps(out)}


def beam_batch_case():
    """Beam search over two prompts of one length whose searches end after different
    numbers of steps: transformers goes on scoring the beams of the one that ended."""
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(21)
    ids = torch.randint(3, model.config.vocab_size, (2, 6), generator=g)
    base = {"max_new_tokens": 7, "num_beams": 3, "num_return_sequences": 2, "pad_token_id": 0,
            "do_sample": False}
    for eos in range(3, model.config.vocab_size):
        settings = {**base, "eos_token_id": [eos]}
        alone = [len(model.generate(ids[i:i + 1], attention_mask=torch.ones_like(ids[:1]), return_dict_in_generate=True,
                                    output_scores=True, **settings).scores) for i in range(2)]
        if alone[0] != alone[1]:
            break
    else:
        raise SystemExit("no EOS id makes the two searches end apart")
    out = model.generate(ids, attention_mask=torch.ones_like(ids), return_dict_in_generate=True, output_scores=True,
                         output_logits=True, **settings)
    return {
        "prompts": ids.tolist(),
        "settings": settings,
        "steps_alone": alone,
        "sequences": out.sequences.tolist(),
        "sequences_scores": out.sequences_scores.tolist(),
        "beam_indices": out.beam_indices.tolist(),
        **steps(out),
    }


ENCODER = {"encoder_repetition_penalty": 2.0, "encoder_no_repeat_ngram_size": 2}


def encoder_cases():
    """The processors that look at the input: a decoder's left-padded prompts (padding
    included, as transformers passes input_ids), an encoder-decoder's right-padded sources,
    greedy with scores and beam search."""
    model = AutoModelForCausalLM.from_pretrained(FIXTURES / "llama", attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(9)
    prompt = torch.randint(3, model.config.vocab_size, (8,), generator=g).tolist()
    prompts = [prompt, prompt[4:]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    settings = {"max_new_tokens": 6, "pad_token_id": 0, "eos_token_id": None, **ENCODER}
    out = model.generate(ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True,
                         output_scores=True, **settings)
    decoder = {"prompts": prompts, "settings": settings, "new": out.sequences[:, width:].tolist(),
               "scores": [rows(s) for s in out.scores]}
    model = AutoModelForSeq2SeqLM.from_pretrained(FIXTURES / "t5", dtype=torch.float32).eval()
    source = torch.randint(3, model.config.vocab_size, (7,), generator=g).tolist()
    sources = [source, source[2:6]]
    width = max(map(len, sources))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in sources])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sources])
    settings = {"max_new_tokens": 5, **ENCODER}
    out = model.generate(ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True,
                         output_scores=True, **settings)
    beams = model.generate(ids, attention_mask=mask, do_sample=False, num_beams=3, **settings)
    seq2seq = {"sources": sources, "settings": settings, "new": out.sequences[:, 1:].tolist(),
               "scores": [rows(s) for s in out.scores], "beam_new": beams[:, 1:].tolist()}
    return decoder, seq2seq


def main():
    torch.manual_seed(0)
    with torch.no_grad():
        greedy, beam = llama_cases()
        stop_beam = stop_string_cases()
        encoder_decoder_only, encoder_t5 = encoder_cases()
        hidden = hidden_case()
        beam_batch = beam_batch_case()
        guidance = guidance_case()
        result = {"llama_greedy": greedy, "llama_beam": beam, "t5_greedy": t5_case(),
                  "stop_strings_beam": stop_beam, "llama_encoder": encoder_decoder_only,
                  "t5_encoder": encoder_t5, "llama_hidden": hidden,
                  "llama_beam_batch": beam_batch, "llama_guidance": guidance}
    OUT.write_text(json.dumps(result))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
