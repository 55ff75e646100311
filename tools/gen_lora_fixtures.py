"""PEFT adapters on architectures whose module names differ from the LLaMA family's, with
the logits peft gives, for the merge-at-load test: GPT-2 (`c_attn`, a Conv1D:
`fan_in_fan_out=True`) and DistilBERT (`q_lin`, `v_lin`). `init_lora_weights=False` makes
B non-zero, so the adapter changes the outputs. Writes tests/fixtures/train/lora_<name>/
(adapter_config.json, adapter_model.safetensors, reference.safetensors with `input_ids`
and `output`: the logits, or the last hidden state of a base model).

    python tools/gen_lora_fixtures.py   # needs torch, transformers, peft, safetensors
"""

from pathlib import Path

import peft
import torch
import transformers
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def make(name, checkpoint, cls, targets, fan_in_fan_out, task_type):
    torch.manual_seed(0)
    model = getattr(transformers, cls).from_pretrained(FIXTURES / checkpoint, dtype=torch.float32)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                             fan_in_fan_out=fan_in_fan_out, init_lora_weights=False,
                             task_type=task_type)
    model = peft.get_peft_model(model, config).eval()
    out = FIXTURES / "train" / f"lora_{name}"
    model.save_pretrained(out)
    (out / "README.md").unlink(missing_ok=True)
    ids = torch.tensor([[5, 9, 17, 33, 2, 8, 11]])
    with torch.no_grad():
        out_ = model(input_ids=ids)
        logits = out_.logits if hasattr(out_, "logits") else out_.last_hidden_state
    save_file({"input_ids": ids.to(torch.int64), "output": logits.contiguous()},
              out / "reference.safetensors")
    print(f"wrote {out}")


def main():
    make("gpt2", "gpt2", "GPT2LMHeadModel", ["c_attn"], True, "CAUSAL_LM")
    make("distilbert", "distilbert_base", "DistilBertModel", ["q_lin", "v_lin"], False, None)


if __name__ == "__main__":
    main()
