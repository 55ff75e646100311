"""Models with transformers' API: ``AutoModelForCausalLM``, ``AutoModel``, the encoder
task classes, calling a model on numpy ids, and ``generate``."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _trustformers
from ._utils import as_ids, check_path
from .exceptions import InvalidArgument, TrustformersError
from .generation import BaseStreamer, GenerationConfig, as_id_list, next_seed, resolve


class PretrainedConfig(dict):
    """A model's config.json as a dict whose keys are also attributes; ``id2label`` has
    integer keys and ``label2id`` integer values, as in transformers."""

    def __init__(self, values: Dict[str, Any]):
        super().__init__(values)
        if isinstance(self.get("id2label"), dict):
            self["id2label"] = {int(k): v for k, v in self["id2label"].items()}
        if isinstance(self.get("label2id"), dict):
            self["label2id"] = {k: int(v) for k, v in self["label2id"].items()}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> Dict[str, Any]:
        return dict(self)

    @property
    def num_labels(self) -> int:
        return len(self.get("id2label") or {}) or 2


class ModelOutput(dict):
    """A model's outputs: a dict in field order whose keys are also attributes, indexable
    by position like transformers' ``ModelOutput`` (``out[0]`` is the first field). A field
    of the output's class that was not computed reads as ``None``, as in transformers."""

    _fields: Tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            if name in type(self)._fields:
                return None
            raise AttributeError(name) from None

    def __getitem__(self, key: Union[str, int, slice]) -> Any:
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> Tuple[Any, ...]:
        return tuple(self.values())


# The fields of generate()'s outputs that may be left out.
_GENERATE_FIELDS = ("sequences", "sequences_scores", "scores", "logits", "beam_indices", "hidden_states")


def _output(name: str, fields: Dict[str, Any]) -> ModelOutput:
    declared = _GENERATE_FIELDS if name.startswith("Generate") else tuple(fields)
    cls = type(name, (ModelOutput,), {"_fields": declared})
    return cls((k, v) for k, v in fields.items() if v is not None)


def _dtype_name(dtype: Any) -> Optional[str]:
    """``dtype`` / ``torch_dtype`` as the engine's name: a string, a numpy or torch dtype."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        return dtype
    name = str(dtype)
    if name.startswith("torch."):
        return name[len("torch.") :]
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise InvalidArgument(f"unknown dtype {dtype!r}") from None


def _load_kwargs(kwargs: Dict[str, Any], where: str) -> Optional[str]:
    """The dtype from ``from_pretrained``'s keyword arguments; refuses what cannot be done
    here and accepts what changes nothing on a CPU."""
    dtype = kwargs.pop("dtype", None)
    torch_dtype = kwargs.pop("torch_dtype", None)
    dtype = dtype if dtype is not None else torch_dtype
    device_map = kwargs.pop("device_map", None)
    if device_map not in (None, "cpu", "auto"):
        raise InvalidArgument(f"device_map={device_map!r}: trustformers runs on the CPU")
    revision = kwargs.pop("revision", None)
    if revision not in (None, "main"):
        raise InvalidArgument("revision: only the default revision is supported")
    for ignored in ("trust_remote_code", "low_cpu_mem_usage", "local_files_only", "use_safetensors"):
        kwargs.pop(ignored, None)
    if kwargs:
        raise InvalidArgument(f"{where}.from_pretrained: unknown arguments {sorted(kwargs)}")
    return _dtype_name(dtype)


def _configs(checkpoint: "_trustformers.Checkpoint") -> Tuple[PretrainedConfig, GenerationConfig]:
    """A loaded checkpoint's config, and its generation config: the special token ids of
    config.json under generation_config.json's fields (a GGUF file's token ids)."""
    config = PretrainedConfig(json.loads(checkpoint.config_json))
    generation = GenerationConfig.from_model_config(config)
    generation.update(**{k: v for k, v in json.loads(checkpoint.generation_json).items() if not k.startswith("_")})
    return config, generation


class PreTrainedModel:
    """What every loaded model has: ``config``, ``name_or_path``, ``device`` (the CPU), and
    no-ops for ``eval()`` and ``to("cpu")``."""

    config: PretrainedConfig
    name_or_path: str
    device = "cpu"

    def eval(self) -> "PreTrainedModel":
        return self

    def to(self, device: Any) -> "PreTrainedModel":
        if str(device) != "cpu":
            raise InvalidArgument(f"trustformers runs on the CPU, not {device!r}")
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> ModelOutput:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> ModelOutput:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name_or_path={self.name_or_path!r}, model_type={self.config.get('model_type')!r})"


def _common_inputs(kwargs: Dict[str, Any], known: Tuple[str, ...]) -> None:
    for ignored in ("use_cache", "return_dict", "output_attentions", "past_key_values", "cache_position"):
        value = kwargs.pop(ignored, None)
        if ignored == "output_attentions" and value:
            raise InvalidArgument("output_attentions is not supported")
        if ignored in ("past_key_values", "cache_position") and value is not None:
            raise InvalidArgument(f"{ignored} is not supported: the model runs the whole sequence")
    if "labels" in kwargs:
        raise InvalidArgument("labels: computing a loss is `trustformers train`'s job")
    if kwargs:
        raise InvalidArgument(f"unknown model inputs {sorted(kwargs)}; this model takes {', '.join(known)}")


class CausalLMModel(PreTrainedModel):
    """A causal language model (``AutoModelForCausalLM``): logits, hidden states and
    ``generate``."""

    def __init__(self, inner: "_trustformers.CausalLM", name_or_path: str, base: bool = False):
        self._model = inner
        self._base = base
        self.name_or_path = name_or_path
        self.config, self.generation_config = _configs(inner.checkpoint)

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        position_ids: Any = None,
        output_hidden_states: Optional[bool] = None,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> ModelOutput:
        """Runs the model on ``[batch, seq]`` ids. Returns ``logits`` (``last_hidden_state``
        for ``AutoModel``) and, with ``output_hidden_states``, ``hidden_states``: the
        embeddings and every layer's output."""
        _common_inputs(kwargs, ("input_ids", "attention_mask", "position_ids", "output_hidden_states", "logits_to_keep"))
        if input_ids is None:
            raise InvalidArgument("input_ids is required")
        ids = as_ids(input_ids, "input_ids")
        mask = None if attention_mask is None else as_ids(attention_mask, "attention_mask")
        positions = None if position_ids is None else as_ids(position_ids, "position_ids")
        if not isinstance(logits_to_keep, int) or logits_to_keep < 0:
            raise InvalidArgument(f"logits_to_keep must be a non-negative integer, got {logits_to_keep!r}")
        keep = None if logits_to_keep == 0 else logits_to_keep
        if self._base:
            keep = 1
        out = self._model.forward(ids, mask, positions, bool(output_hidden_states), keep)
        hidden = tuple(out["hidden_states"]) if output_hidden_states else None
        if self._base:
            return _output(
                "BaseModelOutputWithPast",
                {"last_hidden_state": out["last_hidden_state"], "hidden_states": hidden},
            )
        return _output("CausalLMOutputWithPast", {"logits": out["logits"], "hidden_states": hidden})

    def can_generate(self) -> bool:
        return not self._base

    def generate(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        generation_config: Optional[GenerationConfig] = None,
        streamer: Optional[BaseStreamer] = None,
        **kwargs: Any,
    ) -> Any:
        """transformers' ``generate()``: greedy search, sampling or beam search from
        ``[batch, seq]`` (left-padded) prompts; returns the ids, prompts included, padded
        with ``pad_token_id`` (``return_dict_in_generate=True``: an output with
        ``sequences`` and for beam search ``sequences_scores``). Every GenerationConfig field
        may be passed as a keyword; ``seed`` seeds sampling (see ``set_seed``)."""
        if self._base:
            raise InvalidArgument("a base model (AutoModel) has no language-model head; use AutoModelForCausalLM")
        if input_ids is None:
            raise InvalidArgument("input_ids is required (this model has no default prompt)")
        tokenizer = kwargs.pop("tokenizer", None)
        for name in ("negative_prompt_ids", "negative_prompt_attention_mask"):
            if kwargs.pop(name, None) is not None:
                raise InvalidArgument(
                    f"`{name}` is not supported: guidance_scale guides against the prompt's last token alone"
                )
        config = _merged_config(self.generation_config, generation_config, kwargs)
        ids = as_ids(input_ids, "input_ids")
        if attention_mask is None:
            pad = as_id_list(config.pad_token_id, "pad_token_id")
            eos = as_id_list(config.eos_token_id, "eos_token_id") or []
            if pad and pad[0] not in eos and (ids == pad[0]).any():
                mask = (ids != pad[0]).astype(np.int64)
            else:
                mask = np.ones_like(ids)
        else:
            mask = as_ids(attention_mask, "attention_mask")
            if mask.shape != ids.shape:
                raise InvalidArgument(
                    f"attention_mask has shape {list(mask.shape)}, input_ids {list(ids.shape)}"
                )
        settings = resolve(config)
        width = ids.shape[1]
        if settings["max_new_tokens"] is None:
            settings["max_new_tokens"] = max(1, int(settings["max_length"]) - width)
        stop = _stop_strings(settings)
        rust, pad_id = _rust_settings(settings)
        prompts = [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)]
        rows = len(prompts) * settings["num_return_sequences"]
        on_token, stops = _token_hooks(stop, tokenizer, streamer, rows, settings["num_beams"] > 1)
        if streamer is not None:
            streamer.put(ids)
        try:
            results = self._model.generate(prompts, json.dumps(rust), on_token, stops)
        finally:
            if streamer is not None:
                streamer.end()
        per_prompt = settings["num_return_sequences"]
        starts = [ids[i // per_prompt] for i in range(len(results))]
        return _generated(starts, results, pad_id, settings, "DecoderOnly")


def _token_hooks(
    stop: List[str], tokenizer: Any, streamer: Optional[BaseStreamer], rows: int, beams: bool
) -> Tuple[Optional[Callable[[int, int], Any]], Optional[Callable[[List[int]], bool]]]:
    """What the engine calls as generation runs: ``on_token(row, id)`` for each new token of
    greedy and sampled search (the streamer, then the stop strings, which end the row once
    its text holds one), and for beam search ``stops(ids)``, which says whether a candidate's
    text holds one (it then finishes as an EOS would). A streamer streams one sequence of
    greedy search or sampling."""
    if streamer is not None:
        if rows > 1:
            raise InvalidArgument("a streamer streams one sequence: batch size and num_return_sequences must be 1")
        if beams:
            raise InvalidArgument("`streamer` cannot be used with beam search")
    if stop and tokenizer is None:
        raise InvalidArgument(
            "stop_strings need the tokenizer: pass tokenizer=... to generate(), as in transformers"
        )
    if beams:
        return None, (_StopStrings(tokenizer, stop, 0).holds_stop if stop else None)
    hooks: List[Callable[[int, int], Any]] = []
    if streamer is not None:
        hooks.append(_Streamed(streamer))
    if stop:
        hooks.append(_StopStrings(tokenizer, stop, rows))
    if not hooks:
        return None, None

    def on_token(row: int, token: int) -> bool:
        go_on = True
        for hook in hooks:
            go_on = hook(row, token) is not False and go_on
        return go_on

    return on_token, None


class _Streamed:
    """Hands each new token to a streamer, as transformers' generate() does."""

    def __init__(self, streamer: BaseStreamer):
        self.streamer = streamer

    def __call__(self, row: int, token: int) -> None:
        self.streamer.put(np.array([token], dtype=np.int64))


def _stop_strings(settings: Dict[str, Any]) -> List[str]:
    """The settings' stop strings as a list (transformers takes one string or a list)."""
    stop = settings.get("stop_strings")
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) and s for s in items):
        raise InvalidArgument(f"stop_strings must be a non-empty string or a list of them, got {stop!r}")
    return list(items)


class _StopStrings:
    """Ends a row once its generated text contains one of the stop strings (the token that
    completes it is kept, as transformers' StopStringCriteria keeps it)."""

    def __init__(self, tokenizer: Any, stop: List[str], rows: int):
        self.tokenizer = tokenizer
        self.stop = stop
        self.ids: List[List[int]] = [[] for _ in range(rows)]

    def __call__(self, row: int, token: int) -> bool:
        self.ids[row].append(token)
        return not self.holds_stop(self.ids[row])

    def holds_stop(self, ids: List[int]) -> bool:
        """Whether the text of ``ids`` contains a stop string."""
        text = self.tokenizer.decode(ids)
        return any(s in text for s in self.stop)


def _generated(
    starts: List[np.ndarray],
    results: List[Tuple[List[int], Optional[float], Optional[Dict[str, Any]]]],
    pad_id: int,
    settings: Dict[str, Any],
    kind: str,
) -> Any:
    """generate()'s return value: each output's start (the padded prompt, or the decoder
    start token) then its new ids, finished rows padded with `pad_id`; with
    `return_dict_in_generate` an output object, with `scores` and `logits` (a tuple of
    `[batch, vocab]` arrays, one per step) and `hidden_states` (per step, per layer,
    `[batch, positions, hidden]`) when asked, and for beam search `sequences_scores` and
    `beam_indices`."""
    beam = settings["num_beams"] > 1
    if beam:
        # transformers fills beam search's sequences with `pad_token_id or eos_token_id[0]`
        # (so a pad id of 0 gives way to the EOS id), or -1 without an EOS id.
        eos = as_id_list(settings["eos_token_id"], "eos_token_id")
        pad = as_id_list(settings["pad_token_id"], "pad_token_id")
        pad_id = ((pad[0] if pad else 0) or eos[0]) if eos else -1
    width = len(starts[0])
    longest = max(len(new) for new, _, _ in results)
    sequences = np.full((len(results), width + longest), pad_id, dtype=np.int64)
    for i, (new, _, _) in enumerate(results):
        sequences[i, :width] = starts[i]
        sequences[i, width : width + len(new)] = new
    if not settings["return_dict_in_generate"]:
        return sequences
    fields: Dict[str, Any] = {"sequences": sequences}
    steps = [extra for _, _, extra in results if extra is not None and "scores" in extra]
    if settings["output_scores"] or settings["output_logits"] or settings["output_hidden_states"]:
        # One entry per search: every output (greedy, sampling) or the first of each
        # prompt's beams; their steps must line up to stack as transformers' batch does.
        counts = {
            len(next(x[k] for k in ("scores", "logits", "hidden_states") if x.get(k) is not None)) for x in steps
        }
        if len(counts) > 1:
            # The engine runs every search to the batch's number of steps.
            raise TrustformersError(f"generate: searches of {sorted(counts)} steps do not stack")
        for key, wanted in (("scores", settings["output_scores"]), ("logits", settings["output_logits"])):
            if wanted:
                stacked = np.concatenate([x[key] for x in steps], axis=1)
                fields[key] = tuple(stacked)
        if settings["output_hidden_states"]:
            # Per step, per layer: [batch, positions, hidden].
            fields["hidden_states"] = tuple(
                tuple(np.stack([x["hidden_states"][t][layer] for x in steps]) for layer in range(len(layers)))
                for t, layers in enumerate(steps[0]["hidden_states"])
            )
    if beam:
        if settings["output_scores"]:
            fields["sequences_scores"] = np.array([s for _, s, _ in results], dtype=np.float32)
        if settings["output_scores"] or settings["output_logits"]:
            per_prompt = settings["num_return_sequences"]
            num_beams = settings["num_beams"]
            rows = [
                [b + (i // per_prompt) * num_beams for b in extra["beam_indices"]]
                for i, (_, _, extra) in enumerate(results)
                if extra is not None
            ]
            indices = np.full((len(rows), max(len(r) for r in rows)), -1, dtype=np.int64)
            for i, r in enumerate(rows):
                indices[i, : len(r)] = r
            fields["beam_indices"] = indices
    return _output(f"Generate{'Beam' if beam else ''}{kind}Output", fields)


def _merged_config(
    model_config: GenerationConfig, given: Optional[GenerationConfig], kwargs: Dict[str, Any]
) -> GenerationConfig:
    """The model's generation config under a given one and the call's keywords, as
    transformers merges them; keywords that are not generation fields are refused."""
    for ignored in ("use_cache", "tokenizer"):
        kwargs.pop(ignored, None)
    config = model_config.copy()
    if given is not None:
        if not isinstance(given, GenerationConfig):
            raise InvalidArgument("generation_config must be a GenerationConfig")
        config.update(**given.to_dict())
    unused = config.update(**kwargs)
    if unused:
        raise InvalidArgument(f"The following `model_kwargs` are not used by the model: {sorted(unused)}")
    return config


_RUST_FIELDS = (
    "max_new_tokens",
    "min_new_tokens",
    "min_length",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "max_time",
    "num_beams",
    "length_penalty",
    "num_return_sequences",
    "early_stopping",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "decoder_start_token_id",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "guidance_scale",
    "prompt_lookup_num_tokens",
    "max_matching_ngram_size",
    "encoder_repetition_penalty",
    "encoder_no_repeat_ngram_size",
    "suppress_tokens",
    "begin_suppress_tokens",
    "sequence_bias",
    "epsilon_cutoff",
    "eta_cutoff",
    "top_h",
    "exponential_decay_length_penalty",
    "renormalize_logits",
    "remove_invalid_values",
    "return_dict_in_generate",
    "output_scores",
    "output_logits",
    "output_hidden_states",
)


def _rust_settings(settings: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
    """Resolved settings as the engine takes them, and the id that pads finished rows."""
    for key in ("num_beams", "num_return_sequences") + (("max_new_tokens",) if settings["max_new_tokens"] is not None else ()):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidArgument(f"`{key}` must be a positive integer, got {value!r}")
    eos = as_id_list(settings["eos_token_id"], "eos_token_id") or []
    pad = as_id_list(settings["pad_token_id"], "pad_token_id")
    pad_id = pad[0] if pad else (eos[0] if eos else 0)
    if settings["do_sample"] and settings["seed"] is None:
        settings["seed"] = next_seed()
    rust = {key: settings[key] for key in _RUST_FIELDS if settings.get(key) is not None}
    bias = settings["sequence_bias"]
    if isinstance(bias, dict):
        # transformers' dict form, {(token, ...): bias}, as its list form.
        rust["sequence_bias"] = [[list(k) if isinstance(k, (tuple, list)) else k, v] for k, v in bias.items()]
    rust["eos_token_id"] = eos
    rust["pad_token_id"] = pad_id
    return rust, pad_id


_ENCODER_OUTPUTS = {
    "base": ("BaseModelOutputWithPooling", ("last_hidden_state", "pooler_output")),
    "masked-lm": ("MaskedLMOutput", ("logits",)),
    "sequence-classification": ("SequenceClassifierOutput", ("logits",)),
    "token-classification": ("TokenClassifierOutput", ("logits",)),
    "question-answering": ("QuestionAnsweringModelOutput", ("start_logits", "end_logits")),
    "multiple-choice": ("MultipleChoiceModelOutput", ("logits",)),
    "pretraining": ("ElectraForPreTrainingOutput", ("logits",)),
}


class EncoderModel(PreTrainedModel):
    """An encoder (BERT, RoBERTa, DeBERTa, ModernBERT, ...) with the head of one task."""

    def __init__(self, inner: "_trustformers.Encoder", name_or_path: str, task: str):
        self._model = inner
        self._task = task
        self.name_or_path = name_or_path
        self.config, _ = _configs(inner.checkpoint)
        labels = inner.labels
        if labels and task in ("sequence-classification", "token-classification"):
            self.config["id2label"] = dict(enumerate(labels))
            self.config["label2id"] = {label: i for i, label in enumerate(labels)}

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        token_type_ids: Any = None,
        output_hidden_states: Optional[bool] = None,
        **kwargs: Any,
    ) -> ModelOutput:
        """Runs the encoder on ``[batch, seq]`` ids (``[batch, choices, seq]`` for multiple
        choice); returns transformers' output fields for the head."""
        _common_inputs(kwargs, ("input_ids", "attention_mask", "token_type_ids", "output_hidden_states"))
        if input_ids is None:
            raise InvalidArgument("input_ids is required")
        choices = None
        ndim = 3 if self._task == "multiple-choice" else 2

        def flat(value: Any, name: str) -> Optional[np.ndarray]:
            nonlocal choices
            if value is None:
                return None
            arr = as_ids(value, name, ndim)
            if ndim == 3:
                choices = arr.shape[1]
                arr = arr.reshape(-1, arr.shape[2])
            return arr

        ids = flat(input_ids, "input_ids")
        out = self._model.forward(
            ids,
            flat(attention_mask, "attention_mask"),
            flat(token_type_ids, "token_type_ids"),
            bool(output_hidden_states),
            choices,
        )
        name, keys = _ENCODER_OUTPUTS[self._task]
        fields = {k: out.get(k) for k in keys}
        if output_hidden_states:
            fields["hidden_states"] = tuple(out["hidden_states"])
        return _output(name, fields)


def _inspect(name: str) -> Tuple[str, str]:
    kind, _config, path = _trustformers.inspect(name)
    return kind, path


class AutoConfig:
    """Reads a checkpoint's configuration: config.json, or for a GGUF file the equivalent
    built from its metadata."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoConfig.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> PretrainedConfig:
        name = check_path(pretrained_model_name_or_path)
        for ignored in ("trust_remote_code", "local_files_only"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise InvalidArgument(f"AutoConfig.from_pretrained: unknown arguments {sorted(kwargs)}")
        _kind, config, _path = _trustformers.inspect(name)
        return PretrainedConfig(json.loads(config))


class _AutoEncoderClass:
    _task = ""

    def __init__(self) -> None:
        raise InvalidArgument(f"use {type(self).__name__}.from_pretrained(name_or_path)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> EncoderModel:
        """Loads an encoder checkpoint (directory, ``.gguf`` file, Hub id or known name)
        with this class's head. ``dtype`` (or ``torch_dtype``): ``"float32"`` (default),
        ``"float16"``, ``"bfloat16"``, or ``"q8"``: int8 weights and activations
        (onnxruntime's dynamic quantization; close to, not equal to, float32)."""
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, cls.__name__)
        return EncoderModel(_trustformers.Encoder.from_pretrained(name, cls._task, dtype), name, cls._task)


class AutoModelForMaskedLM(_AutoEncoderClass):
    """An encoder with its masked-language-model head."""

    _task = "masked-lm"


class AutoModelForSequenceClassification(_AutoEncoderClass):
    """An encoder with a sequence-classification head."""

    _task = "sequence-classification"


class AutoModelForTokenClassification(_AutoEncoderClass):
    """An encoder with a token-classification head."""

    _task = "token-classification"


class AutoModelForQuestionAnswering(_AutoEncoderClass):
    """An encoder with an extractive question-answering head."""

    _task = "question-answering"


class AutoModelForMultipleChoice(_AutoEncoderClass):
    """An encoder with a multiple-choice head."""

    _task = "multiple-choice"


class AutoModelForCausalLM:
    """Loads a causal language model: decoders (LLaMA, GPT-2, Gemma, Qwen, MoE, ...) and
    state-space models (Mamba), from safetensors or GGUF."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoModelForCausalLM.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> CausalLMModel:
        """A checkpoint directory, a ``.gguf`` file, a Hub repo id or a known model name.
        ``dtype`` (or ``torch_dtype``): ``None``/``"auto"`` (f32; GGUF weights stay
        quantized), ``"float32"`` (GGUF dequantized), ``"float16"``, ``"bfloat16"``."""
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, "AutoModelForCausalLM")
        return CausalLMModel(_trustformers.CausalLM.from_pretrained(name, dtype), name)


class Seq2SeqLMModel(PreTrainedModel):
    """An encoder-decoder with its language-model head (``AutoModelForSeq2SeqLM``: T5, BART,
    Marian, Pegasus, mBART): logits for decoder inputs, and ``generate``."""

    def __init__(self, inner: "_trustformers.Seq2SeqLM", name_or_path: str):
        self._model = inner
        self.name_or_path = name_or_path
        self.config, self.generation_config = _configs(inner.checkpoint)

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        decoder_input_ids: Any = None,
        **kwargs: Any,
    ) -> ModelOutput:
        """Encodes ``input_ids`` and decodes ``decoder_input_ids`` against them: ``logits``
        and ``encoder_last_hidden_state``."""
        for unsupported in ("output_hidden_states", "decoder_attention_mask", "encoder_outputs"):
            if kwargs.pop(unsupported, None):
                raise InvalidArgument(f"{unsupported} is not supported for encoder-decoders")
        _common_inputs(kwargs, ("input_ids", "attention_mask", "decoder_input_ids"))
        if input_ids is None or decoder_input_ids is None:
            raise InvalidArgument("input_ids and decoder_input_ids are required")
        ids = as_ids(input_ids, "input_ids")
        mask = None if attention_mask is None else as_ids(attention_mask, "attention_mask")
        out = self._model.forward(ids, as_ids(decoder_input_ids, "decoder_input_ids"), mask)
        return _output(
            "Seq2SeqLMOutput",
            {"logits": out["logits"], "encoder_last_hidden_state": out["encoder_last_hidden_state"]},
        )

    def can_generate(self) -> bool:
        return True

    def generate(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        generation_config: Optional[GenerationConfig] = None,
        streamer: Optional[BaseStreamer] = None,
        **kwargs: Any,
    ) -> Any:
        """transformers' ``generate()`` for an encoder-decoder: the decoder's ids, starting
        with the decoder start token, finished rows padded with ``pad_token_id``. A streamer
        is given the decoder start token, then each new one; stop strings (with
        ``tokenizer=...``) end a row, or in beam search a hypothesis."""
        if input_ids is None:
            raise InvalidArgument("input_ids is required")
        tokenizer = kwargs.pop("tokenizer", None)
        config = _merged_config(self.generation_config, generation_config, kwargs)
        ids = as_ids(input_ids, "input_ids")
        mask = np.ones_like(ids) if attention_mask is None else as_ids(attention_mask, "attention_mask")
        if mask.shape != ids.shape:
            raise InvalidArgument(f"attention_mask has shape {list(mask.shape)}, input_ids {list(ids.shape)}")
        settings = resolve(config)
        stop = _stop_strings(settings)
        rust, pad_id = _rust_settings(settings)
        if settings["max_new_tokens"] is None:
            # max_length counts the decoder start token, as in transformers.
            rust["max_length"] = int(settings["max_length"])
        start = settings["decoder_start_token_id"]
        start = self._model.decoder_start_token_id if start is None else int(start)
        sources = [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)]
        rows = len(sources) * settings["num_return_sequences"]
        on_token, stops = _token_hooks(stop, tokenizer, streamer, rows, settings["num_beams"] > 1)
        if streamer is not None:
            streamer.put(np.array([[start]], dtype=np.int64))
        try:
            results = self._model.generate(sources, json.dumps(rust), on_token, stops)
        finally:
            if streamer is not None:
                streamer.end()
        starts = [np.array([start], dtype=np.int64)] * len(results)
        return _generated(starts, results, pad_id, settings, "EncoderDecoder")


class AutoModelForSeq2SeqLM:
    """Loads an encoder-decoder with its language-model head (T5, BART, Marian, Pegasus,
    mBART; safetensors or llama.cpp's T5 GGUF)."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoModelForSeq2SeqLM.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> Seq2SeqLMModel:
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, "AutoModelForSeq2SeqLM")
        return Seq2SeqLMModel(_trustformers.Seq2SeqLM.from_pretrained(name, dtype), name)


class AutoModel:
    """Loads the base model of a checkpoint: an encoder's hidden states and pooler output,
    or a decoder's last hidden state."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoModel.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> PreTrainedModel:
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, "AutoModel")
        kind, _path = _inspect(name)
        if kind == "encoder":
            return EncoderModel(_trustformers.Encoder.from_pretrained(name, "base", dtype), name, "base")
        if kind == "causal-lm":
            return CausalLMModel(_trustformers.CausalLM.from_pretrained(name, dtype), name, base=True)
        if kind == "vision":
            from .vision import load_vision

            return load_vision(name, dtype, None)
        raise InvalidArgument(f"{name}: AutoModel does not load {kind} checkpoints yet")


__all__ = [
    "AutoConfig",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForSeq2SeqLM",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoModelForQuestionAnswering",
    "AutoModelForMultipleChoice",
    "PretrainedConfig",
    "ModelOutput",
    "PreTrainedModel",
    "CausalLMModel",
    "EncoderModel",
    "Seq2SeqLMModel",
]
