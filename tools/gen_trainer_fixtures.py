#!/usr/bin/env python3
"""Writes loss-curve references of transformers' Trainer for the Rust Trainer's parity test.

Two runs, each 30 optimizer steps of AdamW with linear warmup (5 steps), weight decay 0.01,
gradient accumulation 2, batches of 4, clipping at 1.0, the data in file order
(`train_sampling_strategy="sequential"`), dropout off:

  causal_lm   tests/fixtures/llama (LlamaForCausalLM), DataCollatorForLanguageModeling(mlm=False)
              semantics: right padding with 0, labels -100 on padding
  seq_cls     tests/fixtures/bert_seqcls (BertForSequenceClassification), padding with 0,
              one class label per example
  lora        causal_lm's model and data with a PEFT LoRA adapter (r 4, alpha 8, q_proj and
              v_proj); its initial weights (PEFT's init, B = 0) are saved to
              tests/fixtures/train/lora_init/ so both sides start from them
  lora_seq_cls  seq_cls's model and data with a SEQ_CLS LoRA adapter (r 4, alpha 8, query and
              value): PEFT trains the classifier in full (modules_to_save: classifier,
              score); initial weights in tests/fixtures/train/lora_seq_cls_init/

`tests/fixtures/train/trainer_<run>.json` holds the examples (token ids and labels), the
arguments, and `log_history` with the loss, learning rate and grad norm logged at every step.

transformers 5 passes `num_items_in_batch` to every model whose `forward` takes `**kwargs`
and then skips dividing the loss by the accumulation steps; BERT's classification head
ignores `num_items_in_batch` (it averages each batch), so its accumulated gradient would be
the sum of the micro-batch means. The reference turns that off
(`model_accepts_loss_kwargs = False`): each micro-batch mean is divided by the accumulation
steps, as the Trainer's own docs describe for per-batch-mean losses and as our Trainer does.

Usage (needs torch, transformers, accelerate, safetensors, peft):
  python tools/gen_trainer_fixtures.py [RUN ...]   # all runs by default
"""

import json
from pathlib import Path

import torch
import transformers
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "train"

ARGS = dict(
    learning_rate=3e-3,
    per_device_train_batch_size=4,
    gradient_accumulation_steps=2,
    max_steps=30,
    warmup_steps=5,
    weight_decay=0.01,
    max_grad_norm=1.0,
    lr_scheduler_type="linear",
    optim="adamw_torch",
    logging_steps=1,
    seed=42,
)


class Examples(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(per_token):
    def run(rows):
        length = max(len(r["input_ids"]) for r in rows)
        pad = lambda xs, v: xs + [v] * (length - len(xs))
        ids = torch.tensor([pad(r["input_ids"], 0) for r in rows])
        mask = torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in rows])
        batch = {"input_ids": ids, "attention_mask": mask}
        if per_token:
            batch["labels"] = ids.masked_fill(ids == 0, -100)
        else:
            batch["labels"] = torch.tensor([r["label"] for r in rows])
        return batch

    return run


def examples(seed, vocab, n, num_labels=None):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(4, 13, (1,), generator=g))
        row = {"input_ids": torch.randint(3, vocab, (length,), generator=g).tolist()}
        if num_labels:
            row["label"] = int(torch.randint(0, num_labels, (1,), generator=g))
        rows.append(row)
    return rows


def no_dropout(config):
    for k, v in list(config.to_dict().items()):
        if "dropout" in k and isinstance(v, float):
            setattr(config, k, 0.0)
    return config


def run(name, checkpoint, cls, rows, per_token, lora=None):
    ckpt = FIXTURES / checkpoint
    config = no_dropout(transformers.AutoConfig.from_pretrained(ckpt))
    model = getattr(transformers, cls).from_pretrained(
        ckpt, config=config, attn_implementation="eager", dtype=torch.float32
    )
    if lora:
        import peft

        torch.manual_seed(0)
        task_type, targets, init = lora
        lora_config = peft.LoraConfig(
            r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, task_type=task_type,
        )
        model = peft.get_peft_model(model, lora_config)
        model.save_pretrained(OUT / init)
    out_dir = Path("/tmp") / f"trustformers-trainer-{name}"
    args = transformers.TrainingArguments(
        output_dir=str(out_dir),
        train_sampling_strategy="sequential",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_drop_last=False,
        **ARGS,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Examples(rows),
        data_collator=collate(per_token),
    )
    if not per_token:
        trainer.model_accepts_loss_kwargs = False
    trainer.train()
    logs = [
        {k: e[k] for k in ("loss", "learning_rate", "grad_norm", "step") if k in e}
        for e in trainer.state.log_history
        if "loss" in e
    ]
    (OUT / f"trainer_{name}.json").write_text(
        json.dumps(
            {"checkpoint": checkpoint, "args": ARGS, "examples": rows, "log_history": logs},
            indent=1,
        )
        + "\n"
    )
    print(f"{name}: {len(logs)} logged steps, loss {logs[0]['loss']} -> {logs[-1]['loss']}")


def main():
    import sys

    wanted = set(sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    llama = json.loads((FIXTURES / "llama" / "config.json").read_text())
    bert = json.loads((FIXTURES / "bert_seqcls" / "config.json").read_text())
    labels = len(bert.get("id2label") or {}) or 2
    runs = {
        "causal_lm": lambda: run(
            "causal_lm", "llama", "LlamaForCausalLM", examples(1, llama["vocab_size"], 24), True
        ),
        "seq_cls": lambda: run(
            "seq_cls", "bert_seqcls", "BertForSequenceClassification",
            examples(2, bert["vocab_size"], 24, labels), False,
        ),
        "lora": lambda: run(
            "lora", "llama", "LlamaForCausalLM", examples(1, llama["vocab_size"], 24), True,
            lora=("CAUSAL_LM", ["q_proj", "v_proj"], "lora_init"),
        ),
        "lora_seq_cls": lambda: run(
            "lora_seq_cls", "bert_seqcls", "BertForSequenceClassification",
            examples(2, bert["vocab_size"], 24, labels), False,
            lora=("SEQ_CLS", ["query", "value"], "lora_seq_cls_init"),
        ),
    }
    for name, go in runs.items():
        if not wanted or name in wanted:
            go()


if __name__ == "__main__":
    main()
