//! `trustformers chat`: a conversation through the model's chat template. On a terminal it is
//! an interactive REPL; otherwise each line of stdin is one user message and each reply is
//! printed on its own line, so it can be scripted.

use crate::interrupt::Streaming;
use crate::options::{GenerationArgs, ModelArgs};
use anyhow::{bail, Result};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use trustformers::{ChatSession, GenerationConfig};

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

pub fn run(args: &ChatArgs) -> Result<()> {
    // Refuse bad flags before spending time on loading.
    args.generation.apply(&GenerationConfig::default())?;
    let loaded = Arc::new(args.model.load()?);
    let config = args.generation.apply(&loaded.generation)?;
    if config.num_beams > 1 || config.num_return_sequences > 1 {
        bail!("chat streams one reply: --num-beams and --num-return-sequences must be 1");
    }
    let path = loaded.path.clone();
    let mut session = ChatSession::new(loaded, args.system.clone())?;
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
                session.reset();
                continue;
            }
            _ => {}
        }
        let streaming = Streaming::start();
        let mut stdout = std::io::stdout().lock();
        let reply = session.send(text, &config, |piece| {
            let ok = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
                .is_ok();
            ok && !streaming.requested()
        });
        match reply {
            Ok(_) => writeln!(stdout)?,
            // A message that does not fit is refused; the conversation goes on.
            Err(e) if interactive => {
                eprintln!("{e:#}");
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        if streaming.requested() {
            eprintln!("[interrupted]");
        }
    }
    Ok(())
}
