//! Building Responses API request bodies (PROVIDERS.md §2.1; tools TOOLS.md §2.1–§2.3): the
//! context as `instructions`, the conversation as `input` items, and the tools in the API's
//! flat shape.

use serde_json::{Value, json};

use crate::message::{Message, Part, Role};
use crate::provider::CompletionRequest;
use crate::tool::{ToolChoice, ToolSpec, Tools, arguments_text};

/// What a failed tool's output starts with, so that the model sees it failed: the API has no
/// error flag on `function_call_output` (TOOLS.md §6.9).
const ERROR_PREFIX: &str = "ERROR: ";

/// The body of one streamed request for `model`.
pub(super) fn body(model: &str, request: &CompletionRequest) -> Value {
    let mut instructions = Vec::new();
    let mut input = Vec::with_capacity(request.messages.len());
    for m in &request.messages {
        match m.role {
            Role::System => instructions.push(m.text()),
            Role::User if !m.is_text_only() => {
                input.push(json!({ "role": "user", "content": user_content(&m.parts) }));
            }
            Role::User => input.push(json!({ "role": "user", "content": m.text() })),
            Role::Assistant => push_answer(m, &mut input),
            Role::Tool => push_results(m, &mut input),
        }
    }
    let mut body = json!({ "model": model, "input": input, "stream": true });
    if !instructions.is_empty() {
        body["instructions"] = json!(instructions.join("\n\n"));
    }
    let o = &request.options;
    if let Some(t) = o.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = o.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(m) = o.max_tokens {
        body["max_output_tokens"] = json!(m);
    }
    if let Some(tools) = o.tools.as_deref().filter(|t| !t.specs.is_empty()) {
        add_tools(tools, &mut body);
    }
    add_controls(o, &mut body);
    body
}

/// Request controls (TOOLS.md §2.5, §2.6; PROVIDERS.md §2.1): `reasoning.effort` (with a
/// summary, so reasoning arrives as events), `text.format` (flat: `name`, `schema`,
/// `strict` sit in `format`), the `web_search` tool after the function tools. The Responses
/// API has no stop sequences: they are refused before the request is built.
fn add_controls(o: &crate::config::Options, body: &mut Value) {
    if let Some(level) = o.reasoning {
        body["reasoning"] = json!({ "effort": level.as_str(), "summary": "auto" });
    }
    if let Some(schema) = &o.schema {
        body["text"] = json!({ "format": {
            "type": "json_schema",
            "name": schema.name,
            "schema": schema.schema,
            "strict": schema.strict,
        }});
    }
    if o.search == Some(true) {
        let search = json!({ "type": "web_search" });
        match body["tools"].as_array_mut() {
            Some(tools) => tools.push(search),
            None => body["tools"] = json!([search]),
        }
    }
}

/// A user message with attachments as input parts (TOOLS.md §2.4): `input_text`,
/// `input_image` (a data URL or the URL), `input_file` for a PDF (`file_data` as a data URL,
/// or `file_url`); a text document as `input_text`. Responses takes no audio in messages.
fn user_content(parts: &[Part]) -> Value {
    use crate::attachment::{data_url, document_text};
    use crate::message::Source;
    let wire = |part: &Part| -> Option<Value> {
        let json = match part {
            Part::Text { text } => json!({"type": "input_text", "text": text}),
            Part::Image { mime, source } => {
                let url = match source {
                    Source::Base64(data) => data_url(mime, data),
                    Source::Url(url) => url.clone(),
                };
                json!({"type": "input_image", "image_url": url})
            }
            Part::Document { .. } if document_text(part).is_some() => {
                json!({"type": "input_text", "text": document_text(part)})
            }
            Part::Document { mime, source, name } => match source {
                Source::Base64(data) => json!({"type": "input_file",
                    "filename": name.as_deref().unwrap_or("document.pdf"),
                    "file_data": data_url(mime, data)}),
                Source::Url(url) => json!({"type": "input_file", "file_url": url}),
            },
            // Refused before the request is built (`require_supported`).
            _ => return None,
        };
        Some(json)
    };
    parts.iter().filter_map(wire).collect()
}

/// An assistant message: its text as a message item (when it wrote any, or called nothing),
/// then one `function_call` item per call, the arguments as JSON text (TOOLS.md §2.3).
fn push_answer(m: &Message, input: &mut Vec<Value>) {
    let text = m.text();
    let mut calls = m.parts.iter().filter_map(|p| match p {
        Part::ToolCall {
            id,
            name,
            arguments,
            ..
        } => Some(json!({
            "type": "function_call",
            "call_id": id,
            "name": name,
            "arguments": arguments_text(arguments),
        })),
        _ => None,
    });
    let first = calls.next();
    if !text.is_empty() || first.is_none() {
        input.push(json!({ "role": "assistant", "content": text }));
    }
    input.extend(first);
    input.extend(calls);
}

/// A `tool` message: one `function_call_output` item per result, a failed one's output
/// prefixed with [`ERROR_PREFIX`] (TOOLS.md §2.3, §6.9).
fn push_results(m: &Message, input: &mut Vec<Value>) {
    for part in &m.parts {
        if let Part::ToolResult {
            call_id,
            content,
            is_error,
        } = part
        {
            let output = if *is_error {
                format!("{ERROR_PREFIX}{content}")
            } else {
                content.clone()
            };
            input.push(json!({
                "type": "function_call_output",
                "call_id": call_id,
                "output": output,
            }));
        }
    }
}

/// `tools` as flat function tools, `tool_choice` and `parallel_tool_calls` (TOOLS.md §2.1).
fn add_tools(tools: &Tools, body: &mut Value) {
    body["tools"] = tools.specs.iter().map(function_tool).collect();
    if let Some(choice) = &tools.choice {
        body["tool_choice"] = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(name) => json!({ "type": "function", "name": name }),
        };
    }
    if let Some(parallel) = tools.parallel {
        body["parallel_tool_calls"] = json!(parallel);
    }
}

/// `{"type": "function", name, description?, parameters, strict}`. `strict` always goes out:
/// Responses may treat a function as strict when it is left out (TOOLS.md §2.1, §8.2), and a
/// tool without parameters gets an empty object schema.
fn function_tool(spec: &ToolSpec) -> Value {
    let mut tool = json!({
        "type": "function",
        "name": spec.name,
        "parameters": spec.parameters.clone()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
        "strict": spec.strict.unwrap_or(false),
    });
    if let Some(d) = &spec.description {
        tool["description"] = json!(d);
    }
    tool
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;
    use std::sync::Arc;

    fn request(messages: Vec<Message>, tools: Option<Tools>) -> CompletionRequest {
        CompletionRequest {
            messages,
            options: Options {
                tools: tools.map(Arc::new),
                ..Options::default()
            },
        }
    }

    #[test]
    fn calls_follow_their_text_and_results_follow_as_outputs_with_errors_marked() {
        let answer = Message::answer(
            "Checking.".into(),
            vec![crate::tool::ToolCall {
                id: "call_A1".into(),
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}),
                signature: None,
            }],
        );
        let results = Message::tool_results([Part::ToolResult {
            call_id: "call_A1".into(),
            content: "timeout".into(),
            is_error: true,
        }]);
        let body = body(
            "gpt-5",
            &request(vec![Message::user("Paris?"), answer, results], None),
        );
        assert_eq!(
            body["input"],
            json!([
                {"role": "user", "content": "Paris?"},
                {"role": "assistant", "content": "Checking."},
                {"type": "function_call", "call_id": "call_A1", "name": "get_weather",
                 "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "call_A1", "output": "ERROR: timeout"},
            ])
        );
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn an_answer_of_calls_only_sends_no_empty_message_item() {
        let answer = Message::answer(
            String::new(),
            vec![crate::tool::ToolCall {
                id: "call_B2".into(),
                name: "now".into(),
                arguments: Value::String("{\"tz\": ".into()),
                signature: None,
            }],
        );
        let body = body("gpt-5", &request(vec![answer], None));
        assert_eq!(
            body["input"],
            json!([{"type": "function_call", "call_id": "call_B2", "name": "now",
                "arguments": "{\"tz\": "}]),
            "arguments that were not JSON go back as written"
        );
    }

    #[test]
    fn tools_are_flat_with_strict_always_sent() {
        let tools = Tools {
            specs: vec![
                ToolSpec {
                    name: "get_weather".into(),
                    description: Some("Get weather".into()),
                    parameters: Some(json!({"type": "object"})),
                    strict: Some(true),
                },
                ToolSpec {
                    name: "now".into(),
                    description: None,
                    parameters: None,
                    strict: None,
                },
            ],
            choice: Some(ToolChoice::Named("now".into())),
            parallel: Some(false),
        };
        let body = body("gpt-5", &request(vec![Message::user("x")], Some(tools)));
        assert_eq!(
            body["tools"],
            json!([
                {"type": "function", "name": "get_weather", "description": "Get weather",
                 "parameters": {"type": "object"}, "strict": true},
                {"type": "function", "name": "now",
                 "parameters": {"type": "object", "properties": {}}, "strict": false},
            ])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "name": "now"})
        );
        assert_eq!(body["parallel_tool_calls"], false);
    }
}
