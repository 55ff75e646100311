#!/usr/bin/env python3
"""Writes the tiny parity fixtures under tests/fixtures/ with transformers as the reference.

Each fixture directory holds a checkpoint exactly as transformers saves it (config.json +
model.safetensors) or a GGUF file, and `expected.safetensors` with the inputs and
transformers' outputs:

  input_ids, attention_mask, position_ids   [2, SEQ] int64; row 1 is left-padded
  logits, last_hidden_state, hidden_states.{i}  float32
  greedy_input_ids [1, SEQ], greedy_output_ids [1, SEQ + NEW]   (12 greedy tokens)

Usage (needs torch, transformers, safetensors, gguf):
  python tools/gen_fixtures.py            # every fixture
  python tools/gen_fixtures.py smollm2 --gguf PATH   # real-model reference (see below)
  python tools/gen_fixtures.py gemma3_270m --gguf PATH
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEQ = 10
PAD = 3
NEW = 12

BASE = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# Every knob of every preset turned on somewhere.
DECODERS = {
    # LLaMA: GQA, attention and MLP biases, llama3 RoPE scaling, untied head.
    "llama": dict(
        model_type="llama",
        attention_bias=True,
        mlp_bias=True,
        rope_parameters=dict(
            rope_type="llama3",
            rope_theta=10000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
    ),
    "llama_linear": dict(
        model_type="llama",
        tie_word_embeddings=True,
        rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0),
    ),
    # Dynamic NTK only changes anything past max_position_embeddings: make that shorter
    # than the sequence.
    "llama_dynamic": dict(
        model_type="llama",
        max_position_embeddings=8,
        tie_word_embeddings=True,
        rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0),
    ),
    "llama_yarn": dict(
        model_type="llama",
        tie_word_embeddings=True,
        rope_parameters=dict(
            rope_type="yarn",
            rope_theta=10000.0,
            factor=4.0,
            original_max_position_embeddings=16,
            beta_fast=8.0,
            beta_slow=1.0,
        ),
    ),
    # Mistral: multi-query attention and a sliding window shorter than the sequence.
    "mistral": dict(model_type="mistral", num_key_value_heads=1, sliding_window=4),
    # Qwen2: q/k/v biases, the second layer slides (max_window_layers=1), tied head.
    "qwen2": dict(
        model_type="qwen2",
        use_sliding_window=True,
        sliding_window=4,
        max_window_layers=1,
        tie_word_embeddings=True,
    ),
    # Qwen3: q/k norm, explicit head_dim != hidden / heads, attention bias, sliding layer.
    "qwen3": dict(
        model_type="qwen3",
        head_dim=16,
        attention_bias=True,
        use_sliding_window=True,
        sliding_window=4,
        max_window_layers=1,
    ),
    # Gemma 3: unit-offset norms, sandwich norms, q/k norm, scaled embeddings, GeLU-tanh,
    # query_pre_attn_scalar != head_dim, alternating sliding/full layers with their own RoPE
    # (linear scaling on the global ones), final logit soft-capping, attention bias.
    "gemma3": dict(
        model_type="gemma3_text",
        num_hidden_layers=3,
        head_dim=16,
        query_pre_attn_scalar=12,
        sliding_window=4,
        sliding_window_pattern=2,
        attention_bias=True,
        final_logit_softcapping=5.0,
        rope_parameters={
            "full_attention": dict(rope_type="linear", factor=2.0, rope_theta=1_000_000.0),
            "sliding_attention": dict(rope_type="default", rope_theta=10_000.0),
        },
    ),
    # Gemma: unit-offset norms, scaled embeddings, GeLU-tanh, head_dim != hidden / heads,
    # attention bias, tied head.
    "gemma": dict(model_type="gemma", head_dim=16, attention_bias=True),
    # Gemma 2: sandwich norms, attention and final soft-capping small enough to bite,
    # query_pre_attn_scalar != head_dim, alternating sliding (window < sequence) and full
    # layers, untied head.
    "gemma2": dict(
        model_type="gemma2",
        num_hidden_layers=3,
        head_dim=16,
        query_pre_attn_scalar=12,
        sliding_window=4,
        attn_logit_softcapping=2.0,
        final_logit_softcapping=5.0,
        attention_bias=True,
        tie_word_embeddings=False,
    ),
    # Phi-3: fused qkv_proj and gate_up_proj, LongRoPE with an attention scale (max positions
    # twice the original), half the head rotating, sliding window, attention bias off.
    "phi3": dict(
        model_type="phi3",
        original_max_position_embeddings=32,
        sliding_window=4,
        rope_parameters=dict(
            rope_type="longrope",
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
            short_factor=[1.0, 1.5],
            long_factor=[2.0, 4.0],
        ),
    ),
    # StableLM: LayerNorm with bias, partial rotary (default 0.25 of head_dim 8 = 2 dims),
    # q/k/v bias, per-head q/k LayerNorm, parallel residual.
    "stablelm": dict(
        model_type="stablelm",
        use_qkv_bias=True,
        qk_layernorm=True,
        use_parallel_residual=True,
        layer_norm_eps=1e-5,
    ),
    # StableLM 2 style: sequential residual, half the head rotating, no qk norm, tied head.
    "stablelm_seq": dict(
        model_type="stablelm",
        partial_rotary_factor=0.5,
        tie_word_embeddings=True,
    ),
    # Mixtral: 4 experts, top-2 routing, sliding window.
    "mixtral": dict(
        model_type="mixtral",
        num_local_experts=4,
        num_experts_per_tok=2,
        sliding_window=4,
    ),
    # GPT-NeoX: per-head fused query_key_value, LayerNorm, plain GeLU MLP, biases, parallel
    # residual with two norms, half the head rotating.
    "gpt_neox": dict(
        model_type="gpt_neox",
        num_key_value_heads=4,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5),
    ),
    # Sequential residual, the default quarter of the head rotating, no attention bias.
    "gpt_neox_seq": dict(
        model_type="gpt_neox",
        num_key_value_heads=4,
        use_parallel_residual=False,
        attention_bias=False,
    ),
    # Phi (phi-2): one LayerNorm, parallel block, biases (head too), partial rotary, plain
    # gelu_new MLP, shared q/k LayerNorm, GQA.
    "phi": dict(model_type="phi", qk_layernorm=True),
    # GPT-J: GPT-2 config names, interleaved rotary on rotary_dim < head_dim, parallel block,
    # biased head.
    "gptj": dict(
        model_type="gptj",
        n_embd=32,
        n_head=4,
        n_layer=2,
        n_positions=64,
        n_inner=64,
        rotary_dim=4,
        vocab_size=128,
    ),
    # GPT-2: Conv1D weights, learned positions, fused c_attn, tied head.
    "gpt2": dict(
        model_type="gpt2", n_embd=32, n_head=4, n_layer=2, n_positions=64, n_inner=64
    ),
    # GPT-Neo: global and local (window 4 < sequence) layers, unscaled attention.
    "gpt_neo": dict(
        model_type="gpt_neo",
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        window_size=4,
        intermediate_size=64,
    ),
    # Falcon 7B style: multi-query, parallel attention off one norm, no biases, tied.
    "falcon": dict(model_type="falcon", multi_query=True, parallel_attn=True),
    # Falcon 40B style: 2 kv groups of 2 queries, ln_attn / ln_mlp, biases, untied.
    "falcon_new": dict(
        model_type="falcon",
        new_decoder_architecture=True,
        num_kv_heads=2,
        bias=True,
        tie_word_embeddings=False,
    ),
    # Neither: full multi-head, head by head, sequential residual.
    "falcon_seq": dict(model_type="falcon", multi_query=False, parallel_attn=False),
    # The same past original_max_position_embeddings: the long factors (forward pass only;
    # transformers recomputes the cache when a generation crosses that length).
    "phi3_long": dict(
        model_type="phi3",
        original_max_position_embeddings=4,
        rope_parameters=dict(
            rope_type="longrope",
            rope_theta=10000.0,
            short_factor=[1.0, 1.5, 2.0, 2.5],
            long_factor=[3.0, 5.0, 7.0, 9.0],
        ),
    ),
    # phi-2 as released: no GQA, no q/k LayerNorm (the layout llama.cpp's phi2 reads).
    "phi2": dict(model_type="phi", num_key_value_heads=4, qk_layernorm=False),
    # Falcon-RW: ALiBi, full multi-head attention, sequential block. The reference is
    # transformers' default SDPA attention: its eager path adds the ALiBi bias twice.
    "falcon_alibi": dict(
        model_type="falcon",
        alibi=True,
        multi_query=False,
        parallel_attn=False,
        new_decoder_architecture=False,
        num_kv_heads=4,
        bias=True,
        attn_implementation="sdpa",
    ),
    # The modern decoder zoo (appended: a fixture's seed is its index here).
    # Qwen2-MoE: 4 experts of width 16, top-2 without renormalisation, a sigmoid-gated
    # shared expert of width 48; layer 1 dense (mlp_only_layers) at intermediate_size; q/k/v
    # biases; transformers 5's qwen2_moe window rule (even layers below max_window_layers).
    "qwen2_moe": dict(
        model_type="qwen2_moe",
        num_hidden_layers=3,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=48,
        mlp_only_layers=[1],
        use_sliding_window=True,
        sliding_window=4,
        max_window_layers=2,
    ),
    # Qwen3-MoE: 6 experts, top-2 renormalised, q/k norm, head_dim != hidden / heads, an MoE
    # layer every second layer (decoder_sparse_step), every layer sliding.
    "qwen3_moe": dict(
        model_type="qwen3_moe",
        num_hidden_layers=3,
        head_dim=16,
        num_experts=6,
        num_experts_per_tok=2,
        norm_topk_prob=True,
        moe_intermediate_size=24,
        decoder_sparse_step=2,
        attention_bias=True,
        use_sliding_window=True,
        sliding_window=4,
    ),
    # OLMo 2: norms after attention and MLP only, RMSNorm over the whole q and k projections.
    "olmo2": dict(model_type="olmo2", tie_word_embeddings=False),
    # Granite: embedding, residual and attention multipliers, logits divided by
    # logits_scaling, attention and MLP biases.
    "granite": dict(
        model_type="granite",
        embedding_multiplier=3.0,
        residual_multiplier=0.4,
        attention_multiplier=0.3,
        logits_scaling=2.5,
        attention_bias=True,
        mlp_bias=True,
        tie_word_embeddings=False,
    ),
    # GraniteMoE: Granite's multipliers over 4 experts, top-2 (softmax over the chosen
    # logits), stored as input_linear / output_linear / router.layer.
    "granitemoe": dict(
        model_type="granitemoe",
        embedding_multiplier=3.0,
        residual_multiplier=0.4,
        attention_multiplier=0.3,
        logits_scaling=2.5,
        num_local_experts=4,
        num_experts_per_tok=2,
        tie_word_embeddings=False,
    ),
    # StarCoder2: LayerNorm with bias, biased projections, plain GELU-tanh MLP (c_fc, c_proj),
    # a sliding window shorter than the sequence, tied head.
    "starcoder2": dict(
        model_type="starcoder2",
        use_bias=True,
        norm_epsilon=1e-5,
        sliding_window=4,
    ),
    # SmolLM3: every second layer without rotary (no_rope_layer_interval=2); those slide.
    "smollm3": dict(
        model_type="smollm3",
        num_hidden_layers=4,
        no_rope_layer_interval=2,
        use_sliding_window=True,
        sliding_window=4,
        tie_word_embeddings=True,
    ),
    # Cohere (Command-R): parallel block off one bias-free LayerNorm, interleaved rotary,
    # logits times logit_scale, tied head.
    "cohere": dict(model_type="cohere", logit_scale=0.5, layer_norm_eps=1e-5),
    # Command-R+ style: per-head q/k LayerNorms (weights [heads, head_dim]).
    "cohere_qk": dict(model_type="cohere", logit_scale=0.5, use_qk_norm=True),
    # Cohere 2: sliding layers with rotary, every third layer global without positions.
    "cohere2": dict(
        model_type="cohere2",
        num_hidden_layers=3,
        sliding_window=4,
        logit_scale=0.5,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
    ),
    # gpt-oss: attention sinks, biased projections, sliding (window 4) and full layers
    # alternating, YaRN without truncation, 4 experts (top-2) with biases and a clamped
    # SwiGLU whose limit bites, a router with a bias.
    "gpt_oss": dict(
        model_type="gpt_oss",
        num_hidden_layers=3,
        head_dim=8,
        intermediate_size=32,
        num_local_experts=4,
        num_experts_per_tok=2,
        sliding_window=4,
        swiglu_limit=0.3,
        rope_parameters=dict(
            rope_type="yarn",
            rope_theta=10000.0,
            factor=4.0,
            beta_fast=32.0,
            beta_slow=1.0,
            truncate=False,
            original_max_position_embeddings=16,
        ),
    ),
    # DeepSeek-V3: latent attention with low-rank queries (ranks below the hidden size),
    # interleaved rotary on 4 of 12 query/key dims, values of 6, YaRN with mscale_all_dim;
    # a dense first layer, then 8 sigmoid-scored experts with a correction bias in 4 groups
    # (2 kept, scored by their best two), top-2 renormalised and scaled by 2.5, 2 shared.
    "deepseek_v3": dict(
        model_type="deepseek_v3",
        num_hidden_layers=3,
        num_key_value_heads=4,
        q_lora_rank=12,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=6,
        first_k_dense_replace=1,
        n_routed_experts=8,
        num_experts_per_tok=2,
        n_group=4,
        topk_group=2,
        n_shared_experts=2,
        moe_intermediate_size=16,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
        rope_parameters=dict(
            rope_type="yarn",
            rope_theta=10000.0,
            factor=4.0,
            original_max_position_embeddings=16,
            beta_fast=32.0,
            beta_slow=1.0,
            mscale=1.0,
            mscale_all_dim=1.0,
        ),
    ),
    # V3 rotating halves (rope_interleave off), queries projected directly, no groups.
    "deepseek_v3_halves": dict(
        model_type="deepseek_v3",
        num_hidden_layers=2,
        num_key_value_heads=4,
        q_lora_rank=None,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=8,
        first_k_dense_replace=0,
        n_routed_experts=4,
        num_experts_per_tok=2,
        n_group=1,
        topk_group=1,
        n_shared_experts=1,
        moe_intermediate_size=16,
        routed_scaling_factor=1.0,
        norm_topk_prob=False,
        rope_interleave=False,
    ),
    # DeepSeek-V2: queries projected directly, softmax routing limited to the best 2 of 4
    # groups (by their best expert), weights scaled by 1.5 and not renormalised, a dense
    # first layer, one shared expert.
    "deepseek_v2": dict(
        model_type="deepseek_v2",
        num_hidden_layers=3,
        num_key_value_heads=4,
        q_lora_rank=None,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=6,
        first_k_dense_replace=1,
        n_routed_experts=8,
        num_experts_per_tok=3,
        topk_method="group_limited_greedy",
        n_group=4,
        topk_group=2,
        n_shared_experts=1,
        moe_intermediate_size=16,
        routed_scaling_factor=1.5,
    ),
    # Llama 4 text: NoPE every second layer (no_rope_layer_interval=2) with temperature
    # tuning that bites (floor_scale 2), chunked attention (chunks of 4) with L2 q/k norms on
    # the rotary layers, interleaved rotary, MoE on every second layer (4 experts, top-2 by
    # sigmoid, inputs scaled, a shared expert), dense MLPs of intermediate_size_mlp elsewhere.
    "llama4_text": dict(
        model_type="llama4_text",
        num_hidden_layers=4,
        head_dim=8,
        intermediate_size=16,
        intermediate_size_mlp=48,
        num_local_experts=4,
        num_experts_per_tok=2,
        interleave_moe_layer_step=2,
        no_rope_layer_interval=2,
        attention_chunk_size=4,
        floor_scale=2,
        attn_scale=0.5,
        use_qk_norm=True,
    ),
    # Mamba: biased in/out projections, conv bias, a time-step rank of 3 (not "auto"), a
    # state of 8 per channel, kernel 4, residual in f32, an untied head; the left-padded row
    # checks the masking before the projection and after the convolution.
    "mamba": dict(
        model_type="mamba",
        num_hidden_layers=3,
        expand=1,
        state_size=8,
        conv_kernel=4,
        time_step_rank=3,
        use_bias=True,
        use_conv_bias=True,
        residual_in_fp32=True,
        tie_word_embeddings=False,
        layer_norm_epsilon=1e-5,
    ),
    # Mamba's defaults where they differ: no biases anywhere, rank "auto" (hidden / 16), a
    # kernel of 2 (shorter than the prefill chunks), tied head.
    "mamba_tied": dict(
        model_type="mamba",
        state_size=4,
        conv_kernel=2,
        time_step_rank="auto",
        use_bias=False,
        use_conv_bias=False,
        tie_word_embeddings=True,
    ),
    # Falcon-Mamba: Mamba with weightless RMS norms on the time step, B and C (an epsilon
    # large enough to matter), untied head.
    "falcon_mamba": dict(
        model_type="falcon_mamba",
        state_size=8,
        time_step_rank=4,
        mixer_rms_eps=1e-3,
        use_conv_bias=True,
        tie_word_embeddings=False,
    ),
    # Mamba-2: 8 heads of 8 sharing B / C in 2 groups, a state of 8, chunks of 4 (shorter
    # than the sequence, so transformers' prefill crosses chunk boundaries), biased
    # projections, untied head.
    "mamba2": dict(
        model_type="mamba2",
        num_hidden_layers=3,
        num_heads=8,
        head_dim=8,
        n_groups=2,
        state_size=8,
        expand=2,
        conv_kernel=4,
        chunk_size=4,
        use_bias=True,
        use_conv_bias=True,
        tie_word_embeddings=False,
    ),
    # RWKV (RWKV-4): 3 blocks with rescaling every 2 (the second half of the stack runs on
    # halved output weights, the hidden states halved after block 2), a channel-mix wider
    # than the hidden size, untied head. RWKV reads no attention mask: the left-padded row
    # runs its pads through the recurrence, in transformers too.
    "rwkv": dict(
        model_type="rwkv",
        num_hidden_layers=3,
        intermediate_size=96,
        rescale_every=2,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,
    ),
    # OPT (BLIP-2's language model): learned positions offset by 2, pre-LN, ReLU fc1/fc2,
    # biases, tied head; no grouped-query attention.
    "opt": dict(
        model_type="opt",
        ffn_dim=64,
        word_embed_proj_dim=32,
        num_key_value_heads=4,
        do_layer_norm_before=True,
    ),
}


def randomize(model, seed):
    """Replaces transformers' tiny init with weights large enough to make logits differ."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name:
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.15 * noise)
        # DeepSeek-V3's router bias is a buffer: make it choose differently from the scores.
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))


def inputs(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (2, SEQ), generator=g)
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, :PAD] = 0
    ids[1, :PAD] = 0
    # transformers' generate(): cumsum(mask) - 1, padded slots set to 1.
    pos = mask.cumsum(-1) - 1
    pos.masked_fill_(mask == 0, 1)
    return ids, mask, pos


def reference(model, ids, mask, pos):
    with torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            output_hidden_states=True,
        )
        # Llama4ForCausalLM names its base model `model` but reports itself as base_model.
        base_model = model.model if model.base_model is model else model.base_model
        base = base_model(input_ids=ids, attention_mask=mask, position_ids=pos)
        # transformers' last entry of hidden_states is the normed output.
        assert torch.equal(base.last_hidden_state, out.hidden_states[-1])
        prompt = ids[:1].clone()
        # Plain argmax for NEW steps: no end-of-sequence handling (min_new_tokens would
        # suppress the EOS token instead).
        model.generation_config.eos_token_id = None
        greedy = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=NEW,
            do_sample=False,
            pad_token_id=0,
        )
    tensors = {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": pos,
        "logits": out.logits.float(),
        "last_hidden_state": base.last_hidden_state.float(),
        "greedy_input_ids": prompt,
        "greedy_output_ids": greedy,
    }
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h.float().clone()
    return {k: v.contiguous() for k, v in tensors.items()}


def decoder_fixture(name, overrides, seed, out_dir=None):
    """The HF fixture `name` (config `BASE` + `overrides`, weights from `seed`) in
    `out_dir` (default tests/fixtures/{name})."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(BASE)
    cfg.update(overrides)
    model_type = cfg.pop("model_type")
    attn_implementation = cfg.pop("attn_implementation", "eager")
    config = AutoConfig.for_model(model_type, **cfg)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        config, attn_implementation=attn_implementation
    ).eval()
    randomize(model, seed)
    out_dir = out_dir or FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    (out_dir / "generation_config.json").unlink(missing_ok=True)
    ids, mask, pos = inputs(cfg["vocab_size"], seed)
    save_file(reference(model, ids, mask, pos), out_dir / "expected.safetensors")
    print(f"{name}: {sum(f.stat().st_size for f in out_dir.iterdir()) // 1024} KB")


def llama_cpp_permute(w, n_head):
    """What convert_hf_to_gguf.py does to LLaMA q/k weights."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def gguf_fixture(seed=7):
    """A tiny LLaMA GGUF with Q8_0 and Q4_0 tensors, and transformers' outputs on it."""
    import gguf
    from gguf import GGMLQuantizationType as Q
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = dict(BASE)
    config = LlamaConfig(**cfg)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    randomize(model, seed)
    sd = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}

    out_dir = FIXTURES / "llama_gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tiny-llama.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, cfg["vocab_size"])]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([2, 3, 3] + [1] * (len(tokens) - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def add(name, arr, qtype):
        if qtype == Q.F32:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)

    add("token_embd.weight", sd["model.embed_tokens.weight"], Q.Q8_0)
    add("output_norm.weight", sd["model.norm.weight"], Q.F32)
    add("output.weight", sd["lm_head.weight"], Q.Q4_0)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"], Q.F32)
        add(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"], Q.F32)
        add(f"blk.{i}.attn_q.weight", llama_cpp_permute(sd[p + "self_attn.q_proj.weight"], heads), Q.Q8_0)
        add(f"blk.{i}.attn_k.weight", llama_cpp_permute(sd[p + "self_attn.k_proj.weight"], kv), Q.Q8_0)
        add(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"], Q.Q8_0)
        add(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"], Q.Q4_0)
        add(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"], Q.Q4_0)
        add(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"], Q.Q8_0)
        add(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"], Q.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    ref = AutoModelForCausalLM.from_pretrained(
        out_dir, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids, mask, pos = inputs(cfg["vocab_size"], seed)
    save_file(reference(ref, ids, mask, pos), out_dir / "expected.safetensors")
    print(f"llama_gguf: {sum(f.stat().st_size for f in out_dir.iterdir()) // 1024} KB")


# HF block tensor -> GGUF name, as convert_hf_to_gguf.py maps Gemma 1 and 2.
GEMMA_BLOCK = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gemma_gguf_fixture(name):
    """The `gemma` / `gemma2` fixture as llama.cpp's converter writes it (f32, norms stored as
    1 + w, Gemma 1's post-attention norm named ffn_norm); transformers' outputs are the HF
    fixture's."""
    import json
    import shutil

    import gguf
    from safetensors.numpy import load_file

    src = FIXTURES / name
    cfg = json.loads((src / "config.json").read_text())
    sd = load_file(src / "model.safetensors")
    arch = cfg["model_type"]
    out_dir = FIXTURES / f"{name}_gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out_dir / f"tiny-{name}.gguf"), arch)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_vocab_size(cfg["vocab_size"])
    if arch == "gemma2":
        w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
        w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
        w.add_sliding_window(cfg["sliding_window"])
    block = dict(GEMMA_BLOCK)
    if arch == "gemma":
        block["post_attention_layernorm"] = "ffn_norm"
    for hf, arr in sd.items():
        arr = arr.astype(np.float32)
        if hf.endswith("norm.weight"):
            arr = arr + 1.0
        if hf == "model.embed_tokens.weight":
            gname = "token_embd.weight"
        elif hf == "model.norm.weight":
            gname = "output_norm.weight"
        elif hf == "lm_head.weight":
            gname = "output.weight"
        else:
            rest = hf.removeprefix("model.layers.")
            layer, tensor = rest.split(".", 1)
            stem, suffix = tensor.rsplit(".", 1)
            gname = f"blk.{layer}.{block[stem]}.{suffix}"
        w.add_tensor(gname, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if cfg.get("query_pre_attn_scalar", cfg["head_dim"]) == cfg["head_dim"]:
        shutil.copy(src / "expected.safetensors", out_dir / "expected.safetensors")
    else:
        # llama.cpp scales scores by 1/sqrt(key_length) (query_pre_attn_scalar equals head_dim
        # in the released 2B and 9B models): the reference is transformers with that scalar.
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(src)
        config.query_pre_attn_scalar = cfg["head_dim"]
        model = AutoModelForCausalLM.from_pretrained(
            src, config=config, attn_implementation="eager"
        ).eval()
        ids, mask, pos = inputs(cfg["vocab_size"], 11)
        save_file(reference(model, ids, mask, pos), out_dir / "expected.safetensors")
    print(f"{name}_gguf written")


# HF model_type -> llama.cpp's GGUF architecture.
GGUF_ARCH = {
    "gpt2": "gpt2",
    "gptj": "gptj",
    "gpt_neox": "gptneox",
    "falcon": "falcon",
    "phi": "phi2",
    "phi3": "phi3",
    "stablelm": "stablelm",
    "mixtral": "llama",
    "llama": "llama",
    "qwen2_moe": "qwen2moe",
    "qwen3_moe": "qwen3moe",
    "olmo2": "olmo2",
    "granite": "granite",
    "granitemoe": "granitemoe",
    "starcoder2": "starcoder2",
    "smollm3": "smollm3",
    "cohere": "command-r",
    "cohere2": "cohere2",
    "llama4_text": "llama4",
    "deepseek_v2": "deepseek2",
    "deepseek_v3": "deepseek2",
}

# Converters that derive from LlamaModel and permute q/k for llama.cpp's rotary.
PERMUTED = {"llama", "granite", "granitemoe", "smollm3"}


def converted_gguf_fixture(
    name, legacy_qkv=False, reference_config=None, out=None, src=None, seed=None
):
    """The HF fixture `name` written as llama.cpp's convert_hf_to_gguf.py writes it (f32, its
    metadata keys, its tensor names from gguf-py's TensorNameMap and its tensor transforms),
    as `{name}_gguf`. `legacy_qkv` fuses phi-2's q/k/v into `attn_qkv` as converted from the
    original phi-2 checkpoints. The reference is the HF fixture's, or transformers on the
    HF checkpoint with `reference_config` applied (where llama.cpp's architecture cannot
    express a setting of the fixture). `out` names the result (default `{name}_gguf`); `src`
    is the HF checkpoint when it is not the fixture `name` (a model only the GGUF fixture
    needs), and `seed` then picks the reference inputs."""
    import json
    import shutil

    import gguf
    from safetensors.numpy import load_file

    src = src or FIXTURES / name
    cfg = json.loads((src / "config.json").read_text())
    sd = {k: v.astype(np.float32) for k, v in load_file(src / "model.safetensors").items()}
    mt = cfg["model_type"]
    arch = GGUF_ARCH[mt]
    n_layer = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    hidden = cfg.get("hidden_size", cfg.get("n_embd"))
    n_head = cfg.get("num_attention_heads", cfg.get("n_head"))
    head_dim = hidden // n_head
    ffn = cfg.get("n_inner") or cfg.get("intermediate_size") or 4 * hidden
    if mt == "falcon":
        ffn = cfg.get("ffn_hidden_size") or 4 * hidden
    if mt == "llama4_text":
        # Llama4Model swaps them: the dense MLP's width is the feed-forward length.
        ffn = cfg["intermediate_size_mlp"]
    rope = cfg.get("rope_parameters") or {}
    partial = rope.get("partial_rotary_factor", 1.0)

    out = out or f"{name}_gguf"
    out_dir = FIXTURES / out
    out_dir.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out_dir / f"tiny-{out.removesuffix('_gguf')}.gguf"), arch)
    w.add_block_count(n_layer)
    w.add_embedding_length(hidden)
    # The converter writes 4 * n_embd for GPT-2, GPT-J, Falcon and Phi-2, their released
    # widths; the GPT-2, GPT-J and Phi-2 fixtures are narrower, so the real width is written.
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_head)
    w.add_context_length(cfg.get("max_position_embeddings", cfg.get("n_positions")))
    n_head_kv = n_head
    if mt in ("gpt2", "gptj"):
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        if mt == "gptj" and cfg["rotary_dim"] < head_dim:
            w.add_rope_dimension_count(cfg["rotary_dim"])
    elif mt == "gpt_neox":
        w.add_rope_dimension_count(int(partial * head_dim))
        w.add_parallel_residual(cfg.get("use_parallel_residual", True))
        w.add_layer_norm_eps(cfg["layer_norm_eps"])
    elif mt == "falcon":
        # Released 7B configs have no num_kv_heads: the converter reads 1 for them.
        new_arch = cfg["new_decoder_architecture"]
        n_head_kv = 1 if cfg["multi_query"] and not new_arch else cfg["num_kv_heads"]
        w.add_head_count_kv(n_head_kv)
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    elif mt == "phi":
        w.add_head_count_kv(n_head)
        w.add_layer_norm_eps(cfg["layer_norm_eps"])
        w.add_rope_dimension_count(int(partial * hidden) // n_head)
    elif mt == "phi3":
        n_head_kv = cfg["num_key_value_heads"]
        w.add_head_count_kv(n_head_kv)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_rope_dimension_count(int(partial * hidden) // n_head)
        w.add_rope_freq_base(rope["rope_theta"])
        w.add_sliding_window(cfg.get("sliding_window") or 0)
        orig = rope["original_max_position_embeddings"]
        w.add_rope_scaling_orig_ctx_len(orig)
        scale = cfg["max_position_embeddings"] / orig
        w.add_rope_scaling_attn_factors(
            math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0
        )
        w.add_tensor("rope_factors_long.weight", np.array(rope["long_factor"], np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(rope["short_factor"], np.float32))
    elif mt == "stablelm":
        n_head_kv = cfg["num_key_value_heads"]
        w.add_rope_dimension_count(int(partial * head_dim))
        w.add_head_count_kv(n_head_kv)
        w.add_parallel_residual(cfg["use_parallel_residual"])
        w.add_layer_norm_eps(cfg["layer_norm_eps"])
    elif mt == "llama":
        n_head_kv = cfg["num_key_value_heads"]
        w.add_head_count_kv(n_head_kv)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_rope_freq_base(rope["rope_theta"])
        w.add_rope_dimension_count(head_dim)
        assert rope["rope_type"] == "llama3"
        # LlamaModel.generate_extra_tensors: llama3 RoPE as per-frequency divisors.
        freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
        factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        old_ctx = rope["original_max_position_embeddings"]
        factors = []
        for freq in freqs:
            wavelen = 2 * math.pi / freq
            if wavelen < old_ctx / high:
                factors.append(1.0)
            elif wavelen > old_ctx / low:
                factors.append(factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(factors, np.float32))
    elif mt == "mixtral":
        n_head_kv = cfg["num_key_value_heads"]
        w.add_head_count_kv(n_head_kv)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_rope_freq_base(rope["rope_theta"])
        w.add_rope_dimension_count(head_dim)
        w.add_expert_count(cfg["num_local_experts"])
        w.add_expert_used_count(cfg["num_experts_per_tok"])
    elif mt in ("deepseek_v2", "deepseek_v3"):
        deepseek_metadata(w, mt, cfg)
    elif mt in ZOO_ARCHS:
        n_head_kv = cfg.get("num_key_value_heads") or n_head
        head_dim = cfg.get("head_dim") or head_dim
        zoo_metadata(w, mt, cfg, n_head_kv, head_dim)
    w.add_vocab_size(cfg["vocab_size"])

    # The converters' modify_tensors.
    tensors = {}
    for hf, arr in sd.items():
        if hf.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if mt == "gpt2" and hf.endswith(
            (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")
        ):
            arr = arr.T
        if mt == "gpt_neox" and "query_key_value" in hf:
            # Per head (q, k, v) -> all q, all k, all v.
            qkv = arr.reshape(n_head, 3, head_dim, *arr.shape[1:])
            arr = np.concatenate([qkv[:, i].reshape(-1, *arr.shape[1:]) for i in range(3)])
        if mt == "falcon" and "query_key_value" in hf:
            # jploski: kv groups of (queries, key, value) -> all q, all k, all v.
            qkv = arr.reshape(n_head_kv, n_head // n_head_kv + 2, head_dim, *arr.shape[1:])
            rest = arr.shape[1:]
            arr = np.concatenate(
                [
                    qkv[:, :-2].reshape(-1, *rest),
                    qkv[:, -2:-1].reshape(-1, *rest),
                    qkv[:, -1:].reshape(-1, *rest),
                ]
            )
        # LlamaModel.permute (weights and biases alike).
        if arch in PERMUTED and "q_proj." in hf:
            arr = llama_cpp_permute(arr, n_head)
        if arch in PERMUTED and "k_proj." in hf:
            arr = llama_cpp_permute(arr, n_head_kv)
        if mt == "llama4_text" and hf.endswith("experts.gate_up_proj"):
            # Llama4Model.modify_tensors: [E, in, 2I] -> gate and up, each [E, I, in].
            gate, up = np.split(np.swapaxes(arr, -1, -2), 2, axis=-2)
            tensors[hf.replace("gate_up_proj", "gate_proj.weight")] = gate
            tensors[hf.replace("gate_up_proj", "up_proj.weight")] = up
            continue
        if mt == "llama4_text" and hf.endswith("experts.down_proj"):
            arr = np.swapaxes(arr, -1, -2)
            hf += ".weight"
        if mt in ("deepseek_v2", "deepseek_v3") and hf.endswith("kv_b_proj.weight"):
            # DeepseekV2Model.modify_tensors: per head, the key half transposed [r, nope]
            # and the value half [v, r] apart, for llama.cpp's absorbed attention.
            nope, v = cfg["qk_nope_head_dim"], cfg["v_head_dim"]
            kv_b = arr.reshape(n_head, nope + v, arr.shape[-1])
            tensors[hf.replace("kv_b_proj", "k_b_proj")] = np.swapaxes(kv_b[:, :nope], 1, 2)
            tensors[hf.replace("kv_b_proj", "v_b_proj")] = kv_b[:, nope:]
            continue
        if hf.endswith("e_score_correction_bias"):
            # gguf-py maps `mlp.gate.e_score_correction` (+ `.bias`) to `exp_probs_b`.
            hf = hf.replace("e_score_correction_bias", "e_score_correction.bias")
        if mt == "granitemoe" and hf.endswith("block_sparse_moe.input_linear.weight"):
            # GraniteMoeModel.modify_tensors: gate and up apart.
            layer = hf.split(".")[2]
            gate, up = np.split(arr, 2, axis=-2)
            tensors[f"blk.{layer}.ffn_gate_exps.weight"] = gate
            tensors[f"blk.{layer}.ffn_up_exps.weight"] = up
            continue
        tensors[hf] = arr
    if mt == "stablelm":
        for layer in range(n_layer):
            for which in ("q", "k"):
                stem = f"model.layers.{layer}.self_attn.{which}_layernorm"
                norms = sorted(k for k in tensors if k.startswith(f"{stem}.norms."))
                norms.sort(key=lambda k: int(k.split(".")[-2]))
                if norms:
                    tensors[f"{stem}.weight"] = np.stack([tensors.pop(k) for k in norms])
    if mt == "mixtral":
        for layer in range(n_layer):
            moe = f"model.layers.{layer}.block_sparse_moe"
            for wname, gname in (("w1", "ffn_gate_exps"), ("w3", "ffn_up_exps"), ("w2", "ffn_down_exps")):
                experts = [
                    tensors.pop(f"{moe}.experts.{e}.{wname}.weight")
                    for e in range(cfg["num_local_experts"])
                ]
                tensors[f"blk.{layer}.{gname}.weight"] = np.stack(experts)
    if mt in ("qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3"):
        # Qwen2MoeModel / DeepseekV2Model.modify_tensors: the experts stacked into one 3-D
        # tensor each (DeepSeek's dense first layers have none).
        n_experts = cfg.get("num_experts") or cfg.get("num_local_experts") or cfg.get("n_routed_experts")
        for layer in range(cfg.get("first_k_dense_replace", 0), n_layer):
            for wname in ("gate_proj", "up_proj", "down_proj"):
                p = f"model.layers.{layer}.mlp.experts"
                stacked = np.stack([tensors.pop(f"{p}.{e}.{wname}.weight") for e in range(n_experts)])
                tensors[f"{p}.{wname}.weight"] = stacked
    if legacy_qkv:
        for layer in range(n_layer):
            attn = f"model.layers.{layer}.self_attn"
            for suffix in ("weight", "bias"):
                parts = [tensors.pop(f"{attn}.{p}_proj.{suffix}") for p in "qkv"]
                tensors[f"blk.{layer}.attn_qkv.{suffix}"] = np.concatenate(parts)

    model_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    tmap = gguf.get_tensor_name_map(model_arch, n_layer)
    for hf, arr in tensors.items():
        gname = hf if hf.startswith("blk.") else tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
        assert gname is not None, f"{name}: no GGUF name for {hf}"
        w.add_tensor(gname, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    if reference_config is None and seed is None:
        shutil.copy(src / "expected.safetensors", out_dir / "expected.safetensors")
    else:
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(src)
        for k, v in (reference_config or {}).items():
            setattr(config, k, v)
        model = AutoModelForCausalLM.from_pretrained(
            src, config=config, attn_implementation="eager"
        ).eval()
        seed = list(DECODERS).index(name) if seed is None else seed
        ids, mask, pos = inputs(cfg["vocab_size"], seed)
        save_file(reference(model, ids, mask, pos), out_dir / "expected.safetensors")
    print(f"{out} written")


# Fixtures written as llama.cpp converts them: name -> converted_gguf_fixture arguments.
CONVERTED_GGUF = {
    "gpt2": {},
    "gptj": {},
    "gpt_neox": {},
    "gpt_neox_seq": {},
    "falcon": {},
    "falcon_new": {},
    "phi2": {"legacy_qkv": True},
    "phi3": {},
    "phi3_long": {},
    "stablelm": {},
    "stablelm_seq": {},
    # llama.cpp's llama has no sliding window (Mixtral's releases have none).
    "mixtral": {"reference_config": {"sliding_window": None}},
    # LLaMA 3 RoPE, which the converter turns into a rope_freqs tensor; with q/k/v/o and MLP
    # biases.
    "llama": {"out": "llama3_gguf"},
    "olmo2": {},
    "granite": {},
    "granitemoe": {},
    # llama.cpp's starcoder2 runs full attention.
    "starcoder2": {"reference_config": {"sliding_window": None}},
    "cohere": {},
    "cohere_qk": {},
    # Both as llama.cpp's deepseek2 (V3 told apart by its sigmoid gating).
    "deepseek_v3": {},
    "deepseek_v2": {},
}

# Models only a GGUF fixture needs, in what llama.cpp's architecture can express: every
# layer a mixture-of-experts layer, no sliding windows, SmolLM3's fixed NoPE step of 4,
# Cohere 2's default pattern of 4. name -> (model type's DECODERS-style overrides, seed).
GGUF_ONLY = {
    "qwen2_moe": dict(
        model_type="qwen2_moe",
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=48,
    ),
    "qwen3_moe": dict(
        model_type="qwen3_moe",
        head_dim=16,
        num_experts=6,
        num_experts_per_tok=2,
        norm_topk_prob=True,
        moe_intermediate_size=24,
    ),
    "smollm3": dict(model_type="smollm3", num_hidden_layers=4, tie_word_embeddings=True),
    "cohere2": dict(model_type="cohere2", num_hidden_layers=4, logit_scale=0.5, sliding_window=4),
    # What llama.cpp fixes for llama4: chunks of 8192, NoPE every 4th layer, temperature
    # tuning at 8192 / 0.1, q/k norms; experts on every second layer.
    "llama4_text": dict(
        model_type="llama4_text",
        num_hidden_layers=4,
        head_dim=8,
        intermediate_size=16,
        intermediate_size_mlp=48,
        num_local_experts=4,
        num_experts_per_tok=2,
        interleave_moe_layer_step=2,
    ),
}

ZOO_ARCHS = {
    "qwen2_moe", "qwen3_moe", "olmo2", "granite", "granitemoe", "starcoder2", "smollm3",
    "cohere", "cohere2", "llama4_text",
}


def zoo_metadata(w, mt, cfg, n_head_kv, head_dim):
    """The set_gguf_parameters of llama.cpp's converters for the decoder zoo."""
    rope = cfg.get("rope_parameters") or {}
    w.add_head_count_kv(n_head_kv)
    if "rope_theta" in rope:
        w.add_rope_freq_base(rope["rope_theta"])
    if "rms_norm_eps" in cfg and mt not in ("cohere", "cohere2", "starcoder2"):
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    for key in ("layer_norm_eps", "norm_epsilon"):
        if key in cfg:
            w.add_layer_norm_eps(cfg[key])
    if cfg.get("head_dim") and mt not in ("granite", "granitemoe"):
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    experts = cfg.get("num_local_experts") or cfg.get("num_experts")
    if experts:
        w.add_expert_count(experts)
        w.add_expert_used_count(cfg["num_experts_per_tok"])
    if mt in ("qwen2_moe", "qwen3_moe"):
        w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        if "shared_expert_intermediate_size" in cfg:
            w.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])
    if mt in ("granite", "granitemoe", "smollm3", "llama4_text"):
        # LlamaModel.set_gguf_parameters.
        w.add_rope_dimension_count(head_dim)
    if mt == "llama4_text":
        w.add_interleave_moe_layer_step(cfg["interleave_moe_layer_step"])
        w.add_expert_feed_forward_length(cfg["intermediate_size"])
    if mt in ("granite", "granitemoe"):
        w.add_attention_scale(cfg["attention_multiplier"])
        w.add_embedding_scale(cfg["embedding_multiplier"])
        w.add_residual_scale(cfg["residual_multiplier"])
        w.add_logit_scale(cfg["logits_scaling"])
    if mt in ("cohere", "cohere2"):
        w.add_logit_scale(cfg["logit_scale"])
        w.add_rope_scaling_type(gguf_module().RopeScalingType.NONE)
    if mt == "cohere2":
        w.add_sliding_window(cfg["sliding_window"])
        w.add_rope_dimension_count(head_dim)


def deepseek_metadata(w, mt, cfg):
    """DeepseekV2Model.set_gguf_parameters: latent attention as multi-query attention over
    the latent (one kv head, keys of rank + rotary, values of rank) with the real widths
    under `_mla`; the experts' routing. The gating function is written from `scoring_func`,
    which DeepSeek's released configs carry (sigmoid for V3) and transformers' do not."""
    gguf = gguf_module()
    rope = cfg.get("rope_parameters") or {}
    r, rot = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_leading_dense_block_count(cfg["first_k_dense_replace"])
    if cfg.get("q_lora_rank") is not None:
        w.add_q_lora_rank(cfg["q_lora_rank"])
    w.add_kv_lora_rank(r)
    w.add_key_length(r + rot)
    w.add_value_length(r)
    w.add_key_length_mla(cfg["qk_nope_head_dim"] + rot)
    w.add_value_length_mla(cfg["v_head_dim"])
    w.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
    w.add_expert_count(cfg["n_routed_experts"])
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    w.add_expert_shared_count(cfg["n_shared_experts"])
    w.add_expert_weights_scale(cfg["routed_scaling_factor"])
    if cfg.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    w.add_expert_group_count(cfg["n_group"])
    w.add_expert_group_used_count(cfg["topk_group"])
    scoring = cfg.get("scoring_func", "sigmoid" if mt == "deepseek_v3" else None)
    if scoring is not None:
        w.add_expert_gating_func(
            gguf.ExpertGatingFuncType.SIGMOID if scoring == "sigmoid" else gguf.ExpertGatingFuncType.SOFTMAX
        )
    w.add_rope_dimension_count(rot)
    if rope.get("rope_type") == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(rope["factor"])
        w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
        w.add_rope_scaling_yarn_beta_fast(rope["beta_fast"])
        w.add_rope_scaling_yarn_beta_slow(rope["beta_slow"])
        # [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]: 0.1 * mscale_all_dim.
        w.add_rope_scaling_yarn_log_mul(0.1 * rope["mscale_all_dim"])


FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def mxfp4_pack(w):
    """`w` [E, rows, cols] quantized to MXFP4 as the released gpt-oss checkpoints store it:
    per 32 values of a row one power-of-two scale (exponent biased by 127) and 4-bit e2m1
    codes, two per byte, low nibble first -> (blocks [E, rows, cols/32, 16], scales
    [E, rows, cols/32]) as uint8."""
    e, rows, cols = w.shape
    g = w.reshape(e, rows, cols // 32, 32).astype(np.float64)
    amax = np.abs(g).max(axis=-1, keepdims=True)
    exp = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-30) / 6.0)), 0).astype(np.int32)
    scaled = g / np.exp2(exp)
    lut = np.array(FP4_VALUES)
    mag = np.abs(scaled)[..., None]
    idx = np.abs(mag - lut).argmin(axis=-1)
    code = (idx + 8 * (scaled < 0)).astype(np.uint8)
    code = np.where(lut[idx] == 0, 0, code).astype(np.uint8)
    blocks = (code[..., 0::2] | (code[..., 1::2] << 4)).astype(np.uint8)
    scales = (exp[..., 0] + 127).astype(np.uint8)
    return blocks, scales


def gpt_oss_mxfp4_fixture():
    """`gpt_oss_mxfp4`: the `gpt_oss` fixture with its experts stored as MXFP4 blocks and
    scales (`quantization_config.quant_method = "mxfp4"`); the reference is transformers on
    the weights transformers' own MXFP4 dequantization gives back."""
    import shutil

    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    src = FIXTURES / "gpt_oss"
    out_dir = FIXTURES / "gpt_oss_mxfp4"
    out_dir.mkdir(parents=True, exist_ok=True)
    sd = load_file(src / "model.safetensors")
    dense = {}
    stored = {}
    for name, t in sd.items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            # Stored [E, in, out]; MXFP4 packs rows of the [E, out, in] weight.
            blocks, scales = mxfp4_pack(t.transpose(1, 2).contiguous().numpy())
            blocks_t, scales_t = torch.from_numpy(blocks), torch.from_numpy(scales)
            stored[name + "_blocks"] = blocks_t.reshape(*blocks.shape[:2], -1, 16)
            stored[name + "_scales"] = scales_t
            dense[name] = convert_moe_packed_tensors(
                stored[name + "_blocks"], scales_t, dtype=torch.float32
            )
        else:
            stored[name] = t
            dense[name] = t
    save_file(stored, out_dir / "model.safetensors")
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(src), attn_implementation="eager"
    ).eval()
    model.load_state_dict(dense)
    seed = list(DECODERS).index("gpt_oss")
    ids, mask, pos = inputs(config["vocab_size"], seed)
    ref = reference(model, ids, mask, pos)
    save_file(ref, out_dir / "expected.safetensors")
    # transformers loading the MXFP4 checkpoint itself gives the same logits.
    from transformers import Mxfp4Config

    quantized = AutoModelForCausalLM.from_pretrained(
        out_dir,
        quantization_config=Mxfp4Config(dequantize=True),
        dtype=torch.float32,
        attn_implementation="eager",
    ).eval()
    with torch.no_grad():
        logits = quantized(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    assert torch.allclose(logits, ref["logits"], atol=1e-6), "MXFP4 layout differs"
    print("gpt_oss_mxfp4 written")


def gpt_oss_gguf_fixture():
    """`gpt_oss_gguf`: the `gpt_oss_mxfp4` checkpoint as llama.cpp's GptOssModel converts it:
    the MXFP4 experts repacked into ggml's MXFP4 blocks (the scale byte, then 16 bytes whose
    low nibbles hold values 0-15 and high nibbles 16-31), gate and up split from the
    interleaved `gate_up_proj` (and its bias), the sinks as `attn_sinks.weight`. llama.cpp
    fixes the clamped SwiGLU at alpha 1.702 and limit 7.0: the reference is transformers on
    the same checkpoint with that limit."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, Mxfp4Config

    src = FIXTURES / "gpt_oss_mxfp4"
    out_dir = FIXTURES / "gpt_oss_gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    sd = load_file(src / "model.safetensors")
    rope = cfg["rope_parameters"]
    n_layer = cfg["num_hidden_layers"]
    w = gguf.GGUFWriter(str(out_dir / "tiny-gpt_oss.gguf"), "gpt-oss")
    # TextModel.set_gguf_parameters, then GptOssModel's.
    w.add_block_count(n_layer)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(rope["factor"])
    w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_beta_fast(rope["beta_fast"])
    w.add_rope_scaling_yarn_beta_slow(rope["beta_slow"])
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_expert_count(cfg["num_local_experts"])
    w.add_expert_used_count(cfg["num_experts_per_tok"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_sliding_window(cfg["sliding_window"])
    w.add_expert_feed_forward_length(cfg["intermediate_size"])
    w.add_vocab_size(cfg["vocab_size"])

    def mxfp4(name, blocks, scales):
        # transformers' nibbles (value 2k low, 2k + 1 high) -> ggml's (k low, k + 16 high).
        codes = np.stack([blocks & 0x0F, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)
        qs = (codes[..., :16] | (codes[..., 16:] << 4)).astype(np.uint8)
        data = np.concatenate([scales[..., None], qs], axis=-1)
        data = data.reshape(*data.shape[:-2], -1)
        w.add_tensor(name, np.ascontiguousarray(data), raw_dtype=gguf.GGMLQuantizationType.MXFP4)

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT_OSS, n_layer)
    for hf, arr in sd.items():
        if hf.endswith("_scales"):
            continue
        layer = hf.split(".")[2] if hf.startswith("model.layers.") else None
        blk = f"blk.{layer}"
        if hf.endswith("experts.gate_up_proj_blocks"):
            scales = sd[hf.replace("_blocks", "_scales")]
            mxfp4(f"{blk}.ffn_gate_exps.weight", arr[:, ::2], scales[:, ::2])
            mxfp4(f"{blk}.ffn_up_exps.weight", arr[:, 1::2], scales[:, 1::2])
        elif hf.endswith("experts.down_proj_blocks"):
            mxfp4(f"{blk}.ffn_down_exps.weight", arr, sd[hf.replace("_blocks", "_scales")])
        elif hf.endswith("experts.gate_up_proj_bias"):
            w.add_tensor(f"{blk}.ffn_gate_exps.bias", np.ascontiguousarray(arr[..., ::2]))
            w.add_tensor(f"{blk}.ffn_up_exps.bias", np.ascontiguousarray(arr[..., 1::2]))
        elif hf.endswith("experts.down_proj_bias"):
            w.add_tensor(f"{blk}.ffn_down_exps.bias", arr)
        else:
            name = hf + ".weight" if hf.endswith("sinks") else hf
            gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
            assert gname is not None, f"gpt_oss_gguf: no GGUF name for {hf}"
            w.add_tensor(gname, arr.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    config = AutoConfig.from_pretrained(src)
    config.swiglu_limit = 7.0
    model = AutoModelForCausalLM.from_pretrained(
        src,
        config=config,
        quantization_config=Mxfp4Config(dequantize=True),
        dtype=torch.float32,
        attn_implementation="eager",
    ).eval()
    ids, mask, pos = inputs(cfg["vocab_size"], list(DECODERS).index("gpt_oss"))
    save_file(reference(model, ids, mask, pos), out_dir / "expected.safetensors")
    print("gpt_oss_gguf written")


def mamba_gguf_fixture(model_type="mamba", seed=120):
    """`{model_type}_gguf`: a Mamba made for it in what llama.cpp's `mamba` expresses (no
    projection biases, a convolution bias, intermediate size twice the hidden size, an
    untied head), written as MambaModel converts it: `A_log` as `A = -exp(A_log)` under
    `ssm_a`, the convolution squeezed to `[channels, kernel]`, `D` as `ssm_d`; Falcon-Mamba
    with `ssm.dt_b_c_rms` set and transformers' default `mixer_rms_eps` (the file cannot
    state it). The reference is transformers on the checkpoint it was made from."""
    import shutil
    import tempfile

    import gguf
    from safetensors.numpy import load_file

    overrides = dict(
        model_type=model_type,
        num_hidden_layers=2,
        state_size=8,
        conv_kernel=4,
        time_step_rank=3,
        use_bias=False,
        use_conv_bias=True,
        tie_word_embeddings=False,
    )
    name = f"{model_type}_gguf"
    out_dir = FIXTURES / name
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / model_type
        decoder_fixture(name, overrides, seed, out_dir=src)
        cfg = json.loads((src / "config.json").read_text())
        sd = load_file(src / "model.safetensors")
        assert cfg["intermediate_size"] == 2 * cfg["hidden_size"]
        w = gguf.GGUFWriter(str(out_dir / f"tiny-{model_type}.gguf"), "mamba")
        # MambaModel.set_gguf_parameters.
        w.add_context_length(2**20)
        w.add_embedding_length(cfg["hidden_size"])
        w.add_feed_forward_length(0)
        w.add_head_count(0)
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_ssm_conv_kernel(cfg["conv_kernel"])
        w.add_ssm_inner_size(cfg["intermediate_size"])
        w.add_ssm_state_size(cfg["state_size"])
        w.add_ssm_time_step_rank(cfg["time_step_rank"])
        w.add_layer_norm_rms_eps(cfg["layer_norm_epsilon"])
        w.add_ssm_dt_b_c_rms(model_type == "falcon_mamba")
        w.add_vocab_size(cfg["vocab_size"])
        tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MAMBA, cfg["num_hidden_layers"])
        for hf, arr in sd.items():
            name = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
            assert name is not None, f"{model_type}_gguf: no GGUF name for {hf}"
            if hf.endswith(".A_log"):
                arr = -np.exp(arr)
            if ".conv1d." in hf:
                arr = arr.squeeze()
            w.add_tensor(name, np.ascontiguousarray(arr.astype(np.float32)))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        shutil.copy(src / "expected.safetensors", out_dir / "expected.safetensors")
    print(f"{model_type}_gguf written")


def mamba2_gguf_fixture():
    """`mamba2_gguf`: the `mamba2` fixture as llama.cpp's Mamba2Model converts it: `dt_bias`
    as `ssm_dt.bias`, `A = -exp(A_log)` and `D` as `[heads, 1]`, the gated norm's weight as
    `[groups, inner / groups]`, the convolution squeezed, the head count written as
    `ssm.time_step_rank`. The reference is the fixture's."""
    import shutil

    import gguf
    from safetensors.numpy import load_file

    src = FIXTURES / "mamba2"
    out_dir = FIXTURES / "mamba2_gguf"
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    sd = load_file(src / "model.safetensors")
    n_layer, hidden = cfg["num_hidden_layers"], cfg["hidden_size"]
    inner, groups = cfg["expand"] * hidden, cfg["n_groups"]
    w = gguf.GGUFWriter(str(out_dir / "tiny-mamba2.gguf"), "mamba2")
    # Mamba2Model.set_gguf_parameters.
    w.add_context_length(2**20)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(0)
    w.add_head_count(0)
    w.add_block_count(n_layer)
    w.add_ssm_conv_kernel(cfg["conv_kernel"])
    w.add_ssm_inner_size(inner)
    w.add_ssm_state_size(cfg["state_size"])
    w.add_ssm_time_step_rank(inner // cfg["head_dim"])
    w.add_ssm_group_count(groups)
    w.add_layer_norm_rms_eps(cfg["layer_norm_epsilon"])
    w.add_vocab_size(cfg["vocab_size"])
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MAMBA2, n_layer)
    for hf, arr in sd.items():
        if hf.endswith(".dt_bias"):
            hf = hf.removesuffix(".dt_bias") + ".dt_proj.bias"
        name = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
        assert name is not None, f"mamba2_gguf: no GGUF name for {hf}"
        if ".conv1d." in hf:
            arr = arr.squeeze()
        elif hf.endswith((".A_log", ".D")):
            arr = arr.reshape(*arr.shape, 1)
        elif hf.endswith(".mixer.norm.weight"):
            arr = arr.reshape(groups, inner // groups)
        if hf.endswith(".A_log"):
            arr = -np.exp(arr)
        w.add_tensor(name, np.ascontiguousarray(arr.astype(np.float32)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    shutil.copy(src / "expected.safetensors", out_dir / "expected.safetensors")
    print("mamba2_gguf written")


def gguf_module():
    import gguf

    return gguf


def gguf_only_fixture(name, overrides, seed):
    """`{name}_gguf` from a model made for it (see GGUF_ONLY), through a temporary HF
    checkpoint; the reference is transformers on that checkpoint."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name
        decoder_fixture(name, overrides, seed, out_dir=src)
        converted_gguf_fixture(name, src=src, seed=seed)


def gguf_reference(gguf_path, out):
    """Reference logits of a real GGUF model (SmolLM2-135M-Instruct Q4_1, Gemma 3 270M Q4_K_M),
    dequantized by transformers, on a 32-token input. Full logits are megabytes, so per
    position we keep transformers' 256 highest logits plus 256 fixed token ids, and the argmax."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path).resolve()
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    text = (
        "The quick brown fox jumps over the lazy dog. Rust is a systems programming language "
        "that runs blazingly fast, prevents segfaults, and guarantees thread safety."
    )
    ids = torch.tensor([tok(text)["input_ids"][:32]])
    assert ids.shape[1] == 32, ids.shape
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    vocab = logits.shape[-1]
    g = torch.Generator().manual_seed(0)
    fixed = torch.randperm(vocab, generator=g)[:256]
    top = logits.topk(256, dim=-1).indices
    idx = torch.cat([top, fixed.expand(logits.shape[0], -1)], dim=-1)
    save_file(
        {
            "input_ids": ids,
            "logit_ids": idx.contiguous(),
            "logit_values": logits.gather(-1, idx).contiguous(),
            "argmax": logits.argmax(-1).contiguous(),
        },
        out,
    )
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("only", nargs="*", help="fixture names (default: all)")
    ap.add_argument("--gguf", help="GGUF path, for the `smollm2` or `gemma3_270m` reference")
    args = ap.parse_args()
    only = set(args.only)
    for real in ["smollm2", "gemma3_270m"]:
        if real in only:
            gguf_reference(args.gguf, FIXTURES / f"{real}_reference.safetensors")
            only.discard(real)
            if not only:
                return
    for seed, (name, overrides) in enumerate(DECODERS.items()):
        if not only or name in only:
            decoder_fixture(name, overrides, seed)
    if not only or "llama_gguf" in only:
        gguf_fixture()
    for name in ["gemma", "gemma2"]:
        if not only or f"{name}_gguf" in only:
            gemma_gguf_fixture(name)
    for name, kwargs in CONVERTED_GGUF.items():
        if not only or kwargs.get("out", f"{name}_gguf") in only:
            converted_gguf_fixture(name, **kwargs)
    if not only or "gpt_oss_mxfp4" in only:
        gpt_oss_mxfp4_fixture()
    if not only or "gpt_oss_gguf" in only:
        gpt_oss_gguf_fixture()
    if not only or "mamba2_gguf" in only:
        mamba2_gguf_fixture()
    for i, model_type in enumerate(["mamba", "falcon_mamba"]):
        if not only or f"{model_type}_gguf" in only:
            mamba_gguf_fixture(model_type, 120 + i)
    for i, (name, overrides) in enumerate(GGUF_ONLY.items()):
        if not only or f"{name}_gguf" in only:
            gguf_only_fixture(name, overrides, 100 + i)


if __name__ == "__main__":
    sys.exit(main())
