//! Tokenizers described by GGUF metadata (`tokenizer.ggml.*`), built the way transformers'
//! `integrations/gguf/gguf_tokenizer_mapping.py` builds them, so a lone .gguf file is
//! self-sufficient.

use super::{
    byte_level_pipeline, generate_merges, sentencepiece_pipeline, SentencePieceFlavor, Vocab,
};
use crate::config::TokenizerConfig;
use crate::models::compact_bpe::{CompactBpe, CompactBpeOptions, MergeOrder};
use crate::models::Pipeline;
use crate::models::TokenizerModel;
use crate::tokenizer::tk_err;
use ahash::AHashMap;
use std::collections::HashSet;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};
use trustformers_core::gguf::{GgufFile, GgufValue};
use trustformers_core::{Error, Result};

const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` -> the split regex its merges were learned with.
const PRE_TOKENIZER_SPLITS: &[(&str, &str)] = &[
    ("llama3", LLAMA3_SPLIT),
    ("llama-v3", LLAMA3_SPLIT),
    ("llama-bpe", LLAMA3_SPLIT),
    ("falcon3", LLAMA3_SPLIT),
    ("dbrx", LLAMA3_SPLIT),
    ("smaug-bpe", LLAMA3_SPLIT),
    ("qwen2", QWEN2_SPLIT),
    ("deepseek-r1-qwen", QWEN2_SPLIT),
    ("gpt-4o", GPT4O_SPLIT),
    ("llama4", GPT4O_SPLIT),
];

/// GPT-2's byte -> printable character table.
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\u{FFFD}')
        };
    }
    table
}

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Option<Vec<&'a str>>> {
    match file.get(key) {
        None => Ok(None),
        Some(GgufValue::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Error::config(key, "must be an array of strings"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::config(key, "must be an array of strings")),
    }
}

fn numbers(file: &GgufFile, key: &str, len: usize) -> Result<Option<Vec<f64>>> {
    match file.get(key) {
        None => Ok(None),
        Some(GgufValue::Array(items)) => {
            if items.len() != len {
                return Err(Error::config(
                    key,
                    format!("has {} entries for {len} tokens", items.len()),
                ));
            }
            items
                .iter()
                .map(|v| {
                    v.as_f64()
                        .ok_or_else(|| Error::config(key, "must be an array of numbers"))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        }
        Some(_) => Err(Error::config(key, "must be an array of numbers")),
    }
}

/// Which BPE model a GGUF vocabulary gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpeModel {
    /// The compact BPE (merge order computed from the vocabulary): the default.
    Compact,
    /// `tokenizers`' BPE over the generated merge list: the reference the compact one is
    /// tested against.
    Tokenizers,
}

/// Builds the tokenizer a GGUF file describes.
pub fn from_gguf(file: &GgufFile) -> Result<(Pipeline, TokenizerConfig)> {
    from_gguf_with(file, BpeModel::Compact)
}

/// Builds the tokenizer a GGUF file describes, with the given BPE model.
pub fn from_gguf_with(file: &GgufFile, bpe: BpeModel) -> Result<(Pipeline, TokenizerConfig)> {
    let model = file
        .get("tokenizer.ggml.model")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| Error::config("tokenizer.ggml.model", "missing from the GGUF metadata"))?
        .to_string();
    let arch = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("");
    let original = strings(file, "tokenizer.ggml.tokens")?
        .ok_or_else(|| Error::config("tokenizer.ggml.tokens", "missing from the GGUF metadata"))?;
    // The vocabulary as the model class spells it (Gemma respells whitespace tokens); added
    // tokens below are picked from the file's own spelling, as transformers does.
    let mut tokens: Vec<String> = original.iter().map(|t| t.to_string()).collect();
    let n = tokens.len();
    let scores = numbers(file, "tokenizer.ggml.scores", n)?;
    let types: Vec<i64> = numbers(file, "tokenizer.ggml.token_type", n)?
        .map(|t| t.into_iter().map(|x| x as i64).collect())
        .unwrap_or_default();
    let merges: Option<Vec<(&str, &str)>> = strings(file, "tokenizer.ggml.merges")?
        .map(|m| {
            m.into_iter()
                .map(|s| {
                    s.split_once(' ').ok_or_else(|| {
                        Error::config("tokenizer.ggml.merges", format!("`{s}` is not a merge"))
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;

    let mut config = TokenizerConfig::default();
    let id_token = |key: &str| -> Result<Option<String>> {
        match file.get(key) {
            None => Ok(None),
            Some(v) => {
                let id = v
                    .as_u64()
                    .ok_or_else(|| Error::config(key, "must be a token id"))?;
                tokens.get(id as usize).cloned().map(Some).ok_or_else(|| {
                    Error::config(key, format!("id {id} is outside the {n}-token vocabulary"))
                })
            }
        }
    };
    config.special.bos = id_token("tokenizer.ggml.bos_token_id")?;
    config.special.eos = id_token("tokenizer.ggml.eos_token_id")?;
    config.special.unk = id_token("tokenizer.ggml.unknown_token_id")?;
    config.special.pad = id_token("tokenizer.ggml.padding_token_id")?;
    config.add_bos_token = file
        .get("tokenizer.ggml.add_bos_token")
        .and_then(GgufValue::as_bool);
    config.add_eos_token = file
        .get("tokenizer.ggml.add_eos_token")
        .and_then(GgufValue::as_bool);
    config.chat_template = file
        .get("tokenizer.chat_template")
        .and_then(GgufValue::as_str)
        .map(str::to_string);

    let byte_level = model == "gpt2";
    let spelling = bytes_to_unicode();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let mut tokenizer = match model.as_str() {
        "gpt2" => {
            let spelled: Vec<String> = tokens
                .iter()
                .map(|t| {
                    if t.chars().all(|c| alphabet.contains(&c)) {
                        t.clone()
                    } else {
                        t.bytes().map(|b| spelling[b as usize]).collect()
                    }
                })
                .collect();
            let order = match &merges {
                Some(m) => MergeOrder::List(m),
                None => MergeOrder::Ids,
            };
            let model = bpe_model(bpe, &spelled, order, CompactBpeOptions::default())?;
            byte_level_pipeline(model, false)
        }
        "llama" => {
            let gemma = matches!(arch, "gemma" | "gemma2" | "gemma3");
            let (flavor, scores) = if gemma {
                // Multi-space tokens are stored as spaces; GemmaTokenizer spells them with ▁.
                for t in tokens.iter_mut() {
                    if t.contains(' ') && t.trim().is_empty() {
                        *t = "▁".repeat(t.chars().count());
                    }
                }
                // Gemma's merge order follows the file order, not the scores.
                let order = (0..n).map(|i| -(i as f64)).collect();
                (SentencePieceFlavor::Gemma, order)
            } else {
                let scores = scores.clone().ok_or_else(|| {
                    Error::config(
                        "tokenizer.ggml.scores",
                        "required to rebuild sentencepiece merges",
                    )
                })?;
                (SentencePieceFlavor::Llama, scores)
            };
            if !gemma && config.add_bos_token.is_none() {
                // llama.cpp adds BOS to a sentencepiece vocabulary that does not say otherwise.
                config.add_bos_token = Some(true);
            }
            let order = match &merges {
                Some(m) => MergeOrder::List(m),
                None => MergeOrder::Scores(&scores),
            };
            let options = CompactBpeOptions {
                byte_fallback: true,
                fuse_unk: true,
                unk_token: config.special.unk.clone().filter(|_| gemma),
            };
            sentencepiece_pipeline(bpe_model(bpe, &tokens, order, options)?, flavor)?
        }
        "t5" => {
            // T5Tokenizer: the file calls the first 100 sentinels [PAD...]; rename them back.
            let blanks: Vec<usize> = (0..tokens.len())
                .filter(|&i| is_pad_placeholder(&tokens[i]))
                .collect();
            for (sentinel, &i) in blanks.iter().take(100).enumerate() {
                tokens[i] = format!("<extra_id_{}>", 99 - sentinel);
            }
            let scores = scores.clone().ok_or_else(|| {
                Error::config(
                    "tokenizer.ggml.scores",
                    "required by a t5 (Unigram) tokenizer",
                )
            })?;
            let vocab = tokens.iter().cloned().zip(scores).collect();
            let s = &mut config.special;
            for (slot, default) in [
                (&mut s.eos, "</s>"),
                (&mut s.unk, "<unk>"),
                (&mut s.pad, "<pad>"),
            ] {
                slot.get_or_insert_with(|| default.to_string());
            }
            super::sentencepiece::t5_unigram(vocab, None, &mut config, 100)?
        }
        "bert" => {
            // llama.cpp spells WordPiece vocabularies with "▁" on word starts and no "##" on
            // continuations; BertTokenizer wants the reverse.
            let vocab = index_vocab(tokens.iter().zip(&types_or_normal(&types, n)).map(
                |(t, &ty)| {
                    if ty == CONTROL {
                        t.clone()
                    } else if let Some(word) = t.strip_prefix('▁') {
                        word.to_string()
                    } else {
                        format!("##{t}")
                    }
                },
            ));
            for (slot, key) in [
                (&mut config.special.sep, "tokenizer.ggml.sep_token_id"),
                (&mut config.special.cls, "tokenizer.ggml.cls_token_id"),
                (&mut config.special.mask, "tokenizer.ggml.mask_token_id"),
            ] {
                *slot = id_token(key)?;
            }
            super::vocab_files::bert_wordpiece(vocab, &mut config, true, None, true)?
        }
        other => {
            return Err(Error::config(
                "tokenizer.ggml.model",
                format!("unsupported tokenizer `{other}` (supported: gpt2, llama, t5, bert)"),
            ))
        }
    };

    super::add_special_tokens(&mut tokenizer, &config)?;
    super::apply_bos_eos_template(&mut tokenizer, &config)?;
    let control: Vec<AddedToken> = original
        .iter()
        .zip(&types)
        .filter(|(t, ty)| {
            **ty == CONTROL && (!byte_level || t.chars().all(|c| alphabet.contains(&c)))
        })
        .map(|(t, _)| AddedToken::from(t.to_string(), true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(control.clone())
        .map_err(tk_err)?;
    let user: Vec<AddedToken> = original
        .iter()
        .zip(&types)
        .filter(|(t, ty)| **ty == USER_DEFINED && tokenizer.token_to_id(t).is_some())
        .map(|(t, _)| AddedToken::from(t.to_string(), false).normalized(false))
        .collect();
    tokenizer.add_tokens(user).map_err(tk_err)?;
    config.special.additional = control.iter().map(|t| t.content.clone()).collect();

    let pre = file.get("tokenizer.ggml.pre").and_then(GgufValue::as_str);
    if let Some((_, regex)) = PRE_TOKENIZER_SPLITS
        .iter()
        .find(|(name, _)| Some(*name) == pre)
    {
        let split = Split::new(
            SplitPattern::Regex((*regex).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tk_err)?;
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])));
    }
    Ok((tokenizer, config))
}

/// The BPE model over `tokens` (id order) merging in `order`.
fn bpe_model(
    bpe: BpeModel,
    tokens: &[String],
    order: MergeOrder,
    options: CompactBpeOptions,
) -> Result<TokenizerModel> {
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if bpe == BpeModel::Compact {
        return Ok(CompactBpe::new(&refs, order, options)?.into());
    }
    let vocab: Vocab = index_vocab(tokens.iter().cloned());
    let merges = match order {
        MergeOrder::List(m) => m
            .iter()
            .map(|(l, r)| (l.to_string(), r.to_string()))
            .collect(),
        MergeOrder::Ids => generate_merges(&vocab, None),
        MergeOrder::Scores(scores) => {
            // Python dict semantics: a repeated token keeps its first place, its last score.
            let mut map = AHashMap::new();
            let mut first = Vec::new();
            for (&t, &s) in refs.iter().zip(scores) {
                if map.insert(t, s).is_none() {
                    first.push(t);
                }
            }
            generate_merges(&vocab, Some((&first, &map)))
        }
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(options.fuse_unk)
        .byte_fallback(options.byte_fallback);
    if let Some(unk) = options.unk_token {
        builder = builder.unk_token(unk);
    }
    Ok(builder.build().map_err(tk_err)?.into())
}

/// `[PAD123]`: how a GGUF file spells T5's sentinel tokens.
fn is_pad_placeholder(token: &str) -> bool {
    token
        .strip_prefix("[PAD")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Token types, or all normal when the file has none.
fn types_or_normal(types: &[i64], n: usize) -> Vec<i64> {
    if types.is_empty() {
        vec![1; n]
    } else {
        types.to_vec()
    }
}

/// `{token: index}` in file order; a repeated token keeps its last index, like a Python dict.
fn index_vocab<M: FromIterator<(String, u32)>>(tokens: impl Iterator<Item = String>) -> M {
    tokens.enumerate().map(|(i, t)| (t, i as u32)).collect()
}
