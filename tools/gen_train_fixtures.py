"""Reference losses and their gradients for trustformers-train's tests, from torch and
transformers' loss functions (transformers/loss/loss_utils.py, 4.46+ semantics).

    python tools/gen_train_fixtures.py   # torch and transformers in the environment

Writes tests/fixtures/train/losses.safetensors (inputs, losses, gradients w.r.t. the
logits, by case) and losses.json (the cases). Versions used: see losses.json.
"""

import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers.loss.loss_utils import (
    ForCausalLMLoss,
    ForMaskedLMLoss,
    ForQuestionAnsweringLoss,
    ForSequenceClassificationLoss,
    ForTokenClassification,
)

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "train"
torch.manual_seed(0)
tensors, cases = {}, []


class Config:
    def __init__(self, num_labels, problem_type):
        self.num_labels = num_labels
        self.problem_type = problem_type


def case(name, kind, logits, loss_fn, **info):
    logits = {k: v.clone().requires_grad_() for k, v in logits.items()}
    loss = loss_fn(**logits)
    loss.backward()
    for k, v in logits.items():
        tensors[f"{name}.{k}"] = v.detach().contiguous()
        tensors[f"{name}.{k}.grad"] = v.grad.contiguous()
    tensors[f"{name}.loss"] = loss.detach().reshape(1)
    cases.append({"name": name, "kind": kind, "inputs": sorted(logits), **info})


def add(name, t):
    tensors[name] = t.clone().contiguous()


# Causal LM: labels with -100, mean and num_items_in_batch.
b, s, v = 2, 7, 11
logits = torch.randn(b, s, v) * 3
labels = torch.randint(0, v, (b, s))
labels[0, :2] = -100
labels[1, 5] = -100
add("causal.labels", labels)
case("causal", "causal_lm", {"logits": logits}, lambda logits: ForCausalLMLoss(logits, labels, v))
add("causal_items.labels", labels)
case("causal_items", "causal_lm", {"logits": logits},
     lambda logits: ForCausalLMLoss(logits, labels, v, num_items_in_batch=torch.tensor(17)),
     num_items_in_batch=17)
# Masked LM.
mlm_labels = torch.full((b, s), -100)
mlm_labels[0, 3] = 4
mlm_labels[1, 1] = 9
mlm_labels[1, 6] = 0
add("masked.labels", mlm_labels)
case("masked", "masked_lm", {"logits": logits}, lambda logits: ForMaskedLMLoss(logits, mlm_labels, v))
# Sequence classification, each problem type.
n = 5
cls = torch.randn(n, 3) * 2
single = torch.tensor([0, 2, 1, 1, 0])
add("single.labels", single)
case("single", "sequence_classification", {"logits": cls},
     lambda logits: ForSequenceClassificationLoss(single, logits, Config(3, "single_label_classification")),
     problem_type="single_label_classification", num_labels=3)
multi = (torch.rand(n, 3) > 0.5).float()
add("multi.labels", multi)
case("multi", "sequence_classification", {"logits": cls},
     lambda logits: ForSequenceClassificationLoss(multi, logits, Config(3, "multi_label_classification")),
     problem_type="multi_label_classification", num_labels=3)
reg = torch.randn(n, 1)
target = torch.randn(n)
add("regression.labels", target)
case("regression", "sequence_classification", {"logits": reg},
     lambda logits: ForSequenceClassificationLoss(target, logits, Config(1, "regression")),
     problem_type="regression", num_labels=1)
reg2 = torch.randn(n, 2)
target2 = torch.randn(n, 2)
add("regression2.labels", target2)
case("regression2", "sequence_classification", {"logits": reg2},
     lambda logits: ForSequenceClassificationLoss(target2, logits, Config(2, "regression")),
     problem_type="regression", num_labels=2)
# Token classification.
tok = torch.randn(b, s, 4)
tok_labels = torch.randint(0, 4, (b, s))
tok_labels[1, 4:] = -100
add("token.labels", tok_labels)
case("token", "token_classification", {"logits": tok},
     lambda logits: ForTokenClassification(logits, tok_labels, Config(4, None)), num_labels=4)
# Question answering: one position out of range (clamped to the ignored index).
start = torch.randn(3, 9)
end = torch.randn(3, 9)
starts = torch.tensor([1, 4, 20])
ends = torch.tensor([2, 8, 0])
add("qa.start_positions", starts)
add("qa.end_positions", ends)
case("qa", "question_answering", {"start_logits": start, "end_logits": end},
     lambda start_logits, end_logits: ForQuestionAnsweringLoss(start_logits, end_logits, starts, ends))

OUT.mkdir(parents=True, exist_ok=True)
save_file(tensors, OUT / "losses.safetensors")
(OUT / "losses.json").write_text(json.dumps(
    {"torch": torch.__version__, "transformers": transformers.__version__, "cases": cases}, indent=1) + "\n")
print(f"{len(cases)} cases -> {OUT}")

# Collators: transformers' own on fixed examples (padding right and left, multiple of 4).
from transformers import (  # noqa: E402
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
)
from tokenizers import Tokenizer, models  # noqa: E402

tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"[PAD]": 0, "a": 1}, "a")))
tok.pad_token = "[PAD]"
examples = [
    {"input_ids": [5, 6, 7], "token_type_ids": [0, 0, 1]},
    {"input_ids": [8], "token_type_ids": [0]},
    {"input_ids": [9, 10, 11, 12, 13], "token_type_ids": [0, 1, 1, 1, 1]},
]
collated = {}
for side in ["right", "left"]:
    tok.padding_side = side
    for multiple in [None, 4]:
        key = f"{side}_{multiple or 1}"
        seq = [dict(e, labels=i % 2) for i, e in enumerate(examples)]
        out = DataCollatorWithPadding(tok, pad_to_multiple_of=multiple)(seq)
        collated[f"padding_{key}"] = {k: v.tolist() for k, v in out.items()}
        tokcls = [dict(e, labels=[j % 3 for j in range(len(e["input_ids"]))]) for e in examples]
        out = DataCollatorForTokenClassification(tok, pad_to_multiple_of=multiple)(tokcls)
        collated[f"token_{key}"] = {k: v.tolist() for k, v in out.items()}
        plain = [{"input_ids": e["input_ids"]} for e in examples]
        out = DataCollatorForLanguageModeling(tok, mlm=False, pad_to_multiple_of=multiple)(plain)
        collated[f"causal_{key}"] = {k: v.tolist() for k, v in out.items()}
(OUT / "collators.json").write_text(json.dumps(
    {"transformers": transformers.__version__, "examples": examples, "collated": collated}) + "\n")
print(f"{len(collated)} collations -> {OUT}")
