//! Vision-language models: a language model whose prompt holds image tokens that image
//! features replace (LLaVA, [`llava`]).
//!
//! Such a model is a [`CausalLM`] on text. For a prompt with images, [`WithImages`] pairs it
//! with the images' features: a causal LM for that one request, whose prefill puts the
//! features in the image tokens' places, so generation, streaming and beam search run
//! unchanged.

pub mod blip2;
pub mod llava;

use crate::traits::RuntimeOptions;
use crate::traits::{CausalLM, CausalLmOutput, ForwardOptions};
use crate::DecoderForCausalLM;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use trustformers_core::{Error, Result};
use trustformers_core::{StoredName, Weights};
use trustformers_nn::Cache;

/// The inputs embeddings of `input_ids` with the image tokens' rows replaced, in order, by
/// the rows of `features` (`[images * image tokens, hidden]`: transformers'
/// `masked_scatter`).
pub fn merge_image_features(
    language: &DecoderForCausalLM,
    input_ids: &Tensor,
    features: &Tensor,
    image_token_id: u32,
    per_image: usize,
) -> Result<Tensor> {
    let embeds = language.model().token_embeddings(input_ids)?;
    let (b, s, h) = embeds.dims3()?;
    let ids = input_ids
        .to_dtype(DType::U32)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    let slots: Vec<u32> = ids
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == image_token_id)
        .map(|(i, _)| i as u32)
        .collect();
    let features = features.reshape(((), h))?;
    if slots.len() != features.dim(0)? {
        return Err(Error::InvalidInput(format!(
            "the prompt has {} image tokens but the images give {} features ({per_image} per \
             image): put the processor's image tokens in the prompt once per image",
            slots.len(),
            features.dim(0)?,
        )));
    }
    if slots.is_empty() {
        return Ok(embeds);
    }
    let index = Tensor::new(slots.as_slice(), embeds.device())?;
    let flat = embeds.reshape((b * s, h))?;
    let features = features.to_dtype(flat.dtype())?;
    let flat = flat.index_add(&index, &(features - flat.index_select(&index, 0)?)?, 0)?;
    Ok(flat.reshape((b, s, h))?)
}

/// `CausalLM` for a vision-language model by its language model (`self.$field`, a
/// `DecoderForCausalLM`): on text it is that model.
macro_rules! causal_lm_by_language_model {
    ($ty:ty, $field:ident) => {
        impl CausalLM for $ty {
            fn model_type(&self) -> &str {
                &self.model_type
            }

            fn forward_with(
                &self,
                input_ids: &Tensor,
                positions: &Tensor,
                opts: &ForwardOptions,
                cache: &mut Cache,
            ) -> Result<CausalLmOutput> {
                self.$field.forward_with(input_ids, positions, opts, cache)
            }

            fn forward_rows(
                &self,
                input_ids: &Tensor,
                positions: &Tensor,
                caches: &mut [&mut Cache],
            ) -> Result<Tensor> {
                self.$field.forward_rows(input_ids, positions, caches)
            }

            fn new_cache(&self) -> Cache {
                self.$field.new_cache()
            }

            fn vocab_size(&self) -> usize {
                self.$field.vocab_size()
            }

            fn max_position_embeddings(&self) -> usize {
                self.$field.max_position_embeddings()
            }

            fn num_hidden_layers(&self) -> usize {
                self.$field.num_hidden_layers()
            }

            fn device(&self) -> &Device {
                self.$field.device()
            }

            fn dtype(&self) -> DType {
                self.$field.dtype()
            }
        }
    };
}
pub(crate) use causal_lm_by_language_model;

/// A multimodal config's `text_config` (an empty one of `default_type` when absent) and its
/// `model_type`.
pub(crate) fn text_config(
    config: &serde_json::Value,
    default_type: &str,
) -> (serde_json::Value, String) {
    let text = config
        .get("text_config")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({ "model_type": default_type }));
    let model_type = text
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(default_type)
        .to_string();
    (text, model_type)
}

/// `image_token_id` (or its older name `image_token_index`), when the config has it.
pub(crate) fn image_token_id(f: &trustformers_core::config::Fields<'_>) -> Result<Option<u32>> {
    ["image_token_id", "image_token_index"]
        .iter()
        .find_map(|k| f.raw(k))
        .map(|v| {
            v.as_u64()
                .filter(|&n| n <= u64::from(u32::MAX))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    Error::config("image_token_id", format!("must be a token id, got {v}"))
                })
        })
        .transpose()
}

/// How a model's processor puts images in a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePlacement {
    /// Where the prompt (its chat template) writes the image token, repeated as many times as
    /// an image has features (LLaVA).
    Inline,
    /// All images' tokens before the tokenized prompt, its BOS included (BLIP-2).
    Prefix,
}

/// How a vision-language checkpoint's prompts hold images: what its processor needs, read
/// from config.json without the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePrompt {
    pub image_token_id: u32,
    /// Image tokens per image.
    pub per_image: usize,
    pub placement: ImagePlacement,
}

/// The [`ImagePrompt`] of a vision-language checkpoint (`model_type` `llava` or `blip-2`),
/// the same its model reports once loaded.
pub fn image_prompt(model_type: &str, config: &Value) -> Result<ImagePrompt> {
    match model_type {
        "llava" => {
            let spec = llava::LlavaSpec::from_config(config)?;
            Ok(ImagePrompt {
                image_token_id: spec.image_token_id,
                per_image: spec.image_seq_length(),
                placement: ImagePlacement::Inline,
            })
        }
        "blip-2" => {
            let spec = blip2::Blip2Spec::from_config(config)?;
            Ok(ImagePrompt {
                image_token_id: spec.image_token_id,
                per_image: spec.num_query_tokens,
                placement: ImagePlacement::Prefix,
            })
        }
        other => Err(Error::config(
            "model_type",
            format!("{other:?} is not a vision-language model (LLaVA, BLIP-2)"),
        )),
    }
}

/// A language model that reads images through image tokens.
pub trait VisionLanguageModel: CausalLM {
    /// The projected features of each image: `[images, image tokens, hidden]`.
    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor>;

    /// The token whose positions take the features.
    fn image_token_id(&self) -> u32;

    /// Image tokens per image.
    fn image_seq_length(&self) -> usize;

    /// The image size the vision tower takes, `(height, width)`.
    fn image_size(&self) -> (usize, usize);

    /// Where the processor puts the image tokens.
    fn image_placement(&self) -> ImagePlacement {
        ImagePlacement::Inline
    }

    /// The model's own stages on the way to the image features, by transformers' field
    /// names (BLIP-2: `vision_last_hidden_state`, `qformer_last_hidden_state`), for
    /// side-by-side comparison.
    fn image_stages(&self, pixel_values: &Tensor) -> Result<Vec<(&'static str, Tensor)>> {
        let _ = pixel_values;
        Ok(Vec::new())
    }

    /// The decoder that reads the prompt.
    fn language_model(&self) -> &DecoderForCausalLM;

    /// Logits for `input_ids` whose image tokens take the rows of `image_features`, in order
    /// (every row of a batch its own images' features).
    fn forward_with_images(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        image_features: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput> {
        let language = self.language_model();
        let embeds = merge_image_features(
            language,
            input_ids,
            image_features,
            self.image_token_id(),
            self.image_seq_length(),
        )?;
        language.forward_embeds(&embeds, positions, opts, cache)
    }
}

/// A vision-language model with the features of one prompt's images: the first pass over a
/// prompt holding image tokens (an empty cache) puts the features in their places, every
/// row of the batch (beams, samples) getting the same images.
pub struct WithImages<'a> {
    model: &'a dyn VisionLanguageModel,
    /// `[images * image tokens, hidden]`.
    features: Tensor,
}

impl<'a> WithImages<'a> {
    /// `model` with `features` from [`VisionLanguageModel::image_features`].
    pub fn new(model: &'a dyn VisionLanguageModel, features: &Tensor) -> Result<Self> {
        let dims = features.dims();
        let hidden = *dims.last().unwrap_or(&0);
        Ok(Self {
            model,
            features: features.reshape(((), hidden))?,
        })
    }

    fn image_tokens(&self, input_ids: &Tensor) -> Result<usize> {
        let id = self.model.image_token_id();
        Ok(input_ids
            .to_dtype(DType::U32)?
            .flatten_all()?
            .to_vec1::<u32>()?
            .iter()
            .filter(|&&t| t == id)
            .count())
    }
}

impl CausalLM for WithImages<'_> {
    fn model_type(&self) -> &str {
        self.model.model_type()
    }

    fn forward_with(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput> {
        // Decode steps (a cache holding the prompt) are text: no look at the ids.
        if cache.seq_len() != 0 {
            return self.model.forward_with(input_ids, positions, opts, cache);
        }
        let tokens = self.image_tokens(input_ids)?;
        if tokens == 0 {
            return self.model.forward_with(input_ids, positions, opts, cache);
        }
        let rows = input_ids.dim(0)?;
        let per_row = self.features.dim(0)?;
        let features = if rows > 1 && tokens == rows * per_row {
            self.features.repeat((rows, 1))?
        } else {
            self.features.clone()
        };
        self.model
            .forward_with_images(input_ids, positions, &features, opts, cache)
    }

    fn forward_rows(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &mut [&mut Cache],
    ) -> Result<Tensor> {
        self.model.forward_rows(input_ids, positions, caches)
    }

    fn new_cache(&self) -> Cache {
        self.model.new_cache()
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn max_position_embeddings(&self) -> usize {
        self.model.max_position_embeddings()
    }

    fn num_hidden_layers(&self) -> usize {
        self.model.num_hidden_layers()
    }

    fn device(&self) -> &Device {
        self.model.device()
    }

    fn dtype(&self) -> DType {
        self.model.dtype()
    }
}

/// Builds LLaVA (the registry's `llava` entry).
pub fn llava(
    model_type: &str,
    config: &Value,
    vb: &Weights,
    runtime: &RuntimeOptions,
) -> Result<Box<dyn VisionLanguageModel>> {
    let spec = llava::LlavaSpec::from_config(config)?;
    Ok(Box::new(llava::LlavaForConditionalGeneration::new(
        model_type, &spec, vb, runtime,
    )?))
}

/// Builds BLIP-2 (the registry's `blip-2` entry).
pub fn blip2(
    model_type: &str,
    config: &Value,
    vb: &Weights,
    runtime: &RuntimeOptions,
) -> Result<Box<dyn VisionLanguageModel>> {
    let spec = blip2::Blip2Spec::from_config(config)?;
    Ok(Box::new(blip2::Blip2ForConditionalGeneration::new(
        model_type, &spec, vb, runtime,
    )?))
}

/// A multimodal checkpoint's `language_model.*` tensors under the names of its text model's
/// architecture (BLIP-2's OPT keeps `model.decoder.*`).
pub fn language_model_names(name: &str, config: &Value) -> Option<StoredName> {
    let rest = name.strip_prefix("language_model.")?;
    let text = config.get("text_config")?;
    let text_type = text.get("model_type")?.as_str()?;
    let names = crate::registry::by_model_type(text_type)
        .ok()?
        .tensor_names?;
    let stored = names(rest, text)?;
    Some(StoredName {
        name: format!("language_model.{}", stored.name),
        ..stored
    })
}
