"""Reference features for `trustformers train`'s data preparation, made with transformers'
example scripts' own code: `run_ner.py`'s `tokenize_and_align_labels` (label_all_tokens=False)
and `run_qa.py`'s `prepare_train_features` (pad_to_max_length=False), on the fixtures'
BERT tokenizer. Writes tests/fixtures/train/prepare_reference.json.

Also writes the JSON Lines fixtures as Parquet, as `datasets` saves them (pyarrow; lists
and structs as Parquet lists and groups): sentiment_train.parquet (snappy), ner_train.parquet
(zstd) and qa_train.parquet (snappy).

    python tools/gen_prepare_fixtures.py   # needs transformers, pyarrow
"""

import json
from pathlib import Path

import transformers

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
NER_MAX, QA_MAX, QA_STRIDE = 20, 96, 32


def rows(name):
    return [json.loads(l) for l in (FIXTURES / "train" / name).read_text().splitlines() if l]


def ner(tok):
    data = rows("ner_train.jsonl")
    label_list = sorted({t for r in data for t in r["ner_tags"]})  # get_label_list
    label_to_id = {l: i for i, l in enumerate(label_list)}
    enc = tok([r["tokens"] for r in data], truncation=True, max_length=NER_MAX,
              is_split_into_words=True)
    out = []
    for i, r in enumerate(data):
        word_ids = enc.word_ids(batch_index=i)
        previous, labels = None, []
        for w in word_ids:
            if w is None:
                labels.append(-100)
            elif w != previous:
                labels.append(label_to_id[r["ner_tags"][w]])
            else:
                labels.append(-100)
            previous = w
        out.append({"input_ids": enc["input_ids"][i], "labels": labels})
    return {"label_list": label_list, "max_length": NER_MAX, "features": out}


def qa(tok):
    data = rows("qa_train.jsonl")
    questions = [r["question"].lstrip() for r in data]
    enc = tok(questions, [r["context"] for r in data], truncation="only_second",
              max_length=QA_MAX, stride=QA_STRIDE, return_overflowing_tokens=True,
              return_offsets_mapping=True, padding=False)
    out = []
    for i, offsets in enumerate(enc.pop("offset_mapping")):
        input_ids = enc["input_ids"][i]
        cls_index = input_ids.index(tok.cls_token_id) if tok.cls_token_id in input_ids else 0
        sequence_ids = enc.sequence_ids(i)
        answers = data[enc["overflow_to_sample_mapping"][i]]["answers"]
        if len(answers["answer_start"]) == 0:
            start = end = cls_index
        else:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            s = 0
            while sequence_ids[s] != 1:
                s += 1
            e = len(input_ids) - 1
            while sequence_ids[e] != 1:
                e -= 1
            if not (offsets[s][0] <= start_char and offsets[e][1] >= end_char):
                start = end = cls_index
            else:
                while s < len(offsets) and offsets[s][0] <= start_char:
                    s += 1
                start = s - 1
                while offsets[e][1] >= end_char:
                    e -= 1
                end = e + 1
        out.append({"input_ids": input_ids, "token_type_ids": enc["token_type_ids"][i],
                    "start": start, "end": end})
    return {"max_length": QA_MAX, "doc_stride": QA_STRIDE, "features": out}


def parquet():
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, codec in [("sentiment_train", "snappy"), ("ner_train", "zstd"), ("qa_train", "snappy")]:
        table = pa.Table.from_pylist(rows(f"{name}.jsonl"))
        pq.write_table(table, FIXTURES / "train" / f"{name}.parquet", compression=codec)
        print(f"wrote {name}.parquet: {table.schema}")


def main():
    parquet()
    tok = transformers.AutoTokenizer.from_pretrained(FIXTURES / "bert_qa")
    ref = {"ner": ner(tok), "qa": qa(tok)}
    path = FIXTURES / "train" / "prepare_reference.json"
    path.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {path}: {len(ref['ner']['features'])} NER, {len(ref['qa']['features'])} QA features")


if __name__ == "__main__":
    main()
