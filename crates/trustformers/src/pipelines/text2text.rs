//! transformers' text-to-text pipelines on encoder-decoders (T5, BART, Marian, Pegasus):
//! `text2text-generation`, `summarization` and `translation` (`translation_xx_to_yy`).
//! transformers 5 dropped them; they behave as transformers 4's
//! `Text2TextGenerationPipeline` did: the task's `task_specific_params` of config.json
//! (T5's `prefix` and generation settings) apply, the prefix goes before each input, the
//! model generates, and the ids are decoded without special tokens under
//! `generated_text`, `summary_text` or `translation_text`.

use super::pipeline::{Pipeline, PipelineParams};
use crate::auto::{AutoConfig, LoadOptions};
use crate::session::generation_defaults;
use serde_json::{Map, Value};
use std::path::Path;
use trustformers_core::{Error, Result};
use trustformers_generate::generate::TokenOutput;
use trustformers_generate::{generate_seq2seq, GenerationConfig};
use trustformers_models::EncoderDecoderLM;
use trustformers_tokenizers::{AutoTokenizer, EncodeOptions, Tokenizer, Truncation};

/// Options of the text-to-text pipelines; `None` keeps the model's generation config (with
/// the task's `task_specific_params`).
#[derive(Debug, Clone)]
pub struct Text2TextParams {
    pub max_new_tokens: Option<usize>,
    pub num_beams: Option<usize>,
    pub do_sample: Option<bool>,
    /// translation: the source and target languages (`en`, `de`; mBART's `de_DE`), which
    /// pick `task_specific_params["translation_{src}_to_{tgt}"]`. mBART's tokenizers mark
    /// the inputs with the source code, and a target language that is a token of the
    /// vocabulary (mBART's language codes) is forced first.
    pub src_lang: Option<String>,
    pub tgt_lang: Option<String>,
    /// Truncate inputs to the tokenizer's `model_max_length`; otherwise a longer input is
    /// given whole.
    pub truncation: bool,
    /// Inputs generated together (transformers' default is one at a time).
    pub batch_size: usize,
}

impl Default for Text2TextParams {
    fn default() -> Self {
        Self {
            max_new_tokens: None,
            num_beams: None,
            do_sample: None,
            src_lang: None,
            tgt_lang: None,
            truncation: false,
            batch_size: 1,
        }
    }
}

impl PipelineParams for Text2TextParams {
    fn batch_size(&self) -> usize {
        self.batch_size
    }
}

/// An encoder-decoder, its tokenizer and generation settings.
struct Seq2Seq {
    model: Box<dyn EncoderDecoderLM>,
    tokenizer: Tokenizer,
    generation: GenerationConfig,
    /// config.json's `task_specific_params`.
    task_params: Map<String, Value>,
}

/// One batch: the token ids of each input, and the settings to generate them with.
pub struct Text2TextBatch {
    sources: Vec<Vec<u32>>,
    config: GenerationConfig,
}

impl Seq2Seq {
    fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let config = AutoConfig::from_pretrained(path)?;
        let model = config.load_seq2seq_lm(opts)?;
        let task_params = match config.json.get("task_specific_params") {
            Some(Value::Object(m)) => m.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => {
                return Err(Error::config(
                    "task_specific_params",
                    format!("must be an object of tasks, got {other}"),
                ))
            }
        };
        let tokenizer = AutoTokenizer::from_pretrained(path)?;
        Ok(Self {
            generation: generation_defaults(path, &tokenizer)?,
            tokenizer,
            model,
            task_params,
        })
    }

    /// The task's key in `task_specific_params`: the pipeline's name, or for translation
    /// `translation_{src}_to_{tgt}` (without languages, the checkpoint's first translation
    /// entry, as transformers 4 picked it).
    fn task_key(&self, task: &str, params: &Text2TextParams) -> Option<String> {
        if task != "translation" {
            return Some(task.to_owned());
        }
        match (&params.src_lang, &params.tgt_lang) {
            (Some(s), Some(t)) => Some(format!("translation_{s}_to_{t}")),
            _ => self
                .task_params
                .keys()
                .find(|k| k.starts_with("translation_"))
                .cloned(),
        }
    }

    fn preprocess(
        &self,
        task: &str,
        texts: &[&str],
        params: &Text2TextParams,
    ) -> Result<Text2TextBatch> {
        let mut config = self.generation.clone();
        let mut prefix = String::new();
        if let Some(entry) = self
            .task_key(task, params)
            .and_then(|k| self.task_params.get(&k))
        {
            if let Some(p) = entry.get("prefix").and_then(Value::as_str) {
                prefix = p.to_owned();
            }
            config.apply_json(entry)?;
        }
        if let Some(n) = params.max_new_tokens {
            config.max_new_tokens = n;
            config.max_length = None;
        }
        if let Some(n) = params.num_beams {
            config.num_beams = n;
        }
        if let Some(s) = params.do_sample {
            config.do_sample = s;
        }
        if let Some(code) = params.tgt_lang.as_deref() {
            if let Some(id) = self.tokenizer.token_to_id(code) {
                config.forced_bos_token_id = Some(id);
            }
        }
        let opts = EncodeOptions {
            truncation: params.truncation.then_some(Truncation::LongestFirst),
            max_length: self.tokenizer.config().model_max_length,
            ..Default::default()
        };
        // mBART's inputs carry their language's code.
        let in_language = match params.src_lang.as_deref() {
            Some(code) => self.tokenizer.with_source_language(code)?,
            None => None,
        };
        let tokenizer = in_language.as_ref().unwrap_or(&self.tokenizer);
        let sources = texts
            .iter()
            .map(|t| {
                Ok(tokenizer
                    .encode(format!("{prefix}{t}").as_str(), &opts)?
                    .input_ids()
                    .to_vec())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Text2TextBatch { sources, config })
    }

    fn postprocess(&self, outputs: Vec<TokenOutput>) -> Result<Vec<String>> {
        outputs
            .iter()
            .map(|o| self.tokenizer.decode(&o.ids, true))
            .collect()
    }
}

macro_rules! text2text_pipeline {
    ($(#[$doc:meta])* $name:ident, $task:literal, $key:literal) => {
        $(#[$doc])*
        pub struct $name(Seq2Seq);

        impl $name {
            /// The key transformers returns each text under.
            pub const OUTPUT_KEY: &'static str = $key;

            /// Loads an encoder-decoder checkpoint directory with its tokenizer.
            pub fn from_pretrained(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
                Ok(Self(Seq2Seq::load(dir.as_ref(), opts)?))
            }

            /// One text per input.
            pub fn run(&self, texts: &[&str], params: &Text2TextParams) -> Result<Vec<String>> {
                self.call(texts, params)
            }
        }

        impl Pipeline for $name {
            const TASK: &'static str = $task;
            type Input<'a> = &'a str;
            type Params = Text2TextParams;
            type Output = String;
            type ModelInputs = Text2TextBatch;
            type ModelOutputs = Vec<TokenOutput>;

            fn from_pretrained(path: &Path, opts: &LoadOptions) -> Result<Self> {
                Self::from_pretrained(path, opts)
            }

            fn preprocess(
                &self,
                texts: &[&str],
                _: usize,
                params: &Text2TextParams,
            ) -> Result<Text2TextBatch> {
                self.0.preprocess(Self::TASK, texts, params)
            }

            fn forward(&self, batch: &Text2TextBatch) -> Result<Vec<TokenOutput>> {
                generate_seq2seq(self.0.model.as_ref(), &batch.sources, &batch.config)
            }

            fn postprocess(
                &self,
                _: &Text2TextBatch,
                outputs: Vec<TokenOutput>,
                _: &Text2TextParams,
            ) -> Result<Vec<String>> {
                self.0.postprocess(outputs)
            }
        }
    };
}

text2text_pipeline!(
    /// `text2text-generation`: the generated text, under `generated_text`.
    Text2TextGenerationPipeline,
    "text2text-generation",
    "generated_text"
);
text2text_pipeline!(
    /// `summarization`: the summary, under `summary_text`.
    SummarizationPipeline,
    "summarization",
    "summary_text"
);
text2text_pipeline!(
    /// `translation` (`translation_xx_to_yy` through [`Text2TextParams::src_lang`] and
    /// [`Text2TextParams::tgt_lang`]): the translation, under `translation_text`.
    TranslationPipeline,
    "translation",
    "translation_text"
);
