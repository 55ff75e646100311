#!/usr/bin/env python3
"""Writes gradient references for the tiny parity checkpoints under tests/fixtures/.

For each checkpoint directory named below, transformers loads it with its own head
(`architectures[0]`), dropout off (`eval()`), and runs one forward pass with labels and one
backward pass. `tests/fixtures/train/grads/<name>.safetensors` then holds:

  input_ids, attention_mask [, token_type_ids, position_ids]   int64 model inputs
  labels | start_positions, end_positions                       int64 labels
  loss                                                          float32 scalar
  grad.<tensor>                                                 float32, one per checkpoint
                                                                tensor the loss reaches, named
                                                                and shaped as the checkpoint
                                                                stores it

transformers may hold a checkpoint tensor under another name, or fused with others (Mixtral's
experts as one 3-D `gate_up_proj`, NomicBERT's `Wqkv` as `q_proj`/`k_proj`/`v_proj`); each
checkpoint tensor's gradient is found by locating its values inside the parameters (the
random weights make every match unique) and taking the same slice of the parameter's
gradient.

Row 1 of every batch is right-padded (as a training collator pads), and padded positions
carry the label -100 where labels are per token.

Usage (needs torch, transformers, safetensors):
  python tools/gen_grad_fixtures.py            # every fixture
  python tools/gen_grad_fixtures.py llama bert_seqcls
"""

import json
import sys
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "train" / "grads"
SEQ = 10
PAD = 3

# One checkpoint per distinct layer layout: the presets' knobs, both residual forms, every
# attention variant, MoE, tied and untied heads, Conv1D-transposed weights (GPT-2).
DECODERS = [
    "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "stablelm",
    "mixtral", "gpt_neox", "phi", "gptj", "gpt2", "gpt_neo", "falcon", "falcon_new",
    "falcon_alibi",
    # The decoder zoo: shared and gated experts, dense layers between expert layers,
    # post-norms, multipliers, NoPE and chunked layers, sinks and clamped experts, latent
    # attention with sigmoid group routing.
    "qwen2_moe", "qwen3_moe", "olmo2", "granite", "granitemoe", "starcoder2", "smollm3",
    "cohere", "cohere2", "gpt_oss", "deepseek_v2", "deepseek_v3", "llama4_text",
]
# Every head, and each encoder family once.
ENCODERS = [
    "bert_seqcls", "bert_tokcls", "bert_qa", "bert_mlm", "bert_mc", "roberta_seqcls",
    "distilbert_seqcls", "albert_seqcls", "electra_seqcls", "deberta_v3_seqcls",
    "modernbert_seqcls", "nomic_bert_seqcls",
]


def batch(config, head, seed):
    g = torch.Generator().manual_seed(seed)
    vocab = config["vocab_size"]
    ids = torch.randint(3, vocab, (2, SEQ), generator=g)
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, SEQ - PAD :] = 0
    ids[1, SEQ - PAD :] = config.get("pad_token_id") or 0
    out = {"input_ids": ids, "attention_mask": mask}
    per_token = lambda high: torch.randint(0, high, (2, SEQ), generator=g).masked_fill(
        mask == 0, -100
    )
    num_labels = len(config.get("id2label") or {}) or 2
    if head == "ForCausalLM":
        out["position_ids"] = torch.arange(SEQ).repeat(2, 1)
        out["labels"] = ids.masked_fill(mask == 0, -100)
    elif head == "ForMaskedLM":
        labels = per_token(vocab)
        # transformers' collator labels about 15% of the tokens; here every third one.
        keep = torch.zeros(2, SEQ, dtype=torch.bool)
        keep[:, ::3] = True
        out["labels"] = labels.masked_fill(~keep, -100)
    elif head == "ForTokenClassification":
        out["labels"] = per_token(num_labels)
    elif head == "ForSequenceClassification":
        out["labels"] = torch.randint(0, num_labels, (2,), generator=g)
    elif head == "ForQuestionAnswering":
        out["start_positions"] = torch.tensor([1, 4])
        out["end_positions"] = torch.tensor([3, 6])
    elif head == "ForMultipleChoice":
        out = {k: v.unsqueeze(0) for k, v in out.items()}
        out["labels"] = torch.tensor([1])
    else:
        raise SystemExit(f"no labels for {head}")
    return out


def views(p):
    """Every 2-D or whole slice of `p` a checkpoint tensor could be: `(index, tensor)`."""
    yield (), p
    mats = [((e,), p[e]) for e in range(p.shape[0])] if p.dim() == 3 else [((), p)]
    for idx, m in mats:
        if m.dim() != 2:
            continue
        yield idx, m
        yield idx + ("T",), m.t()


def slices(view, rows):
    for off in range(0, view.shape[0] - rows + 1, rows):
        yield off, view[off : off + rows]


def checkpoint_grads(model, ckpt):
    """Each checkpoint tensor's gradient, located by value among the model's parameters."""
    stored = load_file(ckpt / "model.safetensors")
    out = {}
    for cname, c in stored.items():
        for pname, p in model.named_parameters():
            if p.grad is None:
                continue
            found = None
            for idx, v in views(p.detach()):
                if v.shape == c.shape and torch.equal(v, c):
                    found = (idx, None)
                    break
                if v.dim() == c.dim() == 2 and v.shape[1] == c.shape[1] and v.shape[0] > c.shape[0]:
                    for off, part in slices(v, c.shape[0]):
                        if torch.equal(part, c):
                            found = (idx, off)
                            break
                if found:
                    break
            if not found:
                continue
            idx, off = found
            g = p.grad
            for i in idx:
                g = g.t() if i == "T" else g[i]
            if off is not None:
                g = g[off : off + c.shape[0]]
            out[cname] = g.float().contiguous()
            break
        if cname not in out and c.dim() == 2:
            # A fused checkpoint tensor (`Wqkv`) that the model keeps as separate parameters.
            parts = {}
            for pname, p in model.named_parameters():
                if p.grad is None or p.dim() != 2 or p.shape[1] != c.shape[1]:
                    continue
                for off, part in slices(c, p.shape[0]):
                    if torch.equal(part, p.detach()):
                        parts[off] = p.grad
            if sum(g.shape[0] for g in parts.values()) == c.shape[0]:
                out[cname] = torch.cat([parts[o] for o in sorted(parts)]).float().contiguous()
    return out


def fixture(name, seed):
    import transformers

    ckpt = FIXTURES / name
    config = json.loads((ckpt / "config.json").read_text())
    arch = config["architectures"][0]
    head = next(
        h
        for h in [
            "ForCausalLM",
            "ForMaskedLM",
            "ForTokenClassification",
            "ForSequenceClassification",
            "ForQuestionAnswering",
            "ForMultipleChoice",
            "LMHeadModel",
        ]
        if arch.endswith(h)
    )
    head = "ForCausalLM" if head == "LMHeadModel" else head
    model = getattr(transformers, arch).from_pretrained(
        ckpt, attn_implementation="eager", dtype=torch.float32
    )
    model.eval()
    inputs = batch(config, head, seed)
    out = model(**inputs)
    out.loss.backward()
    tensors = {k: v.contiguous() for k, v in inputs.items()}
    tensors["loss"] = out.loss.detach().float().reshape(())
    grads = checkpoint_grads(model, ckpt)
    reached = sum(p.grad is not None for p in model.parameters())
    assert grads or not reached, f"{name}: no checkpoint tensor found among the parameters"
    for cname, g in grads.items():
        tensors[f"grad.{cname}"] = g
    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, OUT / f"{name}.safetensors")
    print(f"{name}: {arch}, loss {out.loss.item():.5f}, {len(grads)} gradients")


def main():
    torch.manual_seed(0)
    names = sys.argv[1:] or DECODERS + ENCODERS
    for name in names:
        fixture(name, zlib.crc32(name.encode()))


if __name__ == "__main__":
    main()
