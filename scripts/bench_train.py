#!/usr/bin/env python3
"""Training throughput side by side, transformers' Trainer against `trustformers train` on the
same CPU in the same run; the median step time (the first step left out) and tokens/s:

- default: a sequence classifier (a new two-class head on a BERT checkpoint, batch 32 x 128
  tokens, AdamW);
- `--lora`: a LoRA adapter (r 8 on q_proj and v_proj, peft as the reference) on a causal LM
  given as a GGUF file (dequantized on both sides), batch 4 x 256 tokens.

Usage (needs torch, transformers, accelerate, and for --lora peft and gguf):
  cargo build --release -p trustformers-cli
  python scripts/bench_train.py --model ~/.cache/trustformers/all-minilm-l6-v2
  python scripts/bench_train.py --lora --batch 4 --seq 256 \\
      --model ~/.cache/trustformers/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
  options: [--trustformers target/release/trustformers] [--steps 8] [--threads N]
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


def bench_transformers(model_dir, train_file, steps, batch, seq, threads, lora=False):
    import torch
    import transformers
    from torch.utils.data import Dataset

    torch.set_num_threads(threads)
    gguf = {}
    if lora:
        gguf = {"gguf_file": Path(model_dir).name}
        model_dir = str(Path(model_dir).parent)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir, **gguf)
    rows = [json.loads(l) for l in open(train_file)]
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok([r["text"] for r in rows], truncation=True, max_length=seq, padding="max_length")

    class Rows(Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            item = {k: torch.tensor(v[i]) for k, v in enc.items()}
            item["labels"] = item["input_ids"].clone() if lora else torch.tensor(rows[i]["label"])
            return item

    if lora:
        import peft

        model = transformers.AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32, **gguf
        )
        # The Trainer refuses a model marked as GGUF-quantized; dequantized, it is plain f32
        # weights: save and reload them as such.
        plain = tempfile.mkdtemp()
        model.config.quantization_config = None
        model.hf_quantizer = None
        model.save_pretrained(plain)
        model = transformers.AutoModelForCausalLM.from_pretrained(plain, dtype=torch.float32)
        model = peft.get_peft_model(
            model,
            peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                            task_type="CAUSAL_LM"),
        )
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=2
        )
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


def bench_trustformers(binary, model_dir, train_file, steps, batch, seq, threads, lora=False):
    task = ["--task", "causal-lm", "--lora-r", "8", "--lora-alpha", "16"] if lora else [
        "--task", "text-classification", "--num-labels", "2"]
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        subprocess.run(
            [
                binary, "train", "--model", str(model_dir), *task,
                "--train-file", str(train_file), "--output-dir", out,
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
    p.add_argument("--lora", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        # Causal LM: our side packs the texts into blocks of --seq tokens, so each step
        # holds batch x seq tokens on both sides.
        data(train, a.batch * a.steps * (2 if a.lora else 1), a.seq * 2)
        ours = bench_trustformers(
            a.trustformers, a.model, train, a.steps, a.batch, a.seq, a.threads, a.lora
        )
        theirs = bench_transformers(a.model, train, a.steps, a.batch, a.seq, a.threads, a.lora)
    tokens = a.batch * a.seq
    print(f"batch {a.batch} x {a.seq} tokens, {a.steps} steps, {a.threads} threads; median step (first left out)")
    for name, times in [("transformers Trainer", theirs), ("trustformers train", ours)]:
        m = statistics.median(times[1:])
        print(f"  {name:22} {m * 1000:8.0f} ms/step  {tokens / m:8.0f} tokens/s")
    ratio = statistics.median(theirs[1:]) / statistics.median(ours[1:])
    print(f"  trustformers / transformers throughput: {ratio:.2f}x")


if __name__ == "__main__":
    main()
