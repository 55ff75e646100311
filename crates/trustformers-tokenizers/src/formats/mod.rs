//! Builders for the pipelines transformers constructs from each checkpoint format. Each one
//! mirrors a transformers 5 tokenizer class's `__init__` (named in its doc line), so the
//! same files give the same pipeline.

pub mod gguf;
pub mod sentencepiece;
pub mod vocab_files;

use crate::config::TokenizerConfig;
use crate::models::{Pipeline, TokenizerModel};
use crate::tokenizer::tk_err;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace as NormalizerReplace;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior};
use trustformers_core::{Error, Result};

/// A BPE vocabulary, `{token: id}`, in the map type `tokenizers`' BPE keeps.
pub type Vocab = ahash::AHashMap<String, u32>;

/// Byte-level BPE (`GPT2Tokenizer`): ByteLevel pre-tokenizer and decoder, no unknown token.
pub fn byte_level_bpe(
    vocab: Vocab,
    merges: Vec<(String, String)>,
    add_prefix_space: bool,
) -> Result<Pipeline> {
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(false)
        .build()
        .map_err(tk_err)?;
    Ok(byte_level_pipeline(model.into(), add_prefix_space))
}

/// The byte-level pipeline around a BPE model (`tokenizers`' or the compact one).
pub fn byte_level_pipeline(model: TokenizerModel, add_prefix_space: bool) -> Pipeline {
    let mut t = Pipeline::new(model);
    t.with_pre_tokenizer(Some(ByteLevel::new(add_prefix_space, true, true)));
    t.with_decoder(Some(ByteLevelDecoder::default()));
    t
}

/// Which SentencePiece-style BPE pipeline to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentencePieceFlavor {
    /// `LlamaTokenizer`: Metaspace pre-tokenizer prepending `▁` to the first word, byte
    /// fallback, decoder stripping the prepended space.
    Llama,
    /// `GemmaTokenizer`: spaces become `▁` in the normalizer, split after each space, no
    /// prefix space.
    Gemma,
}

/// SentencePiece BPE with byte fallback, as `LlamaTokenizer` / `GemmaTokenizer` build it.
pub fn sentencepiece_bpe(
    vocab: Vocab,
    merges: Vec<(String, String)>,
    flavor: SentencePieceFlavor,
    unk_token: Option<&str>,
) -> Result<Pipeline> {
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let (SentencePieceFlavor::Gemma, Some(unk)) = (flavor, unk_token) {
        builder = builder.unk_token(unk.to_string());
    }
    sentencepiece_pipeline(builder.build().map_err(tk_err)?.into(), flavor)
}

/// The SentencePiece pipeline around a BPE model (`tokenizers`' or the compact one) built
/// with byte fallback, fused unknowns, and for Gemma its unknown token.
pub fn sentencepiece_pipeline(
    model: TokenizerModel,
    flavor: SentencePieceFlavor,
) -> Result<Pipeline> {
    let mut t = Pipeline::new(model);
    let mut decoders: Vec<DecoderWrapper> = vec![
        tokenizers::decoders::DecoderWrapper::Replace(
            tokenizers::normalizers::replace::Replace::new("▁", " ").map_err(tk_err)?,
        ),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    match flavor {
        SentencePieceFlavor::Llama => {
            t.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::First, false)));
            decoders.push(Strip::new(' ', 1, 0).into());
        }
        SentencePieceFlavor::Gemma => {
            t.with_normalizer(Some(NormalizerReplace::new(" ", "▁").map_err(tk_err)?))
                .map_err(tk_err)?;
            t.with_pre_tokenizer(Some(
                Split::new(
                    SplitPattern::String(" ".into()),
                    SplitDelimiterBehavior::MergedWithPrevious,
                    false,
                )
                .map_err(tk_err)?,
            ));
        }
    }
    t.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(t)
}

/// Adds the config's special tokens that the vocabulary lacks as added special tokens and
/// marks the ones it has as special, as `PreTrainedTokenizerBase.__init__` does.
pub fn add_special_tokens(t: &mut Pipeline, config: &TokenizerConfig) -> Result<()> {
    let mut tokens: Vec<AddedToken> = config
        .added_tokens
        .iter()
        .map(|(content, _, special)| {
            AddedToken::from(content.clone(), *special).normalized(!*special)
        })
        .collect();
    for s in config.special.all() {
        if !tokens.iter().any(|t| t.content == *s) {
            tokens.push(AddedToken::from(s.clone(), true).normalized(false));
        }
    }
    let (special, plain): (Vec<_>, Vec<_>) = tokens.into_iter().partition(|t| t.special);
    t.add_special_tokens(special).map_err(tk_err)?;
    t.add_tokens(plain).map_err(tk_err)?;
    Ok(())
}

/// transformers' `update_post_processor`: when tokenizer_config.json states `add_bos_token`
/// or `add_eos_token`, or the pipeline has no post-processor, the post-processor becomes a
/// template adding BOS and/or EOS as configured.
pub fn apply_bos_eos_template(t: &mut Pipeline, config: &TokenizerConfig) -> Result<()> {
    let explicit = config.add_bos_token.is_some() || config.add_eos_token.is_some();
    if !explicit && t.get_post_processor().is_some() {
        return Ok(());
    }
    let mut special = Vec::new();
    let mut pick = |flag: Option<bool>, token: &Option<String>| -> Result<Option<String>> {
        match (flag.unwrap_or(false), token) {
            (true, Some(tok)) => {
                let id = t.token_to_id(tok).ok_or_else(|| {
                    Error::Tokenizer(format!("special token `{tok}` is not in the vocabulary"))
                })?;
                special.push((tok.clone(), id));
                Ok(Some(tok.clone()))
            }
            _ => Ok(None),
        }
    };
    let bos = pick(config.add_bos_token, &config.special.bos)?;
    let eos = pick(config.add_eos_token, &config.special.eos)?;
    let piece = |tok: &Option<String>, type_id: u32| tok.as_ref().map(|t| format!("{t}:{type_id}"));
    let single: Vec<String> = [piece(&bos, 0), Some("$A:0".into()), piece(&eos, 0)]
        .into_iter()
        .flatten()
        .collect();
    let pair: Vec<String> = single
        .iter()
        .cloned()
        .chain(
            [piece(&bos, 1), Some("$B:1".into()), piece(&eos, 1)]
                .into_iter()
                .flatten(),
        )
        .collect();
    let template = TemplateProcessing::builder()
        .try_single(single.join(" "))
        .map_err(Error::Tokenizer)?
        .try_pair(pair.join(" "))
        .map_err(Error::Tokenizer)?
        .special_tokens(special)
        .build()
        .map_err(tk_err)?;
    t.with_post_processor(Some(template));
    Ok(())
}

/// transformers' `generate_merges`: BPE merges recovered from a vocabulary. Every split of
/// every token into two tokens of the vocabulary is a merge, ranked by `scores` (higher
/// first, in `order`) when given, by vocabulary id otherwise.
///
/// `order` lists the tokens in the order the scores were inserted (Python dict order).
pub fn generate_merges(
    vocab: &Vocab,
    scores: Option<(&[&str], &ahash::AHashMap<&str, f64>)>,
) -> Vec<(String, String)> {
    let mut by_id: Vec<(&String, u32)> = vocab.iter().map(|(t, &i)| (t, i)).collect();
    by_id.sort_by_key(|(_, i)| *i);
    let entries: Vec<(&str, f64)> = match scores {
        Some((order, scores)) => order
            .iter()
            .filter_map(|&t| scores.get(t).map(|&s| (t, s)))
            .collect(),
        None => by_id
            .iter()
            .map(|(t, i)| (t.as_str(), f64::from(*i)))
            .collect(),
    };
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for (token, score) in entries {
        let mut local: Vec<(&str, &str, f64)> = token
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = token.split_at(at);
                (vocab.contains_key(l) && vocab.contains_key(r)).then_some((l, r, score))
            })
            .collect();
        local.sort_by_key(|(l, r, _)| (vocab[*l], vocab[*r]));
        merges.extend(local);
    }
    // Sort keys computed once (a 262k-token vocabulary has millions of merges).
    let mut keyed: Vec<((f64, usize, usize), &str, &str)> = merges
        .into_iter()
        // `+ 0.0` makes -0.0 equal 0.0, as the comparison of the scores did before.
        .map(|(l, r, score)| ((score + 0.0, l.chars().count(), r.chars().count()), l, r))
        .collect();
    let cmp = |a: &(f64, usize, usize), b: &(f64, usize, usize)| {
        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    if scores.is_some() {
        keyed.sort_by(|a, b| cmp(&b.0, &a.0));
    } else {
        keyed.sort_by(|a, b| cmp(&a.0, &b.0));
    }
    keyed
        .into_iter()
        .map(|(_, l, r)| (l.to_string(), r.to_string()))
        .collect()
}
