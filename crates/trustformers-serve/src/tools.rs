//! Tool calls in a model's reply, in the format the Hermes, Qwen and SmolLM templates ask
//! for: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one block per call.
//! Parsed into OpenAI's `tool_calls`; while streaming, text from the first `<tool_call>` on
//! is held back, so the client sees the calls as calls and not as text.

use serde_json::{json, Value};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// The reply split into its text and its tool calls (OpenAI's `tool_calls` entries). A
/// block that is not a JSON object with a string `name` stays text.
pub fn parse(reply: &str, id_prefix: &str) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut rest = reply;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        // A call cut off by max_tokens (no closing tag) is a call if it parses whole.
        let (body, block) = match after.find(CLOSE) {
            Some(end) => (&after[..end], OPEN.len() + end + CLOSE.len()),
            None => (after, OPEN.len() + after.len()),
        };
        match call(body.trim(), &format!("{id_prefix}_{}", calls.len())) {
            Some(c) => {
                text.push_str(&rest[..start]);
                calls.push(c);
            }
            // Not a call: the block stays text.
            None => text.push_str(&rest[..start + block]),
        }
        rest = &rest[start + block..];
    }
    text.push_str(rest);
    (text.trim().to_owned(), calls)
}

fn call(body: &str, id: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(body).ok()?;
    let name = v.get("name")?.as_str()?;
    let arguments = match v.get("arguments").or_else(|| v.get("parameters")) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "{}".to_owned(),
    };
    Some(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }))
}

/// Streamed text with tool calls held back: [`Self::push`] returns what may be shown now.
#[derive(Default)]
pub struct ToolCallStream {
    /// Text not shown yet: a possible start of `<tool_call>`, or everything from one on.
    held: String,
    in_call: bool,
}

impl ToolCallStream {
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        if self.in_call {
            return String::new();
        }
        if let Some(at) = self.held.find(OPEN) {
            self.in_call = true;
            let shown = self.held[..at].to_owned();
            self.held.drain(..at);
            return shown;
        }
        // Keep back the longest end of the text that could begin the tag.
        let keep = (1..OPEN.len())
            .rev()
            .find(|&n| self.held.ends_with(&OPEN[..n]))
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let shown = self.held[..cut].to_owned();
        self.held.drain(..cut);
        shown
    }

    /// The end of the reply: the text still to show and the tool calls.
    pub fn finish(self, id_prefix: &str) -> (String, Vec<Value>) {
        if !self.in_call {
            return (self.held, Vec::new());
        }
        parse(&self.held, id_prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_are_parsed_and_text_kept() {
        let reply = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\": \"now\"}</tool_call>";
        let (text, calls) = parse(reply, "call");
        assert_eq!(text, "Let me check.");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(calls[0]["id"], "call_0");
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        // Not a call: kept as text.
        let (text, calls) = parse("<tool_call>not json</tool_call> done", "c");
        assert!(calls.is_empty());
        assert_eq!(text, "<tool_call>not json</tool_call> done");
        assert_eq!(parse("plain", "c"), ("plain".to_owned(), vec![]));
    }

    #[test]
    fn streaming_holds_back_the_calls() {
        let mut s = ToolCallStream::default();
        let mut shown = String::new();
        for piece in [
            "Sure",
            ". <tool",
            "_call>{\"name\":",
            " \"f\", \"arguments\": {}}",
            "</tool_call>",
        ] {
            shown.push_str(&s.push(piece));
        }
        assert_eq!(shown, "Sure. ");
        let (rest, calls) = s.finish("call");
        assert_eq!(rest, "");
        assert_eq!(calls[0]["function"]["name"], "f");
        // A '<' that turns out not to open a call is shown in the end.
        let mut s = ToolCallStream::default();
        assert_eq!(s.push("a <"), "a ");
        assert_eq!(s.push("b>"), "<b>");
        assert_eq!(s.finish("c"), (String::new(), vec![]));
    }
}
