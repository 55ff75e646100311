//! Slow-tokenizer vocabulary files: `vocab.txt` (WordPiece, BERT) and `vocab.json` +
//! `merges.txt` (byte-level BPE, GPT-2).

use crate::config::TokenizerConfig;
use crate::models::Pipeline;
use crate::tokenizer::tk_err;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use trustformers_core::config::{read_json, read_small_file};
use trustformers_core::{Error, Result};

fn read_text(path: &Path) -> Result<String> {
    let bytes = read_small_file(path)?;
    String::from_utf8(bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        reason: format!("not valid UTF-8: {e}"),
    })
}

fn default_special(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        *slot = Some(value.to_string());
    }
}

/// `BertTokenizer` from `vocab.txt`: BertNormalizer (`do_lower_case`, `strip_accents`,
/// `tokenize_chinese_chars` from tokenizer_config.json), BertPreTokenizer, WordPiece with
/// `##` continuation, `[CLS] A [SEP] B [SEP]` template.
pub fn wordpiece(dir: &Path, config: &mut TokenizerConfig, raw: &Value) -> Result<Pipeline> {
    let path = dir.join("vocab.txt");
    let text = read_text(&path)?;
    let mut vocab = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let id = u32::try_from(i)
            .map_err(|_| Error::Tokenizer(format!("{}: too many lines", path.display())))?;
        // Like transformers' load_vocab: the first occurrence of a token keeps its id.
        vocab
            .entry(line.trim_end_matches(['\r', '\n']).to_string())
            .or_insert(id);
    }
    let flag = |k: &str| raw.get(k).and_then(Value::as_bool);
    bert_wordpiece(
        vocab,
        config,
        flag("do_lower_case").unwrap_or(true),
        flag("strip_accents"),
        flag("tokenize_chinese_chars").unwrap_or(true),
    )
}

/// The `BertTokenizer` pipeline over a vocabulary.
pub fn bert_wordpiece(
    vocab: HashMap<String, u32>,
    config: &mut TokenizerConfig,
    do_lower_case: bool,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: bool,
) -> Result<Pipeline> {
    let s = &mut config.special;
    default_special(&mut s.unk, "[UNK]");
    default_special(&mut s.sep, "[SEP]");
    default_special(&mut s.pad, "[PAD]");
    default_special(&mut s.cls, "[CLS]");
    default_special(&mut s.mask, "[MASK]");
    let model = WordPiece::builder()
        .vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>())
        .unk_token(s.unk.clone().unwrap_or_default())
        .build()
        .map_err(tk_err)?;
    let mut t = Pipeline::new(model.into());
    t.with_normalizer(Some(BertNormalizer::new(
        true,
        tokenize_chinese_chars,
        strip_accents,
        do_lower_case,
    )))
    .map_err(tk_err)?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    super::add_special_tokens(&mut t, config)?;
    let (cls, sep) = (
        config.special.cls.clone().unwrap_or_default(),
        config.special.sep.clone().unwrap_or_default(),
    );
    let id = |tok: &str, fallback: u32| t.token_to_id(tok).unwrap_or(fallback);
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .map_err(Error::Tokenizer)?
        .try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1"))
        .map_err(Error::Tokenizer)?
        .special_tokens(vec![(cls.clone(), id(&cls, 2)), (sep.clone(), id(&sep, 3))])
        .build()
        .map_err(tk_err)?;
    t.with_post_processor(Some(template));
    Ok(t)
}

/// `GPT2Tokenizer` from `vocab.json` + `merges.txt`.
pub fn gpt2(dir: &Path, config: &mut TokenizerConfig, raw: &Value) -> Result<Pipeline> {
    let vocab_path = dir.join("vocab.json");
    let vocab: super::Vocab = match read_json(&vocab_path)? {
        Value::Object(obj) => obj
            .into_iter()
            .map(|(k, v)| {
                let id = v
                    .as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| Error::Json {
                        path: vocab_path.clone(),
                        reason: format!("id of `{k}` is not a token id"),
                    })?;
                Ok((k, id))
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(Error::Json {
                path: vocab_path,
                reason: "must map tokens to ids".into(),
            })
        }
    };
    let merges_path = dir.join("merges.txt");
    let merges = read_text(&merges_path)?
        .lines()
        .enumerate()
        .filter(|(i, l)| !(l.is_empty() || *i == 0 && l.starts_with("#version")))
        .map(|(i, l)| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "{}: line {} is not a merge",
                        merges_path.display(),
                        i + 1
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let s = &mut config.special;
    default_special(&mut s.unk, "<|endoftext|>");
    default_special(&mut s.bos, "<|endoftext|>");
    default_special(&mut s.eos, "<|endoftext|>");
    let add_prefix_space = raw
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut t = super::byte_level_bpe(vocab, merges, add_prefix_space)?;
    super::add_special_tokens(&mut t, config)?;
    Ok(t)
}
