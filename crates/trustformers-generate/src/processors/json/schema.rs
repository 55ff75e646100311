//! JSON schemas compiled into a flat table of nodes the automaton walks.

use serde_json::Value;
use trustformers_core::{Error, Result};

use super::MAX_DEPTH;

/// Most properties a schema object may list (their seen-set is a bit mask).
const MAX_PROPERTIES: usize = 64;

/// A schema node, in a flat table.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
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
pub(super) struct Schema {
    pub(super) nodes: Vec<Node>,
    pub(super) root: u32,
}

impl Schema {
    /// A JSON object with anything in it.
    pub(super) fn any_object() -> Self {
        Self {
            nodes: builtin_nodes(),
            root: ANY_OBJECT,
        }
    }

    pub(super) fn compile(schema: &Value) -> Result<Self> {
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

/// The nodes every table starts with: any value, any object, any number, the literals
/// `true`, `false` and `null`, any array. The schema's own root follows them.
pub(super) const ANY: u32 = 0;
pub(super) const ANY_OBJECT: u32 = 1;
pub(super) const ANY_NUMBER: u32 = 2;
pub(super) const ANY_LITERAL: u32 = 3;
pub(super) const ANY_ARRAY: u32 = 4;

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
