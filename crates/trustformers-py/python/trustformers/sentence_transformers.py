"""sentence-transformers' ``SentenceTransformer``: sentence embeddings with the
checkpoint's own pooling and normalisation modules."""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from . import _trustformers
from ._utils import check_path, to_numpy
from .exceptions import InvalidArgument


class SentenceTransformer:
    """``SentenceTransformer(name_or_path)``: a sentence-transformers checkpoint directory
    (``modules.json``, pooling config), a BERT-family checkpoint (mean pooling), a GGUF
    embedding model, a Hub repo id or a known name (``all-MiniLM-L6-v2``). ``dtype``:
    ``None`` (float32), ``"float16"``, ``"bfloat16"``, or ``"q8"``: int8 weights and
    activations, as onnxruntime's dynamically quantized models run (close to, not equal
    to, float32)."""

    def __init__(
        self,
        model_name_or_path: Union[str, "os.PathLike[str]", None] = None,
        device: Optional[str] = None,
        dtype: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        if model_name_or_path is None:
            raise InvalidArgument("SentenceTransformer needs a model name or path")
        if device not in (None, "cpu"):
            raise InvalidArgument(f"device={device!r}: trustformers runs on the CPU")
        for ignored in ("trust_remote_code", "cache_folder", "local_files_only"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise InvalidArgument(f"SentenceTransformer: unknown arguments {sorted(kwargs)}")
        name = check_path(model_name_or_path)
        self.model_name_or_path = name
        self._model = _trustformers.SentenceTransformer(name, dtype)

    @property
    def max_seq_length(self) -> int:
        """Inputs are truncated to this many tokens."""
        return self._model.max_seq_length

    def get_sentence_embedding_dimension(self) -> int:
        """The embedding size."""
        return self._model.dimension

    def encode(
        self,
        sentences: Union[str, Sequence[str]],
        batch_size: int = 32,
        show_progress_bar: Optional[bool] = None,
        output_value: str = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: Optional[str] = None,
        normalize_embeddings: bool = False,
        **kwargs: Any,
    ) -> Any:
        """The embeddings of ``sentences``: a ``[n, dim]`` float32 array (``[dim]`` for one
        string); ``convert_to_tensor`` gives a torch tensor (torch must be installed),
        ``convert_to_numpy=False`` a list of arrays."""
        if kwargs:
            raise InvalidArgument(f"encode: unknown arguments {sorted(kwargs)}")
        if output_value != "sentence_embedding":
            raise InvalidArgument("output_value: only 'sentence_embedding' is supported")
        if precision != "float32":
            raise InvalidArgument("precision: only 'float32' is supported")
        if device not in (None, "cpu"):
            raise InvalidArgument(f"device={device!r}: trustformers runs on the CPU")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgument(f"batch_size must be a positive integer, got {batch_size!r}")
        single = isinstance(sentences, str)
        items: List[str] = [sentences] if single else list(sentences)
        if not all(isinstance(s, str) for s in items):
            raise InvalidArgument("sentences must be a string or a list of strings")
        if items:
            emb = self._model.encode(items, batch_size, bool(normalize_embeddings))
        else:
            emb = np.zeros((0, self.get_sentence_embedding_dimension()), dtype=np.float32)
        if convert_to_tensor:
            try:
                import torch
            except ImportError:
                raise InvalidArgument("convert_to_tensor needs torch installed") from None
            out = torch.from_numpy(emb)
            return out[0] if single else out
        if not convert_to_numpy:
            rows = list(emb)
            return rows[0] if single else rows
        return emb[0] if single else emb

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity of every row of ``embeddings1`` with every row of
        ``embeddings2`` (sentence-transformers' default similarity)."""
        a = np.atleast_2d(to_numpy(embeddings1, "embeddings1").astype(np.float32))
        b = np.atleast_2d(to_numpy(embeddings2, "embeddings2").astype(np.float32))
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return a @ b.T

    def __repr__(self) -> str:
        return f"SentenceTransformer({self.model_name_or_path!r})"


__all__ = ["SentenceTransformer"]
