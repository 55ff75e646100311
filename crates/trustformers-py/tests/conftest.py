"""Shared fixtures: where the repository's test fixtures are, and the real-model switch
(`TRUSTFORMERS_TEST_MODELS=1`, as for `cargo test`)."""

import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
REAL_MODELS = os.environ.get("TRUSTFORMERS_TEST_MODELS") == "1"

real_models = pytest.mark.skipif(
    not REAL_MODELS, reason="set TRUSTFORMERS_TEST_MODELS=1 (and run tools/fetch_models.sh)"
)


def fixture(name: str) -> Path:
    return FIXTURES / name


def checkpoint(name: str) -> str:
    """A fixture's checkpoint: its directory, or the GGUF file in it."""
    d = fixture(name)
    ggufs = sorted(d.glob("*.gguf"))
    return str(ggufs[0] if ggufs else d)


def read_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def expected(name: str):
    from safetensors.numpy import load_file

    return load_file(str(fixture(name) / "expected.safetensors"))
