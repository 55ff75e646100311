//! `GenerationConfig`: transformers' generation parameters, read from generation_config.json
//! and overridable per call; turns itself into the processor list transformers would build.

use crate::processors::*;
use serde_json::Value;
use std::path::Path;
use trustformers_core::{config::read_json, Error, Result};

/// When beam search stops (transformers' `early_stopping`: `False`, `True` or `"never"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// Stop once the best running beam, scored at its current length, cannot beat the worst
    /// finished one (transformers' default heuristic).
    #[default]
    Heuristic,
    /// Stop as soon as `num_beams` hypotheses are finished.
    True,
    /// Stop only when no running beam can improve, scoring it at the longest possible length
    /// when the length penalty rewards length (the canonical algorithm).
    Never,
}

/// Generation parameters, named as in transformers' `GenerationConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub min_new_tokens: usize,
    pub do_sample: bool,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: Option<f32>,
    pub typical_p: f32,
    pub repetition_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub no_repeat_ngram_size: usize,
    pub bad_words_ids: Vec<Vec<u32>>,
    pub logit_bias: Vec<(u32, f32)>,
    /// Any of these ends the sequence.
    pub eos_token_id: Vec<u32>,
    /// Force an end-of-sequence token at the last allowed position.
    pub forced_eos_at_max_length: bool,
    /// The tokens forced at the last allowed position (`forced_eos_token_id`; BART,
    /// Marian, Pegasus set it). Set, it takes the place of `forced_eos_at_max_length`'s EOS.
    pub forced_eos_token_id: Vec<u32>,
    /// The token forced first after a one-token start (`forced_bos_token_id`: mBART's target
    /// language code).
    pub forced_bos_token_id: Option<u32>,
    /// No end-of-sequence before the sequence (decoder start or prompt included) is this
    /// long (`min_length`).
    pub min_length: usize,
    /// The token an encoder-decoder's decoder starts from, in place of the model config's
    /// (`decoder_start_token_id`).
    pub decoder_start_token_id: Option<u32>,
    /// generation_config.json's `max_length`: the longest an encoder-decoder's output may
    /// grow, decoder start token included (summarization checkpoints set it). Setting
    /// `max_new_tokens` explicitly clears it, as `max_new_tokens` wins in transformers.
    /// Decoders ignore it: their length is `max_new_tokens`.
    pub max_length: Option<usize>,
    /// Text that ends generation; it is not part of the output.
    pub stop_strings: Vec<String>,
    /// Wall-clock limit in seconds.
    pub max_time: Option<f64>,
    pub seed: u64,
    /// Beam search with this many beams when above 1.
    pub num_beams: usize,
    /// Beam scores are divided by `generated_length ^ length_penalty`.
    pub length_penalty: f32,
    pub early_stopping: EarlyStopping,
    /// Sequences returned per prompt (the best beams, or independent samples).
    pub num_return_sequences: usize,
    /// Fills the left of shorter prompts in a batch; defaults to the first EOS id.
    pub pad_token_id: Option<u32>,
    /// Also return each generated token's log-probability and this many top alternatives
    /// (OpenAI's `top_logprobs`; not a transformers field).
    pub top_logprobs: Option<usize>,
    /// Tokens of the source (a decoder's prompt) made likelier by this factor
    /// (`encoder_repetition_penalty`; 1 is off).
    pub encoder_repetition_penalty: f32,
    /// No n-gram of this size from the source (a decoder's prompt) is repeated
    /// (`encoder_no_repeat_ngram_size`; 0 is off).
    pub encoder_no_repeat_ngram_size: usize,
    /// Classifier-free guidance (`guidance_scale`; off at 1): each step's log-probabilities
    /// become `scale * (conditional - unconditional) + unconditional`, the unconditional
    /// ones from the model run on the prompt's last token alone, as transformers'
    /// `UnbatchedClassifierFreeGuidanceLogitsProcessor` does without a negative prompt.
    pub guidance_scale: Option<f32>,
    /// Prompt lookup decoding with this many guessed tokens per pass
    /// (`prompt_lookup_num_tokens`; greedy search only): the same ids, fewer passes when the
    /// output quotes the input.
    pub prompt_lookup_num_tokens: Option<usize>,
    /// The longest n-gram prompt lookup matches (`max_matching_ngram_size`; 2 when unset).
    pub max_matching_ngram_size: Option<usize>,
    /// Tokens never generated (`suppress_tokens`).
    pub suppress_tokens: Vec<u32>,
    /// Tokens not generated first (`begin_suppress_tokens`).
    pub begin_suppress_tokens: Vec<u32>,
    /// `(tokens, bias)`: the bias is added to the last token's score when the sequence ends
    /// with the others (`sequence_bias`, in its list form).
    pub sequence_bias: Vec<(Vec<u32>, f32)>,
    /// When sampling, drop tokens less likely than this (`epsilon_cutoff`; 0 is off).
    pub epsilon_cutoff: f32,
    /// When sampling, eta sampling with this `eta` (`eta_cutoff`; 0 is off).
    pub eta_cutoff: f32,
    /// When sampling, entropy-bounded truncation with this fraction (`top_h`, in (0, 1]).
    pub top_h: Option<f32>,
    /// `(start, factor)`: end-of-sequence scores grow by `factor` per token beyond `start`
    /// new tokens (`exponential_decay_length_penalty`).
    pub exponential_decay_length_penalty: Option<(usize, f32)>,
    /// The processed scores log-softmaxed again as the last step (`renormalize_logits`).
    pub renormalize_logits: bool,
    /// NaN and infinite scores replaced by finite ones (`remove_invalid_values`).
    pub remove_invalid_values: bool,
    /// Keep every step's processed scores (`output_scores`) and raw logits
    /// (`output_logits`) in [`TokenOutput::steps`](crate::TokenOutput::steps). From JSON
    /// they are read only with `return_dict_in_generate`, as transformers returns them only
    /// then.
    pub output_scores: bool,
    pub output_logits: bool,
    /// Keep every step's hidden states (`output_hidden_states`, read from JSON as the two
    /// above): greedy search and sampling of decoders.
    pub output_hidden_states: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            min_new_tokens: 0,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            min_p: None,
            typical_p: 1.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            no_repeat_ngram_size: 0,
            bad_words_ids: Vec::new(),
            logit_bias: Vec::new(),
            eos_token_id: Vec::new(),
            forced_eos_at_max_length: false,
            forced_eos_token_id: Vec::new(),
            forced_bos_token_id: None,
            min_length: 0,
            decoder_start_token_id: None,
            max_length: None,
            stop_strings: Vec::new(),
            max_time: None,
            seed: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            num_return_sequences: 1,
            pad_token_id: None,
            top_logprobs: None,
            guidance_scale: None,
            prompt_lookup_num_tokens: None,
            max_matching_ngram_size: None,
            encoder_repetition_penalty: 1.0,
            encoder_no_repeat_ngram_size: 0,
            suppress_tokens: Vec::new(),
            begin_suppress_tokens: Vec::new(),
            sequence_bias: Vec::new(),
            epsilon_cutoff: 0.0,
            eta_cutoff: 0.0,
            top_h: None,
            exponential_decay_length_penalty: None,
            renormalize_logits: false,
            remove_invalid_values: false,
            output_scores: false,
            output_logits: false,
            output_hidden_states: false,
        }
    }
}

fn ids(v: &Value, field: &str) -> Result<Vec<u32>> {
    let one = |x: &Value| {
        x.as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                Error::config(
                    field,
                    format!("must be a token id or a list of them, got {v}"),
                )
            })
    };
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// `sequence_bias` in its list form: `[[[token, ...], bias], ...]`.
fn sequence_bias(v: &Value) -> Result<Vec<(Vec<u32>, f32)>> {
    let wrong = || {
        Error::config(
            "sequence_bias",
            format!("must be a list of [[token ids], bias] pairs, got {v}"),
        )
    };
    v.as_array()
        .ok_or_else(wrong)?
        .iter()
        .map(|entry| match entry.as_array().map(Vec::as_slice) {
            Some([tokens @ Value::Array(_), Value::Number(bias)]) => Ok((
                ids(tokens, "sequence_bias")?,
                bias.as_f64().ok_or_else(wrong)? as f32,
            )),
            _ => Err(wrong()),
        })
        .collect()
}

impl GenerationConfig {
    /// Defaults overridden by `dir/generation_config.json` when it exists.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut config = Self::default();
        let path = dir.join("generation_config.json");
        if path.is_file() {
            config.apply_json(&read_json(&path)?)?;
        }
        Ok(config)
    }

    /// Applies the fields of a generation_config.json.
    pub fn apply_json(&mut self, json: &Value) -> Result<()> {
        let f = |k: &str| json.get(k).filter(|v| !v.is_null());
        let num = |k: &str| -> Result<Option<f64>> {
            f(k).map(|v| {
                v.as_f64()
                    .ok_or_else(|| Error::config(k, format!("must be a number, got {v}")))
            })
            .transpose()
        };
        if let Some(x) = num("max_new_tokens")? {
            self.max_new_tokens = x as usize;
            self.max_length = None;
        } else if let Some(x) = num("max_length")? {
            self.max_length = Some(x as usize);
        }
        if let Some(x) = num("min_new_tokens")? {
            self.min_new_tokens = x as usize;
        }
        if let Some(b) = f("do_sample").and_then(Value::as_bool) {
            self.do_sample = b;
        }
        if let Some(x) = num("temperature")? {
            self.temperature = x as f32;
        }
        if let Some(x) = num("top_k")? {
            self.top_k = x as usize;
        }
        if let Some(x) = num("top_p")? {
            self.top_p = x as f32;
        }
        if let Some(x) = num("min_p")? {
            self.min_p = Some(x as f32);
        }
        if let Some(x) = num("typical_p")? {
            self.typical_p = x as f32;
        }
        if let Some(x) = num("repetition_penalty")? {
            self.repetition_penalty = x as f32;
        }
        if let Some(x) = num("no_repeat_ngram_size")? {
            self.no_repeat_ngram_size = x as usize;
        }
        if let Some(v) = f("eos_token_id") {
            self.eos_token_id = ids(v, "eos_token_id")?;
        }
        if let Some(x) = num("max_time")? {
            self.max_time = Some(x);
        }
        if let Some(x) = num("num_beams")? {
            self.num_beams = x as usize;
        }
        if let Some(x) = num("length_penalty")? {
            self.length_penalty = x as f32;
        }
        if let Some(x) = num("num_return_sequences")? {
            self.num_return_sequences = x as usize;
        }
        if let Some(v) = f("early_stopping") {
            self.early_stopping = match v {
                Value::Bool(false) => EarlyStopping::Heuristic,
                Value::Bool(true) => EarlyStopping::True,
                Value::String(s) if s == "never" => EarlyStopping::Never,
                other => {
                    return Err(Error::config(
                        "early_stopping",
                        format!("must be true, false or \"never\", got {other}"),
                    ))
                }
            };
        }
        if let Some(v) = f("pad_token_id") {
            self.pad_token_id = ids(v, "pad_token_id")?.first().copied();
        }
        if let Some(v) = f("forced_eos_token_id") {
            self.forced_eos_token_id = ids(v, "forced_eos_token_id")?;
        }
        if let Some(v) = f("forced_bos_token_id") {
            self.forced_bos_token_id = ids(v, "forced_bos_token_id")?.first().copied();
        }
        if let Some(x) = num("min_length")? {
            self.min_length = x as usize;
        }
        if let Some(v) = f("stop_strings") {
            self.stop_strings = match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        Error::config(
                            "stop_strings",
                            format!("must be a string or a list of strings, got {v}"),
                        )
                    })?,
                other => {
                    return Err(Error::config(
                        "stop_strings",
                        format!("must be a string or a list of strings, got {other}"),
                    ))
                }
            };
        }
        if let Some(v) = f("bad_words_ids") {
            let lists = v.as_array().ok_or_else(|| {
                Error::config(
                    "bad_words_ids",
                    format!("must be a list of lists of token ids, got {v}"),
                )
            })?;
            self.bad_words_ids = lists
                .iter()
                .map(|l| match l {
                    Value::Array(_) => ids(l, "bad_words_ids"),
                    other => Err(Error::config(
                        "bad_words_ids",
                        format!("must be a list of lists of token ids, got {other}"),
                    )),
                })
                .collect::<Result<_>>()?;
        }
        if let Some(v) = f("decoder_start_token_id") {
            self.decoder_start_token_id = ids(v, "decoder_start_token_id")?.first().copied();
        }
        if let Some(x) = num("prompt_lookup_num_tokens")? {
            self.prompt_lookup_num_tokens = Some(x as usize);
        }
        if let Some(x) = num("max_matching_ngram_size")? {
            self.max_matching_ngram_size = Some(x as usize);
        }
        if let Some(x) = num("guidance_scale")? {
            self.guidance_scale = Some(x as f32);
        }
        if let Some(x) = num("encoder_repetition_penalty")? {
            self.encoder_repetition_penalty = x as f32;
        }
        if let Some(x) = num("encoder_no_repeat_ngram_size")? {
            self.encoder_no_repeat_ngram_size = x as usize;
        }
        if let Some(v) = f("suppress_tokens") {
            self.suppress_tokens = ids(v, "suppress_tokens")?;
        }
        if let Some(v) = f("begin_suppress_tokens") {
            self.begin_suppress_tokens = ids(v, "begin_suppress_tokens")?;
        }
        if let Some(v) = f("sequence_bias") {
            self.sequence_bias = sequence_bias(v)?;
        }
        if let Some(x) = num("epsilon_cutoff")? {
            self.epsilon_cutoff = x as f32;
        }
        if let Some(x) = num("eta_cutoff")? {
            self.eta_cutoff = x as f32;
        }
        if let Some(x) = num("top_h")? {
            self.top_h = Some(x as f32);
        }
        if let Some(v) = f("exponential_decay_length_penalty") {
            let pair = v.as_array().filter(|a| a.len() == 2);
            let start = pair.and_then(|a| a[0].as_u64());
            let factor = pair.and_then(|a| a[1].as_f64());
            let (Some(start), Some(factor)) = (start, factor) else {
                return Err(Error::config(
                    "exponential_decay_length_penalty",
                    format!("must be [start_index, decay_factor], got {v}"),
                ));
            };
            self.exponential_decay_length_penalty = Some((start as usize, factor as f32));
        }
        let flag = |k: &str| f(k).and_then(Value::as_bool);
        if let Some(b) = flag("renormalize_logits") {
            self.renormalize_logits = b;
        }
        if let Some(b) = flag("remove_invalid_values") {
            self.remove_invalid_values = b;
        }
        if flag("return_dict_in_generate") == Some(true) {
            self.output_scores = flag("output_scores").unwrap_or(self.output_scores);
            self.output_logits = flag("output_logits").unwrap_or(self.output_logits);
            self.output_hidden_states =
                flag("output_hidden_states").unwrap_or(self.output_hidden_states);
        }
        self.validate()
    }

    /// Whether prompt lookup decoding is on (`prompt_lookup_num_tokens` above 0).
    pub fn prompt_lookup(&self) -> bool {
        self.prompt_lookup_num_tokens.is_some_and(|n| n > 0)
    }

    /// The classifier-free guidance scale when guidance is on (set and not 1).
    pub fn guidance(&self) -> Option<f32> {
        self.guidance_scale.filter(|&g| g != 1.0)
    }

    /// Whether the outputs keep per-step records ([`StepScores`](crate::StepScores)).
    pub fn keeps_steps(&self) -> bool {
        self.output_scores || self.output_logits || self.output_hidden_states
    }

    /// Refuses values transformers refuses.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, why: String| Err(Error::config(field, why));
        if !(self.temperature.is_finite() && self.temperature > 0.0) && self.do_sample {
            return bad(
                "temperature",
                format!("must be a positive number, got {}", self.temperature),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("must be in (0, 1], got {}", self.top_p));
        }
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return bad(
                "typical_p",
                format!("must be in (0, 1], got {}", self.typical_p),
            );
        }
        if let Some(p) = self.min_p {
            if !(0.0..=1.0).contains(&p) {
                return bad("min_p", format!("must be in [0, 1], got {p}"));
            }
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(
                "repetition_penalty",
                format!("must be a positive number, got {}", self.repetition_penalty),
            );
        }
        if !(self.encoder_repetition_penalty.is_finite() && self.encoder_repetition_penalty > 0.0) {
            return bad(
                "encoder_repetition_penalty",
                format!(
                    "must be a positive number, got {}",
                    self.encoder_repetition_penalty
                ),
            );
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "must be at least 1".into());
        }
        if let Some(t) = self.max_time {
            if !(t.is_finite() && t >= 0.0) {
                return bad(
                    "max_time",
                    format!("must be a non-negative number of seconds, got {t}"),
                );
            }
        }
        if self.num_beams == 0 {
            return bad("num_beams", "must be at least 1".into());
        }
        if self.num_return_sequences == 0 {
            return bad("num_return_sequences", "must be at least 1".into());
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return bad(
                "num_return_sequences",
                format!(
                    "must be at most num_beams ({}) in beam search, got {}",
                    self.num_beams, self.num_return_sequences
                ),
            );
        }
        if self.num_beams == 1 && !self.do_sample && self.num_return_sequences > 1 {
            return bad(
                "num_return_sequences",
                "greedy search returns one sequence per prompt; use do_sample or num_beams".into(),
            );
        }
        for (field, x) in [
            ("epsilon_cutoff", self.epsilon_cutoff),
            ("eta_cutoff", self.eta_cutoff),
        ] {
            if !(0.0..1.0).contains(&x) {
                return bad(field, format!("must be in [0, 1) (0 is off), got {x}"));
            }
        }
        if self.max_matching_ngram_size == Some(0) {
            return bad("max_matching_ngram_size", "must be at least 1".into());
        }
        if let Some(g) = self.guidance_scale {
            if !g.is_finite() {
                return bad(
                    "guidance_scale",
                    format!("must be a finite number, got {g}"),
                );
            }
        }
        if let Some(h) = self.top_h {
            if !(h > 0.0 && h <= 1.0) {
                return bad("top_h", format!("must be in (0, 1], got {h}"));
            }
        }
        if let Some((_, factor)) = self.exponential_decay_length_penalty {
            if !factor.is_finite() {
                return bad(
                    "exponential_decay_length_penalty",
                    format!("the decay factor must be a finite number, got {factor}"),
                );
            }
            if self.eos_token_id.is_empty() {
                return bad(
                    "exponential_decay_length_penalty",
                    "needs an eos_token_id to raise".into(),
                );
            }
        }
        if let Some((seq, b)) = self
            .sequence_bias
            .iter()
            .find(|(seq, b)| seq.is_empty() || !b.is_finite())
        {
            return bad(
                "sequence_bias",
                format!("each entry needs at least one token and a finite bias, got {seq:?}: {b}"),
            );
        }
        if !self.length_penalty.is_finite() {
            return bad(
                "length_penalty",
                format!("must be a finite number, got {}", self.length_penalty),
            );
        }
        Ok(())
    }

    /// The processors transformers' `_get_logits_processor` would build, in its order:
    /// biases and penalties first, then (when sampling) the warpers.
    pub fn processors(&self, max_length: usize) -> LogitsProcessorList {
        let mut list: Vec<Box<dyn LogitsProcessor>> = Vec::new();
        if !self.sequence_bias.is_empty() {
            list.push(Box::new(SequenceBias(self.sequence_bias.clone())));
        }
        if !self.logit_bias.is_empty() {
            list.push(Box::new(LogitBias(self.logit_bias.clone())));
        }
        if self.encoder_repetition_penalty != 1.0 {
            list.push(Box::new(EncoderRepetitionPenalty(
                self.encoder_repetition_penalty,
            )));
        }
        if self.repetition_penalty != 1.0 {
            list.push(Box::new(RepetitionPenalty(self.repetition_penalty)));
        }
        if self.frequency_penalty != 0.0 || self.presence_penalty != 0.0 {
            list.push(Box::new(FrequencyPresencePenalty {
                frequency: self.frequency_penalty,
                presence: self.presence_penalty,
            }));
        }
        if self.no_repeat_ngram_size > 0 {
            list.push(Box::new(NoRepeatNGram(self.no_repeat_ngram_size)));
        }
        if self.encoder_no_repeat_ngram_size > 0 {
            list.push(Box::new(EncoderNoRepeatNGram(
                self.encoder_no_repeat_ngram_size,
            )));
        }
        if !self.bad_words_ids.is_empty() {
            list.push(Box::new(BadWords(self.bad_words_ids.clone())));
        }
        if self.min_new_tokens > 0 && !self.eos_token_id.is_empty() {
            list.push(Box::new(MinNewTokens {
                min_new_tokens: self.min_new_tokens,
                eos: self.eos_token_id.clone(),
            }));
        }
        if self.min_length > 0 && !self.eos_token_id.is_empty() {
            list.push(Box::new(MinLength {
                min_length: self.min_length,
                eos: self.eos_token_id.clone(),
            }));
        }
        if let Some(bos) = self.forced_bos_token_id {
            list.push(Box::new(ForcedBos(bos)));
        }
        let forced_eos = match self.forced_eos_token_id.is_empty() {
            false => self.forced_eos_token_id.clone(),
            true if self.forced_eos_at_max_length => self.eos_token_id.clone(),
            true => Vec::new(),
        };
        if !forced_eos.is_empty() {
            list.push(Box::new(ForcedEos {
                max_length,
                eos: forced_eos,
            }));
        }
        if self.remove_invalid_values {
            list.push(Box::new(InfNanRemove));
        }
        if let Some((start, factor)) = self.exponential_decay_length_penalty {
            list.push(Box::new(ExponentialDecayLengthPenalty {
                start,
                factor,
                eos: self.eos_token_id.clone(),
            }));
        }
        if !self.suppress_tokens.is_empty() {
            list.push(Box::new(SuppressTokens(self.suppress_tokens.clone())));
        }
        if !self.begin_suppress_tokens.is_empty() {
            list.push(Box::new(SuppressTokensAtBegin {
                tokens: self.begin_suppress_tokens.clone(),
                after_forced_bos: self.forced_bos_token_id.is_some(),
            }));
        }
        // Beam search keeps one token more than there are EOS ids, so that a beam can go on.
        let keep = if self.num_beams > 1 {
            self.eos_token_id.len().max(1) + 1
        } else {
            1
        };
        if self.do_sample {
            if self.temperature != 1.0 {
                list.push(Box::new(Temperature(self.temperature)));
            }
            if let Some(h) = self.top_h {
                list.push(Box::new(TopH(h)));
            }
            if self.top_k != 0 {
                list.push(Box::new(TopK {
                    k: self.top_k,
                    min_tokens_to_keep: keep,
                }));
            }
            if self.top_p < 1.0 {
                list.push(Box::new(TopP {
                    p: self.top_p,
                    min_tokens_to_keep: keep,
                }));
            }
            if let Some(min_p) = self.min_p {
                list.push(Box::new(MinP {
                    min_p,
                    min_tokens_to_keep: keep,
                }));
            }
            if self.typical_p < 1.0 {
                list.push(Box::new(TypicalP {
                    mass: self.typical_p,
                    min_tokens_to_keep: keep,
                }));
            }
            if self.epsilon_cutoff > 0.0 {
                list.push(Box::new(EpsilonCutoff {
                    epsilon: self.epsilon_cutoff,
                    min_tokens_to_keep: keep,
                }));
            }
            if self.eta_cutoff > 0.0 {
                list.push(Box::new(EtaCutoff {
                    eta: self.eta_cutoff,
                    min_tokens_to_keep: keep,
                }));
            }
        }
        if self.renormalize_logits {
            list.push(Box::new(LogNormalize));
        }
        LogitsProcessorList(list)
    }
}
