//! What `local` sends besides text, and what comes back: the engine's messages as chat-template
//! messages (tool calls on assistant messages, one `tool` message per result), its tools as
//! template tools, the grammar that holds an answer to a required call, and the calls the
//! model made as the engine's.

use oy3o_llama::{ChatMessage, ChatTemplate, Grammar, ToolDefinition};

use crate::config::Options;
use crate::error::{Error, ErrorCode, Result};
use crate::message::{Message, Part, Role, tool_name_of};
use crate::tool::{ToolCall, ToolChoice};

/// Whether the chat template the model `model` is answered with shows tools: `chat_template`
/// when one is configured, else the catalog's word for a catalog model (known before it is
/// pulled), else the file's own template.
pub(super) fn template_takes_tools(model: &str, chat_template: Option<&str>) -> bool {
    if let Some(source) = chat_template {
        return ChatTemplate::new(source).is_ok_and(|t| t.takes_tools());
    }
    if let Some(entry) = oy3o_llama::find_model(model) {
        return entry.takes_tools;
    }
    oy3o_llama::file_takes_tools(std::path::Path::new(model)).unwrap_or(false)
}

/// The tools and grammar of one request.
#[derive(Debug, Default)]
pub(super) struct Shaped {
    /// Shown to the model through its template.
    pub(super) tools: Vec<ToolDefinition>,
    /// Holds the answer to a shape (a call when one is required).
    pub(super) grammar: Option<Grammar>,
}

/// The request's tools, unless the choice is `none` (then the model is shown none and its
/// answer is text); a `required` or named choice becomes a grammar of one call. An answer
/// schema ([`Options::schema`]) becomes the grammar of JSON valid against it when no call is
/// asked for (with tools the model may call, the answer is checked when it comes).
pub(super) fn shape(options: &Options) -> Result<Shaped> {
    let schema = options
        .schema
        .as_deref()
        .map(|s| Grammar::json_schema(&s.schema))
        .transpose()
        .map_err(|e| Error::new(ErrorCode::BadRequest, e.to_string()))?;
    let Some(tools) = options.tools.as_deref().filter(|t| !t.specs.is_empty()) else {
        return Ok(Shaped {
            tools: Vec::new(),
            grammar: schema,
        });
    };
    if tools.choice == Some(ToolChoice::None) {
        return Ok(Shaped {
            tools: Vec::new(),
            grammar: schema,
        });
    }
    let definitions: Vec<ToolDefinition> = tools
        .specs
        .iter()
        .map(|s| ToolDefinition {
            name: s.name.clone(),
            description: s.description.clone(),
            parameters: s.parameters.clone(),
        })
        .collect();
    let grammar = match &tools.choice {
        Some(ToolChoice::Required) => Some(Grammar::tool_call(&definitions, None)),
        Some(ToolChoice::Named(name)) => Some(Grammar::tool_call(&definitions, Some(name))),
        _ => None,
    }
    .transpose()
    .map_err(|e| Error::new(ErrorCode::BadRequest, e.to_string()))?;
    Ok(Shaped {
        tools: definitions,
        grammar,
    })
}

/// The conversation as chat-template messages. Reasoning and attachments are not sent (the
/// chat refuses attachments to this provider before sending); a failed tool's output says so.
pub(super) fn messages(messages: &[Message]) -> Vec<ChatMessage> {
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        match m.role {
            Role::Tool => {
                for part in &m.parts {
                    if let Part::ToolResult {
                        call_id,
                        content,
                        is_error,
                    } = part
                    {
                        let content = if *is_error {
                            format!("Error: {content}")
                        } else {
                            content.clone()
                        };
                        let name = tool_name_of(messages, call_id);
                        out.push(ChatMessage::tool_result(call_id, name, content));
                    }
                }
            }
            Role::Assistant => {
                let calls: Vec<oy3o_llama::ToolCall> = m
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall {
                            id,
                            name,
                            arguments,
                            ..
                        } => Some(oy3o_llama::ToolCall {
                            id: id.clone(),
                            name: name.clone(),
                            arguments: arguments.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                out.push(ChatMessage::assistant_calls(m.text().into_owned(), calls));
            }
            role => out.push(ChatMessage::new(role.as_str(), m.text().into_owned())),
        }
    }
    out
}

/// A call the model made, as the engine's, with an id unique across the conversation (the
/// model's own count restarts every answer, and results are matched to calls by id).
pub(super) fn engine_call(call: oy3o_llama::ToolCall, index: usize) -> ToolCall {
    let mut bytes = [0u8; 6];
    let id = match getrandom::fill(&mut bytes) {
        Ok(()) => format!(
            "call_{}{index}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        Err(_) => format!("call_{}_{index}", std::process::id()),
    };
    ToolCall {
        id,
        name: call.name,
        arguments: call.arguments,
        signature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool::{ToolSpec, Tools};
    use serde_json::json;
    use std::sync::Arc;

    fn options(choice: Option<ToolChoice>) -> Options {
        Options {
            tools: Some(Arc::new(Tools {
                specs: vec![ToolSpec {
                    name: "get_weather".into(),
                    description: Some("Weather in a city".into()),
                    parameters: Some(
                        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                    ),
                    strict: None,
                }],
                choice,
                parallel: None,
            })),
            ..Options::default()
        }
    }

    #[test]
    fn a_required_or_named_choice_becomes_a_grammar_and_none_shows_no_tools() {
        let auto = shape(&options(None)).unwrap();
        assert_eq!(auto.tools.len(), 1);
        assert!(auto.grammar.is_none());
        let required = shape(&options(Some(ToolChoice::Required))).unwrap();
        assert!(required.grammar.unwrap().as_str().contains("get_weather"));
        let named = shape(&options(Some(ToolChoice::Named("get_weather".into())))).unwrap();
        assert!(named.grammar.is_some());
        let none = shape(&options(Some(ToolChoice::None))).unwrap();
        assert!(none.tools.is_empty() && none.grammar.is_none());
        assert!(shape(&Options::default()).unwrap().tools.is_empty());
    }

    #[test]
    fn an_answer_schema_becomes_a_grammar_unless_a_call_is_asked_for() {
        let schema = Arc::new(
            crate::structured::OutputSchema::new(
                "answer",
                json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            )
            .unwrap(),
        );
        let alone = Options {
            schema: Some(schema.clone()),
            ..Options::default()
        };
        assert!(
            shape(&alone)
                .unwrap()
                .grammar
                .unwrap()
                .as_str()
                .contains("integer")
        );
        let with_call = Options {
            schema: Some(schema),
            ..options(Some(ToolChoice::Required))
        };
        assert!(
            shape(&with_call)
                .unwrap()
                .grammar
                .unwrap()
                .as_str()
                .contains("<tool_call>")
        );
        let bad = Options {
            schema: Some(Arc::new(
                crate::structured::OutputSchema::new(
                    "answer",
                    json!({"type": "string", "pattern": "a+"}),
                )
                .unwrap(),
            )),
            ..Options::default()
        };
        let e = shape(&bad).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(e.message().contains("`pattern`"), "{}", e.message());
    }

    #[test]
    fn calls_and_results_become_template_messages_with_the_tools_name() {
        let call = ToolCall {
            id: "c1".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Paris"}),
            signature: None,
        };
        let history = [
            Message::user("Weather?"),
            Message::answer(String::new(), vec![call]),
            Message::tool_results([Part::ToolResult {
                call_id: "c1".into(),
                content: "no network".into(),
                is_error: true,
            }]),
        ];
        let out = messages(&history);
        assert_eq!(out[1].tool_calls[0].name, "get_weather");
        assert_eq!(out[1].content, "");
        assert_eq!(out[2].role, "tool");
        assert_eq!(out[2].name.as_deref(), Some("get_weather"));
        assert_eq!(out[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(out[2].content, "Error: no network");
    }

    #[test]
    fn the_catalog_and_a_configured_template_say_whether_tools_are_shown() {
        assert!(!template_takes_tools("smollm2", None));
        assert!(template_takes_tools("qwen2.5-0.5b", None));
        let with_tools = "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}";
        assert!(template_takes_tools("smollm2", Some(with_tools)));
        assert!(!template_takes_tools("/no/such/model.gguf", None));
    }

    #[test]
    fn ids_of_calls_differ_between_answers() {
        let call = || oy3o_llama::ToolCall {
            id: "call_0".into(),
            name: "f".into(),
            arguments: json!({}),
        };
        assert_ne!(engine_call(call(), 0).id, engine_call(call(), 0).id);
    }
}
