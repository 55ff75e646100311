//! Parity against transformers on the tiny encoder fixtures written by
//! `tools/gen_encoder_fixtures.py`: every output field of every head, the right-padded row
//! included (padding positions of per-token outputs excluded, as they are meaningless).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::Tensor;
use common::{expected, fixture, max_abs_diff};
use trustformers::encoders::load_encoder;
use trustformers::{EncoderTask, LoadOptions};

const ATOL: f32 = 1e-4;

/// One test per fixture, named after it, checking the head of `task`.
macro_rules! encoder_tests {
    ($($name:ident: $task:ident;)+) => {$(
        #[test]
        fn $name() {
            check(stringify!($name), EncoderTask::$task);
        }
    )+};
}

encoder_tests! {
    bert_base: Base;
    bert_mlm: MaskedLm;
    bert_seqcls: SequenceClassification;
    bert_tokcls: TokenClassification;
    bert_qa: QuestionAnswering;
    bert_mc: MultipleChoice;
    roberta_base: Base;
    roberta_mlm: MaskedLm;
    roberta_seqcls: SequenceClassification;
    roberta_tokcls: TokenClassification;
    roberta_qa: QuestionAnswering;
    xlm_roberta_seqcls: SequenceClassification;
    distilbert_base: Base;
    distilbert_mlm: MaskedLm;
    distilbert_seqcls: SequenceClassification;
    distilbert_tokcls: TokenClassification;
    distilbert_qa: QuestionAnswering;
    electra_base: Base;
    electra_pretraining: PreTraining;
    electra_mlm: MaskedLm;
    electra_seqcls: SequenceClassification;
    albert_base: Base;
    albert_mlm: MaskedLm;
    albert_seqcls: SequenceClassification;
    bert_nli: SequenceClassification;
    modernbert_base: Base;
    modernbert_mlm: MaskedLm;
    modernbert_seqcls: SequenceClassification;
    modernbert_tokcls: TokenClassification;
    deberta_v3_base: Base;
    deberta_v3_mlm: MaskedLm;
    deberta_v3_seqcls: SequenceClassification;
    deberta_v2_seqcls: SequenceClassification;
    deberta_v2_qa: QuestionAnswering;
    deberta_v2_conv_base: Base;
    nomic_bert_base: Base;
    nomic_bert_mlm: MaskedLm;
    nomic_bert_seqcls: SequenceClassification;
    // `nomic_bert_base` with the Hub's config names (nomic-embed-text's), and converted by
    // llama.cpp's convert_hf_to_gguf.py from that.
    nomic_bert_hub: Base;
    nomic_bert_gguf: Base;
    // `bert_base` converted by llama.cpp's convert_hf_to_gguf.py: the pooler is dropped.
    bert_gguf: Base;
}

/// Per-token outputs with padding positions zeroed, so that only real tokens count.
fn unpadded(t: &Tensor, mask: &Tensor) -> Tensor {
    let mut m = mask.to_dtype(candle_core::DType::F32).unwrap();
    while m.rank() < t.rank() {
        m = m.unsqueeze(m.rank()).unwrap();
    }
    t.broadcast_mul(&m).unwrap()
}

/// The fixture's checkpoint: its directory, or the GGUF file in it.
fn checkpoint(name: &str) -> std::path::PathBuf {
    let dir = fixture(name);
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "gguf"))
        .unwrap_or(dir)
}

fn check(name: &str, task: EncoderTask) {
    let model = load_encoder(checkpoint(name), None, &LoadOptions::default()).unwrap();
    assert_eq!(model.task(), task, "{name}: task from config.architectures");
    let exp = expected(name);
    let (ids, mask, types) = (
        &exp["input_ids"],
        &exp["attention_mask"],
        &exp["token_type_ids"],
    );
    let mc = task == EncoderTask::MultipleChoice;
    let lift = |t: &Tensor| {
        if mc {
            t.unsqueeze(0).unwrap()
        } else {
            t.clone()
        }
    };
    let out = model
        .forward(&lift(ids), Some(&lift(types)), Some(&lift(mask)), !mc)
        .unwrap();
    let sequence_level = matches!(
        task,
        EncoderTask::SequenceClassification | EncoderTask::MultipleChoice
    );
    let per_token = |key: &str| key != "pooler_output" && (key != "logits" || !sequence_level);
    let mut fields: Vec<(String, Tensor)> =
        vec![("last_hidden_state".into(), out.last_hidden_state.clone())];
    fields.extend(out.pooler_output.map(|t| ("pooler_output".into(), t)));
    fields.extend(out.logits.map(|t| ("logits".into(), t)));
    fields.extend(out.start_logits.map(|t| ("start_logits".into(), t)));
    fields.extend(out.end_logits.map(|t| ("end_logits".into(), t)));
    for (i, h) in out.hidden_states.iter().enumerate() {
        fields.push((format!("hidden_states.{i}"), h.clone()));
    }
    for key in exp
        .keys()
        .filter(|k| !k.starts_with("input") && !k.ends_with("_ids") && *k != "attention_mask")
    {
        assert!(
            fields.iter().any(|(k, _)| k == key),
            "{name}: transformers gives `{key}`, we do not"
        );
    }
    let mut compared = 0;
    for (key, got) in &fields {
        if mc && key != "logits" {
            continue;
        }
        // Heads' outputs hold no hidden states in transformers unless asked; compare what
        // both have (every transformers field is required above).
        let Some(want) = exp.get(key) else {
            continue;
        };
        assert_eq!(got.dims(), want.dims(), "{name} {key}");
        // DeBERTa's embeddings are zero at padding in transformers, and so in ours.
        let whole = name.starts_with("deberta") && key == "hidden_states.0";
        let d = if per_token(key) && !mc && !whole {
            max_abs_diff(&unpadded(got, mask), &unpadded(want, mask))
        } else {
            max_abs_diff(got, want)
        };
        assert!(d <= ATOL, "{name} {key}: max diff {d}");
        compared += 1;
    }
    // The head's output, and for the others every hidden state too (and the pooler's,
    // where the checkpoint has one).
    let want = if mc {
        1
    } else {
        1 + exp.contains_key("pooler_output") as usize + model.model().spec().num_hidden_layers
    };
    assert!(compared >= want, "{name}: compared only {compared} fields");
}

/// The tokenizer llama.cpp's converter writes into a BERT GGUF file encodes as the
/// checkpoint's own tokenizer.json does.
#[test]
fn bert_gguf_tokenizer_matches_the_checkpoints() {
    use trustformers::AutoTokenizer;
    let gguf = AutoTokenizer::from_pretrained(checkpoint("bert_gguf")).unwrap();
    let hf = AutoTokenizer::from_pretrained(fixture("bert_base")).unwrap();
    for text in [
        "hello world",
        "The quick, brown fox!",
        "unaffable tokens ##x",
        "",
    ] {
        for special in [true, false] {
            assert_eq!(
                gguf.encode_ids(text, special).unwrap(),
                hf.encode_ids(text, special).unwrap(),
                "{text:?} (special tokens: {special})"
            );
        }
    }
}

/// Sentence embeddings of the GGUF file (no recorded pooling: mean; normalized, as llama.cpp
/// gives them) equal the checkpoint's, normalized.
#[test]
fn bert_gguf_sentence_embeddings_match_the_checkpoints() {
    use trustformers::pipelines::{EmbedParams, SentenceTransformer};
    let texts = ["hello world", "the quick brown fox jumps"];
    let params = EmbedParams::default();
    let opts = LoadOptions::default();
    let gguf = SentenceTransformer::from_pretrained(checkpoint("bert_gguf"), &opts).unwrap();
    let hf = SentenceTransformer::from_pretrained(fixture("bert_base"), &opts).unwrap();
    let normalized = EmbedParams {
        normalize: true,
        ..EmbedParams::default()
    };
    let (a, b) = (
        gguf.encode(&texts, &params).unwrap(),
        hf.encode(&texts, &normalized).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(d <= ATOL, "max diff {d}");
    }
}
