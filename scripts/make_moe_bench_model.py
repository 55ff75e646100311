#!/usr/bin/env python3
"""Writes a Qwen3-MoE-shaped GGUF with random weights for the mixture-of-experts decode
benchmark (scripts/bench_moe.sh): 16 layers of 64 experts (top 8, width 384) on a 1024-wide
model, about 1.3 B parameters of which about 0.2 B are active per token, SmolLM2's tokenizer
(copied from its GGUF) so both runtimes can load it. The file is f16; llama.cpp's
`llama-quantize` turns it into Q4_K_M.

Usage: python scripts/make_moe_bench_model.py SMOLLM2.gguf OUT.gguf
Needs numpy and gguf.
"""

import sys

import gguf
import numpy as np

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 1024, 16, 16, 4, 64
EXPERTS, TOP_K, EXPERT_WIDTH = 64, 8, 384


def main(tokenizer_gguf, out):
    reader = gguf.GGUFReader(tokenizer_gguf)
    w = gguf.GGUFWriter(out, "qwen3moe")
    # The tokenizer's metadata, as SmolLM2's file has it.
    vocab = 0
    for field in reader.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            if field.name == "tokenizer.ggml.tokens":
                vocab = len(values)
            w.add_array(field.name, values)
        elif kind == gguf.GGUFValueType.STRING:
            w.add_string(field.name, bytes(field.parts[field.data[0]]).decode("utf-8"))
        else:
            w.add_key_value(field.name, field.parts[field.data[0]].tolist()[0], kind)
    w.add_context_length(4096)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(4 * HIDDEN)
    w.add_block_count(LAYERS)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_key_length(HEAD_DIM)
    w.add_value_length(HEAD_DIM)
    w.add_rope_freq_base(1_000_000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(EXPERTS)
    w.add_expert_used_count(TOP_K)
    w.add_expert_feed_forward_length(EXPERT_WIDTH)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    rng = np.random.default_rng(0)

    def add(name, *shape, scale=0.02, norm=False):
        if norm:
            w.add_tensor(name, np.ones(shape, dtype=np.float32))
        else:
            w.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float16))

    add("token_embd.weight", vocab, HIDDEN)
    add("output_norm.weight", HIDDEN, norm=True)
    add("output.weight", vocab, HIDDEN)
    for i in range(LAYERS):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", HIDDEN, norm=True)
        add(p + "attn_q.weight", HEADS * HEAD_DIM, HIDDEN)
        add(p + "attn_k.weight", KV_HEADS * HEAD_DIM, HIDDEN)
        add(p + "attn_v.weight", KV_HEADS * HEAD_DIM, HIDDEN)
        add(p + "attn_output.weight", HIDDEN, HEADS * HEAD_DIM)
        add(p + "attn_q_norm.weight", HEAD_DIM, norm=True)
        add(p + "attn_k_norm.weight", HEAD_DIM, norm=True)
        add(p + "ffn_norm.weight", HIDDEN, norm=True)
        add(p + "ffn_gate_inp.weight", EXPERTS, HIDDEN, scale=0.5)
        add(p + "ffn_gate_exps.weight", EXPERTS, EXPERT_WIDTH, HIDDEN)
        add(p + "ffn_up_exps.weight", EXPERTS, EXPERT_WIDTH, HIDDEN)
        add(p + "ffn_down_exps.weight", EXPERTS, HIDDEN, EXPERT_WIDTH)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
