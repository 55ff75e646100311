//! Constrained decoding to JSON: only tokens that keep the generated text a prefix of a
//! valid JSON object (OpenAI's `response_format: {"type": "json_object"}`), or of a value
//! valid for a JSON schema (`json_schema`), keep their scores; the end-of-sequence token is
//! allowed once the object is complete, and then only it.
//!
//! The text is the concatenation of each generated token's own text. The check runs a
//! small pushdown automaton over it (containers nest at most [`MAX_DEPTH`] deep), then,
//! for every vocabulary entry, over that entry's text from a copy of the state.
//!
//! Schemas: `type` object (`properties`, `required`, `additionalProperties`), array
//! (`items`), string, number, integer, boolean, null; `enum` and `const`. Other keywords
//! that constrain values (`anyOf`, `oneOf`, `pattern`, a list of types, ...) are refused
//! with an error naming them, not ignored.

use super::{Context, LogitsProcessor};
use serde_json::Value;
use std::sync::Arc;
use trustformers_core::{Error, Result};

/// Deepest nesting of objects and arrays.
pub const MAX_DEPTH: usize = 16;
/// Most consecutive whitespace characters outside strings (no endless blank output).
const MAX_WHITESPACE: u8 = 8;
/// Most digits in a number's integer part or fraction (llama.cpp's JSON grammars allow 15
/// and 16): a model stuck on a digit cannot run on to max_tokens inside one number.
const MAX_DIGITS: u8 = 16;
/// Most digits in an exponent.
const MAX_EXPONENT_DIGITS: u8 = 3;
/// Most properties a schema object may list (their seen-set is a bit mask).
const MAX_PROPERTIES: usize = 64;

/// A schema node, in a flat table.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Any,
    Object {
        /// Property names as their JSON text without quotes, and their schema.
        props: Vec<(String, u32)>,
        required: u64,
        additional: bool,
    },
    Array {
        items: u32,
    },
    String,
    Number {
        integer: bool,
    },
    /// One of these JSON texts, exactly (`enum`, `const`, `boolean`, `null`).
    Literal(Vec<String>),
}

/// The schema as a table of nodes, and the node the output must be.
#[derive(Debug, Clone, PartialEq)]
struct Schema {
    nodes: Vec<Node>,
    root: u32,
}

impl Schema {
    /// A JSON object with anything in it.
    fn any_object() -> Self {
        Self {
            nodes: builtin_nodes(),
            root: ANY_OBJECT,
        }
    }

    fn compile(schema: &Value) -> Result<Self> {
        let mut s = Self {
            nodes: builtin_nodes(),
            root: 0,
        };
        s.root = s.add(schema, "schema", 0)?;
        Ok(s)
    }

    fn add(&mut self, v: &Value, path: &str, depth: usize) -> Result<u32> {
        let bad = |why: String| Err(Error::config("response_format", format!("{path}: {why}")));
        if depth > MAX_DEPTH {
            return bad(format!("nests deeper than {MAX_DEPTH}"));
        }
        let index = self.nodes.len() as u32;
        self.nodes.push(Node::Any);
        let Some(obj) = v.as_object() else {
            return match v {
                Value::Bool(true) => Ok(index),
                _ => bad("a schema must be an object".into()),
            };
        };
        for key in [
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "if",
            "pattern",
            "format",
            "$ref",
            "minLength",
            "maxLength",
            "minimum",
            "maximum",
            "minItems",
            "maxItems",
            "patternProperties",
            "prefixItems",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
        ] {
            if obj.contains_key(key) {
                return bad(format!(
                    "`{key}` is not supported by the constrained decoder"
                ));
            }
        }
        let literal =
            |values: Vec<&Value>| Node::Literal(values.iter().map(|v| v.to_string()).collect());
        let node = if let Some(c) = obj.get("const") {
            literal(vec![c])
        } else if let Some(e) = obj.get("enum") {
            match e.as_array() {
                Some(values) if (1..=64).contains(&values.len()) => {
                    literal(values.iter().collect())
                }
                _ => return bad("`enum` must be a list of 1 to 64 values".into()),
            }
        } else {
            match obj.get("type") {
                None => Node::Any,
                Some(Value::String(t)) => match t.as_str() {
                    "string" => Node::String,
                    "number" => Node::Number { integer: false },
                    "integer" => Node::Number { integer: true },
                    "boolean" => Node::Literal(vec!["true".into(), "false".into()]),
                    "null" => Node::Literal(vec!["null".into()]),
                    "array" => {
                        let items = match obj.get("items") {
                            Some(items) => self.add(items, &format!("{path}.items"), depth + 1)?,
                            None => self.add(&Value::Bool(true), path, depth + 1)?,
                        };
                        Node::Array { items }
                    }
                    "object" => self.object(obj, path, depth)?,
                    other => return bad(format!("unknown type `{other}`")),
                },
                Some(_) => {
                    return bad(
                        "`type` must be one string (a list of types is not supported)".into(),
                    )
                }
            }
        };
        self.nodes[index as usize] = node;
        Ok(index)
    }

    fn object(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Node> {
        let bad = |why: String| Err(Error::config("response_format", format!("{path}: {why}")));
        let empty = serde_json::Map::new();
        let properties = match obj.get("properties") {
            None => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => return bad("`properties` must be an object".into()),
        };
        if properties.len() > MAX_PROPERTIES {
            return bad(format!("more than {MAX_PROPERTIES} properties"));
        }
        let mut props = Vec::new();
        for (name, schema) in properties {
            let quoted = Value::String(name.clone()).to_string();
            let text = quoted[1..quoted.len() - 1].to_owned();
            let node = self.add(schema, &format!("{path}.properties.{name}"), depth + 1)?;
            props.push((text, node));
        }
        let mut required = 0u64;
        for r in obj
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(i) = r
                .as_str()
                .and_then(|r| properties.keys().position(|k| k == r))
            else {
                return bad(format!("required property {r} is not in `properties`"));
            };
            required |= 1 << i;
        }
        // Without properties, any keys; with them, only theirs unless allowed.
        let additional = match obj.get("additionalProperties") {
            Some(Value::Bool(b)) => *b && props.is_empty(),
            Some(_) => return bad("`additionalProperties` must be true or false".into()),
            None => props.is_empty(),
        };
        Ok(Node::Object {
            props,
            required,
            additional,
        })
    }
}

/// An open container.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    /// `seen`: the schema properties given so far; `prop`: the one whose value comes next.
    Object {
        node: u32,
        seen: u64,
        prop: Option<u8>,
    },
    Array {
        items: u32,
    },
}

/// Where the text is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lex {
    /// A value of `node` comes next (`close`: or the array's end).
    Value {
        node: u32,
        close: bool,
    },
    /// A key comes next (`close`: or the object's end).
    Key {
        close: bool,
    },
    Colon,
    CommaOrClose,
    /// Inside a string; `escape`: 0, 1 after a backslash, 2..=5 hex digits to come.
    Str {
        escape: u8,
    },
    /// Inside a key: any key (`matching` is 0), or a prefix of the properties in `matching`.
    KeyStr {
        escape: u8,
        pos: u16,
        matching: u64,
    },
    /// `digits`: how many the current part (integer, fraction, exponent) has.
    Number {
        node: u32,
        part: Num,
        digits: u8,
    },
    /// Inside one of a literal node's texts.
    Literal {
        node: u32,
        pos: u16,
        matching: u64,
    },
    /// The object is complete.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

impl Num {
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits)
    }
}

/// The automaton's state: fixed size, so copying it for each candidate costs no allocation.
#[derive(Debug, Clone, Copy)]
struct State {
    stack: [Frame; MAX_DEPTH],
    depth: u8,
    lex: Lex,
    whitespace: u8,
}

impl State {
    fn new(schema: &Schema) -> Self {
        Self {
            stack: [Frame::Array { items: ANY }; MAX_DEPTH],
            depth: 0,
            lex: Lex::Value {
                node: schema.root,
                close: false,
            },
            whitespace: 0,
        }
    }

    fn top(&mut self) -> Option<&mut Frame> {
        self.stack[..self.depth as usize].last_mut()
    }

    /// The text after a complete value.
    fn after_value(&mut self) {
        self.lex = if self.depth == 0 {
            Lex::End
        } else {
            Lex::CommaOrClose
        };
    }

    fn push(&mut self, frame: Frame) -> bool {
        if self.depth as usize >= MAX_DEPTH {
            return false;
        }
        self.stack[self.depth as usize] = frame;
        self.depth += 1;
        true
    }

    /// Feeds one character; `false` when it cannot continue valid output.
    fn feed(&mut self, c: char, schema: &Schema) -> bool {
        let ws = matches!(c, ' ' | '\n' | '\t' | '\r');
        let between = matches!(
            self.lex,
            Lex::Value { .. } | Lex::Key { .. } | Lex::Colon | Lex::CommaOrClose
        );
        if ws && between {
            self.whitespace += 1;
            return self.whitespace <= MAX_WHITESPACE;
        }
        self.whitespace = 0;
        match self.lex {
            Lex::End => false,
            Lex::Value { node, close } => {
                if close && c == ']' {
                    return self.close_array();
                }
                self.start_value(node, c, schema)
            }
            Lex::Key { close } => {
                if close && c == '}' {
                    return self.close_object(schema);
                }
                if c != '"' {
                    return false;
                }
                let Some(&Frame::Object { node, seen, .. }) =
                    self.stack[..self.depth as usize].last()
                else {
                    return false;
                };
                let Node::Object {
                    props, additional, ..
                } = &schema.nodes[node as usize]
                else {
                    return false;
                };
                if *additional {
                    self.lex = Lex::KeyStr {
                        escape: 0,
                        pos: 0,
                        matching: 0,
                    };
                    return true;
                }
                let unseen = mask(props.len()) & !seen;
                self.lex = Lex::KeyStr {
                    escape: 0,
                    pos: 0,
                    matching: unseen,
                };
                unseen != 0
            }
            Lex::Colon => {
                if c != ':' {
                    return false;
                }
                let next = match self.top() {
                    Some(Frame::Object { node, prop, .. }) => (*node, *prop),
                    _ => return false,
                };
                let value = match (&schema.nodes[next.0 as usize], next.1) {
                    (Node::Object { props, .. }, Some(p)) => {
                        props.get(p as usize).map_or(ANY, |p| p.1)
                    }
                    _ => ANY,
                };
                self.lex = Lex::Value {
                    node: value,
                    close: false,
                };
                true
            }
            Lex::CommaOrClose => match (c, self.stack[..self.depth as usize].last().copied()) {
                (',', Some(Frame::Array { items })) => {
                    self.lex = Lex::Value {
                        node: items,
                        close: false,
                    };
                    true
                }
                (',', Some(Frame::Object { node, seen, .. })) => match &schema.nodes[node as usize]
                {
                    Node::Object {
                        props, additional, ..
                    } => {
                        let more = *additional || mask(props.len()) & !seen != 0;
                        self.lex = Lex::Key { close: false };
                        more
                    }
                    _ => false,
                },
                (']', Some(Frame::Array { .. })) => self.close_array(),
                ('}', Some(Frame::Object { .. })) => self.close_object(schema),
                _ => false,
            },
            Lex::Str { escape } => match string_char(escape, c) {
                Some(Some(escape)) => {
                    self.lex = Lex::Str { escape };
                    true
                }
                Some(None) => {
                    self.after_value();
                    true
                }
                None => false,
            },
            Lex::KeyStr {
                escape,
                pos,
                matching,
            } => self.key_char(escape, pos, matching, c, schema),
            Lex::Number { node, part, digits } => {
                let integer = matches!(schema.nodes[node as usize], Node::Number { integer: true });
                let next = match (part, c) {
                    (Num::Minus, '0') => Some(Num::Zero),
                    (Num::Minus, '1'..='9') => Some(Num::Int),
                    (Num::Int, '0'..='9') => Some(Num::Int),
                    (Num::Zero | Num::Int, '.') if !integer => Some(Num::Dot),
                    (Num::Dot | Num::Frac, '0'..='9') => Some(Num::Frac),
                    (Num::Zero | Num::Int | Num::Frac, 'e' | 'E') if !integer => Some(Num::Exp),
                    (Num::Exp, '+' | '-') => Some(Num::ExpSign),
                    (Num::Exp | Num::ExpSign | Num::ExpDigits, '0'..='9') => Some(Num::ExpDigits),
                    _ => None,
                };
                match next {
                    Some(next) => {
                        let digits = if c.is_ascii_digit() {
                            // A new part starts its count again.
                            if next == part {
                                digits + 1
                            } else {
                                1
                            }
                        } else {
                            0
                        };
                        let most = if next == Num::ExpDigits {
                            MAX_EXPONENT_DIGITS
                        } else {
                            MAX_DIGITS
                        };
                        self.lex = Lex::Number {
                            node,
                            part: next,
                            digits,
                        };
                        digits <= most
                    }
                    // The number ended: the character is what follows it.
                    None if part.complete() && self.depth > 0 => {
                        self.after_value();
                        self.feed(c, schema)
                    }
                    None => false,
                }
            }
            Lex::Literal {
                node,
                pos,
                matching,
            } => {
                let Node::Literal(texts) = &schema.nodes[node as usize] else {
                    return false;
                };
                let mut next = 0u64;
                let mut complete = false;
                for (i, t) in texts.iter().enumerate().take(64) {
                    if matching & (1 << i) == 0 {
                        continue;
                    }
                    match t.as_bytes().get(pos as usize) {
                        Some(&b) if c.is_ascii() && b == c as u8 => next |= 1 << i,
                        // Non-ASCII literals (rare) are compared by their UTF-8 bytes.
                        Some(_) if !c.is_ascii() => {
                            let mut buf = [0u8; 4];
                            let bytes = c.encode_utf8(&mut buf).as_bytes();
                            if t.as_bytes()[pos as usize..].starts_with(bytes) {
                                next |= 1 << i;
                            }
                        }
                        Some(_) => {}
                        None => complete = true,
                    }
                }
                if next != 0 {
                    let step = c.len_utf8() as u16;
                    self.lex = Lex::Literal {
                        node,
                        pos: pos + step,
                        matching: next,
                    };
                    return true;
                }
                if complete && self.depth > 0 {
                    self.after_value();
                    return self.feed(c, schema);
                }
                false
            }
        }
    }

    fn start_value(&mut self, node: u32, c: char, schema: &Schema) -> bool {
        match (&schema.nodes[node as usize], c) {
            (Node::Any, '{') => self.start_value(ANY_OBJECT, c, schema),
            (Node::Any, '[') => self.start_value(ANY_ARRAY, c, schema),
            (Node::Any, '-' | '0'..='9') => self.start_value(ANY_NUMBER, c, schema),
            (Node::Any, 't' | 'f' | 'n') => self.start_value(ANY_LITERAL, c, schema),
            (Node::Object { required, .. }, '{') => {
                self.lex = Lex::Key {
                    close: *required == 0,
                };
                self.push(Frame::Object {
                    node,
                    seen: 0,
                    prop: None,
                })
            }
            (Node::Array { items }, '[') => {
                let items = *items;
                self.lex = Lex::Value {
                    node: items,
                    close: true,
                };
                self.push(Frame::Array { items })
            }
            (Node::String | Node::Any, '"') => {
                self.lex = Lex::Str { escape: 0 };
                true
            }
            (Node::Number { .. }, '-' | '0'..='9') => {
                let (part, digits) = match c {
                    '-' => (Num::Minus, 0),
                    '0' => (Num::Zero, 1),
                    _ => (Num::Int, 1),
                };
                self.lex = Lex::Number { node, part, digits };
                true
            }
            (Node::Literal(texts), _) => {
                self.lex = Lex::Literal {
                    node,
                    pos: 0,
                    matching: mask(texts.len()),
                };
                self.feed(c, schema)
            }
            _ => false,
        }
    }

    fn key_char(&mut self, escape: u8, pos: u16, matching: u64, c: char, schema: &Schema) -> bool {
        let Some(&Frame::Object { node, .. }) = self.stack[..self.depth as usize].last() else {
            return false;
        };
        let Node::Object { props, .. } = &schema.nodes[node as usize] else {
            return false;
        };
        if matching == 0 {
            // Any key.
            return match string_char(escape, c) {
                Some(Some(escape)) => {
                    self.lex = Lex::KeyStr {
                        escape,
                        pos,
                        matching,
                    };
                    true
                }
                Some(None) => {
                    if let Some(Frame::Object { prop, .. }) = self.top() {
                        *prop = None;
                    }
                    self.lex = Lex::Colon;
                    true
                }
                None => false,
            };
        }
        let mut buf = [0u8; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        if c == '"' {
            // The key ends: it must be one of the matching names, whole.
            let Some(i) = (0..props.len())
                .find(|&i| matching & (1 << i) != 0 && props[i].0.len() == pos as usize)
            else {
                return false;
            };
            if let Some(Frame::Object { seen, prop, .. }) = self.top() {
                *seen |= 1 << i;
                *prop = Some(i as u8);
            }
            self.lex = Lex::Colon;
            return true;
        }
        let mut next = 0u64;
        for (i, (name, _)) in props.iter().enumerate() {
            if matching & (1 << i) != 0 && name.as_bytes()[pos as usize..].starts_with(bytes) {
                next |= 1 << i;
            }
        }
        self.lex = Lex::KeyStr {
            escape: 0,
            pos: pos + bytes.len() as u16,
            matching: next,
        };
        next != 0
    }

    fn close_array(&mut self) -> bool {
        if !matches!(self.top(), Some(Frame::Array { .. })) {
            return false;
        }
        self.depth -= 1;
        self.after_value();
        true
    }

    fn close_object(&mut self, schema: &Schema) -> bool {
        let Some(&Frame::Object { node, seen, .. }) = self.stack[..self.depth as usize].last()
        else {
            return false;
        };
        if let Node::Object { required, .. } = &schema.nodes[node as usize] {
            if required & !seen != 0 {
                return false;
            }
        }
        self.depth -= 1;
        self.after_value();
        true
    }
}

/// The nodes every table starts with: any value, any object, any number, the literals
/// `true`, `false` and `null`, any array. The schema's own root follows them.
const ANY: u32 = 0;
const ANY_OBJECT: u32 = 1;
const ANY_NUMBER: u32 = 2;
const ANY_LITERAL: u32 = 3;
const ANY_ARRAY: u32 = 4;

fn builtin_nodes() -> Vec<Node> {
    vec![
        Node::Any,
        Node::Object {
            props: Vec::new(),
            required: 0,
            additional: true,
        },
        Node::Number { integer: false },
        Node::Literal(vec!["true".into(), "false".into(), "null".into()]),
        Node::Array { items: ANY },
    ]
}

/// A bit mask of the first `n` (at most 64) entries.
fn mask(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// One character inside a string: `Some(Some(escape))` continues the string,
/// `Some(None)` ends it (an unescaped quote), `None` is invalid.
fn string_char(escape: u8, c: char) -> Option<Option<u8>> {
    match escape {
        0 => match c {
            '"' => Some(None),
            '\\' => Some(Some(1)),
            c if (c as u32) < 0x20 => None,
            _ => Some(Some(0)),
        },
        1 => match c {
            '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => Some(Some(0)),
            'u' => Some(Some(5)),
            _ => None,
        },
        n => c
            .is_ascii_hexdigit()
            .then_some(Some(if n == 2 { 0 } else { n - 1 })),
    }
}

/// The JSON constraint as a logits processor (put it first, before temperature and top-k).
#[derive(Clone)]
pub struct JsonConstraint {
    schema: Arc<Schema>,
    /// What each vocabulary id adds to the text; `None` for ids never allowed (special
    /// tokens, ids past the tokenizer's vocabulary).
    vocab: Arc<Vec<Option<String>>>,
    /// The allowed ids grouped by their text's first character: a group whose first
    /// character cannot come next is dropped whole.
    by_first: Arc<Vec<(char, Vec<u32>)>>,
    eos: Vec<u32>,
}

/// `vocab`'s non-empty entries grouped by first character.
fn group_by_first(vocab: &[Option<String>]) -> Vec<(char, Vec<u32>)> {
    let mut groups: std::collections::BTreeMap<char, Vec<u32>> = Default::default();
    for (id, text) in vocab.iter().enumerate() {
        if let Some(c) = text.as_deref().and_then(|t| t.chars().next()) {
            groups.entry(c).or_default().push(id as u32);
        }
    }
    groups.into_iter().collect()
}

impl JsonConstraint {
    /// Any JSON object (`json_object`).
    pub fn object(vocab: Arc<Vec<Option<String>>>, eos: Vec<u32>) -> Self {
        Self {
            schema: Arc::new(Schema::any_object()),
            by_first: Arc::new(group_by_first(&vocab)),
            vocab,
            eos,
        }
    }

    /// A value valid for `schema`, whose root must be an object (as OpenAI's structured
    /// outputs require). Unsupported keywords are an error naming them.
    pub fn schema(vocab: Arc<Vec<Option<String>>>, eos: Vec<u32>, schema: &Value) -> Result<Self> {
        let schema = Schema::compile(schema)?;
        if !matches!(schema.nodes[schema.root as usize], Node::Object { .. }) {
            return Err(Error::config(
                "response_format",
                "the schema's root must be an object (`\"type\": \"object\"`)",
            ));
        }
        Ok(Self {
            schema: Arc::new(schema),
            by_first: Arc::new(group_by_first(&vocab)),
            vocab,
            eos,
        })
    }

    /// The state after `ids`' texts; `None` if they are not valid (they are, when every
    /// step went through this processor).
    fn state_after(&self, ids: &[u32]) -> Option<State> {
        let mut state = State::new(&self.schema);
        for &id in ids {
            let text = self.vocab.get(id as usize)?.as_deref()?;
            if !text.chars().all(|c| state.feed(c, &self.schema)) {
                return None;
            }
        }
        Some(state)
    }

    /// Whether `text` parses whole under this constraint (for tests and checks).
    pub fn accepts(&self, text: &str) -> bool {
        let mut state = State::new(&self.schema);
        text.chars().all(|c| state.feed(c, &self.schema)) && state.lex == Lex::End
    }
}

impl LogitsProcessor for JsonConstraint {
    fn process(&self, ctx: &Context<'_>, scores: &mut [f32]) {
        let state = self
            .state_after(ctx.generated())
            .filter(|s| s.lex != Lex::End);
        let mut allowed = vec![false; scores.len()];
        match &state {
            // Complete (or, defensively, invalid): only the end.
            None => {
                for &id in &self.eos {
                    if let Some(a) = allowed.get_mut(id as usize) {
                        *a = true;
                    }
                }
            }
            Some(state) => {
                for (first, ids) in self.by_first.iter() {
                    let mut after_first = *state;
                    if !after_first.feed(*first, &self.schema) {
                        continue;
                    }
                    for &id in ids {
                        let Some(Some(text)) = self.vocab.get(id as usize) else {
                            continue;
                        };
                        let mut s = after_first;
                        let rest = &text[first.len_utf8()..];
                        if rest.chars().all(|c| s.feed(c, &self.schema)) {
                            if let Some(a) = allowed.get_mut(id as usize) {
                                *a = true;
                            }
                        }
                    }
                }
            }
        }
        if state.is_some() && !allowed.iter().any(|&a| a) {
            // No token continues the JSON (a vocabulary without its characters): the
            // sequence ends rather than run on with masked scores.
            for &id in &self.eos {
                if let Some(a) = allowed.get_mut(id as usize) {
                    *a = true;
                }
            }
        }
        for (score, allowed) in scores.iter_mut().zip(allowed) {
            if !allowed {
                *score = f32::NEG_INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn object() -> JsonConstraint {
        JsonConstraint::object(Arc::new(Vec::new()), vec![])
    }

    fn prefix_ok(c: &JsonConstraint, text: &str) -> bool {
        let mut s = State::new(&c.schema);
        text.chars().all(|ch| s.feed(ch, &c.schema))
    }

    #[test]
    fn any_object_accepts_json_objects_and_their_prefixes_only() {
        let c = object();
        for ok in [
            r#"{}"#,
            r#"{"a": 1, "b": [true, false, null, -0.5e+3, "x\"y\u00e9"], "c": {"d": []}}"#,
            "{\n  \"name\": \"Ada\",\n  \"age\": 36\n}",
            r#"{"é": "ü"}"#,
        ] {
            assert!(c.accepts(ok), "{ok}");
            assert!(serde_json::from_str::<Value>(ok).is_ok());
        }
        for bad in [
            r#"[1]"#,
            r#""s""#,
            r#"{"a" 1}"#,
            r#"{"a": 01}"#,
            r#"{"a": tru}"#,
            r#"{"a": 1,}"#,
            r#"{"a": "\x"}"#,
            "{\"a\": \"line\nbreak\"}",
            r#"{} {}"#,
            r#"{"a": -}"#,
            r#"{"a": 1.}"#,
        ] {
            assert!(!c.accepts(bad), "{bad}");
        }
        assert!(prefix_ok(&c, r#"{"a": [1, {"b": tr"#));
        assert!(!prefix_ok(&c, r#"{"a": ]"#));
        assert!(!prefix_ok(&c, "{          "), "endless whitespace is cut");
        assert!(c.accepts(r#"{"n": 1234567890123456, "f": -0.1234567890123456e-123}"#));
        assert!(!prefix_ok(&c, r#"{"n": 12345678901234567"#));
        assert!(!prefix_ok(&c, r#"{"n": 1e1234"#));
        let deep = "{\"a\":".repeat(MAX_DEPTH) + "{";
        assert!(!prefix_ok(&c, &deep));
    }

    #[test]
    fn a_schema_constrains_keys_types_and_required_properties() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "tags": {"type": "array", "items": {"enum": ["a", "bc"]}},
                "ok": {"type": "boolean"},
                "pi": {"const": 2.5}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        });
        let c = JsonConstraint::schema(Arc::new(Vec::new()), vec![], &schema).unwrap();
        assert!(c.accepts(r#"{"name": "x", "age": 3}"#));
        assert!(
            c.accepts(r#"{"age": -3, "name": "", "tags": ["bc", "a"], "ok": false, "pi": 2.5}"#)
        );
        for bad in [
            r#"{"name": "x"}"#,
            r#"{"name": "x", "age": 3.5}"#,
            r#"{"name": 1, "age": 3}"#,
            r#"{"name": "x", "age": 3, "other": 1}"#,
            r#"{"name": "x", "age": 3, "name": "y"}"#,
            r#"{"name": "x", "age": 3, "tags": ["b"]}"#,
            r#"{"name": "x", "age": 3, "pi": 2.51}"#,
            r#"{"nam": "x", "age": 3}"#,
        ] {
            assert!(!c.accepts(bad), "{bad}");
        }
        assert!(prefix_ok(&c, r#"{"na"#));
        assert!(!prefix_ok(&c, r#"{"x"#));
        for (schema, what) in [
            (
                json!({"type": "object", "properties": {"a": {"anyOf": []}}}),
                "anyOf",
            ),
            (json!({"type": ["string", "null"]}), "list of types"),
            (json!({"type": "string"}), "root"),
            (json!({"type": "object", "required": ["zz"]}), "zz"),
        ] {
            let e = JsonConstraint::schema(Arc::new(Vec::new()), vec![], &schema)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn the_processor_keeps_only_tokens_that_continue_the_json() {
        let vocab: Vec<Option<String>> = ["{", "}", "\"a\"", ":", " 1", "x", "", "\"", "<eos>"]
            .iter()
            .map(|t| Some(t.to_string()))
            .chain([None])
            .collect();
        let c = JsonConstraint::object(Arc::new(vocab), vec![8]);
        let allowed = |generated: &[u32]| {
            let ids: Vec<u32> = generated.to_vec();
            let mut scores = vec![0f32; 10];
            c.process(
                &Context {
                    ids: &ids,
                    prompt_len: 0,
                },
                &mut scores,
            );
            (0..10).filter(|&i| scores[i] == 0.0).collect::<Vec<_>>()
        };
        assert_eq!(allowed(&[]), vec![0]);
        assert_eq!(allowed(&[0]), vec![1, 2, 7]);
        assert_eq!(allowed(&[0, 2]), vec![3]);
        assert_eq!(allowed(&[0, 2, 3]), vec![0, 2, 4, 7]);
        assert_eq!(allowed(&[0, 2, 3, 4]), vec![1]);
        assert_eq!(allowed(&[0, 2, 3, 4, 1]), vec![8]);
    }
}
