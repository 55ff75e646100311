#!/usr/bin/env python3
"""Images/s at batch 8, decoding and preprocessing included, side by side: transformers
(torch fp32, its default torchvision image processor, `load_image`) and `trustformers bench
--task images`, on ViT-base/16 (image classification, 1000 labels) and CLIP ViT-B/32 (image
embeddings), random weights. Runs are interleaved (ours, theirs, ours, theirs); each prints
the median of REPS batches after a warm-up.

Usage: python scripts/bench_vision.py target/release/trustformers [-t THREADS] [-r REPS]
(needs torch, torchvision, transformers, pillow)
"""

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def photos(out, count=8):
    """JPEG photos of 640x480 and 500x375 with smooth and noisy parts."""
    paths = []
    rng = np.random.default_rng(0)
    for i in range(count):
        w, h = (640, 480) if i % 2 == 0 else (500, 375)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.stack([x / w * 255, y / h * 255, 128 + 127 * np.sin((x + y) / (9 + i))], -1)
        img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        p = out / f"photo{i}.jpg"
        Image.fromarray(img).save(p, quality=90)
        paths.append(p)
    return paths


def checkpoints(out):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        ViTConfig,
        ViTForImageClassification,
        ViTImageProcessor,
    )

    torch.manual_seed(0)
    vit = out / "vit-base-patch16-224"
    labels = {i: f"class_{i}" for i in range(1000)}
    ViTForImageClassification(ViTConfig(id2label=labels, label2id={v: k for k, v in labels.items()})).save_pretrained(vit)
    ViTImageProcessor().save_pretrained(vit)
    clip = out / "clip-vit-base-patch32"
    CLIPModel(CLIPConfig()).save_pretrained(clip)
    CLIPImageProcessor().save_pretrained(clip)
    # Image embeddings need no text; the tokenizer files only complete the checkpoint.
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(ROOT / "tests" / "fixtures" / "clip" / f, clip / f)
    return vit, clip


def transformers_images_per_s(model_dir, images, reps, threads):
    from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification
    from transformers.image_utils import load_image

    torch.set_num_threads(threads)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    if "clip" in model_dir.name:
        model = AutoModel.from_pretrained(model_dir).eval()

        def run():
            pv = processor(images=[load_image(str(p)) for p in images], return_tensors="pt")
            return model.get_image_features(**pv)
    else:
        model = AutoModelForImageClassification.from_pretrained(model_dir).eval()

        def run():
            pv = processor(images=[load_image(str(p)) for p in images], return_tensors="pt")
            logits = model(**pv).logits
            return logits.softmax(-1).topk(5)

    with torch.inference_mode():
        run()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def ours_images_per_s(binary, model_dir, images, reps, threads):
    cmd = [str(binary), "bench", "--task", "images", "--model", str(model_dir), "--json",
           "-r", str(reps), "-t", str(threads), "--batch-size", str(len(images))]
    for p in images:
        cmd += ["--image", str(p)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["images_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=5)
    args = ap.parse_args()
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = photos(tmp)
        vit, clip = checkpoints(tmp)
        print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
              f"{args.threads} threads, batch {len(images)}, median of {args.reps}")
        for name, model_dir in [("ViT-B/16 classification", vit), ("CLIP ViT-B/32 image embeddings", clip)]:
            rows = []
            for _ in range(2):
                ours = ours_images_per_s(args.binary, model_dir, images, args.reps, args.threads)
                theirs = transformers_images_per_s(model_dir, images, args.reps, args.threads)
                rows.append((ours, theirs))
            for ours, theirs in rows:
                print(f"{name}: trustformers {ours:.2f} images/s, transformers {theirs:.2f} "
                      f"images/s, ratio {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
