"""Argument checks and conversions shared by the modules: token ids from lists, numpy
arrays or torch tensors, and tokenizer outputs as arrays or tensors."""

from __future__ import annotations

import os
from typing import Any, Dict, List

import numpy as np

from .exceptions import FileNotFound, InvalidArgument


def check_path(name: Any) -> str:
    """A model name as a string; a path that looks local but does not exist is a
    ``FileNotFoundError`` (a Hub id or a known name is resolved by the Rust side)."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"a model name or path is a non-empty string, got {name!r}")
    # Written as a local path; anything else may be a Hub id (`org/name`,
    # `org/name/file.gguf`) or a known name, which the Rust side resolves.
    looks_local = name.startswith((".", "/", "~")) or (os.sep != "/" and os.sep in name)
    if looks_local and not os.path.exists(os.path.expanduser(name)):
        raise FileNotFound(f"{name}: no such file or directory")
    return os.path.expanduser(name)


def to_numpy(value: Any, name: str) -> np.ndarray:
    """A list, numpy array or torch tensor as a numpy array (no copy when possible)."""
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()  # a torch tensor
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InvalidArgument(f"`{name}` is not an array of numbers: {e}") from None


def as_ids(value: Any, name: str, ndim: int = 2) -> np.ndarray:
    """Integer ids of rank `ndim` as int64 (ValueError naming `name` otherwise)."""
    arr = to_numpy(value, name)
    if arr.dtype == np.bool_ and name.endswith("mask"):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"`{name}` must hold integers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        shape = ", ".join(["batch", "seq"] if ndim == 2 else ["batch", "choices", "seq"])
        raise InvalidArgument(f"`{name}` must have shape [{shape}], got {list(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_id_rows(value: Any, name: str, allow_scalar: bool = False) -> List[List[int]]:
    """One or several sequences of ids as lists of ints."""
    if allow_scalar and isinstance(value, (int, np.integer)):
        return [[int(value)]]
    arr = to_numpy(value, name)
    if arr.dtype == object:
        # Rows of different lengths.
        try:
            return [[int(i) for i in row] for row in value]
        except (TypeError, ValueError):
            raise InvalidArgument(f"`{name}` must hold token ids") from None
    if arr.size == 0:
        return [[]] if arr.ndim <= 1 else [[] for _ in range(arr.shape[0])]
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"`{name}` must hold integer token ids, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise InvalidArgument(f"`{name}` holds negative token ids")
    if arr.ndim == 0:
        return [[int(arr)]]
    if arr.ndim == 1:
        return [arr.tolist()]
    if arr.ndim == 2:
        return arr.tolist()
    raise InvalidArgument(f"`{name}` must be one sequence or a batch of them, got shape {list(arr.shape)}")


def to_tensors(enc: Dict[str, Any], kind: str, batched: bool) -> Dict[str, Any]:
    """Tokenizer outputs as numpy arrays (``"np"``) or torch tensors (``"pt"``), batched."""
    if kind not in ("np", "pt"):
        raise InvalidArgument(f"return_tensors is None, 'np' or 'pt', got {kind!r}")
    out: Dict[str, Any] = {}
    for key, value in enc.items():
        rows = value if batched else [value]
        lengths = {len(r) for r in rows} if key != "overflow_to_sample_mapping" and key != "length" else {0}
        if len(lengths) > 1:
            raise InvalidArgument(
                "Unable to create tensor: the sequences have different lengths; "
                "use padding=True to pad them to the longest"
            )
        arr = np.asarray(rows if key not in ("overflow_to_sample_mapping", "length") else value, dtype=np.int64)
        out[key] = arr
    if kind == "pt":
        try:
            import torch
        except ImportError:
            raise InvalidArgument("return_tensors='pt' needs torch installed; use 'np'") from None
        out = {k: torch.from_numpy(v) for k, v in out.items()}
    return out
