//! Chat templates that try to loop forever, recurse, allocate without bound, or reach files
//! and the environment. Each is set as the unigram fixture's `chat_template` and rendered.

use super::{fixture, Case, Expect};
use crate::expect;
use serde_json::Value;
use std::path::Path;
use trustformers::tokenizers::chat::{ChatOptions, Message};
use trustformers::{AutoTokenizer, Error, Result};

fn load(dir: &Path) -> Result<()> {
    let tok = AutoTokenizer::from_pretrained(dir)?;
    let messages = [
        Message::new("system", "Be brief."),
        Message::new("user", "Hello"),
    ];
    let opts = ChatOptions {
        add_generation_prompt: true,
        ..Default::default()
    };
    tok.apply_chat_template(&messages, &opts)?;
    Ok(())
}

fn files(template: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut config: Value =
        serde_json::from_slice(&fixture("tokenizers/unigram/tokenizer_config.json")).unwrap();
    config["chat_template"] = Value::String(template.to_string());
    vec![
        (
            "tokenizer.json",
            fixture("tokenizers/unigram/tokenizer.json"),
        ),
        (
            "tokenizer_config.json",
            serde_json::to_vec(&config).unwrap(),
        ),
    ]
}

fn case(name: &str, template: &str, expect: Expect) -> Case {
    Case::dir("chat template", name, files(template), load, expect)
}

pub fn base_loads() {
    let dir = tempfile::tempdir().unwrap();
    for (n, b) in files("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}") {
        std::fs::write(dir.path().join(n), b).unwrap();
    }
    load(dir.path()).unwrap();
}

pub fn cases() -> Vec<Case> {
    let deep_ifs = format!(
        "{}x{}",
        "{% if true %}".repeat(5000),
        "{% endif %}".repeat(5000)
    );
    let deep_parens = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    vec![
        case("huge range", "{% for i in range(1000000000) %}x{% endfor %}", expect!(Error::ChatTemplate(_))),
        case("nested loops", "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", expect!(Error::ChatTemplate(_))),
        case("loop over a loop of messages forever", "{% for a in range(99999) %}{% for b in range(99999) %}{% for m in messages %}{{ m.role }}{% endfor %}{% endfor %}{% endfor %}", expect!(Error::ChatTemplate(_))),
        // Found by the chat_template fuzzer: a missing attribute costs an error object per
        // lookup, so the same fuel takes longer.
        case("loop over a missing attribute forever", "{% for a in range(99999) %}{% for b in range(99999) %}{% for m in messages %}{{ m.rkle }}{% endfor %}{% endfor %}{% endfor %}", expect!(Error::ChatTemplate(_))),
        // Found by the chat_template fuzzer: minijinja 3.1's code generator panics
        // (`unreachable!`) on an import target that is an expression.
        case("import into an expression", "{% import ' sswd' as p % p %}Mt   p }}", expect!(Error::ChatTemplate(_))),
        case("import into a tuple", "{%- import 'x' as (a, b) %}", expect!(Error::ChatTemplate(_))),
        case("recursive macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", expect!(Error::ChatTemplate(_))),
        case("recursive loop", "{% for m in messages recursive %}{{ loop([m]) }}{% endfor %}", expect!(Error::ChatTemplate(_))),
        case("5000 nested ifs", &deep_ifs, expect!(Error::ChatTemplate(_))),
        case("5000 nested parentheses", &deep_parens, expect!(Error::ChatTemplate(_))),
        case("string repeated 10^9 times", "{{ 'a' * 1000000000 }}", expect!(Error::ChatTemplate(_))),
        case("output past the limit", "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", expect!(Error::ChatTemplate(_))),
        case("include a file", "{% include '/etc/passwd' %}", expect!(Error::ChatTemplate(_))),
        case("import a file", "{% import '/etc/passwd' as p %}{{ p }}", expect!(Error::ChatTemplate(_))),
        case("extends a file", "{% extends '../../../etc/passwd' %}", expect!(Error::ChatTemplate(_))),
        case("python class walk", "{{ ''.__class__.__mro__[1].__subclasses__() }}", expect!(Error::ChatTemplate(_))),
        case("globals of a builtin", "{{ cycler.__init__.__globals__.os.popen('id').read() }}", expect!(Error::ChatTemplate(_))),
        case("environment variable", "{{ env.HOME.upper() }}", expect!(Error::ChatTemplate(_))),
        case("raise_exception", "{{ raise_exception('no tools allowed') }}", expect!(Error::ChatTemplate(_))),
        case("syntax error", "{% for m in messages %}", expect!(Error::ChatTemplate(_))),
        // Found by fuzzing: minijinja 3.1's 16-bit column overflows on an error at column
        // 65,535 (a panic with debug assertions).
        case(
            "unterminated comment at column 70,000",
            &format!("{}{{#", "x".repeat(70_000)),
            expect!(Error::ChatTemplate(_)),
        ),
    ]
}
