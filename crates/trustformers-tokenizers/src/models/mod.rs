//! The model stage of a tokenizer pipeline: one of `tokenizers`' models (BPE, WordPiece,
//! WordLevel, Unigram), or the compact BPE that GGUF vocabularies use.

pub mod compact_bpe;

use compact_bpe::CompactBpe;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::unigram::Unigram;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Model, Token, TokenizerImpl, Trainer};

/// A tokenizer pipeline over [`TokenizerModel`]: `tokenizers`' `Tokenizer` with one more
/// kind of model.
pub type Pipeline = TokenizerImpl<
    TokenizerModel,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// A tokenizer's model stage.
// One per tokenizer: the variants' sizes do not matter, matching through a box would.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TokenizerModel {
    /// A model of the `tokenizers` crate (what tokenizer.json files describe).
    Hf(ModelWrapper),
    /// A BPE whose merges are implied by its vocabulary (GGUF files).
    Compact(CompactBpe),
}

impl TokenizerModel {
    /// The same model as one of `tokenizers`' (a compact BPE lists its merges).
    pub fn to_hf(&self) -> tokenizers::Result<ModelWrapper> {
        match self {
            Self::Hf(m) => Ok(m.clone()),
            Self::Compact(m) => Ok(m.to_bpe().map_err(|e| e.to_string())?.into()),
        }
    }
}

impl From<ModelWrapper> for TokenizerModel {
    fn from(m: ModelWrapper) -> Self {
        Self::Hf(m)
    }
}

impl From<CompactBpe> for TokenizerModel {
    fn from(m: CompactBpe) -> Self {
        Self::Compact(m)
    }
}

macro_rules! from_hf_model {
    ($($model:ty),*) => {$(
        impl From<$model> for TokenizerModel {
            fn from(m: $model) -> Self {
                Self::Hf(m.into())
            }
        }
    )*};
}
from_hf_model!(BPE, WordPiece, WordLevel, Unigram);

impl Model for TokenizerModel {
    type Trainer = TokenizerModelTrainer;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            Self::Hf(m) => m.tokenize(sequence),
            Self::Compact(m) => Ok(m.tokenize(sequence)?),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Self::Hf(m) => m.token_to_id(token),
            Self::Compact(m) => m.token_to_id(token),
        }
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            Self::Hf(m) => m.id_to_token(id),
            Self::Compact(m) => m.id_to_token(id).map(str::to_string),
        }
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        match self {
            Self::Hf(m) => m.get_vocab(),
            Self::Compact(m) => m.vocab(),
        }
    }

    fn get_vocab_size(&self) -> usize {
        match self {
            Self::Hf(m) => m.get_vocab_size(),
            Self::Compact(m) => m.vocab_size(),
        }
    }

    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        self.to_hf()?.save(folder, prefix)
    }

    fn get_trainer(&self) -> TokenizerModelTrainer {
        TokenizerModelTrainer(match self {
            Self::Hf(m) => m.get_trainer(),
            Self::Compact(_) => BpeTrainer::default().into(),
        })
    }
}

/// Serialized as the `tokenizers` model it equals, so a saved tokenizer.json loads anywhere.
impl Serialize for TokenizerModel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Hf(m) => m.serialize(s),
            Self::Compact(m) => m.to_bpe().map_err(serde::ser::Error::custom)?.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for TokenizerModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ModelWrapper::deserialize(d).map(Self::Hf)
    }
}

/// The trainer of a [`TokenizerModel`]: `tokenizers`' trainer for its kind (a compact BPE
/// trains as the BPE it equals).
pub struct TokenizerModelTrainer(TrainerWrapper);

impl Trainer for TokenizerModelTrainer {
    type Model = TokenizerModel;

    fn should_show_progress(&self) -> bool {
        self.0.should_show_progress()
    }

    fn train(&self, model: &mut TokenizerModel) -> tokenizers::Result<Vec<AddedToken>> {
        let mut hf = match model {
            TokenizerModel::Hf(m) => std::mem::replace(m, BPE::default().into()),
            TokenizerModel::Compact(m) => m.to_bpe().map_err(|e| e.to_string())?.into(),
        };
        let added = self.0.train(&mut hf);
        *model = TokenizerModel::Hf(hf);
        added
    }

    fn feed<I, S, F>(&mut self, iterator: I, process: F) -> tokenizers::Result<()>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
        F: Fn(&str) -> tokenizers::Result<Vec<String>> + Sync,
    {
        self.0.feed(iterator, process)
    }
}

/// A pipeline over `tokenizers`' own `Tokenizer`'s parts.
pub fn pipeline_from_hf(t: &tokenizers::Tokenizer) -> tokenizers::Result<Pipeline> {
    let mut p = Pipeline::new(t.get_model().clone().into());
    copy_stages(t, &mut p)?;
    Ok(p)
}

/// `tokenizers`' own `Tokenizer` with a pipeline's parts (a compact BPE lists its merges).
pub fn pipeline_to_hf(p: &Pipeline) -> tokenizers::Result<tokenizers::Tokenizer> {
    let mut t = tokenizers::Tokenizer::new(p.get_model().to_hf()?);
    copy_stages(p, &mut t)?;
    Ok(t)
}

fn copy_stages<M1: Model, M2: Model>(
    from: &TokenizerImpl<
        M1,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >,
    to: &mut TokenizerImpl<
        M2,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >,
) -> tokenizers::Result<()> {
    // The added vocabulary carries its own normalized-token tries: set it after the
    // normalizer so it is not refreshed.
    to.with_normalizer(from.get_normalizer().cloned())?;
    to.with_pre_tokenizer(from.get_pre_tokenizer().cloned());
    to.with_post_processor(from.get_post_processor().cloned());
    to.with_decoder(from.get_decoder().cloned());
    to.with_added_vocabulary(from.get_added_vocabulary().clone());
    to.with_truncation(from.get_truncation().cloned())?;
    to.with_padding(from.get_padding().cloned());
    Ok(())
}
