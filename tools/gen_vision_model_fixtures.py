#!/usr/bin/env python3
"""Writes the tiny vision and image-text model fixtures under tests/fixtures/ with
transformers as the reference.

Each fixture directory holds the checkpoint as `save_pretrained` writes it (config.json +
model.safetensors), a `preprocessor_config.json`, and `expected.safetensors` with the inputs
and transformers' outputs under their field names:

  pixel_values                           [2, 3, S, S] f32
  logits, last_hidden_state, pooler_output, hidden_states.{i}       (image models)
  input_ids, attention_mask              [2, T]; row 1 right-padded     (image-text models)
  logits_per_image, logits_per_text, text_embeds, image_embeds,
  text_last_hidden_state, vision_last_hidden_state,
  image_features, text_features          (get_image_features / get_text_features)

Every knob on somewhere: DeiT's distillation token and teacher head, projection dims that
differ from the hidden sizes, text and vision towers of different widths, SigLIP's attention
pooling head and logit bias, a padded text row.

Usage (needs torch, transformers, safetensors):
  python tools/gen_vision_model_fixtures.py
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "tools"))
from gen_encoder_fixtures import randomize  # noqa: E402

LABELS = {0: "cat", 1: "dog", 2: "bird"}
TOWER = dict(num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)


def pixels(seed, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=g)


WORDS = ["a", "photo", "of", "cat", "dog", "bird", "this", "is", ".", "the", "an", "picture"]


def tokenizer(bos, input_names):
    """A word-level tokenizer over a few words, with the image-text models' special tokens:
    `<|endoftext|>` (97) closes every text, after `<|startoftext|>` (1) when `bos`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<|startoftext|>": 1, "<unk>": 2}
    for w in WORDS:
        vocab[w] = len(vocab)
    while len(vocab) < 97:
        vocab[f"w{len(vocab)}"] = len(vocab)
    vocab["<|endoftext|>"] = 97
    vocab["<extra>"] = 98
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = "<|startoftext|> $A <|endoftext|>" if bos else "$A <|endoftext|>"
    tok.post_processor = processors.TemplateProcessing(
        single=single,
        special_tokens=[("<|startoftext|>", 1), ("<|endoftext|>", 97)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_input_names=input_names,
    )


def save(name, model, tensors, processor, tok=None):
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if tok is not None:
        tok.save_pretrained(out)
    save_file({k: v.float().clone().contiguous() if v.is_floating_point() else v.clone().contiguous()
               for k, v in tensors.items()}, out / "expected.safetensors")
    print(f"{name}: {sum(f.stat().st_size for f in out.iterdir()) // 1024} KB")


def image_fixture(name, cls_name, config_cls, processor, seed, **cfg):
    import transformers

    config = getattr(transformers, config_cls)(**TOWER, **cfg)
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(config).eval()
    randomize(model, seed)
    pv = pixels(seed)
    with torch.no_grad():
        out = model(pixel_values=pv, output_hidden_states=True)
    tensors = {"pixel_values": pv}
    for field in ["logits", "last_hidden_state", "pooler_output"]:
        v = getattr(out, field, None)
        if v is not None:
            tensors[field] = v
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    if "last_hidden_state" not in tensors:
        # The classifiers return no last_hidden_state; the base model's is the same.
        base = getattr(model, cls_name.split("For")[0].lower().replace("model", ""), None)
        base = model.vit if hasattr(model, "vit") else model.deit
        with torch.no_grad():
            tensors["last_hidden_state"] = base(pixel_values=pv).last_hidden_state
    save(name, model, tensors, processor)


def text_inputs(vocab, eos, seed, length=7, pad=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab - 3, (2, length), generator=g)
    ids[0, -1] = eos
    ids[1, 4] = eos
    ids[1, 5:] = pad
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, 5:] = 0
    return ids, mask


def image_text_fixture(name, cls_name, config_cls, processor, tok, seed, text, vision, **cfg):
    import transformers

    text = dict(text, vocab_size=99, num_hidden_layers=2)
    config = getattr(transformers, config_cls)(
        text_config=text, vision_config=dict(TOWER, **vision), **cfg
    )
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(config).eval()
    randomize(model, seed)
    with torch.no_grad():
        if hasattr(model, "logit_scale"):
            model.logit_scale.fill_(2.0)
        if hasattr(model, "logit_bias"):
            model.logit_bias.fill_(-1.5)
    pv = pixels(seed)
    ids, mask = text_inputs(99, text.get("eos_token_id", 2), seed)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pv)
        vision_out = model.vision_model(pixel_values=pv)
        text_out = model.text_model(input_ids=ids, attention_mask=mask)
        image_features = vision_out.pooler_output
        text_features = text_out.pooler_output
        if hasattr(model, "visual_projection"):
            image_features = model.visual_projection(image_features)
            text_features = model.text_projection(text_features)
    tensors = {
        "pixel_values": pv,
        "input_ids": ids,
        "attention_mask": mask,
        "logits_per_image": out.logits_per_image,
        "logits_per_text": out.logits_per_text,
        "text_embeds": out.text_embeds,
        "image_embeds": out.image_embeds,
        "text_last_hidden_state": out.text_model_output.last_hidden_state,
        "vision_last_hidden_state": out.vision_model_output.last_hidden_state,
        "vision_pooler_output": vision_out.pooler_output,
        "image_features": image_features,
        "text_features": text_features,
    }
    save(name, model, tensors, processor, tok)
    if name == "clip":
        # The text tower alone, as `CLIPTextModelWithProjection` saves it.
        from transformers import CLIPTextModelWithProjection

        config.text_config.projection_dim = config.projection_dim
        text_model = CLIPTextModelWithProjection(config.text_config).eval()
        state = {k: v for k, v in model.state_dict().items() if k.startswith(("text_model.", "text_projection."))}
        text_model.load_state_dict(state)
        out = FIXTURES / "clip_text"
        out.mkdir(parents=True, exist_ok=True)
        text_model.save_pretrained(out)
        tok.save_pretrained(out)
        with torch.no_grad():
            embeds = text_model(input_ids=ids, attention_mask=mask).text_embeds
        save_file({"input_ids": ids.contiguous(), "attention_mask": mask.contiguous(),
                   "text_features": embeds.float().contiguous()}, out / "expected_text.safetensors")


IMAGES = ["rgb_37x53.png", "rgba_90x120.png", "rgb_160x120.jpg"]


def pipelines():
    """transformers' pipelines on the fixtures, over some of the processor test images."""
    from transformers import pipeline

    images = [str(FIXTURES / "images" / f) for f in IMAGES]
    out = {"images": IMAGES}
    for name in ["vit_classifier", "deit_teacher"]:
        p = pipeline("image-classification", model=str(FIXTURES / name))
        out[name] = {
            "default": p(images),
            "top_k_2": p(images, top_k=2),
        }
    for name in ["clip", "siglip"]:
        p = pipeline("zero-shot-image-classification", model=str(FIXTURES / name))
        out[name] = {
            "default": p(images, candidate_labels=["cat", "dog", "bird"]),
            "template": p(images, candidate_labels=["dog", "cat"], hypothesis_template="a picture of the {}"),
        }
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    from transformers.image_utils import load_image

    for name in ["clip", "siglip"]:
        d = str(FIXTURES / name)
        model, proc, tok = AutoModel.from_pretrained(d), AutoImageProcessor.from_pretrained(d), AutoTokenizer.from_pretrained(d)
        padding = dict(padding="max_length", max_length=64) if name == "siglip" else dict(padding=True)
        with torch.no_grad():
            pv = proc(images=[load_image(images[0])], return_tensors="pt")["pixel_values"]
            img = model.get_image_features(pixel_values=pv)
            texts = tok(["a photo of a cat", "this is a dog ."], return_tensors="pt", **padding)
            txt = model.get_text_features(**texts)
        img = getattr(img, "pooler_output", img)
        txt = getattr(txt, "pooler_output", txt)
        out[name]["image_features"] = img.tolist()
        out[name]["text_features"] = txt.tolist()
    p = pipeline("image-feature-extraction", model=str(FIXTURES / "vit_base"))
    out["vit_base"] = {"features": p(images[:1]), "pooled": p(images[:1], pool=True)}
    (FIXTURES / "vision_pipelines.json").write_text(json.dumps(out, indent=1) + "\n")
    print("vision_pipelines.json written")


def main():
    from transformers import (
        CLIPImageProcessor,
        DeiTImageProcessor,
        SiglipImageProcessor,
        ViTImageProcessor,
    )

    vit_proc = ViTImageProcessor(size={"height": 32, "width": 32})
    common = dict(hidden_size=32, intermediate_size=37, hidden_act="gelu")
    image_fixture("vit_base", "ViTModel", "ViTConfig", vit_proc, 1, **common)
    image_fixture(
        "vit_classifier", "ViTForImageClassification", "ViTConfig", vit_proc, 2,
        id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **common,
    )
    deit_proc = DeiTImageProcessor(size={"height": 36, "width": 36}, crop_size={"height": 32, "width": 32})
    image_fixture(
        "deit_teacher", "DeiTForImageClassificationWithTeacher", "DeiTConfig", deit_proc, 3,
        id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **common,
    )
    clip_proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    image_text_fixture(
        "clip", "CLIPModel", "CLIPConfig", clip_proc,
        tokenizer(True, ["input_ids", "attention_mask"]), 4,
        text=dict(hidden_size=32, intermediate_size=40, num_attention_heads=4, eos_token_id=97,
                  pad_token_id=0, max_position_embeddings=16),
        vision=dict(hidden_size=48, intermediate_size=52),
        projection_dim=24,
    )
    siglip_proc = SiglipImageProcessor(size={"height": 32, "width": 32})
    image_text_fixture(
        "siglip", "SiglipModel", "SiglipConfig", siglip_proc, tokenizer(False, ["input_ids"]), 5,
        text=dict(hidden_size=32, intermediate_size=40, num_attention_heads=4, projection_size=32,
                  eos_token_id=97, pad_token_id=0, max_position_embeddings=64),
        vision=dict(hidden_size=32, intermediate_size=44),
    )
    pipelines()
    llava_fixture()
    blip2_fixture()




LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def llava_tokenizer(image_attribute=True):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for w in WORDS + ["user", "assistant", ":", "what", "?", "red", "blue", "green"]:
        vocab[w] = len(vocab)
    while len(vocab) < 99:
        vocab[f"w{len(vocab)}"] = len(vocab)
    vocab["<image>"] = 99
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    extra = {"extra_special_tokens": {"image_token": "<image>"}} if image_attribute else {}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<unk>", **extra,
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return fast


def llava_fixture():
    import shutil

    from safetensors.torch import load_file
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        pipeline,
    )
    from transformers.image_utils import load_image

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=3,
                                       num_attention_heads=4, image_size=32, patch_size=8,
                                       projection_dim=16),
        text_config=LlamaConfig(vocab_size=100, hidden_size=48, intermediate_size=64,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                                pad_token_id=0),
        image_token_id=99, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=16,
    )
    torch.manual_seed(6)
    model = LlavaForConditionalGeneration(config).eval()
    randomize(model, 6)
    tok = llava_tokenizer()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE,
    )
    out = FIXTURES / "llava"
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    image = load_image(str(FIXTURES / "images" / "rgb_37x53.png"))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is this ?"}]}]
    inputs = processor(images=[image], text=processor.apply_chat_template(messages, add_generation_prompt=True),
                       return_tensors="pt")
    g = torch.Generator().manual_seed(7)
    two = torch.tensor([[1, 3, 4] + [99] * 16 + [5, 6] + [99] * 16 + [7, 8, 9]])
    two_pixels = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        logits = model(**inputs).logits
        features = model.get_image_features(pixel_values=inputs["pixel_values"])
        features = getattr(features, "pooler_output", features)
        if isinstance(features, (list, tuple)):
            features = torch.stack(list(features))
        generated = model.generate(**inputs, max_new_tokens=10, do_sample=False)
        two_logits = model(input_ids=two, pixel_values=two_pixels).logits
        top2 = torch.topk(model(**inputs).logits[0, -1], 2).values
    print("llava prompt margin", (top2[0] - top2[1]).item())
    save_file({
        "input_ids": inputs["input_ids"].contiguous(),
        "pixel_values": inputs["pixel_values"].float().contiguous(),
        "logits": logits.float().contiguous(),
        "image_features": features.float().contiguous(),
        "generated": generated.contiguous(),
        "two_images_input_ids": two.contiguous(),
        "two_images_pixel_values": two_pixels.contiguous(),
        "two_images_logits": two_logits.float().contiguous(),
    }, out / "expected.safetensors")
    pipe = pipeline("image-text-to-text", model=str(out))
    with_url = [{"role": "user", "content": [
        {"type": "image", "url": str(FIXTURES / "images" / "rgb_37x53.png")},
        {"type": "text", "text": "what is this ?"}]}]
    result = pipe(text=with_url, max_new_tokens=10, do_sample=False, return_full_text=False)
    (out / "pipeline.json").write_text(json.dumps({"messages": messages, "image": "rgb_37x53.png",
                                                   "max_new_tokens": 10, "result": result}, indent=1) + "\n")
    # The same checkpoint as transformers 4 saved it: the Hub's llava-hf layout
    # (`vision_tower.vision_model.*`; transformers 5 saves `vision_tower.*`), and the layout of
    # transformers 4.52-4.57 (`model.language_model`, `model.vision_tower.vision_model`, `lm_head`).
    tensors = load_file(str(out / "model.safetensors"))
    hub = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v for k, v in tensors.items()}

    def v4_52(k):
        k = k.replace("language_model.model.", "model.language_model.", 1)
        k = "lm_head.weight" if k == "language_model.lm_head.weight" else k
        for part in ["vision_tower.", "multi_modal_projector."]:
            if k.startswith(part):
                k = "model." + k
        return k

    for name, layout in [("llava_legacy", hub), ("llava_v4", {v4_52(k): v for k, v in hub.items()})]:
        d = FIXTURES / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        shutil.copy(out / "config.json", d / "config.json")
        save_file(layout, str(d / "model.safetensors"), metadata={"format": "pt"})
    print("llava:", sum(f.stat().st_size for f in out.iterdir()) // 1024, "KB")


def blip2_fixture():
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        OPTConfig,
        pipeline,
    )
    from transformers.image_utils import load_image

    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8, qkv_bias=True),
        qformer_config=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2,
                            num_attention_heads=4, cross_attention_frequency=1,
                            encoder_hidden_size=32),
        text_config=OPTConfig(vocab_size=100, hidden_size=40, num_hidden_layers=2,
                              num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=40,
                              max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                              pad_token_id=0).to_dict(),
        num_query_tokens=4, image_token_id=99,
    )
    torch.manual_seed(8)
    model = Blip2ForConditionalGeneration(config).eval()
    randomize(model, 8)
    h = config.vision_config.hidden_size
    with torch.no_grad():
        for layer in model.vision_model.encoder.layers:
            # k has no bias in BLIP-2 (transformers 5 stores the fused bias, zeros for k).
            layer.self_attn.qkv.bias[h:2 * h] = 0
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=llava_tokenizer(image_attribute=False), num_query_tokens=4,
    )
    out = FIXTURES / "blip2"
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    path = str(FIXTURES / "images" / "rgb_37x53.png")
    prompt = "what is this ? red"
    inputs = processor(images=[load_image(path)], text=prompt, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
        vision = model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        queries = model.query_tokens.expand(vision.shape[0], -1, -1)
        qformer = model.qformer(
            query_embeds=queries, encoder_hidden_states=vision,
            encoder_attention_mask=torch.ones(vision.shape[:-1], dtype=torch.long),
        ).last_hidden_state
        features = model.language_projection(qformer)
        generated = model.generate(**inputs, max_new_tokens=10, do_sample=False)
        top2 = torch.topk(logits[0, -1], 2).values
    print("blip2 prompt margin", (top2[0] - top2[1]).item())
    save_file({
        "input_ids": inputs["input_ids"].contiguous(),
        "pixel_values": inputs["pixel_values"].float().contiguous(),
        "logits": logits.float().contiguous(),
        "vision_last_hidden_state": vision.float().contiguous(),
        "qformer_last_hidden_state": qformer.float().contiguous(),
        "image_features": features.float().contiguous(),
        "generated": generated.contiguous(),
    }, out / "expected.safetensors")
    pipe = pipeline("image-text-to-text", model=str(out))
    result = pipe(images=path, text=prompt, max_new_tokens=10, do_sample=False)
    (out / "pipeline.json").write_text(json.dumps({"prompt": prompt, "image": "rgb_37x53.png",
                                                   "max_new_tokens": 10, "result": result}, indent=1) + "\n")
    # As transformers 4 saved it (the Hub's Salesforce/blip2-*): q_bias and v_bias apart.
    import shutil

    from safetensors.torch import load_file

    legacy = FIXTURES / "blip2_legacy"
    shutil.rmtree(legacy, ignore_errors=True)
    legacy.mkdir()
    shutil.copy(out / "config.json", legacy / "config.json")
    tensors = {}
    for k, v in load_file(str(out / "model.safetensors")).items():
        if k.endswith("self_attn.qkv.bias"):
            stem = k[: -len("qkv.bias")]
            tensors[stem + "q_bias"] = v[:h].clone()
            tensors[stem + "v_bias"] = v[2 * h:].clone()
        else:
            tensors[k] = v
    save_file(tensors, str(legacy / "model.safetensors"), metadata={"format": "pt"})
    print("blip2:", sum(f.stat().st_size for f in out.iterdir()) // 1024, "KB")


if __name__ == "__main__":
    import sys as _sys

    if _sys.argv[1:] == ["llava"]:
        llava_fixture()
    elif _sys.argv[1:] == ["blip2"]:
        blip2_fixture()
    else:
        main()
