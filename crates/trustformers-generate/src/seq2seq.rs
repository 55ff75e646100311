//! Generation for encoder-decoders through the decoders' engine, as transformers' `generate()`
//! does it: the encoder runs once per batch of sources, and the decoder is a causal LM over
//! target tokens whose "prompt" is the decoder start token and whose every cache starts from
//! the encoder's output. Beam search copies that cache per beam, so the beams share one
//! encoding.

use crate::beam::{aligned, beam_search_of};
use crate::config::GenerationConfig;
use crate::generate::{sample_rows, TokenOutput};
use candle_core::{DType, Device, Tensor};
use trustformers_core::{Error, Result};
use trustformers_models::{
    Cache, CausalLM, CausalLmOutput, EncoderDecoderLM, ForwardOptions, Seq2SeqOutput,
};
use web_time::Instant;

/// The decoder of an encoder-decoder over one encoded batch of sources, as a [`CausalLM`]:
/// every cache it makes holds that encoder output (positions are the cache's own).
pub struct EncodedDecoder<'a> {
    model: &'a dyn EncoderDecoderLM,
    /// A cache holding the encoder output and nothing decoded yet.
    fresh: Cache,
}

impl<'a> EncodedDecoder<'a> {
    /// The decoder over `encoder_output` (`[batch, source_len, hidden]`) and its sources'
    /// padding mask (`[batch, source_len]`).
    pub fn new(
        model: &'a dyn EncoderDecoderLM,
        encoder_output: Tensor,
        attention_mask: Option<Tensor>,
    ) -> Result<Self> {
        Ok(Self {
            fresh: model.new_cache(encoder_output, attention_mask)?,
            model,
        })
    }
}

impl CausalLM for EncodedDecoder<'_> {
    fn model_type(&self) -> &str {
        self.model.model_type()
    }

    fn forward_with(
        &self,
        input_ids: &Tensor,
        _positions: &Tensor,
        opts: &ForwardOptions,
        cache: &mut Cache,
    ) -> Result<CausalLmOutput> {
        let Seq2SeqOutput {
            logits,
            last_hidden_state,
        } = self.model.decode(input_ids, opts, cache)?;
        Ok(CausalLmOutput {
            logits,
            last_hidden_state,
            hidden_states: Vec::new(),
        })
    }

    fn new_cache(&self) -> Cache {
        self.fresh.clone()
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn max_position_embeddings(&self) -> usize {
        self.model.max_target_positions()
    }

    fn num_hidden_layers(&self) -> usize {
        0
    }

    fn device(&self) -> &Device {
        self.model.device()
    }

    fn dtype(&self) -> DType {
        self.model.dtype()
    }
}

/// Sources right-padded to one width with `pad` (as transformers' seq2seq tokenizers pad),
/// and their 0/1 mask, `None` when no row is padded.
fn pad_sources(sources: &[&[u32]], pad: u32, device: &Device) -> Result<(Tensor, Option<Tensor>)> {
    let width = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for s in sources {
        ids.extend(
            s.iter()
                .copied()
                .chain(std::iter::repeat_n(pad, width - s.len())),
        );
        mask.extend(
            std::iter::repeat_n(1u32, s.len()).chain(std::iter::repeat_n(0, width - s.len())),
        );
    }
    let rows = sources.len();
    let padded = sources.iter().any(|s| s.len() < width);
    Ok((
        Tensor::from_vec(ids, (rows, width), device)?,
        padded
            .then(|| Tensor::from_vec(mask, (rows, width), device))
            .transpose()?,
    ))
}

/// `source` right-padded to the longest of `sources`, as the processors that look at the
/// source see it in transformers (`encoder_input_ids`, padding included).
fn padded_source(source: &[u32], sources: &[Vec<u32>], config: &GenerationConfig) -> Vec<u32> {
    let width = sources.iter().map(Vec::len).max().unwrap_or(0);
    let pad = config.pad_token_id.unwrap_or(0);
    let mut out = source.to_vec();
    out.resize(width.max(source.len()), pad);
    out
}

/// transformers' `generate()` for an encoder-decoder on a batch of sources of any lengths:
/// `num_return_sequences` outputs per source, in source order, by greedy search, sampling
/// (the sources encoded together, right-padded) or beam search (`num_beams > 1`, one source
/// at a time, its beams sharing the encoding). The ids returned follow the decoder start
/// token (`config.decoder_start_token_id`, else the model's), which they leave out; each
/// output's `prefill` time includes the encoder's. The output grows to `max_new_tokens`, or
/// with `config.max_length` (generation_config.json's) to that length with the start token.
pub fn generate_seq2seq(
    model: &dyn EncoderDecoderLM,
    sources: &[Vec<u32>],
    config: &GenerationConfig,
) -> Result<Vec<TokenOutput>> {
    generate_seq2seq_with(model, sources, config, |_, _| Ok(true), |_| Ok(false))
}

/// [`generate_seq2seq`], showing each new token of greedy and sampled search to `on_token`
/// (its row among the outputs, and the id) as it is produced, as
/// [`generate_batch_with`](crate::generate_batch_with) does for decoders: returning `false`
/// ends that row (a stop string), an error ends the whole generation. Beam search calls it
/// for none; it asks `stops` instead whether a candidate's tokens end it, as
/// [`beam_search_with`](crate::beam_search_with) does.
pub fn generate_seq2seq_with(
    model: &dyn EncoderDecoderLM,
    sources: &[Vec<u32>],
    config: &GenerationConfig,
    on_token: impl FnMut(usize, u32) -> Result<bool>,
    mut stops: impl FnMut(&[u32]) -> Result<bool>,
) -> Result<Vec<TokenOutput>> {
    config.validate()?;
    if config.guidance().is_some() {
        return Err(Error::config(
            "guidance_scale",
            "classifier-free guidance is not applied to encoder-decoders",
        ));
    }
    if config.output_hidden_states {
        return Err(Error::config(
            "output_hidden_states",
            "an encoder-decoder's generation does not keep hidden states",
        ));
    }
    // generation_config.json's `max_length` counts the decoder start token.
    let limited;
    let config = match config.max_length {
        Some(m) if m < 2 => {
            return Err(Error::config(
                "max_length",
                format!("{m} leaves no room for a token after the decoder start"),
            ))
        }
        Some(m) => {
            limited = GenerationConfig {
                max_new_tokens: m - 1,
                ..config.clone()
            };
            &limited
        }
        None => config,
    };
    if sources.is_empty() {
        return Err(Error::InvalidInput("no inputs to generate from".into()));
    }
    if let Some(i) = sources.iter().position(Vec::is_empty) {
        return Err(Error::InvalidInput(format!("input {i} is empty")));
    }
    let start = config
        .decoder_start_token_id
        .unwrap_or_else(|| model.decoder_start_token_id());
    if start as usize >= model.vocab_size() {
        return Err(Error::config(
            "decoder_start_token_id",
            format!(
                "{start} is outside the decoder's vocabulary of {}",
                model.vocab_size()
            ),
        ));
    }
    let device = model.device().clone();
    // The encoder's time counts as prefill, as a decoder's prompt does.
    let with_encoder = |mut outs: Vec<TokenOutput>, encoding: std::time::Duration| {
        outs.iter_mut().for_each(|o| o.prefill += encoding);
        outs
    };
    if config.num_beams > 1 {
        return aligned(sources.len(), config, |i, min_steps| {
            let start_time = Instant::now();
            let ids = Tensor::new(sources[i].as_slice(), &device)?.unsqueeze(0)?;
            let decoder = EncodedDecoder::new(model, model.encode(&ids, None)?, None)?;
            let encoding = start_time.elapsed();
            let source = padded_source(&sources[i], sources, config);
            let outs = beam_search_of(&decoder, &[start], &source, config, &mut stops, min_steps)?;
            Ok(with_encoder(outs, encoding))
        });
    }
    let start_time = Instant::now();
    let pad = config.pad_token_id.unwrap_or(0);
    let refs: Vec<&[u32]> = sources.iter().map(Vec::as_slice).collect();
    let (ids, mask) = pad_sources(&refs, pad, &device)?;
    let mut encoded = model.encode(&ids, mask.as_ref())?;
    let mut mask = mask;
    let n = config.num_return_sequences;
    if n > 1 {
        // Each source's row repeated for its samples, in order.
        let rows: Vec<u32> = (0..sources.len() as u32)
            .flat_map(|r| std::iter::repeat_n(r, n))
            .collect();
        let rows = Tensor::new(rows.as_slice(), &device)?;
        encoded = encoded.index_select(&rows, 0)?;
        mask = mask.map(|m| m.index_select(&rows, 0)).transpose()?;
    }
    let decoder = EncodedDecoder::new(model, encoded, mask)?;
    let encoding = start_time.elapsed();
    let prompt = [start];
    let prompts = vec![prompt.as_slice(); sources.len() * n];
    let padded: Vec<Vec<u32>> = sources
        .iter()
        .flat_map(|s| std::iter::repeat_n(padded_source(s, sources, config), n))
        .collect();
    let outs = sample_rows(&decoder, &prompts, Some(&padded), config, on_token)?;
    Ok(with_encoder(outs, encoding))
}
