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
    assert!(c.accepts(r#"{"age": -3, "name": "", "tags": ["bc", "a"], "ok": false, "pi": 2.5}"#));
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
                padding: 0,
                source: &[],
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
