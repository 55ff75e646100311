//! transformers' `fill-mask` pipeline: the most likely tokens for the one mask token of each
//! input.

use super::pipeline::Pipeline;
use super::{load_encoder_and_tokenizer, padded, singles, tokenize, Batch};
use crate::auto::LoadOptions;
use candle_core::DType;
use serde::Serialize;
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_models::{EncoderForTask, EncoderTask, EncoderTaskOutput};
use trustformers_tokenizers::{Encoding, Tokenizer, Truncation};

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
        self.call(texts, params)
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

/// A fill-mask batch: the padded inputs and where each row's mask is.
pub struct MaskedBatch {
    batch: Batch,
    masks: Vec<usize>,
}

impl Pipeline for FillMaskPipeline {
    const TASK: &'static str = "fill-mask";
    type Input<'a> = &'a str;
    type Params = FillMaskParams;
    /// The mask's candidates, best first.
    type Output = Vec<FillMaskPrediction>;
    type ModelInputs = MaskedBatch;
    type ModelOutputs = EncoderTaskOutput;

    fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
        Self::from_pretrained(path, opts)
    }

    fn check(&self, params: &FillMaskParams) -> Result<()> {
        if let Some(targets) = &params.targets {
            self.target_ids(targets)?;
        }
        Ok(())
    }

    fn preprocess(
        &self,
        texts: &[&str],
        first: usize,
        params: &FillMaskParams,
    ) -> Result<MaskedBatch> {
        let truncation = params.truncation.then_some(Truncation::LongestFirst);
        let opts = padded(&self.tokenizer, &self.model, truncation);
        let batch = tokenize(
            &self.tokenizer,
            &singles(texts),
            &opts,
            self.model.model().device(),
        )?;
        // Every input has its one mask before the model runs.
        let masks = batch
            .encodings
            .iter()
            .enumerate()
            .map(|(row, enc)| {
                let ids = enc.input_ids();
                let at: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == self.mask_id).collect();
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
        Ok(MaskedBatch { batch, masks })
    }

    fn forward(&self, inputs: &MaskedBatch) -> Result<EncoderTaskOutput> {
        inputs.batch.run(&self.model)
    }

    fn postprocess(
        &self,
        inputs: &MaskedBatch,
        out: EncoderTaskOutput,
        params: &FillMaskParams,
    ) -> Result<Vec<Self::Output>> {
        let targets = params
            .targets
            .as_deref()
            .map(|t| self.target_ids(t))
            .transpose()?;
        let logits = out
            .logits
            .ok_or_else(|| Error::InvalidInput("the model has no masked-LM head".into()))?
            .to_dtype(DType::F32)?;
        inputs
            .batch
            .encodings
            .iter()
            .zip(&inputs.masks)
            .enumerate()
            .map(|(row, (enc, &at))| {
                self.predictions(
                    enc,
                    at,
                    &logits.get(row)?.get(at)?,
                    targets.as_deref(),
                    params.top_k,
                )
            })
            .collect()
    }
}
