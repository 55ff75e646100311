//! `trustformers pipeline TASK`: transformers' pipelines from the command line, printing the
//! JSON transformers returns (one result for one input, a list for several). Every task
//! is loaded and run through the one [`Pipeline`](trustformers::pipelines::Pipeline) trait.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::io::BufRead;
use trustformers::pipelines::pipeline::run as run_pipeline;
use trustformers::pipelines::*;
use trustformers::resolve_model;
use trustformers::tokenizers::TextInput;

#[derive(Clone, Copy, ValueEnum)]
pub enum Task {
    FeatureExtraction,
    FillMask,
    TextClassification,
    SentimentAnalysis,
    TokenClassification,
    Ner,
    ZeroShotClassification,
    QuestionAnswering,
    Summarization,
    Translation,
    Text2textGeneration,
    ImageClassification,
    ZeroShotImageClassification,
    ImageFeatureExtraction,
    ImageTextToText,
}

/// A task as named on the command line: one of [`Task`], or `translation_xx_to_yy`.
#[derive(Clone)]
pub struct TaskName {
    task: Task,
    /// `translation_xx_to_yy`'s languages.
    langs: Option<(String, String)>,
}

fn parse_task(name: &str) -> std::result::Result<TaskName, String> {
    if let Some((src, tgt)) = name
        .strip_prefix("translation_")
        .and_then(|l| l.split_once("_to_"))
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
    {
        return Ok(TaskName {
            task: Task::Translation,
            langs: Some((src.to_owned(), tgt.to_owned())),
        });
    }
    Ok(TaskName {
        task: Task::from_str(name, true)?,
        langs: None,
    })
}

#[derive(Args)]
pub struct PipelineArgs {
    /// The task: feature-extraction, fill-mask, text-classification, sentiment-analysis,
    /// token-classification, ner, zero-shot-classification, question-answering,
    /// summarization, translation (or translation_xx_to_yy), text2text-generation,
    /// image-classification, zero-shot-image-classification, image-feature-extraction (their
    /// inputs are image files: PNG, JPEG, WebP), image-text-to-text (inputs are user messages,
    /// with the --image files).
    #[arg(value_parser = parse_task)]
    task: TaskName,
    /// Checkpoint directory, Hub repo id or known model name.
    #[arg(long)]
    model: String,
    /// fill-mask: candidates per input; text-classification, image-classification: labels
    /// per input (`all` for every label).
    #[arg(long)]
    top_k: Option<String>,
    /// fill-mask: restrict candidates to these tokens (comma-separated).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// text-classification: softmax, sigmoid or none (default: from the config).
    #[arg(long)]
    function_to_apply: Option<String>,
    /// text-classification: the second text of a pair, for every input.
    #[arg(long)]
    text_pair: Option<String>,
    /// token-classification: none, simple, first, average or max.
    #[arg(long, default_value = "none")]
    aggregation_strategy: String,
    /// zero-shot-classification, zero-shot-image-classification: the labels to score
    /// (comma-separated).
    #[arg(long, value_delimiter = ',')]
    candidate_labels: Option<Vec<String>>,
    /// zero-shot-classification: score labels independently.
    #[arg(long)]
    multi_label: bool,
    /// zero-shot-classification, zero-shot-image-classification: the hypothesis, `{}`
    /// standing for the label.
    #[arg(long)]
    hypothesis_template: Option<String>,
    /// question-answering: the context the answers come from (the inputs are questions).
    #[arg(long)]
    context: Option<String>,
    /// question-answering: longest answer, in tokens.
    #[arg(long, default_value_t = 15)]
    max_answer_len: usize,
    /// question-answering: also consider "no answer".
    #[arg(long)]
    handle_impossible_answer: bool,
    /// summarization, translation, text2text-generation, image-text-to-text: most tokens to
    /// generate (default: the model's generation config).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// summarization, translation, text2text-generation: beams for beam search.
    #[arg(long)]
    num_beams: Option<usize>,
    /// translation: source and target language (mBART's codes, e.g. en_XX, de_DE); the
    /// task name translation_xx_to_yy sets both.
    #[arg(long)]
    src_lang: Option<String>,
    #[arg(long)]
    tgt_lang: Option<String>,
    /// Truncate inputs longer than the model's maximum length.
    #[arg(long)]
    truncation: bool,
    /// image-feature-extraction: the pooled output instead of every token's state.
    #[arg(long)]
    pool: bool,
    /// image-text-to-text: the images every message comes with.
    #[arg(long, value_name = "FILE")]
    image: Vec<std::path::PathBuf>,
    /// Inputs per forward pass, padded together (question-answering: question/context pairs;
    /// zero-shot-classification: sequence/label pairs).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Compute dtype (f32, f16, bf16), or q8: int8 weights and activations (encoder tasks;
    /// onnxruntime's dynamic quantization).
    #[arg(long)]
    dtype: Option<String>,
    /// The inputs; one per line from stdin when none are given.
    inputs: Vec<String>,
}

fn inputs(args: &PipelineArgs) -> Result<Vec<String>> {
    let texts = if args.inputs.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<Vec<String>>>()
            .context("reading inputs from stdin (one per line, UTF-8)")?
    } else {
        args.inputs.clone()
    };
    if texts.is_empty() {
        bail!("no input: pass inputs as arguments or one per line on stdin");
    }
    Ok(texts)
}

/// One result as is for one input, else the list (transformers' convention).
fn shaped(mut results: Vec<Value>) -> Value {
    if results.len() == 1 {
        results.remove(0)
    } else {
        Value::Array(results)
    }
}

/// Image files named on the command line.
fn image_inputs(paths: &[String]) -> Vec<trustformers::ImageInput<'_>> {
    paths
        .iter()
        .map(|p| trustformers::ImageInput::Path(std::path::Path::new(p)))
        .collect()
}

pub fn run(args: &PipelineArgs) -> Result<()> {
    let opts = crate::options::dtype_load_options(args.dtype.as_deref())?;
    let path = resolve_model(Some(&args.model))?;
    let texts = inputs(args)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let top_k = |default: Option<usize>| -> Result<Option<usize>> {
        match args.top_k.as_deref() {
            None => Ok(default),
            Some("all") => Ok(None),
            Some(k) => Ok(Some(k.parse().with_context(|| format!("--top-k {k}"))?)),
        }
    };
    let batch_size = args.batch_size as usize;
    let text2text = || {
        let (src, tgt) = match &args.task.langs {
            Some((s, t)) => (Some(s.clone()), Some(t.clone())),
            None => (args.src_lang.clone(), args.tgt_lang.clone()),
        };
        Text2TextParams {
            max_new_tokens: args.max_new_tokens,
            num_beams: args.num_beams,
            src_lang: src,
            tgt_lang: tgt,
            truncation: args.truncation,
            batch_size,
            ..Default::default()
        }
    };
    // One `{key: text}` object per input.
    let texts_under = |key: &str, texts: Vec<String>| {
        shaped(texts.into_iter().map(|t| json!({ key: t })).collect())
    };
    let out = match args.task.task {
        Task::Summarization => texts_under(
            SummarizationPipeline::OUTPUT_KEY,
            run_pipeline::<SummarizationPipeline>(&path, &opts, &refs, &text2text())?,
        ),
        Task::Translation => texts_under(
            TranslationPipeline::OUTPUT_KEY,
            run_pipeline::<TranslationPipeline>(&path, &opts, &refs, &text2text())?,
        ),
        Task::Text2textGeneration => texts_under(
            Text2TextGenerationPipeline::OUTPUT_KEY,
            run_pipeline::<Text2TextGenerationPipeline>(&path, &opts, &refs, &text2text())?,
        ),
        Task::FeatureExtraction => {
            let params = FeatureExtractionParams {
                truncation: args.truncation,
                batch_size,
            };
            let rows = run_pipeline::<FeatureExtractionPipeline>(&path, &opts, &refs, &params)?;
            shaped(rows.into_iter().map(|r| json!([r])).collect())
        }
        Task::FillMask => {
            let params = FillMaskParams {
                top_k: top_k(Some(5))?.unwrap_or(usize::MAX),
                targets: args.targets.clone(),
                truncation: args.truncation,
                batch_size,
            };
            shaped(
                run_pipeline::<FillMaskPipeline>(&path, &opts, &refs, &params)?
                    .into_iter()
                    .map(|p| json!(p))
                    .collect(),
            )
        }
        Task::TextClassification | Task::SentimentAnalysis => {
            let params = TextClassificationParams {
                top_k: top_k(Some(1))?,
                function_to_apply: args
                    .function_to_apply
                    .as_deref()
                    .map(ClassificationFunction::from_name)
                    .transpose()?,
                truncation: args.truncation,
                batch_size,
            };
            let batch: Vec<TextInput<'_>> = refs
                .iter()
                .map(|t| match &args.text_pair {
                    Some(b) => TextInput::Pair(t, b),
                    None => TextInput::Single(t),
                })
                .collect();
            shaped(
                run_pipeline::<TextClassificationPipeline>(&path, &opts, &batch, &params)?
                    .into_iter()
                    .map(|r| json!(r))
                    .collect(),
            )
        }
        Task::TokenClassification | Task::Ner => {
            let params = TokenClassificationParams {
                aggregation: Aggregation::from_name(&args.aggregation_strategy)?,
                batch_size,
                ..Default::default()
            };
            let results =
                run_pipeline::<TokenClassificationPipeline>(&path, &opts, &refs, &params)?
                    .iter()
                    .map(|entities| Value::Array(entities.iter().map(Entity::to_json).collect()))
                    .collect();
            shaped(results)
        }
        Task::ZeroShotClassification => {
            let mut params = ZeroShotParams {
                candidate_labels: args
                    .candidate_labels
                    .clone()
                    .context("zero-shot-classification needs --candidate-labels")?,
                multi_label: args.multi_label,
                batch_size,
                ..Default::default()
            };
            if let Some(t) = &args.hypothesis_template {
                params.hypothesis_template = t.clone();
            }
            let results =
                run_pipeline::<ZeroShotClassificationPipeline>(&path, &opts, &refs, &params)?
                    .into_iter()
                    .map(|r| json!(r))
                    .collect();
            shaped(results)
        }
        Task::ImageClassification => {
            let params = ImageClassificationParams {
                top_k: top_k(Some(5))?.unwrap_or(usize::MAX),
                function_to_apply: args
                    .function_to_apply
                    .as_deref()
                    .map(ClassificationFunction::from_name)
                    .transpose()?,
                batch_size,
            };
            let images = image_inputs(&texts);
            shaped(
                run_pipeline::<ImageClassificationPipeline>(&path, &opts, &images, &params)?
                    .into_iter()
                    .map(|r| json!(r))
                    .collect(),
            )
        }
        Task::ZeroShotImageClassification => {
            let mut params = ZeroShotImageParams {
                candidate_labels: args
                    .candidate_labels
                    .clone()
                    .context("zero-shot-image-classification needs --candidate-labels")?,
                batch_size,
                ..Default::default()
            };
            if let Some(t) = &args.hypothesis_template {
                params.hypothesis_template = t.clone();
            }
            let images = image_inputs(&texts);
            shaped(
                run_pipeline::<ZeroShotImageClassificationPipeline>(
                    &path, &opts, &images, &params,
                )?
                .into_iter()
                .map(|r| json!(r))
                .collect(),
            )
        }
        Task::ImageFeatureExtraction => {
            let params = ImageFeatureParams {
                pool: args.pool,
                batch_size,
            };
            let images = image_inputs(&texts);
            let rows =
                run_pipeline::<ImageFeatureExtractionPipeline>(&path, &opts, &images, &params)?;
            shaped(
                rows.into_iter()
                    .map(|r| if args.pool { json!(r) } else { json!([r]) })
                    .collect(),
            )
        }
        Task::ImageTextToText => {
            let pipe = ImageTextToTextPipeline::from_pretrained(&path, &opts)?;
            let images: Vec<trustformers::ImageInput<'_>> = args
                .image
                .iter()
                .map(|p| trustformers::ImageInput::Path(p))
                .collect();
            let params = ImageTextToTextParams {
                max_new_tokens: args.max_new_tokens,
                ..Default::default()
            };
            let mut results = Vec::new();
            for text in &refs {
                let message = trustformers::image_message(images.len(), text);
                let reply = pipe.run(&[message], &images, &params)?;
                // transformers echoes the chat, images by the URL (here the path) given.
                let mut content: Vec<Value> = args
                    .image
                    .iter()
                    .map(|p| json!({"type": "image", "url": p.display().to_string()}))
                    .collect();
                content.push(json!({"type": "text", "text": text}));
                results.push(json!([{
                    "input_text": [{"role": "user", "content": content}],
                    "generated_text": reply,
                }]));
            }
            shaped(results)
        }
        Task::QuestionAnswering => {
            let context = args
                .context
                .as_deref()
                .context("question-answering needs --context")?;
            let params = QuestionAnsweringParams {
                top_k: top_k(Some(1))?.unwrap_or(1),
                max_answer_len: args.max_answer_len,
                handle_impossible_answer: args.handle_impossible_answer,
                batch_size,
                ..Default::default()
            };
            let pairs: Vec<(&str, &str)> = refs.iter().map(|&q| (q, context)).collect();
            let results = run_pipeline::<QuestionAnsweringPipeline>(&path, &opts, &pairs, &params)?
                .into_iter()
                .map(|answers| shaped(answers.into_iter().map(|a| json!(a)).collect()))
                .collect();
            shaped(results)
        }
    };
    println!("{out}");
    Ok(())
}
