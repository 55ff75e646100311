//! SentencePiece `tokenizer.model` files: a small bounds-checked protobuf reader for the
//! fields transformers' `SentencePieceExtractor` uses, and the conversion into the pipeline
//! of `LlamaTokenizer` (BPE models) or `T5Tokenizer` (Unigram models).

use super::{generate_merges, sentencepiece_bpe, SentencePieceFlavor};
use crate::config::TokenizerConfig;
use crate::models::Pipeline;
use crate::tokenizer::tk_err;
use std::path::Path;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::AddedToken;
use trustformers_core::{Error, Result};

/// `SentencePiece.Type` values.
const UNKNOWN: u64 = 2;
const CONTROL: u64 = 3;
const USER_DEFINED: u64 = 4;

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: u64,
}

/// The parts of a `ModelProto` a tokenizer needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SentencePieceModel {
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`: 1 Unigram (default), 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    pub unk_id: u64,
    pub byte_fallback: bool,
    pub precompiled_charsmap: Vec<u8>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &str) -> Error {
        Error::Tokenizer(format!("tokenizer.model: {what} at byte {}", self.pos))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("length past the end of the file"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn fixed32(&mut self) -> Result<[u8; 4]> {
        let b = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err("truncated fixed32"))?;
        self.pos += 4;
        let mut out = [0u8; 4];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Reads every field as (number, wire type), calling `f` for each, skipping the rest.
    fn fields(
        mut self,
        mut f: impl FnMut(u64, &mut Reader<'a>, u64) -> Result<bool>,
    ) -> Result<()> {
        while self.pos < self.buf.len() {
            let key = self.varint()?;
            let (field, wire) = (key >> 3, key & 7);
            if f(field, &mut self, wire)? {
                continue;
            }
            match wire {
                0 => drop(self.varint()?),
                1 => {
                    self.pos = self
                        .pos
                        .checked_add(8)
                        .filter(|&e| e <= self.buf.len())
                        .ok_or_else(|| self.err("truncated fixed64"))?
                }
                2 => drop(self.bytes()?),
                5 => drop(self.fixed32()?),
                w => return Err(self.err(&format!("unsupported wire type {w}"))),
            }
        }
        Ok(())
    }
}

fn utf8(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::Tokenizer("tokenizer.model: a piece is not valid UTF-8".into()))
}

impl SentencePieceModel {
    /// Parses a serialized `ModelProto`.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut m = Self {
            model_type: 1,
            ..Default::default()
        };
        Reader { buf, pos: 0 }.fields(|field, r, wire| {
            match (field, wire) {
                (1, 2) => {
                    let mut p = Piece {
                        piece: String::new(),
                        score: 0.0,
                        kind: 1,
                    };
                    Reader {
                        buf: r.bytes()?,
                        pos: 0,
                    }
                    .fields(|f, r, w| {
                        match (f, w) {
                            (1, 2) => p.piece = utf8(r.bytes()?)?,
                            (2, 5) => p.score = f32::from_le_bytes(r.fixed32()?),
                            (3, 0) => p.kind = r.varint()?,
                            _ => return Ok(false),
                        }
                        Ok(true)
                    })?;
                    m.pieces.push(p);
                }
                (2, 2) => Reader {
                    buf: r.bytes()?,
                    pos: 0,
                }
                .fields(|f, r, w| {
                    match (f, w) {
                        (3, 0) => m.model_type = r.varint()?,
                        (35, 0) => m.byte_fallback = r.varint()? != 0,
                        (40, 0) => m.unk_id = r.varint()?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?,
                (3, 2) => Reader {
                    buf: r.bytes()?,
                    pos: 0,
                }
                .fields(|f, r, w| {
                    if (f, w) == (2, 2) {
                        m.precompiled_charsmap = r.bytes()?.to_vec();
                        return Ok(true);
                    }
                    Ok(false)
                })?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if m.pieces.is_empty() {
            return Err(Error::Tokenizer("tokenizer.model has no pieces".into()));
        }
        if m.unk_id as usize >= m.pieces.len() {
            return Err(Error::Tokenizer(format!(
                "tokenizer.model: unk_id {} is outside the {}-piece vocabulary",
                m.unk_id,
                m.pieces.len()
            )));
        }
        Ok(m)
    }
}

fn default_special(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        *slot = Some(value.to_string());
    }
}

/// Builds the pipeline for `dir/tokenizer.model`: `T5Tokenizer` when tokenizer_config.json
/// names it or the model is Unigram, `LlamaTokenizer` otherwise.
pub fn from_model_file(
    dir: &Path,
    config: &mut TokenizerConfig,
    raw: &serde_json::Value,
) -> Result<Pipeline> {
    let tokenizer_class = raw
        .get("tokenizer_class")
        .and_then(serde_json::Value::as_str);
    let path = dir.join("tokenizer.model");
    let bytes = trustformers_core::config::read_small_file(&path)?;
    let m = SentencePieceModel::parse(&bytes)?;
    let t5 = match tokenizer_class {
        Some(c) => c.starts_with("T5"),
        None => m.model_type == 1,
    };
    // Control and user-defined pieces become added tokens, in id order.
    for (id, p) in m.pieces.iter().enumerate() {
        if p.kind == CONTROL || p.kind == USER_DEFINED {
            config
                .added_tokens
                .push((p.piece.clone(), id as u32, p.kind == CONTROL));
        }
    }
    let mut t = if t5 {
        let s = &mut config.special;
        default_special(&mut s.eos, "</s>");
        default_special(&mut s.unk, "<unk>");
        default_special(&mut s.pad, "<pad>");
        let vocab: Vec<(String, f64)> = m
            .pieces
            .iter()
            .map(|p| (p.piece.clone(), f64::from(p.score)))
            .collect();
        let extra_ids = raw
            .get("extra_ids")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(100);
        let charsmap =
            (!m.precompiled_charsmap.is_empty()).then_some(m.precompiled_charsmap.as_slice());
        t5_unigram(vocab, charsmap, config, extra_ids)?
    } else {
        let s = &mut config.special;
        default_special(&mut s.unk, "<unk>");
        default_special(&mut s.bos, "<s>");
        default_special(&mut s.eos, "</s>");
        let vocab: super::Vocab = m
            .pieces
            .iter()
            .enumerate()
            .map(|(i, p)| (p.piece.clone(), i as u32))
            .collect();
        let merges = generate_merges(&vocab, None);
        sentencepiece_bpe(vocab, merges, SentencePieceFlavor::Llama, None)?
    };
    let unknown = m.pieces.iter().filter(|p| p.kind == UNKNOWN).count();
    if unknown > 1 {
        return Err(Error::Tokenizer(format!(
            "{}: more than one unknown piece",
            path.display()
        )));
    }
    if !t5 {
        add_tokens(&mut t, config)?;
    }
    Ok(t)
}

/// `T5Tokenizer`: Unigram with T5's hard-coded `unk_id=2`, the optional precompiled
/// normalizer, whitespace split + `▁` prefix, sentinel tokens `<extra_id_{i}>` (`extra_ids`
/// of them unless the config lists its own), and `A </s>` / `A </s> B </s>`.
pub fn t5_unigram(
    vocab: Vec<(String, f64)>,
    charsmap: Option<&[u8]>,
    config: &mut TokenizerConfig,
    extra_ids: u64,
) -> Result<Pipeline> {
    let s = &mut config.special;
    if !s.additional.iter().any(|t| t.contains("<extra_id_")) {
        s.additional
            .extend((0..extra_ids.min(10_000)).map(|i| format!("<extra_id_{i}>")));
    }
    let n = vocab.len();
    if n == 0 {
        return Err(Error::Tokenizer("empty Unigram vocabulary".into()));
    }
    let unigram = Unigram::from(vocab, Some(2.min(n - 1)), false).map_err(tk_err)?;
    spm_unigram_pipeline(unigram, charsmap, config, "$A:0 {eos}:0 $B:0 {eos}:0")
}

/// The pipeline transformers' converters give a SentencePiece Unigram model (T5, Marian):
/// the optional precompiled normalizer, whitespace split + `▁` prefix, the special and added
/// tokens, and `A </s>` for one input, `pair` (`{eos}` standing for the EOS token) for two.
fn spm_unigram_pipeline(
    unigram: Unigram,
    charsmap: Option<&[u8]>,
    config: &TokenizerConfig,
    pair: &str,
) -> Result<Pipeline> {
    let mut t = Pipeline::new(unigram.into());
    if let Some(charsmap) = charsmap {
        let charsmap = spm_precompiled::Precompiled::from(charsmap)
            .map_err(|e| Error::Tokenizer(format!("bad precompiled charsmap: {e}")))?;
        t.with_normalizer(Some(charsmap)).map_err(tk_err)?;
    }
    t.with_pre_tokenizer(Some(Sequence::new(vec![
        WhitespaceSplit.into(),
        Metaspace::new('▁', PrependScheme::Always, true).into(),
    ])));
    t.with_decoder(Some(MetaspaceDecoder::new(
        '▁',
        PrependScheme::Always,
        true,
    )));
    add_tokens(&mut t, config)?;
    let eos = config.special.eos.clone().unwrap_or_default();
    let id = t
        .token_to_id(&eos)
        .ok_or_else(|| Error::Tokenizer(format!("eos token `{eos}` is not in the vocabulary")))?;
    let template = TemplateProcessing::builder()
        .try_single(format!("$A:0 {eos}:0"))
        .map_err(Error::Tokenizer)?
        .try_pair(pair.replace("{eos}", &eos))
        .map_err(Error::Tokenizer)?
        .special_tokens(vec![(eos, id)])
        .build()
        .map_err(tk_err)?;
    t.with_post_processor(Some(template));
    Ok(t)
}

/// `MarianTokenizer` (Helsinki-NLP's opus-mt checkpoints): `source.spm` segments the text,
/// `vocab.json` numbers the pieces (its ids are not the SentencePiece model's), `</s>` ends
/// each input, and `>>xx<<` language codes of the vocabulary stay whole. transformers 4/5
/// run it in Python; this is the same pipeline as T5's over the source model's pieces and
/// scores, renumbered by `vocab.json` (pieces the source model lacks, such as target-side
/// ones, rank below all of its own). transformers' optional Moses punctuation normalization
/// (with `sacremoses` installed) is not applied.
pub fn marian(dir: &Path, config: &mut TokenizerConfig) -> Result<Pipeline> {
    let spm_path = dir.join("source.spm");
    if !spm_path.is_file() {
        return Err(Error::io(
            &spm_path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "a MarianTokenizer needs source.spm (the source side's SentencePiece model) next \
                 to vocab.json",
            ),
        ));
    }
    let m = SentencePieceModel::parse(&trustformers_core::config::read_small_file(&spm_path)?)?;
    let vocab_path = dir.join("vocab.json");
    let vocab: std::collections::HashMap<String, u64> =
        serde_json::from_slice(&trustformers_core::config::read_small_file(&vocab_path)?)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", vocab_path.display())))?;
    let dense = || {
        Error::Tokenizer(format!(
            "{}: ids must be 0..{} with none missing or repeated",
            vocab_path.display(),
            vocab.len()
        ))
    };
    // The source model's scores for the pieces it produces; anything else ranks below them.
    let own: std::collections::HashMap<&str, f32> = m
        .pieces
        .iter()
        .filter(|p| p.kind == 1 || p.kind == USER_DEFINED)
        .map(|p| (p.piece.as_str(), p.score))
        .collect();
    let lowest = own.values().copied().fold(0f32, f32::min);
    let mut slots: Vec<Option<(String, f64)>> = vec![None; vocab.len()];
    for (piece, &id) in &vocab {
        let slot = slots.get_mut(id as usize).ok_or_else(dense)?;
        if slot.is_some() {
            return Err(dense());
        }
        let score = own.get(piece.as_str()).copied().unwrap_or(lowest - 20.0);
        *slot = Some((piece.clone(), f64::from(score)));
    }
    let pieces: Vec<(String, f64)> = slots.into_iter().collect::<Option<_>>().ok_or_else(dense)?;
    let s = &mut config.special;
    default_special(&mut s.eos, "</s>");
    default_special(&mut s.unk, "<unk>");
    default_special(&mut s.pad, "<pad>");
    let unk = s.unk.clone().unwrap_or_default();
    let unk_id = vocab.get(&unk).ok_or_else(|| {
        Error::Tokenizer(format!(
            "{}: the unknown token `{unk}` is not in the vocabulary",
            vocab_path.display()
        ))
    })?;
    for (piece, &id) in &vocab {
        if piece.starts_with(">>") && piece.ends_with("<<") {
            config.added_tokens.push((piece.clone(), id as u32, false));
        }
    }
    config.added_tokens.sort_by_key(|t| t.1);
    config.strip_decoded = true;
    let unigram = Unigram::from(pieces, Some(*unk_id as usize), false).map_err(tk_err)?;
    let charsmap =
        (!m.precompiled_charsmap.is_empty()).then_some(m.precompiled_charsmap.as_slice());
    spm_unigram_pipeline(unigram, charsmap, config, "$A:0 $B:0 {eos}:0")
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", spm_path.display())))
}

/// Special tokens first (as special, unnormalized), then the config's other added tokens.
fn add_tokens(t: &mut Pipeline, config: &TokenizerConfig) -> Result<()> {
    let mut special: Vec<AddedToken> = Vec::new();
    for (content, _, is_special) in &config.added_tokens {
        if *is_special {
            special.push(AddedToken::from(content.clone(), true).normalized(false));
        }
    }
    for s in config.special.all() {
        if !special.iter().any(|t| t.content == *s) {
            special.push(AddedToken::from(s.clone(), true).normalized(false));
        }
    }
    t.add_special_tokens(special).map_err(tk_err)?;
    let plain: Vec<AddedToken> = config
        .added_tokens
        .iter()
        .filter(|(_, _, s)| !s)
        .map(|(c, _, _)| AddedToken::from(c.clone(), false).normalized(false))
        .collect();
    t.add_tokens(plain).map_err(tk_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_hostile_protos_are_errors() {
        assert!(SentencePieceModel::parse(&[]).is_err());
        // Field 1, length 100, but no bytes.
        assert!(SentencePieceModel::parse(&[0x0a, 100]).is_err());
        // A varint that never ends.
        assert!(SentencePieceModel::parse(&[0x0a; 16]).is_err());
        // Length u64::MAX.
        let mut huge = vec![0x0a];
        huge.extend([0xff; 9]);
        huge.push(0x01);
        assert!(SentencePieceModel::parse(&huge).is_err());
        // Unsupported wire type (group).
        assert!(SentencePieceModel::parse(&[0x0b]).is_err());
        // One piece, "a", score 0.5.
        let piece = [0x0a, 0x01, b'a', 0x15, 0, 0, 0, 0x3f];
        let mut ok = vec![0x0a, piece.len() as u8];
        ok.extend(piece);
        let m = SentencePieceModel::parse(&ok).unwrap();
        assert_eq!(
            m.pieces,
            [Piece {
                piece: "a".into(),
                score: 0.5,
                kind: 1
            }]
        );
    }
}
