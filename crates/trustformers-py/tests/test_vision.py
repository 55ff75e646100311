"""Image processors and image models through the Python API against transformers' stored
outputs (tests/fixtures: the processors' pixel values for the test images, the vision
fixtures' expected.safetensors)."""

import shutil

import numpy as np
import pytest

import trustformers as tf
from conftest import FIXTURES, expected, read_json

ATOL = 1e-4
IMAGES = FIXTURES / "images"


def images_expected():
    from safetensors.numpy import load_file

    return load_file(str(IMAGES / "expected.safetensors"))


@pytest.mark.parametrize("name", ["clip", "vit", "siglip", "deit"])
def test_image_processors_match_transformers(name, tmp_path):
    shutil.copy(IMAGES / f"{name}.json", tmp_path / "preprocessor_config.json")
    processor = tf.AutoImageProcessor.from_pretrained(str(tmp_path))
    exp = images_expected()
    files = sorted(k.split("/", 1)[1] for k in exp if k.startswith("decoded/"))
    assert len(files) >= 10
    for f in files:
        # The pixels PIL decoded (decoders differ in their last bits for JPEG and WebP).
        got = processor(images=exp[f"decoded/{f}"], return_tensors="np")["pixel_values"]
        np.testing.assert_allclose(got, exp[f"{name}/torchvision/{f}"], atol=ATOL, err_msg=f)
    # Files and lists: PNG decodes exactly, so a path gives the same pixel values.
    pngs = [f for f in files if f.endswith(".png")][:3]
    batch = processor([str(IMAGES / f) for f in pngs])["pixel_values"]
    assert batch.shape[0] == 3
    for row, f in zip(batch, pngs):
        np.testing.assert_allclose(row, exp[f"{name}/torchvision/{f}"][0], atol=ATOL)
    with open(IMAGES / pngs[0], "rb") as fh:
        one = processor(fh.read())["pixel_values"]
    np.testing.assert_allclose(one, batch[:1], atol=ATOL)


def test_image_classifier_matches_transformers():
    exp = expected("vit_classifier")
    model = tf.AutoModelForImageClassification.from_pretrained(str(FIXTURES / "vit_classifier"))
    out = model(pixel_values=exp["pixel_values"], output_hidden_states=True)
    assert type(out).__name__ == "ImageClassifierOutput"
    np.testing.assert_allclose(out.logits, exp["logits"], atol=ATOL)
    assert len(out.hidden_states) == 3
    for i, h in enumerate(out.hidden_states):
        np.testing.assert_allclose(h, exp[f"hidden_states.{i}"], atol=ATOL)
    assert model.config.id2label


def test_image_base_model_matches_transformers():
    exp = expected("vit_base")
    model = tf.AutoModel.from_pretrained(str(FIXTURES / "vit_base"))
    out = model(exp["pixel_values"])
    assert type(out).__name__ == "BaseModelOutputWithPooling"
    np.testing.assert_allclose(out.last_hidden_state, exp["last_hidden_state"], atol=ATOL)
    np.testing.assert_allclose(out.pooler_output, exp["pooler_output"], atol=ATOL)


@pytest.mark.parametrize("name", ["clip", "siglip"])
def test_image_text_models_match_transformers(name):
    exp = expected(name)
    model = tf.AutoModel.from_pretrained(str(FIXTURES / name))
    out = model(input_ids=exp["input_ids"], pixel_values=exp["pixel_values"], attention_mask=exp["attention_mask"])
    for key in ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
        np.testing.assert_allclose(out[key], exp[key], atol=ATOL, err_msg=key)
    np.testing.assert_allclose(model.get_image_features(pixel_values=exp["pixel_values"]), exp["image_features"], atol=ATOL)
    text = model.get_text_features(input_ids=exp["input_ids"], attention_mask=exp["attention_mask"])
    np.testing.assert_allclose(text, exp["text_features"], atol=ATOL)
    zero_shot = tf.AutoModelForZeroShotImageClassification.from_pretrained(str(FIXTURES / name))
    assert type(zero_shot).__name__ == "ImageTextModel"


def test_bad_image_inputs_raise_value_errors():
    model = tf.AutoModelForImageClassification.from_pretrained(str(FIXTURES / "vit_classifier"))
    exp = expected("vit_classifier")
    for bad, message in [
        (exp["pixel_values"][0], "shape"),
        (exp["pixel_values"].astype(np.int64), "floats"),
        (exp["pixel_values"][:, :2], "3"),
        (np.full_like(exp["pixel_values"], np.nan), "NaN"),
    ]:
        with pytest.raises(ValueError, match=message):
            model(pixel_values=bad)
    with pytest.raises(ValueError, match="bogus"):
        model(pixel_values=exp["pixel_values"], bogus=1)
    with pytest.raises(ValueError, match="image-text"):
        tf.AutoModelForZeroShotImageClassification.from_pretrained(str(FIXTURES / "vit_classifier"))
    processor = tf.AutoImageProcessor.from_pretrained(str(FIXTURES / "vit_classifier"))
    # As PIL's UnidentifiedImageError, an OSError.
    with pytest.raises(OSError, match="not an image"):
        processor(b"not an image at all")
    with pytest.raises(ValueError, match="uint8"):
        processor(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(FileNotFoundError):
        processor("/no/such/image.png")
    clip = tf.AutoModel.from_pretrained(str(FIXTURES / "clip"))
    with pytest.raises(ValueError, match="vocabulary"):
        clip.get_text_features(input_ids=np.array([[1, 10**6]]))


def test_image_text_to_text_pipeline_matches_transformers():
    reference = read_json(FIXTURES / "llava" / "pipeline.json")
    pipe = tf.pipeline(model=str(FIXTURES / "llava"))
    assert pipe.task == "image-text-to-text"
    image = str(IMAGES / reference["image"])
    out = pipe(images=image, text=reference["messages"], max_new_tokens=reference["max_new_tokens"])
    want = reference["result"][0]
    assert out[0]["generated_text"] == want["generated_text"]
    # The image goes into the message's image part, as transformers puts it.
    assert out[0]["input_text"][0]["content"][0] == {"type": "image", "url": image}
    # Named in the message instead of given apart: the same reply.
    named = pipe(text=out[0]["input_text"], max_new_tokens=reference["max_new_tokens"])
    assert named[0]["generated_text"] == want["generated_text"]
    blip = read_json(FIXTURES / "blip2" / "pipeline.json")
    pipe = tf.pipeline("image-text-to-text", model=str(FIXTURES / "blip2"))
    out = pipe(images=str(IMAGES / blip["image"]), text=blip["prompt"], max_new_tokens=blip["max_new_tokens"])
    assert out == blip["result"]
    with pytest.raises(ValueError, match="no text"):
        pipe(images=str(IMAGES / blip["image"]))


def test_vision_language_models_match_transformers():
    """AutoProcessor and AutoModelForImageTextToText as transformers' LLaVA example uses
    them: the processor's ids and pixels, the logits, greedy generation."""
    image = str(IMAGES / "rgb_37x53.png")
    exp = expected("llava")
    processor = tf.AutoProcessor.from_pretrained(str(FIXTURES / "llava"))
    messages = read_json(FIXTURES / "llava" / "pipeline.json")["messages"]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=image, text=prompt, return_tensors="np")
    np.testing.assert_array_equal(inputs["input_ids"], exp["input_ids"])
    np.testing.assert_allclose(inputs["pixel_values"], exp["pixel_values"], atol=ATOL)
    model = tf.AutoModelForImageTextToText.from_pretrained(str(FIXTURES / "llava"))
    np.testing.assert_allclose(model(**inputs).logits, exp["logits"], atol=ATOL)
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    np.testing.assert_array_equal(out, exp["generated"])
    two = model(input_ids=exp["two_images_input_ids"], pixel_values=exp["two_images_pixel_values"])
    np.testing.assert_allclose(two.logits, exp["two_images_logits"], atol=ATOL)
    # The image tokens must be those of the images given.
    with pytest.raises(ValueError, match="image tokens"):
        model.generate(inputs["input_ids"], max_new_tokens=2)
    with pytest.raises(ValueError, match="one at a time"):
        model.generate(np.repeat(inputs["input_ids"], 2, axis=0), pixel_values=inputs["pixel_values"])

    exp = expected("blip2")
    blip = read_json(FIXTURES / "blip2" / "pipeline.json")
    processor = tf.AutoProcessor.from_pretrained(str(FIXTURES / "blip2"))
    inputs = processor(images=[image], text=blip["prompt"])
    np.testing.assert_array_equal(inputs["input_ids"], exp["input_ids"])
    model = tf.AutoModelForVision2Seq.from_pretrained(str(FIXTURES / "blip2"))
    np.testing.assert_allclose(model(**inputs).logits, exp["logits"], atol=ATOL)
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    np.testing.assert_array_equal(out, exp["generated"])
    assert type(tf.AutoProcessor.from_pretrained(str(FIXTURES / "vit_classifier"))).__name__ == "ImageProcessor"
