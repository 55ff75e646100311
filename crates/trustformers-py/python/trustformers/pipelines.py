"""transformers' ``pipeline(task, model=...)``: every task the engine runs, returning the
structures transformers returns (a result for one input, a list for several)."""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _trustformers
from ._utils import check_path
from .exceptions import InvalidArgument
from .modeling import AutoModelForCausalLM, CausalLMModel, PreTrainedModel
from .tokenization import AutoTokenizer, PreTrainedTokenizer

_ENCODER_TASKS = {
    "feature-extraction",
    "fill-mask",
    "text-classification",
    "sentiment-analysis",
    "token-classification",
    "ner",
    "question-answering",
    "zero-shot-classification",
    "summarization",
    "translation",
    "text2text-generation",
    "image-classification",
    "zero-shot-image-classification",
    "image-feature-extraction",
    "image-text-to-text",
}

_IMAGE_TASKS = {"image-classification", "zero-shot-image-classification", "image-feature-extraction"}

_HEAD_TASKS = (
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
)


def _infer_task(name: str) -> str:
    kind, config, _path = _trustformers.inspect(name)
    if kind == "causal-lm":
        return "text-generation"
    if kind == "encoder-decoder":
        return "text2text-generation"
    if kind == "encoder":
        for arch in json.loads(config).get("architectures") or []:
            for suffix, task in _HEAD_TASKS:
                if arch.endswith(suffix):
                    return task
        return "feature-extraction"
    if kind == "vision":
        cfg = json.loads(config)
        if cfg.get("model_type") in ("clip", "siglip"):
            return "zero-shot-image-classification"
        if any(a.endswith("ForImageClassification") or a.endswith("WithTeacher") for a in cfg.get("architectures") or []):
            return "image-classification"
        return "image-feature-extraction"
    if kind == "multimodal":
        return "image-text-to-text"
    raise InvalidArgument(f"{name}: no pipeline task for a {kind} model; pass task=")


class Pipeline:
    """A loaded task pipeline; call it on one input or a list of them. Parameters given to
    ``pipeline(...)`` apply to every call, those given to a call to that call."""

    def __init__(self, task: str, model: str, defaults: Dict[str, Any]):
        self.task = task
        self.model = model
        self._defaults = defaults

    def _params(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        params = dict(self._defaults)
        params.update(kwargs)
        return params

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={self.model!r})"


class _RustPipeline(Pipeline):
    """The encoder and text-to-text tasks, run by the engine's pipelines."""

    def __init__(self, task: str, model: str, dtype: Optional[str], defaults: Dict[str, Any]):
        super().__init__(task, model, defaults)
        self._pipe = _trustformers.Pipeline(task, model, dtype)

    def _run(self, inputs: List[Any], params: Dict[str, Any]) -> List[Any]:
        try:
            payload = json.dumps(inputs)
            options = json.dumps(params)
        except TypeError as e:
            raise InvalidArgument(f"{self.task}: inputs and parameters must be strings, numbers, lists or dicts: {e}") from None
        return json.loads(self._pipe.run(payload, options))

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        task = self.task
        params = self._params(kwargs)
        if task == "question-answering":
            return self._question_answering(inputs, args, params)
        if task == "image-text-to-text":
            return self._image_text(inputs, args, params)
        if task in ("zero-shot-classification", "zero-shot-image-classification"):
            if args:
                params.setdefault("candidate_labels", args[0])
                args = args[1:]
            if "sequences" in params:
                inputs = params.pop("sequences")
        if task in _IMAGE_TASKS and inputs is None:
            inputs = params.pop("images", None)
        if args:
            raise InvalidArgument(f"{task}: unexpected positional arguments")
        if inputs is None:
            raise InvalidArgument(f"{task}: no inputs")
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        if not items:
            return []
        if task == "feature-extraction":
            return self._features(items, single, params)
        if task in ("text-classification", "sentiment-analysis"):
            return self._classify(inputs, items, single, params)
        if task in _IMAGE_TASKS:
            # Images are given as files (paths); the engine decodes them.
            try:
                items = [os.fspath(i) for i in items]
            except TypeError:
                raise InvalidArgument(f"{task}: inputs must be image file paths (str or os.PathLike)") from None
        results = self._run(items, params)
        if task in ("summarization", "translation", "text2text-generation") or task.startswith("translation_"):
            return [results[0]] if single else results
        return results[0] if single else results

    def _image_text(self, images: Any, args: Tuple[Any, ...], params: Dict[str, Any]) -> Any:
        """transformers' ``image-text-to-text``: ``pipe(images=..., text=...)`` with a prompt
        or chat messages whose ``{"type": "image"}`` parts take the images in order (or name
        them by ``url`` / ``path``)."""
        if images is None:
            images = params.pop("images", None)
        text = params.pop("text", None)
        if args:
            if text is not None or len(args) > 1:
                raise InvalidArgument("image-text-to-text: unexpected positional arguments")
            text = args[0]
        if text is None:
            raise InvalidArgument("image-text-to-text: no text (a prompt or chat messages)")
        given = [] if images is None else (list(images) if isinstance(images, (list, tuple)) else [images])
        try:
            paths = [os.fspath(i) for i in given]
        except TypeError:
            raise InvalidArgument("image-text-to-text: images must be file paths (str or os.PathLike)") from None
        if isinstance(text, str):
            result = self._run([{"images": paths, "text": text}], params)[0]
            return [{"input_text": text, "generated_text": result["generated_text"]}]
        if not isinstance(text, (list, tuple)) or not all(isinstance(m, dict) for m in text):
            raise InvalidArgument("image-text-to-text: text is a prompt or a list of chat messages")
        # The images go into the messages' image parts, as transformers' pipeline puts them.
        messages = copy.deepcopy(list(text))
        queue = list(paths)
        for message in messages:
            content = message.get("content")
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and part.get("type") == "image":
                    named = part.get("url") or part.get("path") or part.get("image")
                    if named is None and queue:
                        part["url"] = queue.pop(0)
                    elif named is not None and not paths:
                        given.append(named)
        if not paths:
            paths = [os.fspath(p) for p in given]
        result = self._run([{"images": paths, "text": messages}], params)[0]
        return [{"input_text": messages, "generated_text": result["generated_text"]}]

    def _features(self, items: List[Any], single: bool, params: Dict[str, Any]) -> Any:
        return_tensors = bool(params.pop("return_tensors", False))
        truncation = bool(params.pop("truncation", False))
        tokenize_kwargs = params.pop("tokenize_kwargs", None) or {}
        truncation = bool(tokenize_kwargs.pop("truncation", truncation))
        batch_size = int(params.pop("batch_size", 1))
        if tokenize_kwargs or params:
            raise InvalidArgument(f"feature-extraction: unknown parameters {sorted({**params, **tokenize_kwargs})}")
        if not all(isinstance(t, str) for t in items):
            raise InvalidArgument("feature-extraction: inputs must be strings")
        arrays = self._pipe.features(items, truncation, batch_size)
        out = [a[None, :, :] if return_tensors else [a.tolist()] for a in arrays]
        return out[0] if single else out

    def _classify(self, inputs: Any, items: List[Any], single: bool, params: Dict[str, Any]) -> Any:
        # transformers' legacy output: with no top_k, one dict per input (and a list around
        # the dict for a single string).
        legacy = "top_k" not in params
        pairs = []
        for item in items:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append({"text": item[0], "text_pair": item[1]})
            else:
                pairs.append(item)
        results = self._run(pairs, params)
        if legacy:
            results = [r[0] for r in results]
            if single:
                return [results[0]] if isinstance(inputs, str) else results[0]
            return results
        return results[0] if single else results

    def _question_answering(self, inputs: Any, args: Any, params: Dict[str, Any]) -> Any:
        question = params.pop("question", None)
        context = params.pop("context", None)
        if args:
            raise InvalidArgument("question-answering: pass question= and context=, or dicts")
        if inputs is None:
            if question is None or context is None:
                raise InvalidArgument("question-answering needs question= and context=")
            if isinstance(question, str) and isinstance(context, str):
                inputs = {"question": question, "context": context}
            else:
                questions = [question] * len(context) if isinstance(question, str) else list(question)
                contexts = [context] * len(questions) if isinstance(context, str) else list(context)
                if len(questions) != len(contexts):
                    raise InvalidArgument("question-answering: as many questions as contexts")
                inputs = [{"question": q, "context": c} for q, c in zip(questions, contexts)]
        single = isinstance(inputs, dict)
        items = [inputs] if single else list(inputs)
        results = self._run(items, params)
        top_k = params.get("top_k", 1)
        shaped = [r[0] if top_k == 1 and len(r) == 1 else r for r in results]
        return shaped[0] if single else shaped


class TextGenerationPipeline(Pipeline):
    """``pipeline("text-generation")``: a prompt (or a chat, a list of ``{"role",
    "content"}`` messages) in, ``[{"generated_text": ...}]`` out, one dict per returned
    sequence; a chat comes back with the assistant's reply appended."""

    def __init__(
        self,
        model: CausalLMModel,
        tokenizer: PreTrainedTokenizer,
        defaults: Dict[str, Any],
    ):
        super().__init__("text-generation", model.name_or_path, defaults)
        self.model_object = model
        self.tokenizer = tokenizer

    def __call__(self, text_inputs: Any, **kwargs: Any) -> Any:
        params = self._params(kwargs)
        return_full_text = params.pop("return_full_text", None)
        return_text = params.pop("return_text", None)
        return_tensors = params.pop("return_tensors", None)
        add_special_tokens = params.pop("add_special_tokens", None)
        skip_special_tokens = params.pop("skip_special_tokens", True)
        params.pop("clean_up_tokenization_spaces", None)
        params.pop("batch_size", None)
        continue_final_message = params.pop("continue_final_message", None)
        tools = params.pop("tools", None)
        documents = params.pop("documents", None)
        stop_sequence = params.pop("stop_sequence", None)
        if stop_sequence is not None:
            params["stop_strings"] = [stop_sequence] if isinstance(stop_sequence, str) else list(stop_sequence)
        for unsupported in ("prefix", "handle_long_generation", "assistant_model"):
            if params.get(unsupported) is not None:
                raise InvalidArgument(f"text-generation: `{unsupported}` is not supported")
        if return_tensors:
            kind = "tensors"
        elif return_full_text is False or return_text is False:
            kind = "new_text"
        else:
            kind = "full_text"
        single_chat = _is_chat(text_inputs)
        single = isinstance(text_inputs, str) or single_chat
        items = [text_inputs] if single else list(text_inputs)
        generation = self._generation(params)
        results = []
        for item in items:
            results.append(
                self._one(item, generation, kind, add_special_tokens, skip_special_tokens, continue_final_message, tools, documents)
            )
        return results[0] if single else results

    def _generation(self, params: Dict[str, Any]) -> Dict[str, Any]:
        model_config = self.model_object.generation_config
        set_fields = {**model_config.to_dict(), **params}
        if "generation_config" in params and params["generation_config"] is not None:
            set_fields.update(params["generation_config"].to_dict())
        # The pipeline's defaults for what neither the call nor the model sets.
        out = dict(params)
        if "max_new_tokens" not in set_fields and "max_length" not in set_fields:
            out["max_new_tokens"] = 256
        if "pad_token_id" not in set_fields and self.tokenizer.pad_token_id is not None:
            out["pad_token_id"] = self.tokenizer.pad_token_id
        return out

    def _one(
        self,
        item: Any,
        generation: Dict[str, Any],
        kind: str,
        add_special_tokens: Optional[bool],
        skip_special_tokens: bool,
        continue_final_message: Optional[bool],
        tools: Any,
        documents: Any,
    ) -> List[Dict[str, Any]]:
        tok = self.tokenizer
        if _is_chat(item):
            messages = list(item)
            if continue_final_message is None:
                continue_final_message = messages[-1].get("role") == "assistant"
            if continue_final_message:
                raise InvalidArgument("text-generation: continuing a final assistant message is not supported")
            ids = tok.apply_chat_template(
                messages, tools=tools, documents=documents, add_generation_prompt=True, return_dict=False
            )
        elif isinstance(item, str):
            ids = tok(item, add_special_tokens=True if add_special_tokens is None else add_special_tokens)["input_ids"]
        else:
            raise InvalidArgument("text-generation: an input is a string or a chat (a list of {'role', 'content'} dicts)")
        prompt = np.asarray([ids], dtype=np.int64)
        sequences = self.model_object.generate(prompt, tokenizer=tok, **generation)
        out = []
        for seq in sequences:
            if kind == "tensors":
                out.append({"generated_token_ids": seq.tolist()})
                continue
            text = tok.decode(seq[len(ids) :].tolist(), skip_special_tokens=skip_special_tokens)
            if kind == "full_text":
                if _is_chat(item):
                    out.append({"generated_text": list(item) + [{"role": "assistant", "content": text}]})
                else:
                    out.append({"generated_text": item + text})
            else:
                out.append({"generated_text": text})
        return out


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(m, dict) and "role" in m for m in value)
    )


def pipeline(
    task: Optional[str] = None,
    model: Union[str, "os.PathLike[str]", PreTrainedModel, None] = None,
    tokenizer: Union[str, PreTrainedTokenizer, None] = None,
    dtype: Any = None,
    torch_dtype: Any = None,
    device: Any = None,
    device_map: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """Builds the pipeline for ``task`` (transformers' names: ``text-generation``,
    ``feature-extraction``, ``fill-mask``, ``text-classification`` / ``sentiment-analysis``,
    ``token-classification`` / ``ner``, ``question-answering``,
    ``zero-shot-classification``, ``summarization``, ``translation`` /
    ``translation_xx_to_yy``, ``text2text-generation``, ``image-classification``,
    ``zero-shot-image-classification``, ``image-feature-extraction``; the image tasks take
    image file paths). ``model`` is a checkpoint directory,
    a ``.gguf`` file, a Hub repo id, a known model name or a loaded model; text generation
    without one uses the default model. Other keyword arguments are the task's parameters
    (``batch_size``, ``top_k``, generation settings, ...), applied to every call."""
    for name, value in (("device", device), ("device_map", device_map)):
        if value not in (None, "cpu", -1, "auto"):
            raise InvalidArgument(f"{name}={value!r}: trustformers runs on the CPU")
    for ignored in ("trust_remote_code", "use_fast", "framework", "model_kwargs"):
        kwargs.pop(ignored, None)
    if isinstance(model, PreTrainedModel):
        loaded: Optional[PreTrainedModel] = model
        name = model.name_or_path
    else:
        loaded = None
        name = None if model is None else check_path(model)
    if task is None:
        if name is None:
            raise InvalidArgument("pipeline() needs a task or a model")
        task = _infer_task(name)
    from .modeling import _dtype_name

    dtype_name = _dtype_name(dtype if dtype is not None else torch_dtype)
    if task == "text-generation":
        if name is None:
            name = _trustformers.DEFAULT_MODEL
        if loaded is None:
            loaded = AutoModelForCausalLM.from_pretrained(name, dtype=dtype_name)
        if not isinstance(loaded, CausalLMModel) or not loaded.can_generate():
            raise InvalidArgument("text-generation needs a causal language model (AutoModelForCausalLM)")
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(name)
        elif not isinstance(tokenizer, PreTrainedTokenizer):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        return TextGenerationPipeline(loaded, tokenizer, kwargs)
    if task in _ENCODER_TASKS or task.startswith("translation_"):
        if name is None:
            raise InvalidArgument(f"{task}: pass model= (a checkpoint directory, Hub id or known name)")
        if tokenizer is not None and not (isinstance(tokenizer, str) and tokenizer == name):
            raise InvalidArgument(f"{task}: the tokenizer is the checkpoint's own; do not pass another")
        return _RustPipeline(task, name, dtype_name, kwargs)
    raise InvalidArgument(
        f"unknown task {task!r}; known tasks: text-generation, " + ", ".join(sorted(_ENCODER_TASKS))
    )


__all__ = ["pipeline", "Pipeline", "TextGenerationPipeline"]
