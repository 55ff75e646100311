//! The pushdown automaton: whether a text is a prefix of valid JSON (for a schema), one
//! character at a time, in a fixed-size state that is cheap to copy.

use super::schema::{Node, Schema, ANY, ANY_ARRAY, ANY_LITERAL, ANY_NUMBER, ANY_OBJECT};
use super::MAX_DEPTH;

/// Most consecutive whitespace characters outside strings (no endless blank output).
const MAX_WHITESPACE: u8 = 8;
/// Most digits in a number's integer part or fraction (llama.cpp's JSON grammars allow 15
/// and 16): a model stuck on a digit cannot run on to max_tokens inside one number.
const MAX_DIGITS: u8 = 16;
/// Most digits in an exponent.
const MAX_EXPONENT_DIGITS: u8 = 3;

/// An open container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Frame {
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
pub(super) enum Lex {
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
pub(super) enum Num {
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
pub(super) struct State {
    pub(super) stack: [Frame; MAX_DEPTH],
    pub(super) depth: u8,
    pub(super) lex: Lex,
    pub(super) whitespace: u8,
}

impl State {
    pub(super) fn new(schema: &Schema) -> Self {
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
    pub(super) fn feed(&mut self, c: char, schema: &Schema) -> bool {
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
