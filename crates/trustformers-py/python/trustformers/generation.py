"""Generation as transformers' ``generate()`` does it: ``GenerationConfig``, the global
defaults it falls back on, ``set_seed``, and the text streamers."""

from __future__ import annotations

import copy
import json
import os
import random
import threading
from queue import Queue
from typing import Any, Dict, List, Optional

import numpy as np

from .exceptions import InvalidArgument

# transformers' global defaults: what generate() uses for a field neither the call nor the
# model's generation config sets.
_DEFAULTS: Dict[str, Any] = {
    "max_length": 20,
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "early_stopping": False,
    "max_time": None,
    "stop_strings": None,
    "do_sample": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "num_return_sequences": 1,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "decoder_start_token_id": None,
    "use_cache": True,
    "return_dict_in_generate": False,
    "output_scores": False,
    "output_logits": False,
    "output_hidden_states": False,
    "output_attentions": False,
    "guidance_scale": None,
    "prompt_lookup_num_tokens": None,
    "max_matching_ngram_size": None,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "top_h": None,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
    "remove_invalid_values": False,
    # Not transformers fields: the seed of sampling (transformers seeds torch globally, see
    # set_seed) and OpenAI's penalties.
    "seed": None,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}

# transformers fields this engine does not implement: refused when set to anything but
# their neutral value.
_UNSUPPORTED = {
    "token_healing": (None, False),
    "watermarking_config": (None,),
    "penalty_alpha": (None,),
    "dola_layers": (None,),
    "diversity_penalty": (None, 0.0),
    "num_beam_groups": (None, 1),
    "constraints": (None,),
    "force_words_ids": (None,),
    "assistant_model": (None,),
}

# The decoding methods transformers 5 took out of generate() into `custom_generate` repos on
# the Hub: their parameters are refused with that said.
_MOVED_TO_HUB = {
    "penalty_alpha": "transformers-community/contrastive-search",
    "dola_layers": "transformers-community/dola",
    "num_beam_groups": "transformers-community/group-beam-search",
    "diversity_penalty": "transformers-community/group-beam-search",
    "constraints": "transformers-community/constrained-beam-search",
    "force_words_ids": "transformers-community/constrained-beam-search",
}

# Accepted and without effect here (caching strategy, compilation, speculation settings).
_IGNORED = {
    "cache_implementation",
    "cache_config",
    "max_cache_len",
    "compile_config",
    "disable_compile",
    "is_assistant",
    "num_assistant_tokens",
    "num_assistant_tokens_schedule",
    "assistant_confidence_threshold",
    "assistant_early_exit",
    "assistant_lookbehind",
    "target_lookbehind",
    "low_memory",
    "prefill_chunk_size",
    "use_mtp",
    "speculation_type",
    "assistant_ensemble_weight",
    "continuous_batching_config",
    "transformers_version",
}


class GenerationConfig:
    """transformers' ``GenerationConfig``: the parameters of ``generate()``. Fields left
    unset (``None``) take the model's generation config, then transformers' defaults."""

    def __init__(self, **kwargs: Any) -> None:
        self._fields: Dict[str, Any] = {}
        self.update(**kwargs)

    def update(self, **kwargs: Any) -> Dict[str, Any]:
        """Sets the given fields; returns those that are not generation fields."""
        unused = {}
        for key, value in kwargs.items():
            if key in _DEFAULTS or key in _UNSUPPORTED or key in _IGNORED:
                self._fields[key] = value
            elif key.startswith("_"):
                continue
            else:
                unused[key] = value
        return unused

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = self.__dict__.get("_fields", {})
        if name in fields:
            return fields[name]
        if name in _DEFAULTS or name in _UNSUPPORTED or name in _IGNORED:
            return None
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_fields":
            object.__setattr__(self, name, value)
        else:
            self._fields[name] = value

    def to_dict(self) -> Dict[str, Any]:
        """The fields that are set."""
        return {k: v for k, v in self._fields.items() if v is not None}

    to_diff_dict = to_dict

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"GenerationConfig({json.dumps(self.to_dict(), sort_keys=True, default=str)})"

    def copy(self) -> "GenerationConfig":
        return copy.deepcopy(self)

    @classmethod
    def from_dict(cls, config: Dict[str, Any]) -> "GenerationConfig":
        out = cls()
        for key, value in config.items():
            if not key.startswith("_"):
                out._fields[key] = value
        return out

    @classmethod
    def from_pretrained(cls, path: str) -> "GenerationConfig":
        """Reads ``generation_config.json`` of a checkpoint directory."""
        file = path if path.endswith(".json") else os.path.join(path, "generation_config.json")
        with open(file, encoding="utf-8") as f:
            try:
                return cls.from_dict(json.load(f))
            except ValueError as e:
                raise InvalidArgument(f"{file}: {e}") from None

    @classmethod
    def from_model_config(cls, config: Dict[str, Any]) -> "GenerationConfig":
        """The generation fields a model's config.json carries (its special token ids)."""
        return cls(
            **{
                k: config[k]
                for k in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
                if config.get(k) is not None
            }
        )


def resolve(config: GenerationConfig) -> Dict[str, Any]:
    """Every field with the global defaults applied; unsupported settings refused."""
    out = dict(_DEFAULTS)
    for key, value in config.to_dict().items():
        if key in _UNSUPPORTED:
            if value not in _UNSUPPORTED[key]:
                moved = _MOVED_TO_HUB.get(key)
                where = f" (transformers 5 moved it out of generate() too, to {moved})" if moved else ""
                raise InvalidArgument(f"generation parameter `{key}` is not supported{where}")
        elif key in _DEFAULTS:
            out[key] = value
    if out["output_attentions"]:
        raise InvalidArgument("generation parameter `output_attentions` is not supported")
    return out


def as_id_list(value: Any, name: str) -> Optional[List[int]]:
    """A token id or a list of them (or None) as a list."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        ids = [int(v) for v in items]
    except (TypeError, ValueError):
        raise InvalidArgument(f"`{name}` must be a token id or a list of them, got {value!r}") from None
    if any(i < 0 for i in ids):
        raise InvalidArgument(f"`{name}` must hold non-negative token ids, got {value!r}")
    return ids


_seed_lock = threading.Lock()
_seed_rng: Optional[random.Random] = None


def set_seed(seed: int) -> None:
    """Makes sampling reproducible from here on, as ``transformers.set_seed`` does: the
    following ``generate`` calls draw their seeds from this one, in order."""
    global _seed_rng
    if not isinstance(seed, int):
        raise InvalidArgument(f"seed must be an integer, got {seed!r}")
    with _seed_lock:
        _seed_rng = random.Random(seed)


def next_seed() -> int:
    """The seed of the next sampled generation."""
    with _seed_lock:
        if _seed_rng is not None:
            return _seed_rng.getrandbits(63)
    return int.from_bytes(os.urandom(8), "little") >> 1


def _is_chinese_char(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class BaseStreamer:
    """What ``generate(streamer=...)`` calls: ``put`` with the prompt's ids, then with each
    new token's, and ``end`` when generation stops."""

    def put(self, value: Any) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError


class TextStreamer(BaseStreamer):
    """Prints text as it is generated, word by word (transformers' ``TextStreamer``):
    text is released at spaces and newlines (CJK characters one by one), so that a
    multi-token character or word is never printed half-decoded."""

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, **decode_kwargs: Any) -> None:
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self.token_cache: List[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value: Any) -> None:
        value = np.asarray(value)
        if value.ndim > 1 and value.shape[0] > 1:
            raise InvalidArgument("TextStreamer only supports batch size 1")
        if value.ndim > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(int(v) for v in value.reshape(-1))
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith("\n"):
            printable = text[self.print_len :]
            self.token_cache = []
            self.print_len = 0
        elif text and _is_chinese_char(ord(text[-1])):
            printable = text[self.print_len :]
            self.print_len += len(printable)
        else:
            printable = text[self.print_len : text.rfind(" ") + 1]
            self.print_len += len(printable)
        self.on_finalized_text(printable)

    def end(self) -> None:
        if self.token_cache:
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            printable = text[self.print_len :]
            self.token_cache = []
            self.print_len = 0
        else:
            printable = ""
        self.next_tokens_are_prompt = True
        self.on_finalized_text(printable, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        """Receives each piece of text; prints it by default."""
        print(text, flush=True, end="" if not stream_end else None)


class TextIteratorStreamer(TextStreamer):
    """Text pieces as an iterator, for generation running in another thread
    (transformers' ``TextIteratorStreamer``)::

        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
        Thread(target=model.generate, kwargs=dict(**inputs, streamer=streamer)).start()
        for piece in streamer:
            print(piece, end="")

    ``timeout`` (seconds) bounds each wait for the next piece (``queue.Empty`` after it).
    """

    def __init__(
        self,
        tokenizer: Any,
        skip_prompt: bool = False,
        timeout: Optional[float] = None,
        **decode_kwargs: Any,
    ) -> None:
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        self.text_queue: "Queue[Optional[str]]" = Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> "TextIteratorStreamer":
        return self

    def __next__(self) -> str:
        value = self.text_queue.get(timeout=self.timeout)
        if value == self.stop_signal:
            raise StopIteration()
        return value


__all__ = [
    "GenerationConfig",
    "BaseStreamer",
    "TextStreamer",
    "TextIteratorStreamer",
    "set_seed",
]
