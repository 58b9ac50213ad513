//! Grammars that hold generation to a shape: JSON that matches a JSON Schema, or a tool call in
//! the Hermes/Qwen `<tool_call>` form. Written in GBNF, llama.cpp's grammar notation
//! (<https://github.com/ggml-org/llama.cpp/blob/master/grammars/README.md>), and applied by its
//! grammar sampler.
//!
//! The converter covers the JSON Schema keywords structured output uses (the subset OpenAI's
//! strict mode accepts, and more): `type` (one or a list), `properties`, `required`,
//! `additionalProperties`, `items`, `minItems`, `maxItems`, `enum`, `const`, `anyOf`, `oneOf`,
//! `$ref` into `$defs` / `definitions`, `nullable`, `minLength` / `maxLength`, and `minimum: 0`
//! on numbers. Annotations (`title`, `description`, `default`, `examples`, `$schema`, `$id`,
//! `$comment`) are ignored. Any other keyword is an error naming it and where it is, since
//! output that ignored it could break the schema.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::chat::ToolDefinition;
use crate::error::LlamaError;

/// A GBNF grammar whose start rule is `root`.
///
/// ```
/// use serde_json::json;
/// let g = oy3o_llama::Grammar::json_schema(&json!({"type": "boolean"})).unwrap();
/// assert!(g.as_str().starts_with("root ::= "));
/// let err = oy3o_llama::Grammar::json_schema(&json!({"type": "string", "pattern": "a+"})).unwrap_err();
/// assert!(err.to_string().contains("pattern"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grammar {
    text: String,
}

impl Grammar {
    /// A grammar from GBNF text (its start rule must be `root`); checked when it is used.
    pub fn gbnf(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// The grammar of JSON values valid against `schema`.
    ///
    /// # Errors
    /// [`LlamaError::Schema`] naming a keyword this converter does not support, or a part of
    /// the schema that is not valid JSON Schema.
    pub fn json_schema(schema: &Value) -> Result<Self, LlamaError> {
        let mut c = Converter::new(schema);
        let root = c.visit(schema, "json", "#")?;
        Ok(Self {
            text: c.finish(&root),
        })
    }

    /// The grammar of one tool call as Hermes/Qwen templates ask for it:
    /// `<tool_call>\n{"name": NAME, "arguments": ARGS}\n</tool_call>`, where the arguments
    /// match that tool's parameter schema. `only` picks one tool (a named `tool_choice`);
    /// otherwise any of `tools`.
    ///
    /// # Errors
    /// As [`Grammar::json_schema`] for a tool's parameters; [`LlamaError::Schema`] when no tool
    /// is left to call.
    pub fn tool_call(tools: &[ToolDefinition], only: Option<&str>) -> Result<Self, LlamaError> {
        let chosen: Vec<&ToolDefinition> = tools
            .iter()
            .filter(|t| only.is_none_or(|name| t.name == name))
            .collect();
        if chosen.is_empty() {
            return Err(schema_error(
                "tool_choice",
                &match only {
                    Some(name) => format!("no tool named {name:?} to call"),
                    None => "no tool to call".into(),
                },
            ));
        }
        let mut c = Converter::new(&Value::Null);
        let mut calls = Vec::new();
        for tool in chosen {
            let rule = format!("args-{}", rule_name(&tool.name));
            let empty = Value::Object(Default::default());
            let parameters = tool.parameters.as_ref().unwrap_or(&empty);
            c.root = parameters.clone();
            let args = c.visit(parameters, &rule, &format!("tool {:?}", tool.name))?;
            let head = format!("{{\"name\": \"{}\", \"arguments\": ", tool.name);
            calls.push(format!(
                "{} {args} {}",
                literal(&format!("<tool_call>\n{head}")),
                literal("}\n</tool_call>")
            ));
        }
        Ok(Self {
            text: c.finish(&calls.join(" | ")),
        })
    }

    /// The GBNF text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Keywords that only describe; they do not limit what is valid.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Shared rules, added when used.
const SPACE: &str = "| \" \"";
const VALUE_RULES: &[(&str, &str)] = &[
    ("boolean", "(\"true\" | \"false\") space"),
    ("null", "\"null\" space"),
    ("integer", "(\"-\"? integral-part) space"),
    (
        "number",
        "(\"-\"? integral-part) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? space",
    ),
    ("integral-part", "[0] | [1-9] [0-9]{0,15}"),
    (
        "char",
        "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})",
    ),
    ("string", "\"\\\"\" char* \"\\\"\" space"),
    ("value", "object | array | string | number | boolean | null"),
    (
        "object",
        "\"{\" space ( string \":\" space value (\",\" space string \":\" space value)* )? \"}\" space",
    ),
    (
        "array",
        "\"[\" space ( value (\",\" space value)* )? \"]\" space",
    ),
];

/// What each shared rule uses, so that using one adds the others.
fn needs(rule: &str) -> &'static [&'static str] {
    match rule {
        "integer" | "number" => &["integral-part"],
        "string" => &["char"],
        "value" => &["object", "array", "string", "number", "boolean", "null"],
        "object" => &["string", "value"],
        "array" => &["value"],
        _ => &[],
    }
}

struct Converter {
    /// The schema `$ref`s point into.
    root: Value,
    /// Rules by name, in the order they were made.
    rules: BTreeMap<String, String>,
    order: Vec<String>,
    /// Shared rules in use.
    shared: HashSet<&'static str>,
    /// `$ref`s whose rule is made or being made.
    refs: HashSet<String>,
}

impl Converter {
    fn new(root: &Value) -> Self {
        Self {
            root: root.clone(),
            rules: BTreeMap::new(),
            order: Vec::new(),
            shared: HashSet::new(),
            refs: HashSet::new(),
        }
    }

    /// The grammar text: `root`, the rules made, then the shared rules used.
    fn finish(mut self, root: &str) -> String {
        let mut out = format!("root ::= {root}\n");
        for name in &self.order {
            if name != "root" {
                let _ = writeln!(out, "{name} ::= {}", self.rules[name]);
            }
        }
        self.use_shared("space");
        let mut shared: Vec<&str> = self.shared.iter().copied().collect();
        shared.sort_unstable();
        for name in shared {
            let body = if name == "space" {
                SPACE
            } else {
                VALUE_RULES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or("", |(_, b)| b)
            };
            let _ = writeln!(out, "{name} ::= {body}");
        }
        out
    }

    fn use_shared(&mut self, name: &str) -> String {
        if let Some((n, _)) = VALUE_RULES.iter().find(|(n, _)| *n == name) {
            if self.shared.insert(n) {
                for dep in needs(n) {
                    self.use_shared(dep);
                }
            }
        } else if name == "space" {
            self.shared.insert("space");
        }
        name.to_owned()
    }

    /// Adds a rule named after `hint` (made unique) and returns its name.
    fn add_rule(&mut self, hint: &str, body: String) -> String {
        let base = rule_name(hint);
        let mut name = base.clone();
        let mut n = 1;
        while self.rules.contains_key(&name) || VALUE_RULES.iter().any(|(r, _)| *r == name) {
            n += 1;
            name = format!("{base}{n}");
        }
        self.rules.insert(name.clone(), body);
        self.order.push(name.clone());
        name
    }

    /// The GBNF expression for values valid against `schema`; `path` names it in errors.
    fn visit(&mut self, schema: &Value, hint: &str, path: &str) -> Result<String, LlamaError> {
        let map = match schema {
            Value::Bool(true) => return Ok(self.use_shared("value")),
            Value::Bool(false) => {
                return Err(schema_error(path, "the schema `false` allows no value"));
            }
            Value::Object(map) => map,
            _ => {
                return Err(schema_error(
                    path,
                    "a schema must be an object or a boolean",
                ));
            }
        };
        for key in map.keys() {
            if !ANNOTATIONS.contains(&key.as_str()) && !SUPPORTED.contains(&key.as_str()) {
                return Err(schema_error(
                    path,
                    &format!(
                        "the keyword `{key}` is not supported for grammar-constrained output on \
                         local models; leave it out"
                    ),
                ));
            }
        }
        let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
        let expr = self.visit_inner(map, hint, path)?;
        Ok(if nullable {
            format!("({expr} | {})", self.use_shared("null"))
        } else {
            expr
        })
    }

    fn visit_inner(
        &mut self,
        map: &serde_json::Map<String, Value>,
        hint: &str,
        path: &str,
    ) -> Result<String, LlamaError> {
        if let Some(reference) = map.get("$ref") {
            return self.visit_ref(reference, path);
        }
        if let Some(value) = map.get("const") {
            return Ok(format!("{} space", literal(&value.to_string())));
        }
        if let Some(values) = map.get("enum") {
            let values = values
                .as_array()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| schema_error(path, "`enum` must be a non-empty array"))?;
            let alternatives: Vec<String> =
                values.iter().map(|v| literal(&v.to_string())).collect();
            self.use_shared("space");
            return Ok(format!("({}) space", alternatives.join(" | ")));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = map.get(key) {
                let options = options
                    .as_array()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        schema_error(path, &format!("`{key}` must be a non-empty array"))
                    })?;
                let mut alternatives = Vec::new();
                for (i, option) in options.iter().enumerate() {
                    alternatives.push(self.visit(
                        option,
                        &format!("{hint}-{i}"),
                        &format!("{path}/{key}/{i}"),
                    )?);
                }
                return Ok(format!("({})", alternatives.join(" | ")));
            }
        }
        match map.get("type") {
            Some(Value::String(t)) => self.visit_type(t, map, hint, path),
            Some(Value::Array(types)) => {
                let mut alternatives = Vec::new();
                for t in types {
                    let t = t
                        .as_str()
                        .ok_or_else(|| schema_error(path, "`type` must name JSON types"))?;
                    alternatives.push(self.visit_type(t, map, &format!("{hint}-{t}"), path)?);
                }
                if alternatives.is_empty() {
                    return Err(schema_error(path, "`type` is an empty list"));
                }
                Ok(format!("({})", alternatives.join(" | ")))
            }
            Some(_) => Err(schema_error(path, "`type` must be a string or a list")),
            None if map.contains_key("properties") => self.visit_type("object", map, hint, path),
            None if map.contains_key("items") => self.visit_type("array", map, hint, path),
            None => Ok(self.use_shared("value")),
        }
    }

    fn visit_ref(&mut self, reference: &Value, path: &str) -> Result<String, LlamaError> {
        let reference = reference
            .as_str()
            .ok_or_else(|| schema_error(path, "`$ref` must be a string"))?;
        let (section, name) = reference
            .strip_prefix("#/$defs/")
            .map(|n| ("$defs", n))
            .or_else(|| {
                reference
                    .strip_prefix("#/definitions/")
                    .map(|n| ("definitions", n))
            })
            .ok_or_else(|| {
                schema_error(
                    path,
                    &format!(
                        "`$ref` {reference:?}: only references into `#/$defs/` or \
                         `#/definitions/` are supported"
                    ),
                )
            })?;
        let rule = format!("ref-{}", rule_name(name));
        if self.refs.insert(reference.to_owned()) {
            let target = self
                .root
                .get(section)
                .and_then(|d| d.get(name))
                .cloned()
                .ok_or_else(|| {
                    schema_error(path, &format!("`$ref` {reference:?} points at nothing"))
                })?;
            // Reserve the name first: the definition may refer to itself.
            self.rules.insert(rule.clone(), String::new());
            self.order.push(rule.clone());
            let body = self.visit(&target, &rule, reference)?;
            self.rules.insert(rule.clone(), body);
        }
        Ok(rule)
    }

    fn visit_type(
        &mut self,
        t: &str,
        map: &serde_json::Map<String, Value>,
        hint: &str,
        path: &str,
    ) -> Result<String, LlamaError> {
        match t {
            "boolean" | "null" => Ok(self.use_shared(t)),
            "integer" | "number" => {
                for key in [
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "multipleOf",
                ] {
                    if map.contains_key(key) {
                        return Err(unsupported(path, key));
                    }
                }
                match map.get("minimum").map(Value::as_f64) {
                    None => Ok(self.use_shared(t)),
                    Some(Some(0.0)) => {
                        self.use_shared(t);
                        // The same as the shared rule, without the minus sign.
                        Ok(if t == "integer" {
                            "integral-part space".into()
                        } else {
                            "integral-part (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})? space"
                                .into()
                        })
                    }
                    Some(_) => Err(schema_error(
                        path,
                        "the keyword `minimum` is supported only as `minimum: 0` for \
                         grammar-constrained output on local models",
                    )),
                }
            }
            "string" => {
                let min = count_keyword(map, "minLength", path)?;
                let max = count_keyword(map, "maxLength", path)?;
                self.use_shared("string");
                if min.is_none() && max.is_none() {
                    return Ok("string".into());
                }
                Ok(format!(
                    "\"\\\"\" char{} \"\\\"\" space",
                    repeat(min.unwrap_or(0), max)
                ))
            }
            "array" => self.visit_array(map, hint, path),
            "object" => self.visit_object(map, hint, path),
            other => Err(schema_error(path, &format!("unknown type {other:?}"))),
        }
    }

    fn visit_array(
        &mut self,
        map: &serde_json::Map<String, Value>,
        hint: &str,
        path: &str,
    ) -> Result<String, LlamaError> {
        let item = match map.get("items") {
            Some(items) => self.visit(items, &format!("{hint}-item"), &format!("{path}/items"))?,
            None => self.use_shared("value"),
        };
        let min = count_keyword(map, "minItems", path)?.unwrap_or(0);
        let max = count_keyword(map, "maxItems", path)?;
        if max.is_some_and(|max| max < min) {
            return Err(schema_error(path, "`maxItems` is below `minItems`"));
        }
        self.use_shared("space");
        let body = match (min, max) {
            (_, Some(0)) => String::new(),
            (0, max) => format!(
                "( {item} (\",\" space {item}){} )?",
                repeat(0, max.map(|m| m - 1))
            ),
            (min, max) => format!(
                "{item} (\",\" space {item}){}",
                repeat(min - 1, max.map(|m| m - 1))
            ),
        };
        let rule = self.add_rule(hint, format!("\"[\" space {body} \"]\" space"));
        Ok(rule)
    }

    fn visit_object(
        &mut self,
        map: &serde_json::Map<String, Value>,
        hint: &str,
        path: &str,
    ) -> Result<String, LlamaError> {
        let empty = serde_json::Map::new();
        let properties = match map.get("properties") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(schema_error(path, "`properties` must be an object")),
            None => &empty,
        };
        let required: Vec<&str> = match map.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(schema_error(path, "`required` must be a list of names")),
            None => Vec::new(),
        };
        for name in &required {
            if !properties.contains_key(*name) {
                return Err(schema_error(
                    path,
                    &format!("`required` names {name:?}, which is not among the `properties`"),
                ));
            }
        }
        self.use_shared("space");
        if properties.is_empty() {
            // No named properties: any object, or one whose values match
            // `additionalProperties`.
            let body = match map.get("additionalProperties") {
                None | Some(Value::Bool(true)) => return Ok(self.use_shared("object")),
                Some(Value::Bool(false)) => "\"{\" space \"}\" space".to_owned(),
                Some(schema) => {
                    let value = self.visit(
                        schema,
                        &format!("{hint}-value"),
                        &format!("{path}/additionalProperties"),
                    )?;
                    let key = self.use_shared("string");
                    format!(
                        "\"{{\" space ( {key} \":\" space {value} (\",\" space {key} \":\" space \
                         {value})* )? \"}}\" space"
                    )
                }
            };
            return Ok(self.add_rule(hint, body));
        }
        // Named properties come in the schema's order, each once; other keys are not
        // generated (valid whatever `additionalProperties` says).
        let mut pairs = Vec::new();
        for (name, schema) in properties {
            let value = self.visit(
                schema,
                &format!("{hint}-{name}"),
                &format!("{path}/properties/{name}"),
            )?;
            let pair = format!(
                "{} space \":\" space {value}",
                literal(&Value::from(name.as_str()).to_string())
            );
            pairs.push((
                required.contains(&name.as_str()),
                self.add_rule(&format!("{hint}-{name}-kv"), pair),
            ));
        }
        let must: Vec<&String> = pairs.iter().filter(|(r, _)| *r).map(|(_, p)| p).collect();
        let may: Vec<&String> = pairs.iter().filter(|(r, _)| !*r).map(|(_, p)| p).collect();
        let optional_after = |from: usize| -> String {
            may[from..]
                .iter()
                .map(|p| format!(" (\",\" space {p})?"))
                .collect()
        };
        let inner = if must.is_empty() {
            // Any subset of the optional ones, in order: pick the first, then any of the rest.
            let firsts: Vec<String> = (0..may.len())
                .map(|i| format!("{}{}", may[i], optional_after(i + 1)))
                .collect();
            format!("( {} )?", firsts.join(" | "))
        } else {
            let joined: Vec<String> = must.iter().map(|p| p.to_string()).collect();
            format!("{}{}", joined.join(" \",\" space "), optional_after(0))
        };
        Ok(self.add_rule(hint, format!("\"{{\" space {inner} \"}}\" space")))
    }
}

/// Keywords the converter understands (besides [`ANNOTATIONS`]).
const SUPPORTED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "$ref",
    "nullable",
    "minLength",
    "maxLength",
    "minimum",
    // Checked where they apply, so the error can say which.
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];

/// `{min,max}` (or `*`, `+`, `{min,}`) for a repetition.
fn repeat(min: u64, max: Option<u64>) -> String {
    match (min, max) {
        (0, None) => "*".into(),
        (1, None) => "+".into(),
        (min, None) => format!("{{{min},}}"),
        (min, Some(max)) => format!("{{{min},{max}}}"),
    }
}

fn count_keyword(
    map: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u64>, LlamaError> {
    match map.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| schema_error(path, &format!("`{key}` must be a whole number"))),
    }
}

/// A GBNF rule name from any text: letters, digits and `-`.
fn rule_name(hint: &str) -> String {
    let name: String = hint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if name.is_empty() { "r".into() } else { name }
}

/// `text` as a GBNF string literal.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn unsupported(path: &str, key: &str) -> LlamaError {
    schema_error(
        path,
        &format!(
            "the keyword `{key}` is not supported for grammar-constrained output on local \
             models; leave it out"
        ),
    )
}

fn schema_error(path: &str, message: &str) -> LlamaError {
    LlamaError::Schema(format!("at {path}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_lists_required_properties_in_order_and_optional_ones_after() {
        let g = Grammar::json_schema(&json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}},
            "required": ["a", "c"],
        }))
        .unwrap();
        let text = g.as_str();
        assert!(text.starts_with("root ::= json\n"), "{text}");
        assert!(text.contains("json ::= \"{\" space json-a-kv \",\" space json-c-kv (\",\" space json-b-kv)? \"}\" space"), "{text}");
        assert!(
            text.contains("json-a-kv ::= \"\\\"a\\\"\" space \":\" space string"),
            "{text}"
        );
    }

    #[test]
    fn unsupported_keywords_and_bad_refs_are_errors_naming_them() {
        let e = Grammar::json_schema(
            &json!({"type": "object", "properties": {"x": {"type": "string", "format": "date"}}}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`format`") && e.contains("#/properties/x"),
            "{e}"
        );
        let e = Grammar::json_schema(&json!({"allOf": []}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`allOf`"), "{e}");
        let e = Grammar::json_schema(&json!({"$ref": "#/$defs/nope"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("points at nothing"), "{e}");
        let e = Grammar::json_schema(&json!({"type": "integer", "minimum": 3}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`minimum`"), "{e}");
    }

    #[test]
    fn refs_enums_arrays_and_nullable_types_become_rules() {
        let g = Grammar::json_schema(&json!({
            "$defs": {"node": {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}}},
            "type": "object",
            "properties": {
                "head": {"$ref": "#/$defs/node"},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 3},
                "note": {"type": ["string", "null"]},
            },
            "required": ["head", "tags", "note"],
        }))
        .unwrap();
        let text = g.as_str();
        assert!(text.contains("ref-node ::= "), "{text}");
        assert!(text.contains("(\"\\\"a\\\"\" | \"\\\"b\\\"\") space (\",\" space (\"\\\"a\\\"\" | \"\\\"b\\\"\") space){0,2}"), "{text}");
        assert!(text.contains("(string | null)"), "{text}");
    }

    #[test]
    fn a_tool_call_grammar_names_the_tool_and_its_arguments() {
        let tools = [ToolDefinition {
            name: "get_weather".into(),
            description: None,
            parameters: Some(
                json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            ),
        }];
        let g = Grammar::tool_call(&tools, None).unwrap();
        assert!(g.as_str().starts_with("root ::= \"<tool_call>\\n{\\\"name\\\": \\\"get_weather\\\", \\\"arguments\\\": \" args-get-weather \"}\\n</tool_call>\""), "{}", g.as_str());
        assert!(Grammar::tool_call(&tools, Some("nope")).is_err());
    }
}
