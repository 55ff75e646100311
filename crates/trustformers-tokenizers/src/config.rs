//! What transformers keeps next to the tokenizer pipeline: tokenizer_config.json,
//! special_tokens_map.json and added_tokens.json.

use crate::tokenizer::MAX_TOKEN_ID;
use serde_json::Value;
use std::path::Path;
use trustformers_core::config::{json_from_bytes, read_small_file};
use trustformers_core::{Error, Result};

/// Padding or truncation side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    Left,
    #[default]
    Right,
}

/// The named special tokens (as strings).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub pad: Option<String>,
    pub sep: Option<String>,
    pub cls: Option<String>,
    pub mask: Option<String>,
    pub additional: Vec<String>,
}

impl SpecialTokens {
    /// Every named and additional special token.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        [
            &self.bos, &self.eos, &self.unk, &self.pad, &self.sep, &self.cls, &self.mask,
        ]
        .into_iter()
        .flatten()
        .chain(&self.additional)
    }
}

/// transformers-side tokenizer settings.
#[derive(Debug, Clone, Default)]
pub struct TokenizerConfig {
    pub special: SpecialTokens,
    /// Longest input the model takes; `None` when unlimited (transformers' 1e30 sentinel).
    pub model_max_length: Option<usize>,
    pub padding_side: Side,
    pub truncation_side: Side,
    /// Apply transformers' clean-up to decoded WordPiece text (default `false`, as in
    /// transformers 5).
    pub clean_up_tokenization_spaces: bool,
    /// `add_bos_token` / `add_eos_token`, when the config states them.
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    /// The default chat template (Jinja source).
    pub chat_template: Option<String>,
    /// Extra tokens from added_tokens.json / added_tokens_decoder: (content, id, special).
    pub added_tokens: Vec<(String, u32, bool)>,
    /// Strip surrounding whitespace from decoded text (`MarianTokenizer` does).
    pub strip_decoded: bool,
    /// tokenizer_config.json's `tokenizer_class` (`MBartTokenizer`, ...).
    pub tokenizer_class: Option<String>,
}

/// A special token as transformers writes it: a string or an AddedToken dict.
fn token_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn set_special(special: &mut SpecialTokens, obj: &serde_json::Map<String, Value>) -> Result<()> {
    let fields: [(&str, &mut Option<String>); 7] = [
        ("bos_token", &mut special.bos),
        ("eos_token", &mut special.eos),
        ("unk_token", &mut special.unk),
        ("pad_token", &mut special.pad),
        ("sep_token", &mut special.sep),
        ("cls_token", &mut special.cls),
        ("mask_token", &mut special.mask),
    ];
    for (key, slot) in fields {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                *slot = Some(token_string(v).ok_or_else(|| {
                    Error::config(key, "must be a string or an AddedToken object")
                })?)
            }
        }
    }
    for key in ["additional_special_tokens", "extra_special_tokens"] {
        if let Some(Value::Array(items)) = obj.get(key) {
            for t in items.iter().filter_map(token_string) {
                if !special.additional.contains(&t) {
                    special.additional.push(t);
                }
            }
        }
    }
    Ok(())
}

fn side(v: Option<&Value>, field: &str) -> Result<Side> {
    match v.and_then(Value::as_str) {
        None => Ok(Side::Right),
        Some("right") => Ok(Side::Right),
        Some("left") => Ok(Side::Left),
        Some(other) => Err(Error::config(
            field,
            format!("must be \"left\" or \"right\", got \"{other}\""),
        )),
    }
}

/// The chat template of a tokenizer_config.json: a string, or a list of named templates of
/// which `default` is used.
fn chat_template(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

impl TokenizerConfig {
    /// Reads the config files in `dir` that exist.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_files(dir, &|name| {
            let path = dir.join(name);
            match path.is_file() {
                true => Ok(Some(read_small_file(&path)?)),
                false => Ok(None),
            }
        })
    }

    /// Reads the config files `read` has (`read(name)`: the bytes of file `name`, `None`
    /// when there is none): tokenizer_config.json, special_tokens_map.json,
    /// added_tokens.json and chat_template.jinja. `dir` names the files in messages.
    pub fn from_files(dir: &Path, read: &dyn Fn(&str) -> Result<Option<Vec<u8>>>) -> Result<Self> {
        let json = |name: &str| -> Result<Option<(std::path::PathBuf, Value)>> {
            let path = dir.join(name);
            match read(name)? {
                Some(bytes) => Ok(Some((path.clone(), json_from_bytes(&path, &bytes)?))),
                None => Ok(None),
            }
        };
        let mut config = Self::default();
        if let Some((_, json)) = json("tokenizer_config.json")? {
            config.apply_tokenizer_config(&json)?;
        }
        if let Some((_, Value::Object(obj))) = json("special_tokens_map.json")? {
            set_special(&mut config.special, &obj)?;
        }
        if let Some((path, json)) = json("added_tokens.json")? {
            let Value::Object(obj) = json else {
                return Err(Error::Json {
                    path,
                    reason: "must map token strings to ids".into(),
                });
            };
            for (token, id) in obj {
                let id = id
                    .as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .filter(|&i| i < MAX_TOKEN_ID)
                    .ok_or_else(|| Error::Json {
                        path: path.clone(),
                        reason: format!("id of `{token}` is not a token id"),
                    })?;
                if !config.added_tokens.iter().any(|(t, _, _)| *t == token) {
                    config.added_tokens.push((token, id, false));
                }
            }
        }
        if let Some(bytes) = read("chat_template.jinja")? {
            let text = String::from_utf8(bytes).map_err(|_| Error::Json {
                path: dir.join("chat_template.jinja"),
                reason: "not valid UTF-8".into(),
            })?;
            config.chat_template = Some(text);
        } else if config.chat_template.is_none() {
            // A processor's template as older multimodal checkpoints save it.
            if let Some(bytes) = read("chat_template.json")? {
                let path = dir.join("chat_template.json");
                let json = trustformers_core::config::json_from_bytes(&path, &bytes)?;
                let template = json.get("chat_template").and_then(|t| t.as_str());
                config.chat_template = Some(
                    template
                        .ok_or_else(|| Error::Json {
                            path,
                            reason: "`chat_template` must be a string".into(),
                        })?
                        .to_string(),
                );
            }
        }
        Ok(config)
    }

    /// Applies the fields of a tokenizer_config.json.
    pub fn apply_tokenizer_config(&mut self, json: &Value) -> Result<()> {
        let obj = json
            .as_object()
            .ok_or_else(|| Error::config("tokenizer_config", "must be a JSON object"))?;
        set_special(&mut self.special, obj)?;
        if let Some(class) = obj.get("tokenizer_class").and_then(Value::as_str) {
            self.tokenizer_class = Some(class.to_owned());
        }
        match obj.get("model_max_length") {
            None | Some(Value::Null) => {}
            // transformers writes int(1e30) for "no limit".
            Some(n) => match (n.as_u64(), n.as_f64()) {
                (Some(n), _) if n > 0 && n < 1 << 40 => self.model_max_length = Some(n as usize),
                (_, Some(f)) if f >= (1u64 << 40) as f64 => self.model_max_length = None,
                _ => {
                    return Err(Error::config(
                        "model_max_length",
                        format!("must be a positive integer, got {n}"),
                    ))
                }
            },
        }
        self.padding_side = side(obj.get("padding_side"), "padding_side")?;
        self.truncation_side = side(obj.get("truncation_side"), "truncation_side")?;
        if let Some(b) = obj
            .get("clean_up_tokenization_spaces")
            .and_then(Value::as_bool)
        {
            self.clean_up_tokenization_spaces = b;
        }
        self.add_bos_token = obj.get("add_bos_token").and_then(Value::as_bool);
        self.add_eos_token = obj.get("add_eos_token").and_then(Value::as_bool);
        match obj.get("chat_template") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let template = chat_template(v).ok_or_else(|| {
                    Error::config(
                        "chat_template",
                        "must be a string or a list of named templates with a `default`",
                    )
                })?;
                if self.chat_template.is_none() {
                    self.chat_template = Some(template);
                }
            }
        }
        if let Some(Value::Object(decoder)) = obj.get("added_tokens_decoder") {
            for (id, token) in decoder {
                let (Some(id), Some(content)) = (
                    id.parse::<u32>().ok().filter(|&i| i < MAX_TOKEN_ID),
                    token_string(token),
                ) else {
                    return Err(Error::config(
                        "added_tokens_decoder",
                        format!(
                            "entry `{id}` is not a token id (below {MAX_TOKEN_ID}) with a token"
                        ),
                    ));
                };
                let special = token
                    .get("special")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.added_tokens.push((content, id, special));
            }
        }
        Ok(())
    }
}
