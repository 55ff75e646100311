//! Training new tokenizers with the `tokenizers` trainers, in the pipelines the Python
//! `tokenizers` package ships as ready-made implementations, and saving them so that
//! transformers' `AutoTokenizer.from_pretrained(dir)` loads them.

use crate::config::TokenizerConfig;
use crate::tokenizer::{tk_err, Tokenizer};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior};
use trustformers_core::{Error, Result};

/// The tokenizer families that can be trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// SentencePiece-style BPE: NFKC, `▁` for spaces (Python `SentencePieceBPETokenizer`).
    Bpe,
    /// GPT-2-style byte-level BPE: never an unknown token (`ByteLevelBPETokenizer`).
    ByteLevelBpe,
    /// BERT-style WordPiece with `##` continuations (`BertWordPieceTokenizer`).
    WordPiece,
    /// SentencePiece-style Unigram (`SentencePieceUnigramTokenizer`).
    Unigram,
    /// One token per character.
    Char,
}

impl std::str::FromStr for TokenizerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "bpe" => Self::Bpe,
            "byte-level-bpe" | "byte_level_bpe" | "bytelevel" => Self::ByteLevelBpe,
            "wordpiece" => Self::WordPiece,
            "unigram" => Self::Unigram,
            "char" | "character" => Self::Char,
            other => {
                return Err(Error::InvalidInput(format!(
                "unknown tokenizer type `{other}` (bpe, byte-level-bpe, wordpiece, unigram, char)"
            )))
            }
        })
    }
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub kind: TokenizerKind,
    pub vocab_size: usize,
    /// Pairs (BPE, WordPiece) or characters (char) seen fewer times are not kept.
    pub min_frequency: u64,
    /// Tokens added to the vocabulary first, in this order, and never split.
    pub special_tokens: Vec<String>,
    /// Lowercase the text first (WordPiece only).
    pub lowercase: bool,
}

impl TrainOptions {
    /// Defaults for `kind`: 30,000 tokens, min frequency 2 (1 for char), and the special tokens
    /// the matching Python implementation uses.
    pub fn new(kind: TokenizerKind) -> Self {
        let special: &[&str] = match kind {
            TokenizerKind::WordPiece => &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            TokenizerKind::ByteLevelBpe => &["<|endoftext|>"],
            TokenizerKind::Bpe | TokenizerKind::Unigram | TokenizerKind::Char => {
                &["<unk>", "<s>", "</s>", "<pad>"]
            }
        };
        Self {
            kind,
            vocab_size: 30_000,
            min_frequency: if kind == TokenizerKind::Char { 1 } else { 2 },
            special_tokens: special.iter().map(|s| s.to_string()).collect(),
            lowercase: true,
        }
    }

    fn unk(&self) -> Option<String> {
        self.special_tokens
            .iter()
            .find(|t| matches!(t.as_str(), "<unk>" | "[UNK]"))
            .cloned()
    }
}

fn specials(opts: &TrainOptions) -> Vec<AddedToken> {
    opts.special_tokens
        .iter()
        .map(|t| AddedToken::from(t.clone(), true))
        .collect()
}

/// An untrained pipeline and its trainer.
fn pipeline(opts: &TrainOptions) -> Result<(tokenizers::Tokenizer, TrainerWrapper)> {
    let special = specials(opts);
    let vocab_size = opts.vocab_size;
    let metaspace = || Metaspace::new('▁', PrependScheme::Always, true);
    Ok(match opts.kind {
        TokenizerKind::Bpe => {
            let mut model = BPE::builder();
            if let Some(unk) = opts.unk() {
                model = model.unk_token(unk);
            }
            let mut t = tokenizers::Tokenizer::new(model.build().map_err(tk_err)?);
            t.with_normalizer(Some(NFKC)).map_err(tk_err)?;
            t.with_pre_tokenizer(Some(metaspace()));
            t.with_decoder(Some(MetaspaceDecoder::new(
                '▁',
                PrependScheme::Always,
                true,
            )));
            let trainer = BpeTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(special)
                .show_progress(false)
                .build();
            (t, trainer.into())
        }
        TokenizerKind::ByteLevelBpe => {
            let mut t = tokenizers::Tokenizer::new(BPE::default());
            t.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
            t.with_decoder(Some(ByteLevelDecoder::default()));
            t.with_post_processor(Some(ByteLevel::new(false, true, true)));
            let trainer = BpeTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(special)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .show_progress(false)
                .build();
            (t, trainer.into())
        }
        TokenizerKind::WordPiece => {
            let mut model = WordPiece::builder();
            if let Some(unk) = opts.unk() {
                model = model.unk_token(unk);
            }
            let mut t = tokenizers::Tokenizer::new(model.build().map_err(tk_err)?);
            t.with_normalizer(Some(BertNormalizer::new(true, true, None, opts.lowercase)))
                .map_err(tk_err)?;
            t.with_pre_tokenizer(Some(BertPreTokenizer));
            t.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
            let trainer = WordPieceTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(special)
                .continuing_subword_prefix("##".into())
                .show_progress(false)
                .build();
            (t, trainer.into())
        }
        TokenizerKind::Unigram => {
            let mut t = tokenizers::Tokenizer::new(Unigram::default());
            t.with_normalizer(Some(NFKC)).map_err(tk_err)?;
            t.with_pre_tokenizer(Some(metaspace()));
            t.with_decoder(Some(MetaspaceDecoder::new(
                '▁',
                PrependScheme::Always,
                true,
            )));
            let mut trainer = UnigramTrainer::builder();
            trainer
                .vocab_size(u32::try_from(vocab_size).unwrap_or(u32::MAX))
                .special_tokens(special)
                .unk_token(opts.unk())
                .show_progress(false);
            (t, trainer.build().map_err(tk_err)?.into())
        }
        TokenizerKind::Char => {
            let mut t = tokenizers::Tokenizer::new(
                WordLevel::builder()
                    .unk_token(opts.unk().unwrap_or_else(|| "<unk>".into()))
                    .build()
                    .map_err(tk_err)?,
            );
            t.with_pre_tokenizer(Some(
                Split::new(
                    SplitPattern::Regex(r"[\s\S]".into()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(tk_err)?,
            ));
            t.with_decoder(Some(Fuse::new()));
            let trainer = WordLevelTrainer::builder()
                .vocab_size(vocab_size)
                .min_frequency(opts.min_frequency)
                .special_tokens(special)
                .show_progress(false)
                .build()
                .map_err(tk_err)?;
            (t, trainer.into())
        }
    })
}

/// The transformers-side config of a freshly trained tokenizer: special tokens recognised
/// by their conventional spellings.
fn trained_config(opts: &TrainOptions) -> TokenizerConfig {
    let mut config = TokenizerConfig::default();
    let s = &mut config.special;
    for t in &opts.special_tokens {
        let slot = match t.as_str() {
            "<unk>" | "[UNK]" => &mut s.unk,
            "<s>" | "<bos>" => &mut s.bos,
            "</s>" | "<eos>" => &mut s.eos,
            "<pad>" | "[PAD]" => &mut s.pad,
            "[CLS]" => &mut s.cls,
            "[SEP]" => &mut s.sep,
            "[MASK]" | "<mask>" => &mut s.mask,
            "<|endoftext|>" => {
                s.bos.get_or_insert_with(|| t.clone());
                s.eos.get_or_insert_with(|| t.clone());
                &mut s.unk
            }
            _ => {
                s.additional.push(t.clone());
                continue;
            }
        };
        slot.get_or_insert_with(|| t.clone());
    }
    config
}

/// Trains on an iterator of texts.
pub fn train_from_iter<I, S>(texts: I, opts: &TrainOptions) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    if opts.vocab_size == 0 {
        return Err(Error::InvalidInput("vocab_size must be at least 1".into()));
    }
    let (mut t, mut trainer) = pipeline(opts)?;
    t.train(&mut trainer, texts).map_err(tk_err)?;
    let config = trained_config(opts);
    if opts.kind == TokenizerKind::WordPiece {
        if let (Some(cls), Some(sep)) = (&config.special.cls, &config.special.sep) {
            let id = |tok: &str| {
                t.token_to_id(tok)
                    .ok_or_else(|| Error::Tokenizer(format!("`{tok}` missing")))
            };
            let template = TemplateProcessing::builder()
                .try_single(format!("{cls}:0 $A:0 {sep}:0"))
                .map_err(Error::Tokenizer)?
                .try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1"))
                .map_err(Error::Tokenizer)?
                .special_tokens(vec![(cls.clone(), id(cls)?), (sep.clone(), id(sep)?)])
                .build()
                .map_err(tk_err)?;
            t.with_post_processor(Some(template));
        }
    }
    Tokenizer::from_hf(&t, config)
}

/// Trains on the lines of text files. A file that is not UTF-8 is an error naming it.
pub fn train_from_files(files: &[PathBuf], opts: &TrainOptions) -> Result<Tokenizer> {
    let mut lines = Vec::new();
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            lines.push(line.map_err(|e| {
                Error::InvalidInput(format!("{} line {}: {e}", path.display(), n + 1))
            })?);
        }
    }
    train_from_iter(lines.iter(), opts)
}

/// Writes `tokenizer.json` and `tokenizer_config.json` into `dir`, readable by transformers'
/// `AutoTokenizer.from_pretrained(dir)` and by [`crate::AutoTokenizer`].
pub fn save(tokenizer: &Tokenizer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("tokenizer.json");
    tokenizer
        .to_hf()?
        .save(&path, true)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
    let s = &tokenizer.config().special;
    let mut config = json!({ "tokenizer_class": "PreTrainedTokenizerFast" });
    for (key, value) in [
        ("bos_token", &s.bos),
        ("eos_token", &s.eos),
        ("unk_token", &s.unk),
        ("pad_token", &s.pad),
        ("cls_token", &s.cls),
        ("sep_token", &s.sep),
        ("mask_token", &s.mask),
    ] {
        if let Some(v) = value {
            config[key] = Value::String(v.clone());
        }
    }
    if !s.additional.is_empty() {
        config["additional_special_tokens"] = json!(s.additional);
    }
    let path = dir.join("tokenizer_config.json");
    let text =
        serde_json::to_string_pretty(&config).map_err(|e| Error::Tokenizer(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}
