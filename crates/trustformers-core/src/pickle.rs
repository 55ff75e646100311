//! A pickle reader for PyTorch checkpoints that never executes anything.
//!
//! `torch.save` writes a zip archive whose `data.pkl` is a pickle describing the state dict:
//! an `OrderedDict` of names to tensors, each tensor rebuilt by
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` from a storage that
//! `BINPERSID` names by key (`data/<key>` in the archive). Python's unpickler would import and
//! call whatever globals the file names; this reader only interprets the opcodes as data,
//! accepts a short allow-list of globals and turns those into plain values. Every length is
//! checked against the bytes that remain, shared objects are reference-counted (no copies on
//! memo reads), and the stack, memo and nesting are bounded.

use crate::error::PthError;
use std::collections::HashMap;
use std::rc::Rc;

/// Most values on the stack, in the memo, or in one container.
const MAX_ITEMS: usize = 1 << 22;
/// Deepest nesting of containers.
const MAX_DEPTH: usize = 64;

/// A value of the pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<Vec<Value>>),
    List(Rc<Vec<Value>>),
    Dict(Rc<Vec<(Value, Value)>>),
    /// An allow-listed global (`module.name`).
    Global(&'static str),
    /// A storage named by `BINPERSID`: its class (element type) and key in the archive.
    Storage {
        class: &'static str,
        key: String,
    },
    /// `callable(*args)` of an allow-listed callable, kept unevaluated.
    Call(&'static str, Rc<Vec<Value>>),
    /// The stack marker.
    Mark,
}

/// The globals a state dict may name; anything else is refused.
const ALLOWED_GLOBALS: &[&str] = &[
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch.FloatStorage",
    "torch.HalfStorage",
    "torch.BFloat16Storage",
    "torch.DoubleStorage",
    "torch.LongStorage",
    "torch.IntStorage",
    "torch.ShortStorage",
    "torch.CharStorage",
    "torch.ByteStorage",
    "torch.BoolStorage",
];

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PthError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(PthError::PickleTruncated { offset: self.pos })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PthError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PthError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn line(&mut self) -> Result<&'a str, PthError> {
        let rest = &self.buf[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PthError::PickleTruncated { offset: self.pos })?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| PthError::BadPickle {
            offset: self.pos,
            reason: "name is not UTF-8".into(),
        })?;
        self.pos += n + 1;
        Ok(s)
    }
}

fn bad(offset: usize, reason: impl Into<String>) -> PthError {
    PthError::BadPickle {
        offset,
        reason: reason.into(),
    }
}

fn global(module: &str, name: &str, offset: usize) -> Result<Value, PthError> {
    let full = format!("{module}.{name}");
    ALLOWED_GLOBALS
        .iter()
        .find(|g| **g == full)
        .map(|g| Value::Global(g))
        .ok_or(PthError::ForbiddenGlobal { name: full, offset })
}

/// Interprets a pickle (protocol 2 to 5, the subset `torch.save` writes) and returns the
/// value it builds.
pub fn load(buf: &[u8]) -> Result<Value, PthError> {
    let mut r = Reader { buf, pos: 0 };
    // Each value travels with its nesting depth, so containers are bounded without walking
    // them (deep nesting would also overflow the stack when dropped).
    let mut stack: Vec<(Value, usize)> = Vec::new();
    let mut memo: HashMap<u32, (Value, usize)> = HashMap::new();
    // Depth of a container holding values popped so far.
    let mut inner;
    // Items copied when a memoized container is modified (copy on write): bounded, so that
    // memoizing a growing container over and over cannot take quadratic time or memory.
    // torch.save memoizes containers while empty, so real files copy (almost) nothing.
    let copy_budget = buf.len() / 16 + (1 << 16);
    let mut copied = 0usize;
    let mut charge = |len: usize, shared: bool, at: usize| {
        if shared {
            copied = copied.saturating_add(len);
            if copied > copy_budget {
                return Err(bad(at, "memoized containers modified too often"));
            }
        }
        Ok(())
    };
    let pop = |stack: &mut Vec<(Value, usize)>, at: usize, inner: &mut usize| {
        let (v, d) = stack
            .pop()
            .filter(|(v, _)| *v != Value::Mark)
            .ok_or_else(|| bad(at, "stack underflow"))?;
        *inner = (*inner).max(d);
        Ok::<Value, PthError>(v)
    };
    let pop_mark = |stack: &mut Vec<(Value, usize)>,
                    at: usize,
                    inner: &mut usize|
     -> Result<Vec<Value>, PthError> {
        let mark = stack
            .iter()
            .rposition(|(v, _)| *v == Value::Mark)
            .ok_or_else(|| bad(at, "no mark on the stack"))?;
        let items = stack.split_off(mark + 1);
        stack.pop();
        *inner = items.iter().map(|(_, d)| *d).fold(*inner, usize::max);
        Ok(items.into_iter().map(|(v, _)| v).collect())
    };
    loop {
        let at = r.pos;
        let op = r.u8()?;
        inner = 0;
        let value = match op {
            0x80 => {
                let proto = r.u8()?;
                if !(2..=5).contains(&proto) {
                    return Err(bad(at, format!("pickle protocol {proto} is not supported")));
                }
                continue;
            }
            0x95 => {
                r.take(8)?; // FRAME: a length hint only.
                continue;
            }
            b'.' => return pop(&mut stack, at, &mut inner),
            b'(' => Value::Mark,
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'}' => Value::Dict(Rc::default()),
            b']' => Value::List(Rc::default()),
            b')' => Value::Tuple(Rc::default()),
            b'J' => Value::Int(i32::from_le_bytes(r.le()?).into()),
            b'K' => Value::Int(r.u8()?.into()),
            b'M' => Value::Int(u16::from_le_bytes(r.le()?).into()),
            0x8a => {
                let n = r.u8()? as usize;
                let bytes = r.take(n)?;
                if n > 8 {
                    return Err(bad(at, "integer wider than 64 bits"));
                }
                let mut wide = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                    [0xff; 8]
                } else {
                    [0; 8]
                };
                wide[..n].copy_from_slice(bytes);
                Value::Int(i64::from_le_bytes(wide))
            }
            b'G' => Value::Float(f64::from_be_bytes(r.le()?)),
            b'X' | 0x8c | 0x8d | b'T' | b'U' | b'B' | b'C' | 0x8e => {
                let len = match op {
                    0x8c | b'U' | b'C' => r.u8()? as usize,
                    0x8d | 0x8e => {
                        let n = u64::from_le_bytes(r.le()?);
                        usize::try_from(n).map_err(|_| PthError::PickleTruncated { offset: at })?
                    }
                    _ => u32::from_le_bytes(r.le()?) as usize,
                };
                let bytes = r.take(len)?;
                if matches!(op, b'B' | b'C' | 0x8e) {
                    Value::Bytes(bytes.to_vec())
                } else {
                    Value::Str(
                        std::str::from_utf8(bytes)
                            .map_err(|_| bad(at, "string is not UTF-8"))?
                            .to_string(),
                    )
                }
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                global(module, name, at)?
            }
            0x93 => {
                let name = pop(&mut stack, at, &mut inner)?;
                let module = pop(&mut stack, at, &mut inner)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => global(&m, &n, at)?,
                    _ => return Err(bad(at, "STACK_GLOBAL needs two strings")),
                }
            }
            b'q' | b'r' | 0x94 => {
                let key = match op {
                    b'q' => r.u8()?.into(),
                    b'r' => u32::from_le_bytes(r.le()?),
                    _ => memo.len() as u32,
                };
                let top = stack
                    .last()
                    .filter(|(v, _)| *v != Value::Mark)
                    .ok_or_else(|| bad(at, "nothing to memoize"))?
                    .clone();
                if memo.len() >= MAX_ITEMS {
                    return Err(bad(at, "memo too large"));
                }
                memo.insert(key, top);
                continue;
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    r.u8()?.into()
                } else {
                    u32::from_le_bytes(r.le()?)
                };
                let entry = memo
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| bad(at, format!("memo key {key} is not set")))?;
                if stack.len() >= MAX_ITEMS {
                    return Err(bad(at, "stack too large"));
                }
                stack.push(entry);
                continue;
            }
            b't' => Value::Tuple(Rc::new(pop_mark(&mut stack, at, &mut inner)?)),
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop(&mut stack, at, &mut inner)?);
                }
                items.reverse();
                Value::Tuple(Rc::new(items))
            }
            b'Q' => {
                let pid = pop(&mut stack, at, &mut inner)?;
                storage(&pid).ok_or_else(|| bad(at, "persistent id is not a storage"))?
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack, at, &mut inner)?;
                let callable = pop(&mut stack, at, &mut inner)?;
                match (callable, args) {
                    (Value::Global("collections.OrderedDict"), Value::Tuple(a)) if a.is_empty() => {
                        Value::Dict(Rc::default())
                    }
                    (Value::Global(g), Value::Tuple(a)) => Value::Call(g, a),
                    _ => return Err(bad(at, "REDUCE of something that is not an allowed global")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack, at, &mut inner)?;
                    let k = pop(&mut stack, at, &mut inner)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack, at, &mut inner)?
                };
                if items.len() % 2 != 0 {
                    return Err(bad(at, "odd number of dict items"));
                }
                let Some((Value::Dict(mut dict), d)) = stack.pop() else {
                    return Err(bad(at, "SETITEMS on something that is not a dict"));
                };
                charge(dict.len(), Rc::strong_count(&dict) > 1, at)?;
                let entries = Rc::make_mut(&mut dict);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                inner = inner.max(d.saturating_sub(1));
                Value::Dict(dict)
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack, at, &mut inner)?]
                } else {
                    pop_mark(&mut stack, at, &mut inner)?
                };
                let Some((Value::List(mut list), d)) = stack.pop() else {
                    return Err(bad(at, "APPENDS on something that is not a list"));
                };
                charge(list.len(), Rc::strong_count(&list) > 1, at)?;
                Rc::make_mut(&mut list).extend(items);
                inner = inner.max(d.saturating_sub(1));
                Value::List(list)
            }
            b'b' => {
                // BUILD sets state (e.g. an OrderedDict's or Parameter's); the state dict
                // needs none of it.
                pop(&mut stack, at, &mut inner)?;
                continue;
            }
            other => return Err(bad(at, format!("unsupported opcode {other:#04x}"))),
        };
        if stack.len() >= MAX_ITEMS {
            return Err(bad(at, "stack too large"));
        }
        let is_container = matches!(
            value,
            Value::Tuple(_) | Value::List(_) | Value::Dict(_) | Value::Call(..)
        );
        let depth = if is_container { inner + 1 } else { inner };
        if depth > MAX_DEPTH {
            return Err(bad(at, "values nested too deep"));
        }
        stack.push((value, depth));
    }
}

/// `('storage', torch.FloatStorage, '<key>', '<device>', numel)` as written by torch.save.
fn storage(pid: &Value) -> Option<Value> {
    let Value::Tuple(items) = pid else {
        return None;
    };
    match items.as_slice() {
        [Value::Str(tag), Value::Global(class), Value::Str(key), ..] if tag == "storage" => {
            Some(Value::Storage {
                class,
                key: key.clone(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_ordered_dict_of_rebuilt_tensors() {
        // OrderedDict([("w", _rebuild_tensor_v2(<storage '0'>, 0, (2,), (1,), False, OrderedDict()))])
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w".to_vec();
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storageq\x03");
        p.extend(b"ctorch\nFloatStorage\nq\x04X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQ");
        p.extend(b"K\x00K\x02\x85K\x01\x85\x89h\x00)Rtq\x05Rq\x06u.");
        let Value::Dict(items) = load(&p).unwrap() else {
            panic!("not a dict")
        };
        assert_eq!(items.len(), 1);
        let (Value::Str(name), Value::Call(f, args)) = &items[0] else {
            panic!("unexpected entry {:?}", items[0])
        };
        assert_eq!(
            (name.as_str(), *f),
            ("w", "torch._utils._rebuild_tensor_v2")
        );
        assert_eq!(
            args[0],
            Value::Storage {
                class: "torch.FloatStorage",
                key: "0".into()
            }
        );
        assert_eq!(args[2], Value::Tuple(Rc::new(vec![Value::Int(2)])));
    }

    #[test]
    fn refuses_globals_outside_the_state_dict() {
        for global in [
            "os\nsystem\n",
            "builtins\neval\n",
            "torch\nload\n",
            "subprocess\nrun\n",
        ] {
            let mut p = b"\x80\x02c".to_vec();
            p.extend(global.as_bytes());
            p.extend(b"X\x02\x00\x00\x00id\x85R.");
            assert!(
                matches!(load(&p), Err(PthError::ForbiddenGlobal { .. })),
                "{global:?}"
            );
        }
    }

    #[test]
    fn long_integers_keep_their_sign() {
        assert_eq!(load(b"\x80\x02\x8a\x01\xff.").unwrap(), Value::Int(-1));
        assert_eq!(load(b"\x80\x02\x8a\x02\x00\x01.").unwrap(), Value::Int(256));
        assert!(load(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.").is_err());
    }
}
