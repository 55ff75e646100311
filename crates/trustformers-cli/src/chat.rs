//! `trustformers chat`: a conversation through the model's chat template. On a terminal it is
//! an interactive REPL; otherwise each line of stdin is one user message and each reply is
//! printed on its own line, so it can be scripted.

use crate::interrupt::Streaming;
use crate::options::{GenerationArgs, Loaded, ModelArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use trustformers::generation::generate_text;
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::{GenerationConfig, Tokenizer};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    generation: GenerationArgs,
    /// A system message that starts the conversation.
    #[arg(long)]
    system: Option<String>,
}

/// The conversation so far.
struct History {
    system: Option<Message>,
    turns: Vec<Message>,
}

impl History {
    fn messages(&self) -> Vec<Message> {
        self.system.iter().chain(&self.turns).cloned().collect()
    }

    /// Token ids of the conversation ending in an assistant header, dropping the oldest
    /// exchanges until the prompt and `max_new_tokens` fit the context.
    fn prompt(
        &mut self,
        tok: &Tokenizer,
        context: usize,
        config: &GenerationConfig,
    ) -> Result<Vec<u32>> {
        let opts = ChatOptions {
            add_generation_prompt: true,
            ..Default::default()
        };
        loop {
            let text = tok.apply_chat_template(&self.messages(), &opts)?;
            let ids = tok.encode_ids(&text, false)?;
            if ids.len() + config.max_new_tokens <= context {
                return Ok(ids);
            }
            if self.turns.len() <= 1 {
                bail!(
                    "the message ({} tokens with the template) and max_new_tokens ({}) do not fit the \
                     model's context of {context} tokens",
                    ids.len(),
                    config.max_new_tokens
                );
            }
            // Forget the oldest user message and the reply to it.
            self.turns.drain(..2.min(self.turns.len() - 1));
        }
    }
}

pub fn run(args: &ChatArgs) -> Result<()> {
    // Refuse bad flags before spending time on loading.
    args.generation.apply(&GenerationConfig::default())?;
    let Loaded {
        model,
        tokenizer: tok,
        generation,
        path,
    } = args.model.load()?;
    if tok.config().chat_template.is_none() {
        bail!(
            "{} has no chat template; use `trustformers generate` for plain continuation",
            path.display()
        );
    }
    let config = args.generation.apply(&generation)?;
    if config.num_beams > 1 || config.num_return_sequences > 1 {
        bail!("chat streams one reply: --num-beams and --num-return-sequences must be 1");
    }
    let context = model.model().spec().max_position_embeddings;
    let mut history = History {
        system: args.system.clone().map(|s| Message::new("system", s)),
        turns: Vec::new(),
    };
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
                history.turns.clear();
                continue;
            }
            _ => {}
        }
        history.turns.push(Message::new("user", text.to_owned()));
        let ids = match history.prompt(&tok, context, &config) {
            Ok(ids) => ids,
            Err(e) if interactive => {
                history.turns.pop();
                eprintln!("{e:#}");
                continue;
            }
            Err(e) => return Err(e),
        };
        let streaming = Streaming::start();
        let mut stdout = std::io::stdout().lock();
        let out = generate_text(&model, &tok, &ids, &config, |piece| {
            let ok = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
                .is_ok();
            ok && !streaming.requested()
        })?;
        writeln!(stdout)?;
        if streaming.requested() {
            eprintln!("[interrupted]");
        }
        history
            .turns
            .push(Message::new("assistant", out.text.trim().to_owned()));
    }
    Ok(())
}
