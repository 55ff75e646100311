//! config.json mutants of the tiny LLaMA checkpoint (its safetensors weights unchanged).

use super::{fixture, load_dir_f32 as load, Case, Expect};
use crate::expect;
use serde_json::{json, Value};
use trustformers::Error;

fn case_bytes(name: &str, config: Vec<u8>, expect: Expect) -> Case {
    Case::dir(
        "config.json",
        name,
        vec![
            ("config.json", config),
            ("model.safetensors", fixture("llama/model.safetensors")),
        ],
        load,
        expect,
    )
}

fn case(name: &str, edit: impl FnOnce(&mut Value), expect: Expect) -> Case {
    let mut config: Value = serde_json::from_slice(&fixture("llama/config.json")).unwrap();
    edit(&mut config);
    case_bytes(name, serde_json::to_vec(&config).unwrap(), expect)
}

fn field(name: &'static str, value: Value, expect: Expect) -> Case {
    case(
        &format!("{name} = {value}"),
        |c| c[name] = value.clone(),
        expect,
    )
}

pub fn cases() -> Vec<Case> {
    let text = String::from_utf8(fixture("llama/config.json")).unwrap();
    vec![
        field("hidden_size", json!(0), expect!(Error::Config { .. })),
        field("hidden_size", json!(-32), expect!(Error::Config { .. })),
        field(
            "hidden_size",
            json!(1u64 << 40),
            expect!(Error::Config { .. }),
        ),
        field("hidden_size", json!("32"), expect!(Error::Config { .. })),
        field("hidden_size", json!(32.5), expect!(Error::Config { .. })),
        field(
            "num_attention_heads",
            json!(0),
            expect!(Error::Config { .. }),
        ),
        case(
            "heads do not divide hidden_size",
            |c| {
                c.as_object_mut().unwrap().remove("head_dim");
                c["num_attention_heads"] = json!(5);
            },
            expect!(Error::Config { .. }),
        ),
        field(
            "num_key_value_heads",
            json!(3),
            expect!(Error::Config { .. }),
        ),
        field(
            "num_key_value_heads",
            json!(0),
            expect!(Error::Config { .. }),
        ),
        field(
            "intermediate_size",
            json!(u64::MAX),
            expect!(Error::Config { .. }),
        ),
        field(
            "max_position_embeddings",
            json!(1u64 << 60),
            expect!(Error::Config { .. }),
        ),
        field(
            "vocab_size",
            json!(100),
            expect!(Error::ShapeMismatch { .. }),
        ),
        field(
            "num_hidden_layers",
            json!(3),
            expect!(Error::MissingTensor { .. }),
        ),
        field(
            "num_hidden_layers",
            json!(1),
            expect!(Error::UnusedTensors { .. }),
        ),
        field(
            "num_hidden_layers",
            json!(1_000_000),
            expect!(Error::Config { .. }),
        ),
        field("rms_norm_eps", json!(-1.0), expect!(Error::Config { .. })),
        field("hidden_act", json!("bogus"), expect!(Error::Config { .. })),
        field(
            "model_type",
            json!("bogus"),
            expect!(Error::UnknownModelType { .. }),
        ),
        field("model_type", json!(7), expect!(Error::Config { .. })),
        case(
            "no model_type",
            |c| {
                c.as_object_mut().unwrap().remove("model_type");
            },
            expect!(Error::Config { .. }),
        ),
        case(
            "rope_theta negative",
            |c| c["rope_parameters"]["rope_theta"] = json!(-10000.0),
            expect!(Error::Config { .. }),
        ),
        case(
            "unknown rope type",
            |c| c["rope_parameters"]["rope_type"] = json!("bogus"),
            expect!(Error::Config { .. }),
        ),
        case(
            "rope factor 0",
            |c| c["rope_parameters"]["factor"] = json!(0.0),
            expect!(Error::Config { .. }),
        ),
        case(
            "rope_parameters a string",
            |c| c["rope_parameters"] = json!("llama3"),
            expect!(Error::Config { .. }),
        ),
        case_bytes(
            // Python's bare NaN is read (as transformers writes it), and the field refuses
            // it by name.
            "rope_theta NaN",
            text.replace("10000.0", "NaN").into_bytes(),
            expect!(Error::Config { .. }),
        ),
        case_bytes(
            "rope_theta -Infinity",
            text.replace("10000.0", "-Infinity").into_bytes(),
            expect!(Error::Config { .. }),
        ),
        case_bytes(
            "bare Infinity where an object belongs",
            text.replace("{", "Infinity").into_bytes(),
            expect!(Error::Json { .. }),
        ),
        case_bytes(
            "rope_theta 1e309",
            text.replace("10000.0", "1e309").into_bytes(),
            expect!(Error::Json { .. }),
        ),
        case_bytes(
            "config is an array",
            b"[1, 2]".to_vec(),
            expect!(Error::Config { .. }),
        ),
        case_bytes(
            "config not UTF-8",
            b"{\"model_type\": \"ll\xffama\"}".to_vec(),
            expect!(Error::Json { .. }),
        ),
        case_bytes(
            "config truncated",
            text.as_bytes()[..text.len() / 2].to_vec(),
            expect!(Error::Json { .. }),
        ),
        case_bytes(
            "config nested 100,000 deep",
            [b'['; 100_000].to_vec(),
            expect!(Error::Json { .. }),
        ),
    ]
}
