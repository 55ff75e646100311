//! Checkpoints handed over in memory (how the WebAssembly build loads them) give what the
//! same files give from disk: tokenizers, sentence embeddings, greedy generation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::fixture;
use std::collections::BTreeMap;
use std::path::Path;
use trustformers::generation::generate_ids;
use trustformers::pipelines::sentence_embeddings::{EmbedParams, SentenceTransformer};
use trustformers::{
    AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LoadOptions, LoadedModel,
    MemoryCheckpoint,
};

/// Every file under `dir`, by its `/`-separated path inside it.
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(fixture("tokenizers/corpus.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The llama fixture with the character tokenizer and chat template of `serve_chat`.
fn chat_model_files() -> BTreeMap<String, Vec<u8>> {
    let mut files = files_of(&fixture("llama"));
    files.remove("expected.safetensors");
    files.extend(files_of(&fixture("serve_chat")));
    files
}

#[test]
fn tokenizer_json_in_memory_equals_from_disk() {
    let corpus = corpus();
    for name in [
        "tokenizers/unigram",
        "tokenizers/mbart",
        "bert_base",
        "serve_chat",
    ] {
        let dir = fixture(name);
        let from_disk = AutoTokenizer::from_pretrained(&dir).unwrap();
        let files = files_of(&dir);
        let in_memory =
            AutoTokenizer::from_files(Path::new(name), &|f| Ok(files.get(f).cloned())).unwrap();
        assert_eq!(
            from_disk.config().chat_template,
            in_memory.config().chat_template
        );
        for text in &corpus {
            for special in [true, false] {
                let want = from_disk.encode_ids(text, special).unwrap();
                let got = in_memory.encode_ids(text, special).unwrap();
                assert_eq!(got, want, "{name}: {text:?}");
                assert_eq!(
                    in_memory.decode(&got, false).unwrap(),
                    from_disk.decode(&want, false).unwrap()
                );
            }
        }
    }
}

#[test]
fn tokenizer_in_memory_needs_tokenizer_json() {
    let files = files_of(&fixture("tokenizers/wordpiece"));
    let Err(err) =
        AutoTokenizer::from_files(Path::new("wordpiece"), &|f| Ok(files.get(f).cloned()))
    else {
        panic!("a tokenizer without tokenizer.json loaded");
    };
    let err = err.to_string();
    assert!(err.contains("wordpiece/tokenizer.json"), "{err}");
}

#[test]
fn sentence_embeddings_in_memory_equal_from_disk() {
    // A plain transformers checkpoint (mean pooling), then the same checkpoint with the
    // modules of a sentence-transformers directory (CLS pooling, Normalize).
    let plain = files_of(&fixture("bert_base"));
    let mut st = plain.clone();
    st.insert(
        "modules.json".into(),
        br#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
             {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
             {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#
            .to_vec(),
    );
    st.insert(
        "1_Pooling/config.json".into(),
        br#"{"word_embedding_dimension": 32, "pooling_mode_cls_token": true}"#.to_vec(),
    );
    st.insert(
        "sentence_bert_config.json".into(),
        br#"{"max_seq_length": 7, "do_lower_case": true}"#.to_vec(),
    );
    let texts = [
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "",
    ];
    let params = EmbedParams::default();
    for (label, files) in [("plain", plain), ("sentence-transformers", st)] {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in &files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let opts = LoadOptions::default();
        let want = SentenceTransformer::from_pretrained(dir.path(), &opts)
            .unwrap()
            .encode(&texts, &params)
            .unwrap();
        let memory = MemoryCheckpoint::new("bert_base", files);
        let got = SentenceTransformer::from_memory(memory, &opts)
            .unwrap()
            .encode(&texts, &params)
            .unwrap();
        assert_eq!(got, want, "{label}");
    }
}

#[test]
fn sentence_embeddings_in_memory_from_gguf() {
    let path = fixture("bert_gguf").join("tiny-bert.gguf");
    let opts = LoadOptions::default();
    let texts = ["Hello world", "café naïve"];
    let params = EmbedParams::default();
    let want = SentenceTransformer::from_pretrained(&path, &opts)
        .unwrap()
        .encode(&texts, &params)
        .unwrap();
    let files = BTreeMap::from([("tiny-bert.gguf".to_string(), std::fs::read(&path).unwrap())]);
    let got = SentenceTransformer::from_memory(MemoryCheckpoint::new("bert", files), &opts)
        .unwrap()
        .encode(&texts, &params)
        .unwrap();
    assert_eq!(got, want);
}

fn greedy(model: &LoadedModel, prompt: &str) -> Vec<u32> {
    let mut config: GenerationConfig = model.generation.clone();
    config.max_new_tokens = 12;
    let ids = model.prompt_ids(prompt, false).unwrap();
    model
        .generate_text(&ids, &config, |_| true)
        .unwrap()
        .tokens
        .ids
}

#[test]
fn generation_in_memory_equals_from_disk() {
    let opts = LoadOptions::default();
    // safetensors + tokenizer.json + chat template.
    let files = chat_model_files();
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let from_disk = LoadedModel::from_path(dir.path(), &opts).unwrap();
    let in_memory = LoadedModel::from_memory(MemoryCheckpoint::new("chat", files), &opts).unwrap();
    assert!(in_memory.has_chat_template());
    assert_eq!(greedy(&in_memory, "hello"), greedy(&from_disk, "hello"));

    // One GGUF file (the fixture holds no tokenizer: the model alone).
    let path = fixture("llama3_gguf").join("tiny-llama3.gguf");
    let from_disk = AutoModelForCausalLM::from_pretrained(&path, &opts).unwrap();
    let files = BTreeMap::from([(
        "tiny-llama3.gguf".to_string(),
        std::fs::read(&path).unwrap(),
    )]);
    let in_memory = MemoryCheckpoint::new("tiny", files)
        .model_config(Path::new(""))
        .unwrap()
        .load_causal_lm(&opts)
        .unwrap();
    let config = GenerationConfig {
        max_new_tokens: 12,
        ..GenerationConfig::default()
    };
    let prompt = [1u32, 7, 42, 3];
    let run = |model: &dyn trustformers::CausalLM| {
        generate_ids(model, &prompt, &config, |_| Ok(true))
            .unwrap()
            .ids
    };
    assert_eq!(run(&*in_memory), run(&*from_disk));
}

#[test]
fn bad_checkpoints_in_memory_are_errors_naming_the_file() {
    let opts = LoadOptions::default();
    let err = |files: BTreeMap<String, Vec<u8>>| match LoadedModel::from_memory(
        MemoryCheckpoint::new("m", files),
        &opts,
    ) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    };
    let mut files = chat_model_files();
    files.remove("config.json");
    assert!(err(files).contains("m/config.json"));

    let mut files = chat_model_files();
    files.remove("model.safetensors");
    assert!(err(files).contains("m/model.safetensors"));

    let mut files = chat_model_files();
    files.insert(
        "model.safetensors".into(),
        b"not a safetensors file".to_vec(),
    );
    assert!(err(files).contains("m/model.safetensors"));

    let mut files = chat_model_files();
    files.insert("config.json".into(), b"{\"model_type\": ".to_vec());
    assert!(err(files).contains("m/config.json"));

    let files = BTreeMap::from([("x.gguf".to_string(), b"GGUF\x03\0\0\0garbage".to_vec())]);
    assert!(err(files).contains("m/x.gguf"));
}

#[test]
fn paths_inside_the_checkpoint_are_normalized() {
    let files: BTreeMap<String, Vec<u8>> = chat_model_files()
        .into_iter()
        .map(|(name, bytes)| (format!("./{name}"), bytes))
        .collect();
    let model = LoadedModel::from_memory(
        MemoryCheckpoint::new("chat", files),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(model.has_chat_template());
}
