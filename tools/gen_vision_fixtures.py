#!/usr/bin/env python3
"""Writes the image-processor fixtures under tests/fixtures/images/ with transformers as the
reference.

Test images of varied sizes, aspect ratios, modes and formats are drawn here (deterministic
patterns: gradients, shapes and seeded noise) and saved with Pillow. For each image,
`expected.safetensors` holds:

  decoded/<image>                     [H, W, 3] uint8: what transformers' `load_image` gives
                                      (Pillow decode, EXIF transpose, convert("RGB"))
  <processor>/<backend>/<image>       [1, 3, h, w] f32: the processor's `pixel_values` for
                                      that RGB image, backend "torchvision" (transformers'
                                      default) or "pil"

Processors are transformers' own classes with their defaults, sizes made small so the
fixtures stay small (the algorithms do not depend on the size); their configs are saved as
`<processor>.json` exactly as `save_pretrained` writes them.

Usage (needs torch, torchvision, transformers, pillow, safetensors):
  python tools/gen_vision_fixtures.py
"""

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import (
    BlipImageProcessor,
    CLIPImageProcessor,
    DeiTImageProcessor,
    SiglipImageProcessor,
    ViTImageProcessor,
)
from transformers.image_utils import load_image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "images"


def pattern(width, height, seed):
    """An RGB picture with smooth and sharp parts and some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 127.5 + 127.5 * np.sin((x + 2 * y) / 7.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (height, width, 3))
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    draw.rectangle([width // 5, height // 4, width // 2, height // 2], fill=(250, 20, 30))
    draw.ellipse([width // 2, height // 3, width - 2, height - 2], outline=(0, 0, 0), width=2)
    draw.line([0, height - 1, width - 1, 0], fill=(255, 255, 255), width=1)
    return img


def encode(img, fmt, **kwargs):
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def images():
    """(file name, bytes) of every test image."""
    out = []
    big = pattern(320, 240, 0)
    out.append(("rgb_320x240.png", encode(big, "PNG")))
    out.append(("rgb_37x53.png", encode(pattern(37, 53, 1), "PNG")))
    out.append(("rgb_7x5.png", encode(pattern(7, 5, 2), "PNG")))
    out.append(("rgb_500x90.png", encode(pattern(500, 90, 3), "PNG")))
    out.append(("rgb_64x64.png", encode(pattern(64, 64, 4), "PNG")))
    rgba = pattern(90, 120, 5).convert("RGBA")
    alpha = Image.linear_gradient("L").resize((90, 120))
    rgba.putalpha(alpha)
    out.append(("rgba_90x120.png", encode(rgba, "PNG")))
    out.append(("gray_80x60.png", encode(pattern(80, 60, 6).convert("L"), "PNG")))
    out.append(("palette_70x50.png", encode(pattern(70, 50, 7).convert("P", palette=Image.ADAPTIVE, colors=32), "PNG")))
    out.append(("gray_alpha_40x30.png", encode(pattern(40, 30, 8).convert("LA"), "PNG")))
    out.append(("rgb_160x120.jpg", encode(pattern(160, 120, 9), "JPEG", quality=90)))
    out.append(("gray_60x100.jpg", encode(pattern(60, 100, 10).convert("L"), "JPEG", quality=85)))
    out.append(("cmyk_48x40.jpg", encode(pattern(48, 40, 11).convert("CMYK"), "JPEG", quality=95)))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display.
    out.append(("exif_rotated_64x32.jpg", encode(pattern(64, 32, 12), "JPEG", quality=90, exif=exif)))
    out.append(("lossless_96x72.webp", encode(pattern(96, 72, 13), "WEBP", lossless=True)))
    out.append(("lossy_96x72.webp", encode(pattern(96, 72, 14), "WEBP", quality=80)))
    return out


# Each processor class with its defaults, at small sizes.
PROCESSORS = {
    "vit": ViTImageProcessor(size={"height": 30, "width": 30}),
    "deit": DeiTImageProcessor(size={"height": 36, "width": 36}, crop_size={"height": 30, "width": 30}),
    "clip": CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}),
    "siglip": SiglipImageProcessor(size={"height": 32, "width": 32}),
    "blip": BlipImageProcessor(size={"height": 24, "width": 24}),
    # Crops larger than the resized image (padding) and a shorter edge than the crop.
    "clip_pad": CLIPImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 26, "width": 23}),
    # Bilinear upscaling and downscaling without a crop, no normalization.
    "vit_rescale_only": ViTImageProcessor(size={"height": 41, "width": 19}, do_normalize=False),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, data in images():
        (OUT / name).write_bytes(data)
        rgb = load_image(str(OUT / name))
        tensors[f"decoded/{name}"] = torch.from_numpy(np.asarray(rgb).copy())
        for pname, proc in PROCESSORS.items():
            for backend in ("torchvision", "pil"):
                cls = type(proc) if backend == "torchvision" else getattr(
                    __import__("transformers"), type(proc).__name__ + "Pil"
                )
                p = cls(**{k: v for k, v in proc.to_dict().items() if k != "image_processor_type"})
                pv = p(rgb, return_tensors="pt")["pixel_values"]
                tensors[f"{pname}/{backend}/{name}"] = pv.to(torch.float32).contiguous()
    for pname, proc in PROCESSORS.items():
        proc.save_pretrained(OUT / f"tmp_{pname}")
        cfg = json.loads((OUT / f"tmp_{pname}" / "preprocessor_config.json").read_text())
        (OUT / f"{pname}.json").write_text(json.dumps(cfg, indent=2) + "\n")
        for f in (OUT / f"tmp_{pname}").iterdir():
            f.unlink()
        (OUT / f"tmp_{pname}").rmdir()
    save_file(tensors, str(OUT / "expected.safetensors"))
    print(f"wrote {len(tensors)} tensors to {OUT}")


if __name__ == "__main__":
    main()
