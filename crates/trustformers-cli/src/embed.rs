//! `trustformers embed`: sentence embeddings (sentence-transformers' `encode`), and text or
//! image embeddings from an image-text model (CLIP, SigLIP: `get_text_features`,
//! `get_image_features`).

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use trustformers::pipelines::{EmbedParams, ImageTextEmbedder, SentenceTransformer};
use trustformers::{resolve_model, AutoConfig, ImageInput};

/// The model `embed` uses without `--model`.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

#[derive(Args)]
pub struct EmbedArgs {
    /// sentence-transformers, encoder or image-text (CLIP, SigLIP) checkpoint: a directory, a
    /// Hub repo id or a known model name (default all-minilm-l6-v2).
    #[arg(long)]
    model: Option<String>,
    /// Embed these image files (PNG, JPEG, WebP) instead of texts, with an image-text model.
    #[arg(long, value_name = "FILE")]
    image: Vec<PathBuf>,
    /// Print `{"model": ..., "embeddings": [[...], ...]}` in input order.
    #[arg(long)]
    json: bool,
    /// Write the embeddings to FILE as a float32 `[texts, dim]` NumPy array.
    #[arg(long, value_name = "FILE")]
    npy: Option<PathBuf>,
    /// L2-normalize the embeddings (models with a Normalize module always are).
    #[arg(long)]
    normalize: bool,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Compute dtype (f32, f16, bf16), or q8: int8 weights and activations (encoders only;
    /// onnxruntime's dynamic quantization).
    #[arg(long)]
    dtype: Option<String>,
    /// The texts; one per line from stdin when none are given.
    texts: Vec<String>,
}

pub fn run(args: &EmbedArgs) -> Result<()> {
    let name = args.model.as_deref().unwrap_or(DEFAULT_EMBEDDING_MODEL);
    let opts = crate::options::dtype_load_options(args.dtype.as_deref())?;
    let path = resolve_model(Some(name))?;
    let image_text = AutoConfig::from_pretrained(&path)
        .map(|c| c.architecture.is_image_text())
        .unwrap_or(false);
    if !args.image.is_empty() && !image_text {
        bail!(
            "--image needs an image-text model (CLIP, SigLIP); {} is not one",
            path.display()
        );
    }
    if !args.image.is_empty() && !args.texts.is_empty() {
        bail!("give texts or --image files, not both");
    }
    let embeddings = if image_text {
        let model = ImageTextEmbedder::from_pretrained(&path, &opts)
            .with_context(|| format!("loading {}", path.display()))?;
        let mut all = Vec::new();
        if args.image.is_empty() {
            let texts = texts(args)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            for chunk in refs.chunks(args.batch_size.max(1)) {
                all.extend(model.embed_texts(chunk, args.normalize)?);
            }
        } else {
            let images: Vec<ImageInput<'_>> =
                args.image.iter().map(|p| ImageInput::Path(p)).collect();
            for chunk in images.chunks(args.batch_size.max(1)) {
                all.extend(model.embed_images(chunk, args.normalize)?);
            }
        }
        all
    } else {
        let texts = texts(args)?;
        let model = SentenceTransformer::from_pretrained(&path, &opts)
            .with_context(|| format!("loading {}", path.display()))?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let params = EmbedParams {
            batch_size: args.batch_size,
            normalize: args.normalize,
        };
        model.encode(&refs, &params)?
    };
    if let Some(file) = &args.npy {
        write_npy(file, &embeddings)?;
    }
    print(args, name, &embeddings).or_else(|e| match e.downcast_ref::<std::io::Error>() {
        // A closed pipe (`| head`) is not an error.
        Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    })
}

/// The texts: the arguments, else one per line from stdin.
fn texts(args: &EmbedArgs) -> Result<Vec<String>> {
    let texts = if args.texts.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<Vec<String>>>()
            .context("reading texts from stdin (one per line, UTF-8)")?
    } else {
        args.texts.clone()
    };
    if texts.is_empty() {
        bail!("no text to embed: pass texts as arguments or one per line on stdin");
    }
    Ok(texts)
}

fn print(args: &EmbedArgs, name: &str, embeddings: &[Vec<f32>]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            json!({ "model": name, "embeddings": embeddings })
        )?;
    } else if args.npy.is_none() {
        for e in embeddings {
            let line: Vec<String> = e.iter().map(f32::to_string).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Writes rows of equal length as a little-endian float32 NumPy (`.npy` v1.0) array.
fn write_npy(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
    let dim = rows.first().map_or(0, Vec::len);
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}",
        rows.len()
    );
    // magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64
    // and ended by a newline.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut bytes = Vec::with_capacity(total + rows.len() * dim * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&u16::try_from(header.len())?.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for row in rows {
        for x in row {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
