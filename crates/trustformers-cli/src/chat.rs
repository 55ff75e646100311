//! `trustformers chat`: a conversation through the model's chat template. On a terminal it is
//! an interactive REPL; otherwise each line of stdin is one user message and each reply is
//! printed on its own line, so it can be scripted. With `--image`, a vision-language model
//! (LLaVA) sees the images with the first message.

use crate::interrupt::Streaming;
use crate::options::{GenerationArgs, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use trustformers::tokenizers::chat::Message;
use trustformers::{
    image_message, resolve_model, ChatSession, GenerationConfig, ImageInput,
    VisionLanguageModelSession,
};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    generation: GenerationArgs,
    /// A system message that starts the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Images (PNG, JPEG, WebP) for a vision-language model (LLaVA), given with the first
    /// message.
    #[arg(long, value_name = "FILE")]
    image: Vec<std::path::PathBuf>,
}

pub fn run(args: &ChatArgs) -> Result<()> {
    // Refuse bad flags before spending time on loading.
    args.generation.apply(&GenerationConfig::default())?;
    if !args.image.is_empty() {
        return run_with_images(args);
    }
    let loaded = Arc::new(args.model.load()?);
    let config = args.generation.apply(&loaded.generation)?;
    check_one_reply(&config)?;
    let path = loaded.path.clone();
    let session = std::cell::RefCell::new(ChatSession::new(loaded, args.system.clone())?);
    converse(
        &path,
        |text, on_piece| {
            session
                .borrow_mut()
                .send(text, &config, on_piece)
                .map(drop)
                .map_err(Into::into)
        },
        || session.borrow_mut().reset(),
    )
}

fn check_one_reply(config: &GenerationConfig) -> Result<()> {
    if config.num_beams > 1 || config.num_return_sequences > 1 {
        bail!("chat streams one reply: --num-beams and --num-return-sequences must be 1");
    }
    Ok(())
}

/// `chat --image`: a vision-language model (LLaVA) with the images in the first message.
fn run_with_images(args: &ChatArgs) -> Result<()> {
    let opts = args.model.load_options()?;
    let path = resolve_model(args.model.model.as_deref())?;
    let session = VisionLanguageModelSession::from_pretrained(&path, &opts)
        .with_context(|| format!("loading {}", path.display()))?;
    let config = args.generation.apply(&session.generation)?;
    check_one_reply(&config)?;
    let images: Vec<ImageInput<'_>> = args.image.iter().map(|p| ImageInput::Path(p)).collect();
    // Their features once, for every turn (a bad file is reported before the first message).
    let features = session.image_features(&images)?;
    let system: Vec<Message> = args
        .system
        .iter()
        .map(|s| Message::new("system", s.clone()))
        .collect();
    let history = std::cell::RefCell::new(system.clone());
    converse(
        &path,
        |text, on_piece| {
            let mut history = history.borrow_mut();
            let first = !history.iter().any(|m| m.role == "user");
            history.push(if first {
                image_message(images.len(), text)
            } else {
                Message::new("user", text)
            });
            let reply = session
                .prompt_ids(&history, images.len())
                .and_then(|ids| session.generate_with_features(&ids, &features, &config, on_piece));
            match reply {
                Ok(out) => {
                    history.push(Message::new("assistant", out.text));
                    Ok(())
                }
                Err(e) => {
                    history.pop();
                    Err(e.into())
                }
            }
        },
        || *history.borrow_mut() = system.clone(),
    )
}

/// The conversation loop: on a terminal a REPL (`/reset`, `/exit`), otherwise one message per
/// line of stdin and one reply per line of stdout. `send` streams a reply to `on_piece`.
fn converse(
    path: &std::path::Path,
    send: impl Fn(&str, &mut dyn FnMut(&str) -> bool) -> Result<()>,
    reset: impl Fn(),
) -> Result<()> {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "Chatting with {}. /reset clears the conversation, /exit or Ctrl-D quits.",
            path.display()
        );
    }
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let Ok(text) = std::str::from_utf8(&line) else {
            let msg = format!("line {number} of stdin is not valid UTF-8");
            if interactive {
                eprintln!("{msg}");
                continue;
            }
            bail!(msg);
        };
        let text = text.trim_end_matches(['\n', '\r']);
        match text.trim() {
            "" => continue,
            "/exit" | "/quit" if interactive => break,
            "/reset" if interactive => {
                reset();
                continue;
            }
            _ => {}
        }
        let streaming = Streaming::start();
        let mut stdout = std::io::stdout().lock();
        let reply = send(text, &mut |piece| {
            let ok = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
                .is_ok();
            ok && !streaming.requested()
        });
        match reply {
            Ok(()) => writeln!(stdout)?,
            // A message that does not fit is refused; the conversation goes on.
            Err(e) if interactive => {
                eprintln!("{e:#}");
                continue;
            }
            Err(e) => return Err(e),
        }
        if streaming.requested() {
            eprintln!("[interrupted]");
        }
    }
    Ok(())
}
