#!/usr/bin/env python3
"""onnxruntime's side of `trustformers bench --task feature-extraction --dtype q8`: the
sentence-transformers model exported with `torch.onnx.export`, quantized with
`onnxruntime.quantization.quantize_dynamic` (weights QInt8), run by onnxruntime on the CPU
with the same threads; tokenization, mean pooling and normalization included, as
`SentenceTransformer.encode` does them. Same sentences and keys as tools/bench_embeddings.py.

Usage: python tools/bench_embeddings_onnx.py MODEL_DIR [-t THREADS] [-r REPS] [--fp32]
       (--fp32: the exported model without quantization)
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoModel, AutoTokenizer

from bench_embeddings import sentences


class Hidden(torch.nn.Module):
    """The encoder with positional inputs and its last hidden state as the output."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def export(model_dir, out_dir, quantize):
    model = AutoModel.from_pretrained(model_dir).eval()
    fp32 = os.path.join(out_dir, "model.onnx")
    ids = torch.ones(2, 16, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            Hidden(model),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            fp32,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "seq"}
                for name in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]
            },
            opset_version=17,
            dynamo=False,
        )
    if not quantize:
        return fp32
    int8 = os.path.join(out_dir, "model.int8.onnx")
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    return int8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--fp32", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    normalize = os.path.isdir(os.path.join(args.model, "2_Normalize"))
    with tempfile.TemporaryDirectory() as tmp:
        path = export(args.model, tmp, not args.fp32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        start = time.perf_counter()
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        load_s = time.perf_counter() - start

    def encode(texts):
        out = []
        for i in range(0, len(texts), 32):
            batch = tok(texts[i : i + 32], padding=True, truncation=True, return_tensors="np")
            feeds = {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = session.run(None, feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            emb = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
            if normalize:
                emb /= np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)
            out.append(emb)
        return np.concatenate(out)

    def timed(texts):
        encode(texts)
        secs = []
        for _ in range(args.reps):
            t = time.perf_counter()
            encode(texts)
            secs.append(time.perf_counter() - t)
        return statistics.median(secs)

    print(
        json.dumps(
            {
                "system": "onnxruntime-" + ("fp32" if args.fp32 else "int8"),
                "onnxruntime": ort.__version__,
                "threads": args.threads,
                "load_s": load_s,
                "batch32_len16_sentences_per_s": 32 / timed(sentences(tok, 32, 16)),
                "batch32_len128_sentences_per_s": 32 / timed(sentences(tok, 32, 128)),
                "single_len16_ms": 1e3 * timed(sentences(tok, 1, 16)),
            }
        )
    )


if __name__ == "__main__":
    main()
