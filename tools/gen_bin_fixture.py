"""Writes tests/fixtures/llama_bin: the tiny LLaMA fixture saved by torch.save (the zip
format of `pytorch_model.bin`), for the safe pickle reader's tests.

    python tools/gen_bin_fixture.py   # needs torch and safetensors
"""
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

root = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
out = root / "llama_bin"
out.mkdir(exist_ok=True)
torch.save(load_file(root / "llama" / "model.safetensors"), out / "pytorch_model.bin")
shutil.copy(root / "llama" / "config.json", out / "config.json")
