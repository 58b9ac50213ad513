//! Renders a conversation into a prompt with the model's own Jinja chat template.
//!
//! The template is the GGUF's `tokenizer.chat_template` string, rendered with minijinja configured
//! like Hugging Face's renderer (`trim_blocks`, `lstrip_blocks`, loop controls, Python string
//! methods, `raise_exception`). llama.cpp's built-in `apply_chat_template` is not used: it matches
//! templates by pattern instead of rendering them and drops parts such as SmolLM2's default
//! system prompt.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

use crate::chat::{ChatMessage, ToolDefinition};
use crate::error::LlamaError;

/// ChatML, used when a model file carries no chat template (llama.cpp does the same).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const NAME: &str = "chat_template";

/// A compiled chat template.
///
/// ```
/// use oy3o_llama::{ChatMessage, ChatTemplate, CHATML_TEMPLATE};
/// let template = ChatTemplate::new(CHATML_TEMPLATE).unwrap();
/// let prompt = template.render(&[ChatMessage::user("Hi")], "", "").unwrap();
/// assert_eq!(prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
/// ```
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template.
    ///
    /// # Errors
    /// [`LlamaError::Template`] when the template does not parse.
    pub fn new(source: &str) -> Result<Self, LlamaError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(template_error)?;
        Ok(Self { env })
    }

    /// Renders `messages` followed by the opening of the assistant's turn.
    ///
    /// # Errors
    /// [`LlamaError::Template`] when rendering fails (for example the template raises on an
    /// unsupported role order).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, LlamaError> {
        self.render_with_tools(messages, &[], bos_token, eos_token)
    }

    /// Renders `messages`, and `tools` (when there are any) as Hugging Face's
    /// `apply_chat_template(messages, tools=...)` and llama.cpp pass them: a `tools` list of
    /// `{"type": "function", "function": {"name", "description", "parameters"}}`, assistant
    /// messages with `tool_calls` (`{"id", "type": "function", "function": {"name",
    /// "arguments"}}`), and `tool` messages with `tool_call_id` and `name`
    /// (<https://huggingface.co/docs/transformers/main/en/chat_templating_writing#tools>).
    ///
    /// # Errors
    /// As [`ChatTemplate::render`].
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolDefinition],
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, LlamaError> {
        let messages: Vec<Value> = messages.iter().map(message_value).collect();
        let tools: Option<Vec<Value>> =
            (!tools.is_empty()).then(|| tools.iter().map(tool_value).collect());
        let ctx = minijinja::context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => bos_token,
            eos_token => eos_token,
        };
        self.env
            .get_template(NAME)
            .and_then(|t| t.render(ctx))
            .map_err(template_error)
    }

    /// Whether the template shows tools: it reads the `tools` variable (as Qwen2.5's, Llama
    /// 3.1's and Hermes' templates do; SmolLM2's does not).
    pub fn takes_tools(&self) -> bool {
        self.env
            .get_template(NAME)
            .is_ok_and(|t| t.undeclared_variables(false).contains("tools"))
    }
}

/// A message as templates read it; keys a message does not have are left out (undefined).
fn message_value(m: &ChatMessage) -> Value {
    let mut fields: Vec<(&str, Value)> = vec![
        ("role", Value::from(m.role.as_str())),
        ("content", Value::from(m.content.as_str())),
    ];
    if !m.tool_calls.is_empty() {
        let calls: Vec<Value> = m
            .tool_calls
            .iter()
            .map(|c| {
                Value::from_pairs([
                    ("id", Value::from(c.id.as_str())),
                    ("type", Value::from("function")),
                    (
                        "function",
                        Value::from_pairs([
                            ("name", Value::from(c.name.as_str())),
                            ("arguments", json_value(&c.arguments)),
                        ]),
                    ),
                ])
            })
            .collect();
        fields.push(("tool_calls", Value::from(calls)));
    }
    if let Some(id) = &m.tool_call_id {
        fields.push(("tool_call_id", Value::from(id.as_str())));
    }
    if let Some(name) = &m.name {
        fields.push(("name", Value::from(name.as_str())));
    }
    Value::from_pairs(fields)
}

fn tool_value(t: &ToolDefinition) -> Value {
    let mut function: Vec<(&str, Value)> = vec![("name", Value::from(t.name.as_str()))];
    if let Some(d) = &t.description {
        function.push(("description", Value::from(d.as_str())));
    }
    let no_arguments = serde_json::json!({"type": "object", "properties": {}});
    function.push((
        "parameters",
        json_value(t.parameters.as_ref().unwrap_or(&no_arguments)),
    ));
    Value::from_pairs([
        ("type", Value::from("function")),
        ("function", Value::from_pairs(function)),
    ])
}

/// A JSON value as a template value (keys in the JSON's order).
fn json_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as Json;
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .unwrap_or_else(|| Value::from(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_value).collect::<Vec<_>>()),
        Json::Object(map) => {
            Value::from_pairs(map.iter().map(|(k, v)| (k.as_str(), json_value(v))))
        }
    }
}

/// `tojson` as Hugging Face's renderer has it: Python's `json.dumps` (keys in their order,
/// `", "` and `": "` between items, non-ASCII kept, `indent=N` for pretty output), not
/// minijinja's HTML-safe compact JSON, so prompts match what the model was trained on.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, value, indent, 0)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(
    out: &mut String,
    v: &Value,
    indent: Option<usize>,
    depth: usize,
) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => match v.as_i64() {
            Some(i) => out.push_str(&i.to_string()),
            None => {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&serde_json::Value::from(f).to_string());
            }
        },
        ValueKind::String => {
            out.push_str(&serde_json::Value::from(v.as_str().unwrap_or_default()).to_string())
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, indent, depth + 1)?;
            }
            if !items.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                let name = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
                out.push_str(&serde_json::Value::from(name).to_string());
                out.push_str(": ");
                write_json(out, &v.get_item(key)?, indent, depth + 1)?;
            }
            if !keys.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
        _ => out.push_str(&serde_json::Value::from(v.to_string()).to_string()),
    }
    Ok(())
}

/// `raise_exception(message)`, which Hugging Face templates call to reject a conversation.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn template_error(e: Error) -> LlamaError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    LlamaError::Template(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template, as stored in its GGUF.
    pub(crate) const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_adds_its_default_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2).unwrap();
        let out = t.render(
            &[ChatMessage::user("What is 1+1?")],
            "<|im_start|>",
            "<|im_end|>",
        );
        assert_eq!(
            out.unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_given_system_message_replaces_the_default_one() {
        let t = ChatTemplate::new(SMOLLM2).unwrap();
        let out = t
            .render(
                &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
                "",
                "",
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn templates_can_use_python_methods_loop_controls_and_whitespace_control() {
        let source = "{% for m in messages %}\n  {% if m.role == 'system' %}{% continue %}{% endif %}\n{{ m.content.strip().upper() }}|{% endfor %}{{ bos_token }}";
        let t = ChatTemplate::new(source).unwrap();
        let out = t
            .render(
                &[ChatMessage::system("x"), ChatMessage::user("  hi  ")],
                "<s>",
                "</s>",
            )
            .unwrap();
        assert_eq!(out, "HI|<s>");
    }

    #[test]
    fn raise_exception_becomes_a_template_error_with_its_message() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}").unwrap();
        let err = t.render(&[], "", "").unwrap_err();
        assert!(
            matches!(&err, LlamaError::Template(m) if m.contains("roles must alternate")),
            "{err}"
        );
    }

    /// Qwen2.5-Instruct's chat template, as published with the model (the copy llama.cpp keeps
    /// in `models/templates/Qwen-Qwen2.5-7B-Instruct.jinja`, taken from the llama-cpp-python
    /// 0.3.16 source package; every Qwen2.5 Instruct size has the same one).
    const QWEN25: &str = include_str!("../tests/fixtures/qwen2.5-chat-template.jinja");

    fn weather() -> ToolDefinition {
        ToolDefinition {
            name: "get_weather".into(),
            description: Some("Current weather in a city".into()),
            parameters: Some(serde_json::json!({
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            })),
        }
    }

    #[test]
    fn qwen25_shows_the_tools_and_renders_calls_and_results_as_it_was_trained() {
        let t = ChatTemplate::new(QWEN25).unwrap();
        assert!(t.takes_tools());
        let messages = [
            ChatMessage::user("Weather in Paris?"),
            ChatMessage::assistant_calls(
                "",
                vec![crate::ToolCall {
                    id: "call_0".into(),
                    name: "get_weather".into(),
                    arguments: serde_json::json!({"city": "Paris"}),
                }],
            ),
            ChatMessage::tool_result("call_0", "get_weather", "18°C, sunny"),
        ];
        let out = t
            .render_with_tools(&messages, &[weather()], "", "")
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n\
             # Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n\
             {\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Current weather in a city\", \
             \"parameters\": {\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"], \"type\": \"object\"}}}\n\
             </tools>\n\nFor each function call, return a json object with function name and arguments within \
             <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n\
             </tool_call><|im_end|>\n\
             <|im_start|>user\nWeather in Paris?<|im_end|>\n\
             <|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n\
             <|im_start|>user\n<tool_response>\n18°C, sunny\n</tool_response><|im_end|>\n\
             <|im_start|>assistant\n"
        );
        // Without tools it is the catalog's plain prompt.
        let plain = t
            .render(&[ChatMessage::user("What is 1+1?")], "", "")
            .unwrap();
        assert_eq!(
            plain,
            crate::find_model("qwen2.5-0.5b").unwrap().expected_prompt
        );
    }

    #[test]
    fn smollm2_and_chatml_show_no_tools() {
        assert!(!ChatTemplate::new(SMOLLM2).unwrap().takes_tools());
        assert!(!ChatTemplate::new(CHATML_TEMPLATE).unwrap().takes_tools());
    }

    #[test]
    fn tojson_writes_python_json_with_indent_and_unicode() {
        let t = ChatTemplate::new("{{ {'a': [1, 2.5, none, true], 'b': 'é'} | tojson }}|{{ {'a': 1} | tojson(indent=2) }}").unwrap();
        assert_eq!(
            t.render(&[], "", "").unwrap(),
            "{\"a\": [1, 2.5, null, true], \"b\": \"é\"}|{\n  \"a\": 1\n}"
        );
    }

    #[test]
    fn a_broken_template_is_an_error_not_a_panic() {
        let err = ChatTemplate::new("{% for %}").unwrap_err();
        assert!(matches!(err, LlamaError::Template(_)));
    }
}
