//! Hugging Face chat templates, rendered with minijinja the way transformers renders them
//! with Jinja2 (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`,
//! `strftime_now`, Python string methods, Python-style `tojson`).
//!
//! Templates come from untrusted files. Rendering runs in an environment with no loader (no
//! `include`/`import` of files), no access to the process environment, a fuel budget that
//! stops runaway loops, a recursion limit, and a cap on the rendered size.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, Value as JValue};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use trustformers_core::{Error, Result};

/// Instructions a template may execute before rendering is abandoned: real templates use a
/// few dozen per message; a million takes about 0.2 s on one core.
const FUEL: u64 = 1_000_000;
/// Nesting depth of macros, includes and blocks.
const RECURSION_LIMIT: usize = 64;
/// Largest rendered prompt.
const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// One chat message: a role, its content, and any other fields the template reads
/// (`tool_calls`, `name`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with text content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Value::String(content.into()),
            extra: Map::new(),
        }
    }
}

/// Options of `apply_chat_template`.
#[derive(Debug, Clone, Default)]
pub struct ChatOptions {
    /// End with the header of an assistant turn, so the model writes the reply.
    pub add_generation_prompt: bool,
    /// Tool (function) definitions, as JSON schemas.
    pub tools: Option<Vec<Value>>,
    /// Extra variables for the template (`documents`, `enable_thinking`, ...).
    pub extra: Map<String, Value>,
}

fn template_error(e: minijinja::Error) -> Error {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::ChatTemplate(msg)
}

/// A writer that refuses to grow past a limit.
struct Bounded(String);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(std::io::Error::other(format!(
                "rendered template exceeds {MAX_OUTPUT_BYTES} bytes"
            )));
        }
        let s = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        self.0.push_str(s);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// minijinja 3.1 keeps line and column numbers in 16 bits; past them its error spans
/// overflow (a panic with debug assertions, found by fuzzing: an unterminated comment at
/// column 65,535). No real template comes close.
const MAX_LINES: usize = u16::MAX as usize - 1;
const MAX_LINE_CHARS: usize = u16::MAX as usize - 1;

/// Refuses templates whose lines or line count exceed what minijinja can locate.
fn check_positions(template: &str) -> Result<()> {
    let mut lines = 0;
    for line in template.split('\n') {
        lines += 1;
        if lines > MAX_LINES || line.chars().count() > MAX_LINE_CHARS {
            return Err(Error::ChatTemplate(format!(
                "templates are limited to {MAX_LINES} lines of {MAX_LINE_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// Refuses `{% import %}` and `{% from %}` statements. Without a loader they can never
/// succeed, and minijinja 3.1 panics compiling some of them (`{% import 'x' as (a, b) %}`,
/// found by fuzzing), so they are refused before minijinja sees them.
fn check_statements(template: &str) -> Result<()> {
    let mut rest = template;
    while let Some(at) = rest.find("{%") {
        rest = &rest[at + 2..];
        let statement = rest.trim_start_matches(['-', '+']).trim_start();
        let word: String = statement
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if word == "import" || word == "from" {
            return Err(Error::ChatTemplate(format!(
                "`{{% {word} %}}` statements are not allowed: templates render without a loader"
            )));
        }
    }
    Ok(())
}

/// Renders `template` for `messages`. `special_tokens` become template variables
/// (`bos_token`, `eos_token`, ...), as in transformers.
pub fn render(
    template: &str,
    messages: &[Message],
    opts: &ChatOptions,
    special_tokens: &[(&str, Option<&str>)],
) -> Result<String> {
    check_positions(template)?;
    check_statements(template)?;
    // The template engine is third-party code fed untrusted input: should it still panic, the
    // caller gets an error, not an unwinding stack.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        render_unchecked(template, messages, opts, special_tokens)
    }))
    .unwrap_or_else(|_| {
        Err(Error::ChatTemplate(
            "the template engine failed on this template".into(),
        ))
    })
}

fn render_unchecked(
    template: &str,
    messages: &[Message],
    opts: &ChatOptions,
    special_tokens: &[(&str, Option<&str>)],
) -> Result<String> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_error)?,
    );
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_template("chat", template).map_err(template_error)?;
    let tmpl = env.get_template("chat").map_err(template_error)?;

    let mut ctx = Map::new();
    ctx.insert(
        "messages".into(),
        serde_json::to_value(messages).map_err(|e| Error::ChatTemplate(e.to_string()))?,
    );
    ctx.insert(
        "add_generation_prompt".into(),
        Value::Bool(opts.add_generation_prompt),
    );
    if let Some(tools) = &opts.tools {
        ctx.insert("tools".into(), Value::Array(tools.clone()));
    }
    for (name, token) in special_tokens {
        if let Some(t) = token {
            ctx.insert((*name).into(), Value::String((*t).into()));
        }
    }
    for (k, v) in &opts.extra {
        ctx.insert(k.clone(), v.clone());
    }
    let mut out = Bounded(String::new());
    tmpl.render_captured_to(JValue::from(Serde(&ctx)), &mut out)
        .map_err(template_error)?;
    Ok(out.0)
}

fn raise_exception(message: String) -> std::result::Result<JValue, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=...)`, as transformers'
/// `tojson` filter.
fn tojson(value: JValue, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json: Value = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    python_json(&json, indent, sort_keys.unwrap_or(false), 0, &mut out);
    Ok(JValue::from_safe_string(out))
}

fn python_json(v: &Value, indent: Option<usize>, sort: bool, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let (item_sep, key_sep) = if indent.is_some() {
        (",", ": ")
    } else {
        (", ", ": ")
    };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                python_json(item, indent, sort, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(key_sep);
                python_json(item, indent, sort, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
        other => out.push_str(&other.to_string()),
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `datetime.now().strftime(format)` (UTC), for templates that print today's date.
fn strftime_now(format: String) -> std::result::Result<JValue, minijinja::Error> {
    let secs = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(JValue::from(strftime(secs, &format)))
}

/// Formats a Unix time (UTC) with the common strftime directives.
pub(crate) fn strftime(secs: i64, format: &str) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(month - 1) as usize];
    let yday = before + day + i64::from(leap && month > 2);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:2}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('I') => out.push_str(&format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 })),
            Some('p') => out.push_str(if h < 12 { "AM" } else { "PM" }),
            Some('M') => out.push_str(&format!("{m:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_plain(template: &str) -> Result<String> {
        render(
            template,
            &[Message::new("user", "hi")],
            &ChatOptions::default(),
            &[("bos_token", Some("<s>"))],
        )
    }

    #[test]
    fn lines_past_minijinja_columns_are_refused() {
        let long = format!("{}{{#", "x".repeat(MAX_LINE_CHARS + 1));
        assert!(matches!(render_plain(&long), Err(Error::ChatTemplate(_))));
        // A long line within the limit still renders.
        let ok = format!("{}{{{{ bos_token }}}}", "x".repeat(60_000));
        assert!(render_plain(&ok).unwrap().ends_with("<s>"));
    }

    #[test]
    fn renders_like_jinja2() {
        let t = "{% for m in messages %}{{ bos_token }}{{ m['role'] | upper }}: {{ m.content.strip() }}\n{% endfor %}";
        assert_eq!(render_plain(t).unwrap(), "<s>USER: hi\n");
        assert_eq!(
            render_plain("{{ {'a': [1, 'é']} | tojson }}").unwrap(),
            "{\"a\": [1, \"é\"]}"
        );
    }

    #[test]
    fn hostile_templates_end_with_errors() {
        for t in [
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{% include 'tokenizer.json' %}",
            "{% import '/etc/passwd' as x %}",
            "{{ raise_exception('no system role') }}",
            "{% for m in messages %}",
            "{% set ns = namespace(s='x') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "{{ 'x' * 100000000 }}{{ 'x' * 100000000 }}",
        ] {
            assert!(matches!(render_plain(t), Err(Error::ChatTemplate(_))), "{t}");
        }
    }

    #[test]
    fn strftime_formats_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        assert_eq!(
            strftime(1_709_211_909, "%d %B %Y %a %H:%M:%S %j"),
            "29 February 2024 Thu 13:05:09 060"
        );
    }
}
