#!/usr/bin/env python3
"""Training throughput side by side: one fine-tuning step of a sequence classifier (a new
two-class head on a BERT checkpoint, batch 32 x 128 tokens, AdamW) with transformers' Trainer
and with `trustformers train`, on the same CPU, in the same run. Reports the median step time
(the first step left out) and tokens per second of each.

Usage (needs torch, transformers, accelerate in the Python environment):
  cargo build --release -p trustformers-cli
  python scripts/bench_train.py --model ~/.cache/trustformers/all-minilm-l6-v2 \\
      [--trustformers target/release/trustformers] [--steps 8] [--batch 32] [--seq 128]
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

WORDS = (
    "the a movie book service dinner concert phone hotel lecture game trip was wonderful "
    "terrible great boring warm cold friendly rude happy sad long short bright dark quiet loud "
    "every expectation from start to finish real delight disappointment joy waste time"
).split()


def data(path, n, words):
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(words))
            f.write(json.dumps({"text": text, "label": i % 2}) + "\n")


def bench_transformers(model_dir, train_file, steps, batch, seq, threads):
    import torch
    import transformers
    from torch.utils.data import Dataset

    torch.set_num_threads(threads)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    rows = [json.loads(l) for l in open(train_file)]
    enc = tok([r["text"] for r in rows], truncation=True, max_length=seq, padding="max_length")

    class Rows(Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            item = {k: torch.tensor(v[i]) for k, v in enc.items()}
            item["labels"] = torch.tensor(rows[i]["label"])
            return item

    model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    times = []

    class Clock(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            output_dir=out,
            max_steps=steps,
            per_device_train_batch_size=batch,
            learning_rate=5e-5,
            logging_steps=1000,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            train_sampling_strategy="sequential",
        )
        transformers.Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[Clock()]).train()
    return times


def bench_trustformers(binary, model_dir, train_file, steps, batch, seq, threads):
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        subprocess.run(
            [
                binary, "train", "--model", str(model_dir), "--task", "text-classification",
                "--num-labels", "2", "--train-file", str(train_file), "--output-dir", out,
                "--max-steps", str(steps), "--per-device-train-batch-size", str(batch),
                "--max-length", str(seq), "--logging-steps", "1", "--save-strategy", "no",
                "--learning-rate", "5e-5", "--no-shuffle",
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        logs = [json.loads(l) for l in open(Path(out) / "trainer_log.jsonl")]
    # tokens_per_second is cumulative: the time at step k is k * tokens / rate.
    per_step = batch * seq
    ends = [e["step"] * per_step / e["tokens_per_second"] for e in logs if "loss" in e]
    return [b - a for a, b in zip([0.0] + ends, ends)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--trustformers", default="target/release/trustformers")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        data(train, a.batch * a.steps, 200)
        ours = bench_trustformers(a.trustformers, a.model, train, a.steps, a.batch, a.seq, a.threads)
        theirs = bench_transformers(a.model, train, a.steps, a.batch, a.seq, a.threads)
    tokens = a.batch * a.seq
    print(f"batch {a.batch} x {a.seq} tokens, {a.steps} steps, {a.threads} threads; median step (first left out)")
    for name, times in [("transformers Trainer", theirs), ("trustformers train", ours)]:
        m = statistics.median(times[1:])
        print(f"  {name:22} {m * 1000:8.0f} ms/step  {tokens / m:8.0f} tokens/s")
    ratio = statistics.median(theirs[1:]) / statistics.median(ours[1:])
    print(f"  trustformers / transformers throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
