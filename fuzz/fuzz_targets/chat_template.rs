//! Any text as a chat template: rendering ends (fuel, recursion and output limits) with a
//! prompt or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_tokenizers::chat::{render, ChatOptions, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(template) = std::str::from_utf8(data) else {
        return;
    };
    let messages = [
        Message::new("system", "Be brief."),
        Message::new("user", "Hello"),
        Message::new("assistant", "Hi!"),
    ];
    let opts = ChatOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    let specials = [("bos_token", Some("<s>")), ("eos_token", Some("</s>"))];
    let _ = render(template, &messages, &opts, &specials);
});
