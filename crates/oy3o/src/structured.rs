//! Structured output: a JSON Schema the answer must follow ([`OutputSchema`]), checked when the
//! schema is given and again when the answer arrives.
//!
//! Providers with a native mode receive the schema in their own field (OpenAI
//! `response_format`, Gemini `responseJsonSchema`, Ollama `format`, ...); whatever arrives is
//! validated here with the `jsonschema` crate, so every provider and face gets the same check.
//! Schemas are compiled without remote or file references: a schema never makes the engine
//! fetch anything (<https://json-schema.org/draft/2020-12/json-schema-core>).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};

/// The largest schema accepted, in bytes of its JSON text: a schema travels with every
/// request, so a huge one is a mistake (or an attack on a server).
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;

/// A JSON Schema the answer must follow, with the name providers ask for (OpenAI's
/// `json_schema.name`, the Anthropic tool's name). Build one with [`OutputSchema::new`].
///
/// ```
/// use serde_json::json;
/// let schema = oy3o::structured::OutputSchema::new(
///     "point",
///     json!({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}),
/// ).unwrap();
/// assert_eq!(schema.check_answer("{\"x\": 1}").unwrap(), json!({"x": 1}));
/// let err = schema.check_answer("{\"x\": \"one\"}").unwrap_err();
/// assert!(err.message().contains("/x: \"one\" is not of type \"number\""), "{err}");
///
/// // An invalid schema is refused with what is wrong.
/// let err = oy3o::structured::OutputSchema::new("bad", json!({"type": "nosuch"})).unwrap_err();
/// assert!(err.message().contains("nosuch"), "{err}");
/// ```
#[derive(Clone)]
pub struct OutputSchema {
    /// The schema's name: letters, digits, `_` and `-`, at most 64 (OpenAI's rule, the
    /// strictest of the providers).
    pub name: String,
    /// The JSON Schema itself, as given.
    pub schema: Value,
    /// Whether a provider with a strict mode should enforce the schema while generating
    /// (OpenAI `strict: true`). The answer is validated on arrival either way.
    pub strict: bool,
    validator: Arc<jsonschema::Validator>,
}

impl OutputSchema {
    /// A schema checked against its meta-schema (the draft it names in `$schema`, else
    /// 2020-12); the error names what is wrong and where in the schema. The name defaults to
    /// `answer` when empty. Strict mode is on; see [`OutputSchema::with_strict`].
    pub fn new(name: impl Into<String>, schema: Value) -> Result<Self> {
        let mut name = name.into();
        if name.is_empty() {
            name = "answer".into();
        }
        if name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(format!(
                "the schema name {name:?} must be 1 to 64 letters, digits, '_' or '-'"
            )));
        }
        if !schema.is_object() && !schema.is_boolean() {
            return Err(invalid(
                "the schema must be a JSON object (or true/false), e.g. {\"type\": \"object\", ...}"
                    .to_owned(),
            ));
        }
        let size = serde_json::to_string(&schema).map_or(0, |s| s.len());
        if size > MAX_SCHEMA_BYTES {
            return Err(invalid(format!(
                "the schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}"
            )));
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            return Err(invalid(format!(
                "{e} (at {})",
                pointer(e.instance_path().as_str())
            )));
        }
        let validator = jsonschema::validator_for(&schema).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            name,
            schema,
            strict: true,
            validator: Arc::new(validator),
        })
    }

    /// Reads a schema from JSON text (a file's contents, a request field); `origin` names it
    /// in errors. The name is the schema's `title` when it has a usable one, else `answer`.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let schema: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("{origin} is not JSON: {e}")))?;
        let name = schema
            .get("title")
            .and_then(Value::as_str)
            .map(title_name)
            .unwrap_or_default();
        Self::new(name, schema).map_err(|e| invalid(format!("{origin}: {}", strip(e.message()))))
    }

    /// The same schema with strict mode set as given.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Checks a JSON value against the schema; the error names the first failing path and
    /// why (`/items/0/price: "x" is not of type "number"`).
    pub fn check(&self, value: &Value) -> Result<()> {
        match self.validator.iter_errors(value).next() {
            None => Ok(()),
            Some(e) => Err(Error::new(
                ErrorCode::Provider,
                format!(
                    "the answer does not follow the schema {:?}: {}: {e}",
                    self.name,
                    pointer(e.instance_path().as_str())
                ),
            )),
        }
    }

    /// Parses an answer's text as JSON (a Markdown code fence around it is tolerated) and
    /// checks it against the schema. Returns the parsed value.
    pub fn check_answer(&self, text: &str) -> Result<Value> {
        let body = unfence(text);
        let value: Value = serde_json::from_str(body).map_err(|e| {
            Error::new(
                ErrorCode::Provider,
                format!(
                    "the answer is not JSON as the schema {:?} asks: {e}",
                    self.name
                ),
            )
        })?;
        self.check(&value)?;
        Ok(value)
    }
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSchema")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OutputSchema {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.schema == other.schema && self.strict == other.strict
    }
}

fn invalid(message: String) -> Error {
    Error::new(
        ErrorCode::BadRequest,
        format!("invalid JSON Schema: {message}"),
    )
}

/// The message of an [`invalid`] error without its prefix (to re-prefix it with an origin).
fn strip(message: &str) -> &str {
    message
        .strip_prefix("invalid JSON Schema: ")
        .unwrap_or(message)
}

/// A JSON Pointer for messages: the root is `/`.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// A schema title turned into a usable name (`Price list` -> `Price_list`), at most 64.
fn title_name(title: &str) -> String {
    title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The JSON inside a Markdown code fence (```` ```json ... ``` ````), or the text trimmed.
fn unfence(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```")
        && let Some(body) = rest.strip_suffix("```")
    {
        let body = body.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        return body.trim();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items() -> OutputSchema {
        OutputSchema::new(
            "items",
            json!({
                "type": "object",
                "properties": {"items": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"price": {"type": "number"}},
                    "required": ["price"]
                }}},
                "required": ["items"]
            }),
        )
        .unwrap()
    }

    #[test]
    fn the_first_failing_path_is_named() {
        let err = items()
            .check_answer(r#"{"items": [{"price": "x"}]}"#)
            .unwrap_err();
        assert!(
            err.message()
                .contains("/items/0/price: \"x\" is not of type \"number\""),
            "{err}"
        );
    }

    #[test]
    fn a_fenced_answer_is_read() {
        let v = items()
            .check_answer("```json\n{\"items\": [{\"price\": 2.5}]}\n```")
            .unwrap();
        assert_eq!(v["items"][0]["price"], json!(2.5));
    }

    #[test]
    fn text_that_is_not_json_is_refused() {
        let err = items().check_answer("Sure! Here it is").unwrap_err();
        assert!(err.message().contains("not JSON"), "{err}");
    }

    #[test]
    fn invalid_schemas_and_names_are_refused() {
        let e = OutputSchema::new("x", json!({"type": 3})).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.message().contains("/type"), "{e}");
        assert!(OutputSchema::new("x", json!("string")).is_err());
        assert!(OutputSchema::new("a b", json!({})).is_err());
        assert_eq!(OutputSchema::new("", json!({})).unwrap().name, "answer");
        let e = OutputSchema::parse("{nope", "schema.json").unwrap_err();
        assert!(e.message().contains("schema.json is not JSON"), "{e}");
        let p = OutputSchema::parse(r#"{"title": "Price list", "type": "object"}"#, "f").unwrap();
        assert_eq!(p.name, "Price_list");
    }
}
