//! Tools a model may call: their definitions and the choice of whether to call one (sent with
//! a request), and the calls a model makes (streamed as fragments, then assembled). Wire
//! shapes per provider: `shared/wire/TOOLS.md` §0.1; OpenAI Chat Completions §1.1–§1.3.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorCode, Result};

/// One tool a model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Its name: 1 to 64 of `a-z A-Z 0-9 _ -` (the rule OpenAI and Anthropic share).
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments (an object schema); `None` takes no arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Ask the provider to hold the arguments to the schema exactly, where it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl ToolSpec {
    /// Checks the name and the schema's shape; the error names the tool.
    pub fn check(&self) -> Result<()> {
        let name_ok = (1..=64).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!(
                    "tool name {:?}: use 1 to 64 letters, digits, `_` or `-`",
                    self.name
                ),
            ));
        }
        if let Some(schema) = &self.parameters
            && !schema.is_object()
        {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!(
                    "tool {:?}: its parameters must be a JSON Schema object",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

/// Whether the model must, may or must not call a tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the default with tools).
    Auto,
    /// No tool call.
    None,
    /// At least one tool call.
    Required,
    /// A call of this tool.
    Named(String),
}

/// The tools of one request: what may be called, and how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tools {
    /// The tools.
    pub specs: Vec<ToolSpec>,
    /// The choice; unset leaves the provider's default (`auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<ToolChoice>,
    /// Whether one answer may call several tools at once; unset leaves the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<bool>,
}

impl Tools {
    /// Checks every tool, that names are unique, and that a named choice names one of them.
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for spec in &self.specs {
            spec.check()?;
            if !seen.insert(spec.name.as_str()) {
                return Err(Error::new(
                    ErrorCode::BadRequest,
                    format!("tool {:?} is defined twice", spec.name),
                ));
            }
        }
        if let Some(ToolChoice::Named(name)) = &self.choice
            && !seen.contains(name.as_str())
        {
            return Err(Error::new(
                ErrorCode::BadRequest,
                format!("tool_choice names {name:?}, which is not among the tools"),
            ));
        }
        Ok(())
    }
}

/// A fragment of a tool call as it streams: the first of a call carries its id and name, the
/// next ones pieces of its arguments' JSON text. Fragments of one call share `index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the answer (0 for the first).
    pub index: u32,
    /// The call's id, on its first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name, on its first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the arguments' JSON text.
    #[serde(default)]
    pub arguments: String,
    /// An opaque token the provider wants back with the call (Gemini's `thoughtSignature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A whole tool call: which tool, with what arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which its result names.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments: a JSON object, or the model's text as a string when it was not valid JSON
    /// (kept as written, so it can be sent back as it came and the tool can say what is wrong).
    pub arguments: Value,
    /// An opaque token the provider wants back with the call (Gemini's `thoughtSignature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Assembles streamed fragments into whole calls, in the order of their `index`.
#[derive(Debug, Default)]
pub struct ToolCallAssembler {
    calls: BTreeMap<u32, Assembling>,
}

#[derive(Debug, Default)]
struct Assembling {
    id: String,
    name: String,
    arguments: String,
    signature: Option<String>,
}

impl ToolCallAssembler {
    /// Adds one fragment.
    pub fn push(&mut self, delta: &ToolCallDelta) {
        let entry = self.calls.entry(delta.index).or_default();
        if let Some(id) = &delta.id {
            entry.id.clone_from(id);
        }
        if let Some(name) = &delta.name {
            entry.name.push_str(name);
        }
        entry.arguments.push_str(&delta.arguments);
        if delta.signature.is_some() {
            entry.signature.clone_from(&delta.signature);
        }
    }

    /// Whether no fragment came.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The whole calls. Arguments `""` are `{}`; text that is not JSON stays a string. A call
    /// without an id gets `call_<index>`.
    pub fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .map(|(index, call)| ToolCall {
                id: if call.id.is_empty() {
                    format!("call_{index}")
                } else {
                    call.id
                },
                name: call.name,
                arguments: parse_arguments(call.arguments),
                signature: call.signature,
            })
            .collect()
    }
}

/// A call's arguments from their JSON text (`""` is `{}`; text that is not JSON is kept).
pub fn parse_arguments(text: String) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// A call's arguments as JSON text, as OpenAI-style APIs take them back.
pub fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fragments_assemble_by_index_whatever_their_order() {
        let mut a = ToolCallAssembler::default();
        for d in [
            ToolCallDelta {
                index: 1,
                id: Some("call_b".into()),
                name: Some("time".into()),
                ..Default::default()
            },
            ToolCallDelta {
                index: 0,
                id: Some("call_a".into()),
                name: Some("weather".into()),
                arguments: "{\"ci".into(),
                ..Default::default()
            },
            ToolCallDelta {
                index: 0,
                arguments: "ty\": \"Edinb".into(),
                ..Default::default()
            },
            ToolCallDelta {
                index: 0,
                arguments: "urgh\"}".into(),
                ..Default::default()
            },
        ] {
            a.push(&d);
        }
        let calls = a.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "call_a");
        assert_eq!(calls[0].arguments, json!({"city": "Edinburgh"}));
        assert_eq!(calls[1].name, "time");
        assert_eq!(calls[1].arguments, json!({}), "empty arguments are {{}}");
    }

    #[test]
    fn arguments_that_are_not_json_are_kept_as_written() {
        let v = parse_arguments("{\"city\": ".into());
        assert_eq!(v, Value::String("{\"city\": ".into()));
        assert_eq!(arguments_text(&v), "{\"city\": ");
        assert_eq!(arguments_text(&json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn names_schemas_duplicates_and_a_named_choice_are_checked() {
        let spec = |name: &str| ToolSpec {
            name: name.into(),
            description: None,
            parameters: Some(json!({"type": "object"})),
            strict: None,
        };
        assert!(spec("get_weather").check().is_ok());
        assert!(spec("get weather").check().is_err());
        assert!(spec(&"x".repeat(65)).check().is_err());
        let mut bad_schema = spec("a");
        bad_schema.parameters = Some(json!("object"));
        assert!(bad_schema.check().is_err());
        let twice = Tools {
            specs: vec![spec("a"), spec("a")],
            ..Tools::default()
        };
        assert!(twice.check().unwrap_err().message().contains("twice"));
        let named = Tools {
            specs: vec![spec("a")],
            choice: Some(ToolChoice::Named("b".into())),
            parallel: None,
        };
        assert!(named.check().unwrap_err().message().contains("\"b\""));
    }
}
