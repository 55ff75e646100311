//! transformers' `fill-mask` pipeline: the most likely tokens for the one mask token of each
//! input.

use super::load_encoder_and_tokenizer;
use super::{max_input_tokens, tokenize};
use crate::auto::LoadOptions;
use candle_core::DType;
use serde::Serialize;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::{EncoderForTask, EncoderTask};
use trustformers_tokenizers::{EncodeOptions, Encoding, Padding, TextInput, Tokenizer, Truncation};

/// One candidate for the mask.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillMaskPrediction {
    pub score: f32,
    pub token: u32,
    pub token_str: String,
    /// The input with the mask filled, special tokens removed.
    pub sequence: String,
}

/// Options of [`FillMaskPipeline::run`].
#[derive(Debug, Clone)]
pub struct FillMaskParams {
    /// Candidates per input.
    pub top_k: usize,
    /// Restrict the candidates to these tokens (a word not in the vocabulary stands for its
    /// first token, as transformers does).
    pub targets: Option<Vec<String>>,
    /// Truncate inputs to the model's maximum length; otherwise a longer input is an error.
    /// A mask cut off by truncation is an error too.
    pub truncation: bool,
    /// Inputs per forward pass, padded to the longest.
    pub batch_size: usize,
}

impl Default for FillMaskParams {
    fn default() -> Self {
        Self {
            top_k: 5,
            targets: None,
            truncation: false,
            batch_size: 8,
        }
    }
}

/// A masked-LM model and its tokenizer.
pub struct FillMaskPipeline {
    tokenizer: Tokenizer,
    model: EncoderForTask,
    mask_id: u32,
}

impl FillMaskPipeline {
    /// Loads a masked-LM checkpoint directory; its tokenizer must have a mask token.
    pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let (model, tokenizer) =
            load_encoder_and_tokenizer(dir.as_ref(), EncoderTask::MaskedLm, opts)?;
        let mask = tokenizer
            .config()
            .special
            .mask
            .clone()
            .ok_or_else(|| Error::InvalidInput("the tokenizer has no mask token".into()))?;
        let mask_id = tokenizer.token_to_id(&mask).ok_or_else(|| {
            Error::Tokenizer(format!("mask token `{mask}` is not in the vocabulary"))
        })?;
        Ok(Self {
            model,
            tokenizer,
            mask_id,
        })
    }

    /// The mask token, as it must appear in inputs.
    pub fn mask_token(&self) -> Option<&str> {
        self.tokenizer.config().special.mask.as_deref()
    }

    fn target_ids(&self, targets: &[String]) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = Vec::new();
        for t in targets {
            let id = match self.tokenizer.token_to_id(t) {
                Some(id) => Some(id),
                None => self.tokenizer.encode_ids(t, false)?.first().copied(),
            };
            if let Some(id) = id.filter(|id| !ids.contains(id)) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return Err(Error::InvalidInput(
                "none of the targets is in the vocabulary".into(),
            ));
        }
        Ok(ids)
    }

    /// The candidates for each input, best first: `params.batch_size` inputs per forward
    /// pass.
    pub fn run(
        &self,
        texts: &[&str],
        params: &FillMaskParams,
    ) -> Result<Vec<Vec<FillMaskPrediction>>> {
        if texts.is_empty() {
            return Err(Error::InvalidInput("no texts to fill".into()));
        }
        if params.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be positive".into()));
        }
        let targets = params
            .targets
            .as_deref()
            .map(|t| self.target_ids(t))
            .transpose()?;
        let opts = EncodeOptions {
            padding: Padding::Longest,
            truncation: params.truncation.then_some(Truncation::LongestFirst),
            max_length: params
                .truncation
                .then(|| max_input_tokens(&self.tokenizer, &self.model)),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(texts.len());
        for (chunk, first) in texts
            .chunks(params.batch_size)
            .zip((0..).step_by(params.batch_size))
        {
            let inputs: Vec<TextInput<'_>> = chunk.iter().map(|t| TextInput::Single(t)).collect();
            let batch = tokenize(&self.tokenizer, &inputs, &opts, self.model.model().device())?;
            // Every input has its one mask before the model runs.
            let masks = batch
                .encodings
                .iter()
                .enumerate()
                .map(|(row, enc)| {
                    let ids = enc.input_ids();
                    let at: Vec<usize> =
                        (0..ids.len()).filter(|&i| ids[i] == self.mask_id).collect();
                    match at.as_slice() {
                        &[at] => Ok(at),
                        _ => Err(Error::InvalidInput(format!(
                            "input {} holds {} mask tokens ({}); fill-mask needs exactly one",
                            first + row,
                            at.len(),
                            self.mask_token().unwrap_or("?")
                        ))),
                    }
                })
                .collect::<Result<Vec<usize>>>()?;
            let logits = batch
                .run(&self.model)?
                .logits
                .ok_or_else(|| Error::InvalidInput("the model has no masked-LM head".into()))?
                .to_dtype(DType::F32)?;
            for (row, (enc, at)) in batch.encodings.iter().zip(masks).enumerate() {
                out.push(self.predictions(
                    enc,
                    at,
                    &logits.get(row)?.get(at)?,
                    targets.as_deref(),
                    params.top_k,
                )?);
            }
        }
        Ok(out)
    }

    /// The `top_k` candidates for the mask at `at` of `enc`, from its logits.
    fn predictions(
        &self,
        enc: &Encoding,
        at: usize,
        logits: &candle_core::Tensor,
        targets: Option<&[u32]>,
        top_k: usize,
    ) -> Result<Vec<FillMaskPrediction>> {
        let probs = candle_nn::ops::softmax_last_dim(logits)?.to_vec1::<f32>()?;
        let candidates: Vec<u32> = match targets {
            Some(t) => t.to_vec(),
            None => (0..probs.len() as u32).collect(),
        };
        let mut ranked: Vec<(u32, f32)> = candidates
            .iter()
            .filter_map(|&id| probs.get(id as usize).map(|&p| (id, p)))
            .collect();
        // torch.topk: largest first; equal scores keep the lower index first.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(top_k);
        ranked
            .into_iter()
            .map(|(id, score)| -> Result<FillMaskPrediction> {
                // The input with the mask filled, its padding dropped.
                let filled: Vec<u32> = enc
                    .input_ids()
                    .iter()
                    .zip(enc.attention_mask())
                    .enumerate()
                    .filter(|(_, (_, &m))| m != 0)
                    .map(|(i, (&t, _))| if i == at { id } else { t })
                    .collect();
                Ok(FillMaskPrediction {
                    score,
                    token: id,
                    token_str: self.tokenizer.decode(&[id], false)?,
                    sequence: self.tokenizer.decode(&filled, true)?,
                })
            })
            .collect()
    }
}
