"""Tokenizers with transformers' API: ``AutoTokenizer.from_pretrained(name)``, calling the
tokenizer on texts, ``decode``, ``apply_chat_template`` and the special-token attributes."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _trustformers
from ._utils import as_id_rows, check_path, to_tensors
from .exceptions import InvalidArgument

TextOrTexts = Union[str, Sequence[str]]

def _token_list(value: Any, name: str, single: bool = False) -> List[str]:
    """Tokens to add, as strings: a string, a transformers ``AddedToken`` (its ``content``;
    ``lstrip`` / ``rstrip`` are not supported), or (unless ``single``) a list of them."""

    def one(v: Any) -> str:
        content = v if isinstance(v, str) else getattr(v, "content", None)
        if not isinstance(content, str) or not content:
            raise InvalidArgument(f"`{name}` holds {v!r}: a token is a non-empty string or an AddedToken")
        if not isinstance(v, str) and (getattr(v, "lstrip", False) is True or getattr(v, "rstrip", False) is True):
            raise InvalidArgument(f"`{name}`: AddedToken's lstrip/rstrip are not supported")
        return content

    if single or isinstance(value, str) or hasattr(value, "content"):
        return [one(value)]
    if not isinstance(value, (list, tuple)):
        raise InvalidArgument(f"`{name}` must be a token or a list of tokens, got {value!r}")
    return [one(v) for v in value]


_SPECIAL = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
)

# Tokenizer classes whose `model_input_names` include token_type_ids (transformers' default
# for PreTrainedTokenizerBase; GPT-2, LLaMA, RoBERTa, T5, ... leave them out).
_WITH_TOKEN_TYPES = {
    "BertTokenizer",
    "AlbertTokenizer",
    "ElectraTokenizer",
    "DebertaTokenizer",
    "DebertaV2Tokenizer",
    "MobileBertTokenizer",
    "FunnelTokenizer",
    "ConvBertTokenizer",
    "LayoutLMTokenizer",
    "SqueezeBertTokenizer",
    "XLNetTokenizer",
    "PreTrainedTokenizerFast",
}


class BatchEncoding(dict):
    """The tokenizer's output: a dict (``input_ids``, ``attention_mask``, ...) whose keys
    are also attributes, as transformers' ``BatchEncoding``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    _word_ids: List[List[Optional[int]]] = []

    def word_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """The word each token of row `batch_index` comes from (None for special tokens and
        padding), as transformers' `BatchEncoding.word_ids`."""
        try:
            return list(self._word_ids[batch_index])
        except IndexError:
            raise InvalidArgument(f"batch_index {batch_index} is out of range") from None

    def to(self, device: Any) -> "BatchEncoding":
        """Returns itself (everything runs on the CPU); other devices are refused."""
        if str(device) != "cpu":
            raise InvalidArgument(f"trustformers runs on the CPU, not {device!r}")
        return self


def _padding(padding: Union[bool, str, None]) -> str:
    if padding is True:
        return "longest"
    if padding is False or padding is None:
        return "do_not_pad"
    if padding in ("longest", "max_length", "do_not_pad"):
        return padding
    raise InvalidArgument(
        f"padding is True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}"
    )


def _truncation(truncation: Union[bool, str, None], max_length: Optional[int]) -> Optional[str]:
    if truncation is None:
        # transformers: max_length without truncation means "longest_first".
        return "longest_first" if max_length is not None else None
    if truncation is True:
        return "longest_first"
    if truncation is False:
        return None
    if truncation in ("longest_first", "only_first", "only_second", "do_not_truncate"):
        return truncation
    raise InvalidArgument(
        "truncation is True, False, 'longest_first', 'only_first', 'only_second' or "
        f"'do_not_truncate', got {truncation!r}"
    )


def _strings(value: Any, name: str) -> List[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidArgument(f"{name} must be a string or a list of strings, got {type(value).__name__}")


def _special_token(name: str, doc: str) -> property:
    def get(self: "PreTrainedTokenizer") -> Optional[str]:
        return self._special(name)

    def set(self: "PreTrainedTokenizer", token: Optional[str]) -> None:
        self._set_special(name, token)

    return property(get, set, doc=doc)


def _special_token_id(name: str) -> property:
    def get(self: "PreTrainedTokenizer") -> Optional[int]:
        return self._special_id(name)

    return property(get, doc=f"The id of `{name}` (None when the tokenizer has none).")


class PreTrainedTokenizer:
    """A loaded tokenizer (transformers' ``PreTrainedTokenizerFast`` surface)."""

    def __init__(self, inner: "_trustformers.Tokenizer", name_or_path: str, path: str):
        self._tok = inner
        self.name_or_path = name_or_path
        self._path = path
        self._input_names = self._model_input_names(path)

    def _model_input_names(self, path: str) -> List[str]:
        config = os.path.join(path, "tokenizer_config.json")
        if os.path.isdir(path) and os.path.isfile(config):
            with open(config, encoding="utf-8") as f:
                try:
                    names = json.load(f).get("model_input_names")
                except ValueError:
                    names = None
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
        cls = (self._tok.tokenizer_class or "").removesuffix("Fast")
        cls = cls + "Fast" if cls == "PreTrainedTokenizer" else cls
        special = dict(self._tok.special_tokens())
        with_types = cls in _WITH_TOKEN_TYPES or (
            not cls and "cls_token" in special and "sep_token" in special
        )
        names = ["input_ids", "attention_mask"]
        if with_types:
            names.insert(1, "token_type_ids")
        return names

    @property
    def model_input_names(self) -> List[str]:
        """What calling the tokenizer returns by default."""
        return list(self._input_names)

    # -- encoding ------------------------------------------------------------------------

    def __call__(
        self,
        text: Optional[TextOrTexts] = None,
        text_pair: Optional[TextOrTexts] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        stride: int = 0,
        pad_to_multiple_of: Optional[int] = None,
        return_tensors: Optional[str] = None,
        return_token_type_ids: Optional[bool] = None,
        return_attention_mask: Optional[bool] = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        padding_side: Optional[str] = None,
        is_split_into_words: bool = False,
    ) -> BatchEncoding:
        """Tokenizes one text (or pair) or a batch, as transformers' ``tokenizer(...)``;
        with ``is_split_into_words``, one list of words or a batch of them."""
        if text is None:
            raise InvalidArgument("text is required")
        words = None
        if is_split_into_words:
            if text_pair is not None:
                raise InvalidArgument("text_pair is not supported with is_split_into_words")
            batched = isinstance(text, (list, tuple)) and bool(text) and all(isinstance(t, (list, tuple)) for t in text)
            rows = list(text) if batched else [text]
            words = [_strings(list(r), "text") for r in rows]
            texts: List[str] = []
        else:
            batched = not isinstance(text, str)
            texts = _strings(text, "text")
        pairs = None
        if text_pair is not None:
            pairs = _strings(text_pair, "text_pair")
            if isinstance(text_pair, str) == batched:
                raise InvalidArgument("text and text_pair must both be strings or both lists")
        for name, value in (("max_length", max_length), ("pad_to_multiple_of", pad_to_multiple_of)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise InvalidArgument(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(stride, int) or stride < 0:
            raise InvalidArgument(f"stride must be a non-negative integer, got {stride!r}")
        tok = self._tok
        if padding_side is not None and padding_side != tok.padding_side:
            tok = self._with_side(padding_side)
        out = tok.encode_batch(
            texts,
            pairs,
            add_special_tokens=add_special_tokens,
            padding=_padding(padding),
            truncation=_truncation(truncation, max_length),
            max_length=max_length,
            stride=stride,
            pad_to_multiple_of=pad_to_multiple_of,
            return_overflowing_tokens=return_overflowing_tokens,
            words=words,
        )
        keep = ["input_ids"]
        if return_token_type_ids or (
            return_token_type_ids is None and "token_type_ids" in self._input_names
        ):
            keep.append("token_type_ids")
        if return_attention_mask or (
            return_attention_mask is None and "attention_mask" in self._input_names
        ):
            keep.append("attention_mask")
        if return_special_tokens_mask:
            keep.append("special_tokens_mask")
        if return_offsets_mapping:
            keep.append("offset_mapping")
        if return_overflowing_tokens:
            keep.append("overflow_to_sample_mapping")
        enc = BatchEncoding((k, out[k]) for k in keep)
        if return_length:
            enc["length"] = [len(ids) for ids in out["input_ids"]]
        if not batched and not return_overflowing_tokens:
            enc = BatchEncoding((k, v[0]) for k, v in enc.items())
        if return_tensors is not None:
            enc = BatchEncoding(to_tensors(enc, return_tensors, batched or return_overflowing_tokens))
        enc._word_ids = out["word_ids"]
        return enc

    def _with_side(self, side: str) -> "_trustformers.Tokenizer":
        other = self._tok.copy()
        other.padding_side = side
        return other

    def encode(
        self,
        text: str,
        text_pair: Optional[str] = None,
        add_special_tokens: bool = True,
        padding: Union[bool, str] = False,
        truncation: Union[bool, str, None] = None,
        max_length: Optional[int] = None,
        return_tensors: Optional[str] = None,
    ) -> Any:
        """The ids of one text (or pair): a list, or a ``[1, seq]`` array with
        ``return_tensors``."""
        if not isinstance(text, str):
            raise InvalidArgument(f"encode takes one string, got {type(text).__name__}")
        enc = self(
            text,
            text_pair,
            add_special_tokens=add_special_tokens,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
        )
        return enc["input_ids"]

    def tokenize(self, text: str) -> List[str]:
        """The tokens of ``text``, without special tokens."""
        if not isinstance(text, str):
            raise InvalidArgument(f"tokenize takes a string, got {type(text).__name__}")
        return self._tok.tokenize(text)

    # -- decoding ------------------------------------------------------------------------

    def decode(self, token_ids: Any, skip_special_tokens: bool = False) -> str:
        """The text of one sequence of ids (a list, an array or a tensor)."""
        rows = as_id_rows(token_ids, "token_ids", allow_scalar=True)
        if len(rows) != 1:
            raise InvalidArgument("decode takes one sequence; use batch_decode for several")
        return self._tok.decode(rows[0], skip_special_tokens)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False) -> List[str]:
        """The text of each sequence of ids."""
        return self._tok.batch_decode(as_id_rows(sequences, "sequences"), skip_special_tokens)

    def convert_ids_to_tokens(
        self, ids: Union[int, Iterable[int]], skip_special_tokens: bool = False
    ) -> Union[Optional[str], List[Optional[str]]]:
        """The token of an id, or of each id."""
        if isinstance(ids, (int, np.integer)):
            return self._tok.convert_ids_to_tokens([int(ids)])[0]
        rows = as_id_rows(ids, "ids")
        flat = rows[0] if len(rows) == 1 else [i for r in rows for i in r]
        special = set(self._tok.all_special_ids) if skip_special_tokens else set()
        return self._tok.convert_ids_to_tokens([i for i in flat if i not in special])

    def convert_tokens_to_ids(self, tokens: Union[str, Sequence[str]]) -> Union[int, List[int]]:
        """The id of a token, or of each token (the unknown token's id when missing)."""
        unk = self.unk_token_id
        if isinstance(tokens, str):
            found = self._tok.convert_tokens_to_ids([tokens])[0]
            return unk if found is None else found
        found = self._tok.convert_tokens_to_ids(list(tokens))
        return [unk if f is None else f for f in found]

    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Tokens back to text."""
        return self._tok.convert_tokens_to_string(list(tokens))

    # -- chat ----------------------------------------------------------------------------

    def apply_chat_template(
        self,
        conversation: Any,
        tools: Optional[List[Dict[str, Any]]] = None,
        documents: Optional[List[Dict[str, str]]] = None,
        chat_template: Optional[str] = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        tokenize: bool = True,
        padding: Union[bool, str] = False,
        truncation: bool = False,
        max_length: Optional[int] = None,
        return_tensors: Optional[str] = None,
        return_dict: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Renders a conversation (a list of ``{"role", "content"}`` dicts, or a list of
        conversations) through the tokenizer's chat template; with ``tokenize`` the ids."""
        if chat_template is not None:
            raise InvalidArgument("chat_template: only the tokenizer's own template is supported")
        if continue_final_message:
            raise InvalidArgument("continue_final_message is not supported")
        batched = isinstance(conversation, (list, tuple)) and bool(conversation) and all(
            isinstance(c, (list, tuple)) for c in conversation
        )
        chats = list(conversation) if batched else [conversation]
        extra = dict(kwargs)
        if documents is not None:
            extra["documents"] = documents
        try:
            tools_json = None if tools is None else json.dumps(tools)
            extra_json = json.dumps(extra) if extra else None
            rendered = [
                self._tok.apply_chat_template(
                    json.dumps(list(chat)), add_generation_prompt, tools_json, extra_json
                )
                for chat in chats
            ]
        except TypeError as e:
            raise InvalidArgument(f"the conversation cannot be written as JSON: {e}") from None
        if not tokenize:
            return rendered if batched else rendered[0]
        enc = self(
            rendered if batched else rendered[0],
            add_special_tokens=False,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            return_tensors=return_tensors,
        )
        return enc if return_dict else enc["input_ids"]

    @property
    def chat_template(self) -> Optional[str]:
        return self._tok.chat_template

    # -- attributes ----------------------------------------------------------------------

    def _special(self, name: str) -> Optional[str]:
        return dict(self._tok.special_tokens()).get(name)

    def _special_id(self, name: str) -> Optional[int]:
        token = self._special(name)
        if token is None:
            return None
        return self._tok.convert_tokens_to_ids([token])[0]

    def _set_special(self, name: str, token: Optional[str]) -> None:
        self._tok.set_special_token(name, token)

    bos_token = _special_token("bos_token", "The beginning-of-sequence token.")
    eos_token = _special_token("eos_token", "The end-of-sequence token.")
    unk_token = _special_token("unk_token", "The unknown token.")
    pad_token = _special_token("pad_token", "The padding token (settable, e.g. to eos_token).")
    sep_token = _special_token("sep_token", "The separator token.")
    cls_token = _special_token("cls_token", "The classifier token.")
    mask_token = _special_token("mask_token", "The mask token.")
    bos_token_id = _special_token_id("bos_token")
    eos_token_id = _special_token_id("eos_token")
    unk_token_id = _special_token_id("unk_token")
    pad_token_id = _special_token_id("pad_token")
    sep_token_id = _special_token_id("sep_token")
    cls_token_id = _special_token_id("cls_token")
    mask_token_id = _special_token_id("mask_token")

    def add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int:
        """Adds tokens to the vocabulary after its last id, as transformers' ``add_tokens``
        does: each is matched whole before the model splits the text (``special_tokens``:
        also skipped by ``skip_special_tokens``). Returns how many were new. The model's
        embeddings do not grow with the vocabulary (no ``resize_token_embeddings``): a
        model refuses ids beyond its own vocabulary."""
        tokens = _token_list(new_tokens, "new_tokens")
        return self._tok.add_tokens(tokens, bool(special_tokens)) if tokens else 0

    def add_special_tokens(
        self, special_tokens_dict: Dict[str, Any], replace_additional_special_tokens: bool = True
    ) -> int:
        """Adds special tokens and names them (transformers' ``add_special_tokens``):
        ``{"pad_token": "[PAD]", "additional_special_tokens": [...]}``; the additional ones
        replace the list (or join it with ``replace_additional_special_tokens=False``).
        Returns how many tokens were new to the vocabulary."""
        if not isinstance(special_tokens_dict, dict):
            raise InvalidArgument("special_tokens_dict must be a dict of special token names to tokens")
        added = 0
        for key, value in special_tokens_dict.items():
            if key in _SPECIAL:
                (token,) = _token_list(value, key, single=True)
                added += self._tok.add_tokens([token], True)
                self._set_special(key, token)
            elif key in ("additional_special_tokens", "extra_special_tokens"):
                tokens = _token_list(value, key)
                added += self._tok.add_tokens(tokens, True, bool(replace_additional_special_tokens))
            else:
                raise InvalidArgument(
                    f"{key!r} is not a special token name (one of {', '.join(_SPECIAL)}, additional_special_tokens)"
                )
        return added

    @property
    def special_tokens_map(self) -> Dict[str, Any]:
        """The named special tokens (and ``additional_special_tokens``)."""
        out: Dict[str, Any] = dict(self._tok.special_tokens())
        if self._tok.additional_special_tokens:
            out["additional_special_tokens"] = list(self._tok.additional_special_tokens)
        return out

    @property
    def all_special_ids(self) -> List[int]:
        return list(self._tok.all_special_ids)

    @property
    def all_special_tokens(self) -> List[str]:
        return [t for t in self._tok.convert_ids_to_tokens(self.all_special_ids) if t is not None]

    @property
    def model_max_length(self) -> int:
        # transformers' VERY_LARGE_INTEGER when the config names none.
        m = self._tok.model_max_length
        return int(1e30) if m is None else m

    @property
    def padding_side(self) -> str:
        return self._tok.padding_side

    @padding_side.setter
    def padding_side(self, side: str) -> None:
        self._tok.padding_side = side

    @property
    def truncation_side(self) -> str:
        return self._tok.truncation_side

    @truncation_side.setter
    def truncation_side(self, side: str) -> None:
        self._tok.truncation_side = side

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    def get_vocab(self) -> Dict[str, int]:
        """token -> id, added tokens included."""
        return self._tok.get_vocab()

    def __len__(self) -> int:
        return len(self._tok)

    def __repr__(self) -> str:
        return (
            f"PreTrainedTokenizer(name_or_path={self.name_or_path!r}, vocab_size={len(self)}, "
            f"padding_side={self.padding_side!r}, special_tokens={self.special_tokens_map})"
        )


class AutoTokenizer:
    """Loads the tokenizer of a checkpoint: ``AutoTokenizer.from_pretrained(name)``."""

    def __init__(self) -> None:
        raise InvalidArgument("use AutoTokenizer.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Union[str, "os.PathLike[str]"], **kwargs: Any) -> PreTrainedTokenizer:
        """A directory with tokenizer files, a ``.gguf`` file, a Hub repo id, or a known
        model name (the ``trustformers`` CLI's resolution). ``padding_side`` and
        ``truncation_side`` may be given; ``use_fast``, ``trust_remote_code`` and
        ``local_files_only`` are accepted and change nothing."""
        name = check_path(pretrained_model_name_or_path)
        padding_side = kwargs.pop("padding_side", None)
        truncation_side = kwargs.pop("truncation_side", None)
        for ignored in ("use_fast", "trust_remote_code", "local_files_only", "revision"):
            value = kwargs.pop(ignored, None)
            if ignored == "revision" and value not in (None, "main"):
                raise InvalidArgument("revision: only the default revision is supported")
        if kwargs:
            raise InvalidArgument(f"AutoTokenizer.from_pretrained: unknown arguments {sorted(kwargs)}")
        path = _trustformers.resolve(name)
        tok = PreTrainedTokenizer(_trustformers.Tokenizer.from_pretrained(path), name, path)
        if padding_side is not None:
            tok.padding_side = padding_side
        if truncation_side is not None:
            tok.truncation_side = truncation_side
        return tok


__all__ = ["AutoTokenizer", "PreTrainedTokenizer", "BatchEncoding"]
