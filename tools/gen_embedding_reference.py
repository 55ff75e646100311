#!/usr/bin/env python3
"""sentence-transformers' embeddings of over 100 varied sentences with all-MiniLM-L6-v2, the
reference for the real-model embedding test.

Writes tests/fixtures/all_minilm_sentences.json (the sentences) and
tests/fixtures/all_minilm_reference.safetensors (`embeddings` [N, 384] f32).

Usage (needs sentence-transformers; the model from tools/fetch_models.sh):
  python tools/gen_embedding_reference.py [MODEL_DIR]
"""

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

HAND = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome!",
    "The cat sits outside",
    "The new movie is so great",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "How do I bake sourdough bread at home?",
    "Rust is a systems programming language that guarantees memory safety.",
    "fn main() { println!(\"Hello, world!\"); }",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "The quick brown fox jumps over the lazy dog.",
    "I can't believe it's not butter!!!",
    "E = mc^2 relates energy and mass.",
    "The meeting is at 3:45pm on 2024-03-15 in room 12B.",
    "Call me at +1 (555) 010-9999 or email me@example.com.",
    "Café, naïve, résumé, and jalapeño all carry accents.",
    "Übermäßig große Straßen führen durch München.",
    "El veloz murciélago hindú comía feliz cardillo y kiwi.",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "Съешь же ещё этих мягких французских булок.",
    "東京は日本の首都です。",
    "我喜欢在周末读书和散步。",
    "서울은 대한민국의 수도입니다.",
    "مرحبا بكم في عالم الذكاء الاصطناعي",
    "I love pizza 🍕 and ice cream 🍦!",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nin one string",
    "ALL CAPS SENTENCE SHOUTING ABOUT NOTHING",
    "a",
    "",
    "?!?!...",
    "https://github.com/huggingface/transformers/blob/main/README.md",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy.",
    "Interest rates rose by 0.25 percentage points last quarter.",
    "The defendant pleaded not guilty to all charges.",
    "Preheat the oven to 220 degrees Celsius.",
    "She scored the winning goal in the final minute.",
    "The patient was prescribed 500mg of amoxicillin twice daily.",
    "Quantum entanglement links the states of two particles.",
    "Don't count your chickens before they hatch.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]

SUBJECTS = ["A child", "The old sailor", "My neighbour", "A software engineer", "The orchestra"]
VERBS = ["is reading", "quietly watched", "will never forget", "wrote about", "dreamed of"]
OBJECTS = [
    "the storm over the harbour.",
    "a book about ancient Rome.",
    "the first snow of winter.",
    "an unexpected compiler error.",
    "the smell of fresh coffee.",
]


def long_texts():
    para = (
        "Large language models are trained on vast corpora of text and can be adapted to "
        "many downstream tasks, from translation and summarisation to question answering. "
    )
    return [
        para * 2,
        para * 8,  # past max_seq_length: truncated
        " ".join(f"word{i}" for i in range(400)),
        "token " * 300,
    ]


def sentences():
    generated = [
        f"{s} {v} {o}"
        for i, s in enumerate(SUBJECTS)
        for j, v in enumerate(VERBS)
        for k, o in enumerate(OBJECTS)
        if (i + 2 * j + 3 * k) % 2 == 0
    ]
    out = HAND + long_texts() + generated
    return out[:120]


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser(
        "~/.cache/trustformers/all-minilm-l6-v2"
    )
    texts = sentences()
    assert len(texts) >= 100, len(texts)
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(texts, batch_size=32, convert_to_tensor=True).float()
    (FIXTURES / "all_minilm_sentences.json").write_text(
        json.dumps(texts, ensure_ascii=False, indent=0) + "\n"
    )
    save_file({"embeddings": emb.contiguous()}, FIXTURES / "all_minilm_reference.safetensors")
    print(f"{len(texts)} sentences, embeddings {tuple(emb.shape)}")


if __name__ == "__main__":
    sys.exit(main())
