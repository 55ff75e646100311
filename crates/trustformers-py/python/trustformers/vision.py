"""Images: transformers' ``AutoImageProcessor``, ``AutoModelForImageClassification``,
``AutoModelForZeroShotImageClassification`` and the image and image-text models ``AutoModel``
loads (ViT, DeiT, CLIP, SigLIP), numpy in and out::

    processor = AutoImageProcessor.from_pretrained("google/vit-base-patch16-224")
    model = AutoModelForImageClassification.from_pretrained("google/vit-base-patch16-224")
    logits = model(**processor(images=["cat.jpg"], return_tensors="np")).logits
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Union

import numpy as np

from . import _trustformers
from ._utils import as_ids, check_path, to_numpy
from .exceptions import InvalidArgument
from .generation import GenerationConfig
from .modeling import CausalLMModel, ModelOutput, PretrainedConfig, PreTrainedModel, _configs, _load_kwargs, _output


def _image(item: Any) -> Any:
    """One image as the engine takes it: a path, a file's bytes, or ``(height, width, RGB
    bytes)`` from a PIL image or an ``[height, width, 3]`` (or ``[height, width]`` gray)
    uint8 array."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image
        item = np.asarray(item.convert("RGB"))
    arr = to_numpy(item, "images")
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InvalidArgument(
            "an image is a path, a file's bytes, a PIL image or a [height, width, 3] uint8 array; "
            f"got an array of shape {list(arr.shape)} and dtype {arr.dtype}"
        )
    return (int(arr.shape[0]), int(arr.shape[1]), np.ascontiguousarray(arr).tobytes())


class ImageProcessor:
    """A checkpoint's image processor (``preprocessor_config.json``): decoding, RGB
    conversion, resizing, cropping, rescaling and normalization as transformers' default
    processor does them."""

    def __init__(self, inner: "_trustformers.ImageProcessor", name_or_path: str):
        self._processor = inner
        self.name_or_path = name_or_path

    def __call__(self, images: Any = None, return_tensors: Optional[str] = None, **kwargs: Any) -> ModelOutput:
        """``{"pixel_values": [images, 3, height, width]}`` for one image or a list."""
        if images is None:
            images = kwargs.pop("image", None)
        if kwargs:
            raise InvalidArgument(f"unknown image processor arguments {sorted(kwargs)}")
        if images is None:
            raise InvalidArgument("images is required")
        if return_tensors not in (None, "np", "pt"):
            raise InvalidArgument(f"return_tensors is None, 'np' or 'pt', got {return_tensors!r}")
        many = isinstance(images, (list, tuple))
        items = [_image(i) for i in (images if many else [images])]
        pixels = self._processor.preprocess(items)
        if return_tensors == "pt":
            import torch

            pixels = torch.from_numpy(pixels)
        return _output("BatchFeature", {"pixel_values": pixels})

    preprocess = __call__

    def __repr__(self) -> str:
        return f"ImageProcessor(name_or_path={self.name_or_path!r})"


class AutoImageProcessor:
    """Loads a checkpoint's image processor."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoImageProcessor.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> ImageProcessor:
        name = check_path(pretrained_model_name_or_path)
        for ignored in ("use_fast", "trust_remote_code", "local_files_only"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise InvalidArgument(f"AutoImageProcessor.from_pretrained: unknown arguments {sorted(kwargs)}")
        return ImageProcessor(_trustformers.ImageProcessor.from_pretrained(name), name)


def _pixels(value: Any) -> np.ndarray:
    arr = to_numpy(value, "pixel_values")
    if arr.dtype.kind != "f":
        raise InvalidArgument(f"`pixel_values` must hold floats, got dtype {arr.dtype}")
    if arr.ndim != 4:
        raise InvalidArgument(f"`pixel_values` must have shape [batch, 3, height, width], got {list(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _no_extra(kwargs: Dict[str, Any], known: str) -> None:
    for ignored in ("return_dict", "interpolate_pos_encoding"):
        value = kwargs.pop(ignored, None)
        if ignored == "interpolate_pos_encoding" and value:
            raise InvalidArgument("interpolate_pos_encoding is not supported: images are resized to the model's size")
    if kwargs.pop("output_attentions", None):
        raise InvalidArgument("output_attentions is not supported")
    if "labels" in kwargs:
        raise InvalidArgument("labels: computing a loss is `trustformers train`'s job")
    if kwargs:
        raise InvalidArgument(f"unknown model inputs {sorted(kwargs)}; this model takes {known}")


class ImageModel(PreTrainedModel):
    """An image model (ViT, DeiT, a CLIP or SigLIP vision tower), with its classifier when
    loaded by ``AutoModelForImageClassification``."""

    def __init__(self, inner: "_trustformers.ImageModel", name_or_path: str, task: str):
        self._model = inner
        self._task = task
        self.name_or_path = name_or_path
        self.config = PretrainedConfig(json.loads(inner.checkpoint.config_json))

    def forward(self, pixel_values: Any = None, output_hidden_states: Optional[bool] = None, **kwargs: Any) -> ModelOutput:
        """transformers' ``ImageClassifierOutput`` (``logits``) or
        ``BaseModelOutputWithPooling`` (``last_hidden_state``, ``pooler_output``), with
        ``hidden_states`` when asked."""
        _no_extra(kwargs, "pixel_values, output_hidden_states")
        if pixel_values is None:
            raise InvalidArgument("pixel_values is required")
        out = self._model.forward(_pixels(pixel_values), bool(output_hidden_states))
        hidden = tuple(out["hidden_states"]) if output_hidden_states else None
        if self._task == "image-classification":
            return _output("ImageClassifierOutput", {"logits": out["logits"], "hidden_states": hidden})
        return _output(
            "BaseModelOutputWithPooling",
            {
                "last_hidden_state": out["last_hidden_state"],
                "pooler_output": out.get("pooler_output"),
                "hidden_states": hidden,
            },
        )


class ImageTextModel(PreTrainedModel):
    """An image-text model (CLIP, SigLIP): ``get_image_features``, ``get_text_features``,
    and both towers with their similarity logits."""

    def __init__(self, inner: "_trustformers.ImageTextModel", name_or_path: str):
        self._model = inner
        self.name_or_path = name_or_path
        self.config = PretrainedConfig(json.loads(inner.checkpoint.config_json))
        text = self.config.get("text_config") or {}
        self._vocab = int(text.get("vocab_size") or 0)

    def _ids(self, input_ids: Any, attention_mask: Any) -> Any:
        ids = as_ids(input_ids, "input_ids")
        if self._vocab and ((ids < 0) | (ids >= self._vocab)).any():
            raise InvalidArgument(f"`input_ids` holds ids outside the text tower's vocabulary of {self._vocab}")
        mask = None if attention_mask is None else as_ids(attention_mask, "attention_mask")
        return ids, mask

    def get_image_features(self, pixel_values: Any = None, **kwargs: Any) -> np.ndarray:
        """The projected image embeddings, ``[images, dim]``, not normalized."""
        _no_extra(kwargs, "pixel_values")
        if pixel_values is None:
            raise InvalidArgument("pixel_values is required")
        return self._model.image_features(_pixels(pixel_values))

    def get_text_features(self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> np.ndarray:
        """The projected text embeddings, ``[texts, dim]``, not normalized."""
        kwargs.pop("position_ids", None)
        _no_extra(kwargs, "input_ids, attention_mask")
        if input_ids is None:
            raise InvalidArgument("input_ids is required")
        ids, mask = self._ids(input_ids, attention_mask)
        return self._model.text_features(ids, mask)

    def forward(
        self, input_ids: Any = None, pixel_values: Any = None, attention_mask: Any = None, **kwargs: Any
    ) -> ModelOutput:
        """transformers' ``CLIPOutput`` / ``SiglipOutput``: ``logits_per_image``,
        ``logits_per_text``, ``text_embeds``, ``image_embeds``."""
        kwargs.pop("return_loss", None)
        _no_extra(kwargs, "input_ids, pixel_values, attention_mask")
        if input_ids is None or pixel_values is None:
            raise InvalidArgument("input_ids and pixel_values are both required")
        ids, mask = self._ids(input_ids, attention_mask)
        out = self._model.forward(ids, _pixels(pixel_values), mask)
        name = "SiglipOutput" if self.config.get("model_type") == "siglip" else "CLIPOutput"
        return _output(
            name,
            {
                "logits_per_image": out["logits_per_image"],
                "logits_per_text": out["logits_per_text"],
                "text_embeds": out["text_embeds"],
                "image_embeds": out["image_embeds"],
            },
        )


def load_vision(name: str, dtype: Optional[str], head: Optional[str]) -> PreTrainedModel:
    """An image-text model for image-text checkpoints, else an image model with `head`."""
    _kind, config, _path = _trustformers.inspect(name)
    if "text_config" in json.loads(config) and "vision_config" in json.loads(config):
        if head == "image-classification":
            raise InvalidArgument(f"{name}: an image-text checkpoint has no image classifier")
        return ImageTextModel(_trustformers.ImageTextModel.from_pretrained(name, dtype), name)
    return ImageModel(_trustformers.ImageModel.from_pretrained(name, head or "base", dtype), name, head or "base")


class AutoModelForImageClassification:
    """Loads an image classifier (ViT, DeiT)."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoModelForImageClassification.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> PreTrainedModel:
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, "AutoModelForImageClassification")
        return load_vision(name, dtype, "image-classification")


class AutoModelForZeroShotImageClassification:
    """Loads an image-text model (CLIP, SigLIP)."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoModelForZeroShotImageClassification.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> PreTrainedModel:
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, "AutoModelForZeroShotImageClassification")
        model = load_vision(name, dtype, None)
        if not isinstance(model, ImageTextModel):
            raise InvalidArgument(f"{name}: not an image-text checkpoint (CLIP, SigLIP)")
        return model


class VisionLanguageProcessor:
    """transformers' ``LlavaProcessor`` / ``Blip2Processor``: the tokenizer and image
    processor of a vision-language checkpoint, and where images go in a prompt. Calling it
    on ``images`` and ``text`` (a prompt holding one image token per image for LLaVA, a plain
    prompt for BLIP-2) gives ``input_ids``, ``attention_mask`` and ``pixel_values``."""

    def __init__(self, inner: "_trustformers.VisionLanguageProcessor", name_or_path: str):
        from .tokenization import AutoTokenizer

        self._processor = inner
        self.name_or_path = name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.image_token = inner.image_token
        self.image_token_id = inner.image_token_id
        self.image_seq_length = inner.image_seq_length

    def __call__(self, images: Any = None, text: Any = None, return_tensors: Optional[str] = None, **kwargs: Any) -> ModelOutput:
        for ignored in ("padding", "truncation"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise InvalidArgument(f"unknown processor arguments {sorted(kwargs)}")
        if text is None:
            raise InvalidArgument("text is required (a prompt; see apply_chat_template for chat messages)")
        if isinstance(text, (list, tuple)):
            if len(text) != 1:
                raise InvalidArgument("one prompt at a time: text is a string or a list of one")
            text = text[0]
        if not isinstance(text, str):
            raise InvalidArgument("text must be a string")
        given = [] if images is None else (list(images) if isinstance(images, (list, tuple)) else [images])
        ids = self._processor.encode_prompt(text, len(given))
        fields: Dict[str, Any] = {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
        }
        if given:
            fields["pixel_values"] = self._processor.preprocess([_image(i) for i in given])
        if return_tensors == "pt":
            import torch

            fields = {k: torch.from_numpy(v) for k, v in fields.items()}
        elif return_tensors not in (None, "np"):
            raise InvalidArgument(f"return_tensors is None, 'np' or 'pt', got {return_tensors!r}")
        return _output("BatchFeature", fields)

    def apply_chat_template(self, conversation: Any, add_generation_prompt: bool = False, tokenize: bool = False, **kwargs: Any) -> Any:
        """The chat template of the tokenizer (the prompt to call the processor on)."""
        return self.tokenizer.apply_chat_template(
            conversation, add_generation_prompt=add_generation_prompt, tokenize=tokenize, **kwargs
        )

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> List[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def __repr__(self) -> str:
        return f"VisionLanguageProcessor(name_or_path={self.name_or_path!r})"


class AutoProcessor:
    """Loads a checkpoint's processor: a vision-language checkpoint's (tokenizer, image
    processor and image tokens), an image checkpoint's image processor, else its tokenizer."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoProcessor.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> Any:
        name = check_path(pretrained_model_name_or_path)
        for ignored in ("use_fast", "trust_remote_code", "local_files_only"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise InvalidArgument(f"AutoProcessor.from_pretrained: unknown arguments {sorted(kwargs)}")
        kind, _config, _path = _trustformers.inspect(name)
        if kind == "multimodal":
            return VisionLanguageProcessor(_trustformers.VisionLanguageProcessor.from_pretrained(name), name)
        if kind == "vision":
            return AutoImageProcessor.from_pretrained(name)
        from .tokenization import AutoTokenizer

        return AutoTokenizer.from_pretrained(name)


class _WithImages:
    """A vision-language model bound to one prompt's images, as ``CausalLMModel.generate``
    calls its engine."""

    def __init__(self, model: "_trustformers.VisionLanguageModel", pixels: Optional[np.ndarray]):
        self._model = model
        self._pixels = pixels

    def generate(self, prompts: List[List[int]], config: str, on_token: Any = None, stops: Any = None) -> Any:
        return self._model.generate(prompts, self._pixels, config, on_token, stops)


class VisionLanguageModel(PreTrainedModel):
    """A vision-language model (``AutoModelForImageTextToText``: LLaVA, BLIP-2): logits of a
    prompt whose image tokens take the images' features, and ``generate``."""

    def __init__(self, inner: "_trustformers.VisionLanguageModel", name_or_path: str):
        self._vlm = inner
        self._base = False
        self.name_or_path = name_or_path
        self.config, self.generation_config = _configs(inner.checkpoint)

    def forward(self, input_ids: Any = None, pixel_values: Any = None, attention_mask: Any = None, **kwargs: Any) -> ModelOutput:
        """``logits`` ``[1, seq, vocab]`` for one prompt and its images."""
        _no_extra(kwargs, "input_ids, pixel_values, attention_mask")
        if input_ids is None:
            raise InvalidArgument("input_ids is required")
        ids = as_ids(input_ids, "input_ids")
        if attention_mask is not None and not (as_ids(attention_mask, "attention_mask") == 1).all():
            raise InvalidArgument("a prompt with images runs alone: attention_mask must be all ones")
        pixels = None if pixel_values is None else _pixels(pixel_values)
        return _output("CausalLMOutputWithPast", {"logits": self._vlm.forward(ids, pixels)})

    def generate(self, input_ids: Any = None, pixel_values: Any = None, attention_mask: Any = None,
                 generation_config: Optional[GenerationConfig] = None, **kwargs: Any) -> Any:
        """transformers' ``generate()`` for one prompt with its images: the ids, prompt
        included; every GenerationConfig field as a keyword, as for causal LMs."""
        pixels = None if pixel_values is None else _pixels(pixel_values)
        proxy = _Generating(_WithImages(self._vlm, pixels), self.generation_config)
        return CausalLMModel.generate(proxy, input_ids, attention_mask, generation_config, **kwargs)  # type: ignore[arg-type]


class _Generating:
    """What ``CausalLMModel.generate`` reads of a model."""

    def __init__(self, engine: _WithImages, generation_config: GenerationConfig):
        self._model = engine
        self._base = False
        self.generation_config = generation_config


class AutoModelForImageTextToText:
    """Loads a vision-language model (LLaVA, BLIP-2)."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoModelForImageTextToText.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> VisionLanguageModel:
        name = check_path(pretrained_model_name_or_path)
        dtype = _load_kwargs(kwargs, "AutoModelForImageTextToText")
        return VisionLanguageModel(_trustformers.VisionLanguageModel.from_pretrained(name, dtype), name)


AutoModelForVision2Seq = AutoModelForImageTextToText


__all__ = [
    "AutoProcessor",
    "AutoModelForImageTextToText",
    "AutoModelForVision2Seq",
    "VisionLanguageModel",
    "VisionLanguageProcessor",
    "AutoImageProcessor",
    "AutoModelForImageClassification",
    "AutoModelForZeroShotImageClassification",
    "ImageProcessor",
    "ImageModel",
    "ImageTextModel",
]
