//! Dropout in training sits where transformers' modules put it: with every dropout
//! probability of a fixture's config set to 0.5, one training forward pass draws exactly as
//! many mask values as the family's `nn.Dropout` calls cover (counted per site from
//! `modeling_*.py`), and with them at 0 it draws none and gives the eval loss. The inputs
//! are the gradient fixtures' (`tools/gen_grad_fixtures.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::Device;
use common::fixture;
use trustformers::nn::dropout::{training, DropoutRng};
use trustformers::train::TrainBatch;
use trustformers::{AutoConfig, LoadOptions};

/// Every `*dropout*` / `*pdrop` probability of the config set to `p`.
fn with_dropout(config: &mut trustformers::ModelConfig, p: f64) {
    if let Some(obj) = config.json.as_object_mut() {
        for (k, v) in obj.iter_mut() {
            if (k.contains("dropout") || k.ends_with("pdrop")) && (v.is_number() || v.is_null()) {
                *v = serde_json::json!(p);
            }
        }
    }
}

/// Sizes of the fixture's batch: (batch, seq, hidden, heads, layers).
struct Dims {
    b: u64,
    t: u64,
    h: u64,
    heads: u64,
    layers: u64,
}

impl Dims {
    fn tokens(&self) -> u64 {
        self.b * self.t * self.h
    }
    fn probs(&self) -> u64 {
        self.b * self.heads * self.t * self.t
    }
}

/// Loads `name` with dropout `p` everywhere and returns (values drawn by one training
/// forward pass, its loss, the eval loss).
fn draws(name: &str, p: f64) -> (u64, f32, f32, Dims) {
    let inputs = candle_core::safetensors::load(
        fixture("train/grads").join(format!("{name}.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let mut config = AutoConfig::from_pretrained(fixture(name)).unwrap();
    with_dropout(&mut config, p);
    let json = config.json.clone();
    let get = |keys: &[&str]| -> u64 {
        keys.iter()
            .find_map(|k| json.get(*k).and_then(|v| v.as_u64()))
            .unwrap()
    };
    let trainable = config
        .load_trainable(None, &LoadOptions::default())
        .unwrap();
    let batch = TrainBatch::from_named(&trainable.model, &inputs).unwrap();
    let (b, t) = batch.input_ids.dims2().unwrap();
    let dims = Dims {
        b: b as u64,
        t: t as u64,
        h: get(&["hidden_size", "n_embd", "dim"]),
        heads: get(&["num_attention_heads", "n_head", "n_heads", "num_heads"]),
        layers: get(&["num_hidden_layers", "n_layer", "n_layers", "num_layers"]),
    };
    let scalar = |l: candle_core::Tensor| l.to_scalar::<f32>().unwrap();
    let eval = scalar(trainable.model.loss(&batch, None).unwrap());
    let mut rng = DropoutRng::new(1);
    let train = scalar(training(&mut rng, || trainable.model.loss(&batch, None)).unwrap());
    (rng.offset, train, eval, dims)
}

/// `expected(dims)`: the values transformers' dropout sites cover in one forward pass.
fn check(name: &str, expected: impl Fn(&Dims) -> u64) {
    let (drawn, train, eval, dims) = draws(name, 0.5);
    assert_eq!(drawn, expected(&dims), "{name}: mask values drawn");
    assert_ne!(train, eval, "{name}: dropout 0.5 left the loss unchanged");
    let (drawn, train, eval, _) = draws(name, 0.0);
    assert_eq!(drawn, 0, "{name}: dropout 0 drew masks");
    assert_eq!(
        train.to_bits(),
        eval.to_bits(),
        "{name}: dropout 0 changed the loss"
    );
}

/// Embeddings, attention probabilities, attention and MLP outputs (GPT-2, GPT-Neo, GPT-J,
/// Phi, GPT-NeoX).
fn all_sites(d: &Dims) -> u64 {
    d.tokens() + d.layers * (d.probs() + 2 * d.tokens())
}

#[test]
fn gpt2() {
    check("gpt2", all_sites);
}

#[test]
fn gpt_neo() {
    check("gpt_neo", all_sites);
}

#[test]
fn gptj() {
    check("gptj", all_sites);
}

#[test]
fn phi() {
    check("phi", all_sites);
}

#[test]
fn gpt_neox() {
    check("gpt_neox", all_sites);
}

/// Phi-3: no embedding dropout.
#[test]
fn phi3() {
    check("phi3", |d| d.layers * (d.probs() + 2 * d.tokens()));
}

/// StableLM: the attention probabilities and the MLP output only.
#[test]
fn stablelm() {
    check("stablelm", |d| d.layers * (d.probs() + d.tokens()));
}

/// Falcon, parallel: one `dropout_add` on the sum of both branches.
#[test]
fn falcon_parallel() {
    check("falcon", |d| d.layers * (d.probs() + d.tokens()));
}

/// Falcon, sequential (Falcon-RW with ALiBi): `attention_dropout` on the attention output, `hidden_dropout` on the
/// MLP's.
#[test]
fn falcon_sequential() {
    check("falcon_alibi", |d| d.layers * (d.probs() + 2 * d.tokens()));
}

/// LLaMA family: `attention_dropout` on the probabilities only.
#[test]
fn llama() {
    check("llama", |d| d.layers * d.probs());
}

#[test]
fn qwen2() {
    check("qwen2", |d| d.layers * d.probs());
}

/// BERT: embeddings, probabilities, both outputs, and the classifier's input (the pooled
/// row).
#[test]
fn bert_classifier() {
    check("bert_seqcls", |d| all_sites(d) + d.b * d.h);
}

/// Token classification: the classifier's input is every token.
#[test]
fn bert_token_classifier() {
    check("bert_tokcls", |d| all_sites(d) + d.tokens());
}

/// Question answering has no head dropout.
#[test]
fn bert_question_answering() {
    check("bert_qa", all_sites);
}

/// RoBERTa's classification head drops before its dense and before `out_proj`.
#[test]
fn roberta_classifier() {
    check("roberta_seqcls", |d| all_sites(d) + 2 * d.b * d.h);
}

/// DistilBERT: no dropout after the attention's `out_lin`; the classifier drops after
/// `pre_classifier`.
#[test]
fn distilbert_classifier() {
    check("distilbert_seqcls", |d| {
        d.tokens() + d.layers * (d.probs() + d.tokens()) + d.b * d.h
    });
}

/// ALBERT: the embeddings are `embedding_size` wide before the projection.
#[test]
fn albert_classifier() {
    let config = AutoConfig::from_pretrained(fixture("albert_seqcls")).unwrap();
    let e = config.json["embedding_size"].as_u64().unwrap();
    check("albert_seqcls", move |d| {
        d.b * d.t * e + d.layers * (d.probs() + 2 * d.tokens()) + d.b * d.h
    });
}

/// ModernBERT: embeddings, probabilities, the attention output, the gated activations
/// (`intermediate_size` wide) and the head's output.
#[test]
fn modernbert_classifier() {
    let config = AutoConfig::from_pretrained(fixture("modernbert_seqcls")).unwrap();
    let i = config.json["intermediate_size"].as_u64().unwrap();
    check("modernbert_seqcls", move |d| {
        d.tokens() + d.layers * (d.probs() + d.tokens() + d.b * d.t * i) + d.b * d.h
    });
}

/// LoRA: `lora_dropout` on each adapted layer's input (PEFT's `lora_A(dropout(x))`), here
/// `q_proj` and `v_proj` of every layer; the model's own dropout is 0.
#[test]
fn lora_dropout_on_the_adapter_input() {
    let inputs = candle_core::safetensors::load(
        fixture("train/grads").join("llama.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let config = AutoConfig::from_pretrained(fixture("llama")).unwrap();
    let (mut lora, start) = trustformers::read_adapter(&fixture("train/lora_init")).unwrap();
    assert_eq!(lora.target_modules, vec!["q_proj", "v_proj"]);
    lora.lora_dropout = 0.5;
    let trainable = config
        .load_trainable_lora(None, &LoadOptions::default(), lora, start)
        .unwrap();
    let batch = TrainBatch::from_named(&trainable.model, &inputs).unwrap();
    let (b, t) = batch.input_ids.dims2().unwrap();
    let h = config.json["hidden_size"].as_u64().unwrap();
    let layers = config.json["num_hidden_layers"].as_u64().unwrap();
    let mut rng = DropoutRng::new(3);
    training(&mut rng, || trainable.model.loss(&batch, None)).unwrap();
    assert_eq!(rng.offset, layers * 2 * b as u64 * t as u64 * h);
}
