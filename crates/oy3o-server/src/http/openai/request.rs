//! Reading a `POST /v1/chat/completions` request, in one pass over the body that builds no
//! JSON tree: a JSON body (else 415), only fields the server carries out (anything else set is
//! a 400 naming it, rather than an answer that silently ignores it), numbers in range
//! (`temperature: 1e39` would go upstream as `null`), a model this server lets clients use
//! (`models_allowed`, `model_dirs`), and the messages as the engine sees them, with their
//! attachments (`image_url`, `input_audio` and `file` content parts,
//! <https://platform.openai.com/docs/api-reference/chat/create>) loaded by the engine's loader.

use std::fmt;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use std::sync::Arc;

use oy3o::attachment::{Input, Origin};
use oy3o::{Message, Part, Role, ToolCall, ToolChoice, ToolSpec, Tools};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::api_error;
use crate::state::AppState;

/// A completions request, as far as the server carries it out.
#[derive(Default)]
pub(super) struct CompletionRequest {
    pub(super) model: Option<String>,
    messages: Option<Vec<InMessage>>,
    pub(super) stream: Option<bool>,
    pub(super) include_usage: Option<bool>,
    pub(super) temperature: Option<f64>,
    pub(super) top_p: Option<f64>,
    pub(super) max_tokens: Option<u32>,
    pub(super) max_completion_tokens: Option<u32>,
    pub(super) seed: Option<u32>,
    n: Option<u32>,
    tools: Vec<WireTool>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    /// The first field set that the server does not carry out.
    unsupported: Option<String>,
    /// The tools, their choice and the parallel switch, for the engine.
    pub(super) tools_asked: Option<Arc<Tools>>,
    /// `server_tools: ["time"]`: tools the server runs itself (as `server.tools` grants).
    pub(super) server_tools: Option<Vec<String>>,
    /// The request controls (`response_format`, `reasoning_effort`, `stop`,
    /// `web_search_options`, `extra_body`) as read, checked by [`controls`].
    response_format: Option<Value>,
    reasoning_effort: Option<String>,
    stop: Option<Value>,
    web_search_options: Option<Value>,
    extra_body: Option<Value>,
    /// The controls for the engine, once checked.
    pub(super) controls: oy3o::Options,
}

/// The fields read; every other one must be unset (see [`is_unset`]).
enum Field {
    Model,
    Messages,
    Stream,
    StreamOptions,
    Temperature,
    TopP,
    MaxTokens,
    MaxCompletionTokens,
    Seed,
    N,
    Tools,
    ToolChoice,
    ParallelToolCalls,
    ServerTools,
    ResponseFormat,
    ReasoningEffort,
    Stop,
    WebSearchOptions,
    ExtraBody,
    /// Metadata about the caller: it changes nothing in the answer.
    User,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Field, E> {
        Ok(match key {
            "model" => Field::Model,
            "messages" => Field::Messages,
            "stream" => Field::Stream,
            "stream_options" => Field::StreamOptions,
            "temperature" => Field::Temperature,
            "top_p" => Field::TopP,
            "max_tokens" => Field::MaxTokens,
            "max_completion_tokens" => Field::MaxCompletionTokens,
            "seed" => Field::Seed,
            "n" => Field::N,
            "tools" => Field::Tools,
            "tool_choice" => Field::ToolChoice,
            "parallel_tool_calls" => Field::ParallelToolCalls,
            "server_tools" => Field::ServerTools,
            "response_format" => Field::ResponseFormat,
            "reasoning_effort" => Field::ReasoningEffort,
            "stop" => Field::Stop,
            "web_search_options" => Field::WebSearchOptions,
            "extra_body" => Field::ExtraBody,
            "user" => Field::User,
            other => Field::Other(other.to_owned()),
        })
    }
}

impl<'de> Deserialize<'de> for CompletionRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = CompletionRequest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CompletionRequest, A::Error> {
        let mut r = CompletionRequest::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Model => r.model = map.next_value()?,
                Field::Messages => r.messages = Some(map.next_value()?),
                Field::Stream => r.stream = map.next_value()?,
                Field::StreamOptions => {
                    let options: Option<StreamOptions> = map.next_value()?;
                    r.include_usage = options.and_then(|o| o.include_usage);
                }
                Field::Temperature => r.temperature = map.next_value()?,
                Field::TopP => r.top_p = map.next_value()?,
                Field::MaxTokens => r.max_tokens = map.next_value()?,
                Field::MaxCompletionTokens => r.max_completion_tokens = map.next_value()?,
                Field::Seed => r.seed = map.next_value()?,
                Field::N => r.n = map.next_value()?,
                Field::Tools => {
                    r.tools = map
                        .next_value::<Option<Vec<WireTool>>>()?
                        .unwrap_or_default();
                }
                Field::ToolChoice => r.tool_choice = map.next_value()?,
                Field::ParallelToolCalls => r.parallel_tool_calls = map.next_value()?,
                Field::ServerTools => r.server_tools = map.next_value()?,
                Field::ResponseFormat => r.response_format = map.next_value()?,
                Field::ReasoningEffort => r.reasoning_effort = map.next_value()?,
                Field::Stop => r.stop = map.next_value()?,
                Field::WebSearchOptions => r.web_search_options = map.next_value()?,
                Field::ExtraBody => r.extra_body = map.next_value()?,
                Field::User => {
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Other(name) => {
                    let value: Value = map.next_value()?;
                    if !is_unset(&value) && r.unsupported.is_none() {
                        r.unsupported = Some(name);
                    }
                }
            }
        }
        if r.messages.is_none() {
            return Err(de::Error::missing_field("messages"));
        }
        Ok(r)
    }
}

/// Unset in all but name (`null`, `false`, `[]`, `{}`): asks for nothing.
fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// `{"type": "function", "function": {name, description?, parameters?, strict?}}`.
#[derive(Deserialize)]
struct WireTool {
    r#type: String,
    #[serde(default)]
    function: Option<ToolSpec>,
}

#[derive(Deserialize)]
pub(super) struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    /// An assistant's tool calls (history sent back).
    #[serde(default)]
    tool_calls: Option<Vec<InToolCall>>,
    /// Which call a `tool` message answers.
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct InToolCall {
    id: String,
    function: InFunction,
}

#[derive(Deserialize)]
struct InFunction {
    name: String,
    /// JSON text, as OpenAI sends it.
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    /// `{"url": "data:image/png;base64,…" | "https://…", "detail"?}`.
    #[serde(default)]
    image_url: Option<ImageUrl>,
    /// `{"data": base64, "format": "wav" | "mp3"}`.
    #[serde(default)]
    input_audio: Option<InputAudio>,
    /// `{"file_data": "data:application/pdf;base64,…", "filename"?}` (`file_id` is OpenAI's
    /// file store, which this server does not have).
    #[serde(default)]
    file: Option<FilePart>,
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Deserialize)]
struct InputAudio {
    data: String,
    format: String,
}

#[derive(Deserialize)]
struct FilePart {
    #[serde(default)]
    file_data: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    file_id: Option<String>,
}

/// A content part that is an attachment, as the engine's loader takes it; `at` names it
/// (`messages[1].content[2]`).
fn attachment(part: ContentPart, at: &str) -> Result<Input, String> {
    let kind = part.kind.clone();
    let missing = |what: &str| format!("{at}: a {kind} part needs `{what}`");
    match kind.as_str() {
        "image_url" => {
            let url = part.image_url.ok_or_else(|| missing("image_url"))?.url;
            Ok(Input::data_url(&url).unwrap_or(Input {
                origin: Origin::Url(url),
                mime: None,
                name: None,
            }))
        }
        "input_audio" => {
            let audio = part.input_audio.ok_or_else(|| missing("input_audio"))?;
            let mime = match audio.format.as_str() {
                "wav" => "audio/wav",
                "mp3" => "audio/mpeg",
                other => {
                    return Err(format!(
                        "{at}: input_audio format {other:?} is not supported; send wav or mp3"
                    ));
                }
            };
            Ok(Input {
                origin: Origin::Base64(audio.data),
                mime: Some(mime.into()),
                name: None,
            })
        }
        "file" => {
            let file = part.file.ok_or_else(|| missing("file"))?;
            if file.file_id.is_some() && file.file_data.is_none() {
                return Err(format!(
                    "{at}: files by `file_id` are not supported (this server keeps no uploaded \
                     files); send the bytes as `file_data`"
                ));
            }
            let data = file.file_data.ok_or_else(|| missing("file.file_data"))?;
            let mut input = Input::data_url(&data).unwrap_or(Input {
                origin: Origin::Base64(data),
                mime: None,
                name: None,
            });
            if input.mime.is_none() {
                input.mime = file
                    .filename
                    .as_deref()
                    .and_then(oy3o::attachment::mime::from_extension)
                    .map(str::to_owned);
            }
            input.name = file.filename;
            Ok(input)
        }
        other => Err(format!(
            "{at}: content parts of type {other:?} are not supported; send text, image_url, \
             input_audio or file"
        )),
    }
}

/// A refusal: the error response, counted in the metrics under its code.
pub(super) fn refuse(state: &AppState, status: StatusCode, code: &str, message: &str) -> Response {
    state.metrics.error(code);
    api_error(status, code, message)
}

/// Reads and checks a completions request; `Err` is the response to send.
#[allow(clippy::result_large_err)]
pub(super) fn read(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(CompletionRequest, Conversation), Response> {
    let bad = |message: &str| refuse(state, StatusCode::BAD_REQUEST, "bad_request", message);
    if !is_json(headers) {
        return Err(refuse(
            state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the request as JSON with the header Content-Type: application/json",
        ));
    }
    let mut request = parse(body).map_err(|m| bad(&m))?;
    if let Some(name) = &request.unsupported {
        return Err(bad(&format!(
            "field `{name}` is not supported by this server: it would be ignored, so the answer \
             would not follow it; send the request without it"
        )));
    }
    for (name, value, max) in [
        ("temperature", request.temperature, 2.0),
        ("top_p", request.top_p, 1.0),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && (0.0..=max).contains(&v))) {
            return Err(bad(&format!(
                "field `{name}`: must be a number from 0 to {max}"
            )));
        }
    }
    let model = request
        .model
        .as_deref()
        .filter(|m| !m.starts_with("chain:"));
    crate::policy::check_model(state, model)
        .map_err(|r| refuse(state, StatusCode::FORBIDDEN, r.code, &r.message))?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(bad("n must be 1: this server returns one choice"));
    }
    request.tools_asked = tools(&request).map_err(|m| bad(&m))?;
    request.controls = controls(&request).map_err(|m| bad(&m))?;
    let messages = request.messages.take().unwrap_or_default();
    let (mut conversation, attached) = conversation(messages).map_err(|m| bad(&m))?;
    attach(state, &mut conversation, attached)?;
    Ok((request, conversation))
}

/// The request controls for the engine (checked again by the engine against the model):
/// - `response_format`: `{"type": "json_schema", "json_schema": {name, schema, strict?}}` (the
///   schema checked, `strict` as sent, default false as in OpenAI's API), `{"type":
///   "json_object"}` (any JSON object) or `{"type": "text"}` (nothing asked) (TOOLS.md §1.5);
/// - `reasoning_effort`: `low`, `medium`, `high` (`minimal` reads as `low`);
/// - `stop`: a string or a list of strings;
/// - `web_search_options`: an object, `{}` included, asks for web search (its settings are
///   not carried out);
/// - `extra_body`: an object merged into the provider's request body, at most 64 KiB and never
///   the model, the messages or streaming ([`oy3o::controls::check_extra_body`]). It can only
///   add JSON fields: the server's credentials, base URL and headers are not in the body.
fn controls(request: &CompletionRequest) -> Result<oy3o::Options, String> {
    let mut o = oy3o::Options::default();
    match &request.response_format {
        None | Some(Value::Null) => {}
        Some(format) => match format["type"].as_str() {
            Some("text") => {}
            Some("json_object") => {
                let schema = oy3o::structured::OutputSchema::new(
                    "json_object",
                    serde_json::json!({"type": "object"}),
                )
                .map_err(|e| e.message().to_owned())?;
                o.schema = Some(Arc::new(schema.with_strict(false)));
            }
            Some("json_schema") => {
                let spec = &format["json_schema"];
                let name = spec["name"].as_str().unwrap_or_default();
                let schema = oy3o::structured::OutputSchema::new(name, spec["schema"].clone())
                    .map_err(|e| format!("response_format.json_schema: {}", e.message()))?;
                let strict = spec["strict"].as_bool().unwrap_or(false);
                o.schema = Some(Arc::new(schema.with_strict(strict)));
            }
            _ => {
                return Err(
                    "field `response_format`: use {\"type\": \"json_schema\", \"json_schema\": \
                     {\"name\": …, \"schema\": {…}}}, {\"type\": \"json_object\"} or \
                     {\"type\": \"text\"}"
                        .into(),
                );
            }
        },
    }
    if let Some(effort) = &request.reasoning_effort {
        let level = if effort == "minimal" { "low" } else { effort };
        o.reasoning = Some(
            level
                .parse()
                .map_err(|e: oy3o::Error| format!("field `reasoning_effort`: {}", e.message()))?,
        );
    }
    match &request.stop {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => o.stop = Some(vec![s.clone()]),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            let stop: Vec<String> = list
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect();
            oy3o::controls::check_stop(&stop).map_err(|e| e.message().to_owned())?;
            o.stop = (!stop.is_empty()).then_some(stop);
        }
        Some(_) => return Err("field `stop`: a string or a list of strings".into()),
    }
    match &request.web_search_options {
        None | Some(Value::Null) => {}
        Some(Value::Object(_)) => o.search = Some(true),
        Some(_) => return Err("field `web_search_options`: an object, e.g. {}".into()),
    }
    match &request.extra_body {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            oy3o::controls::check_extra_body(map, "field `extra_body`")
                .map_err(|e| e.message().to_owned())?;
            o.extra_body = Some(map.clone());
        }
        Some(_) => return Err("field `extra_body`: a JSON object".into()),
    }
    Ok(o)
}

/// Checks (count, URL policy) and loads the attachments of the request's user messages into
/// them, each after its text; an error names the content part.
#[allow(clippy::result_large_err)]
fn attach(state: &AppState, c: &mut Conversation, attached: Vec<Attached>) -> Result<(), Response> {
    let all: Vec<Input> = attached.iter().map(|a| a.input.clone()).collect();
    let settings = &state.settings;
    if let Err(r) = crate::policy::check_attachments(settings, &all, "attachments") {
        // Name the content part, not a field this API does not have.
        let message = match all
            .iter()
            .position(|a| matches!(a.origin, Origin::Url(_)))
            .filter(|_| r.code == "forbidden")
        {
            Some(i) => format!(
                "{}: this server does not take attachments by URL \
                 (allow_attachment_urls = false); send the bytes as a data: URL",
                attached[i].at
            ),
            None => r.message.replace("field `attachments`", "the request"),
        };
        let status = if r.code == "forbidden" {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        return Err(refuse(state, status, r.code, &message));
    }
    let limits = state.config.attachments.unwrap_or_default();
    for a in attached {
        let part = a.input.load(&limits).map_err(|e| {
            let e = oy3o::Error::new(e.code(), format!("{}: {}", a.at, e.message()));
            super::engine_error(state, &e)
        })?;
        let message = match a.turn {
            Some(turn) => &mut c.history[turn],
            None => &mut c.prompt,
        };
        message.parts.push(part);
    }
    Ok(())
}

/// The request's tools for the engine: function tools only; `tool_choice` as OpenAI writes it
/// (TOOLS.md §1.1). No tools (and no choice but `none`) is `None`.
fn tools(request: &CompletionRequest) -> Result<Option<Arc<Tools>>, String> {
    let mut specs = Vec::with_capacity(request.tools.len());
    for (i, tool) in request.tools.iter().enumerate() {
        match (tool.r#type.as_str(), &tool.function) {
            ("function", Some(spec)) => specs.push(spec.clone()),
            ("function", None) => {
                return Err(format!("tools[{i}]: a function tool needs `function`"));
            }
            (other, _) => {
                return Err(format!(
                    "tools[{i}]: tools of type {other:?} are not supported; send function tools"
                ));
            }
        }
    }
    let choice = match &request.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(format!(
                    "tool_choice {other:?}: use \"auto\", \"none\", \"required\" or \
                     {{\"type\": \"function\", \"function\": {{\"name\": …}}}}"
                ));
            }
        }),
        Some(named) => match named["function"]["name"].as_str() {
            Some(name) if named["type"] == "function" => Some(ToolChoice::Named(name.to_owned())),
            _ => {
                return Err(
                    "tool_choice: name a function as {\"type\": \"function\", \"function\": \
                     {\"name\": …}}"
                        .into(),
                );
            }
        },
    };
    if specs.is_empty() {
        return match choice {
            None | Some(ToolChoice::None) => Ok(None),
            Some(_) => Err("tool_choice asks for a tool call, but the request has no tools".into()),
        };
    }
    let tools = Tools {
        specs,
        choice,
        parallel: request.parallel_tool_calls,
    };
    tools.check().map_err(|e| e.message().to_owned())?;
    Ok(Some(Arc::new(tools)))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|t| {
            t.eq_ignore_ascii_case("application/json") || t.to_ascii_lowercase().ends_with("+json")
        })
}

/// The request body, or what is wrong with it and where. The path is tracked only once a body
/// has failed: tracking it on every request cloned each key (~7,000 instructions a request).
fn parse(body: &[u8]) -> Result<CompletionRequest, String> {
    if let Ok(request) = serde_json::from_slice(body) {
        return Ok(request);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, CompletionRequest>(&mut de) {
        Ok(request) => Ok(request),
        Err(e) => {
            let path = e.path().to_string();
            Err(format!(
                "invalid request body at `{path}`: {}",
                e.into_inner()
            ))
        }
    }
}

/// A request's messages as the engine sees them: a context, the turns so far, the prompt.
pub(super) struct Conversation {
    pub(super) context: Option<String>,
    pub(super) history: Vec<Message>,
    pub(super) prompt: Message,
}

/// An attachment of a user message, to be loaded: which turn (`None`: the prompt), where it
/// was in the request, and what it is.
struct Attached {
    turn: Option<usize>,
    at: String,
    input: Input,
}

fn conversation(messages: Vec<InMessage>) -> Result<(Conversation, Vec<Attached>), String> {
    let mut context: Vec<String> = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    let mut attached: Vec<Attached> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let mut inputs: Vec<(String, Input)> = Vec::new();
        let text = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for (j, part) in parts.into_iter().enumerate() {
                    let at = format!("messages[{i}].content[{j}]");
                    if part.kind == "text" {
                        let Some(t) = part.text else {
                            return Err(format!("{at}: a text part needs `text`"));
                        };
                        text.push_str(&t);
                    } else if m.role == "user" {
                        inputs.push((at.clone(), attachment(part, &at)?));
                    } else {
                        return Err(format!(
                            "{at}: content parts of type {:?} are taken in user messages only; \
                             send text",
                            part.kind
                        ));
                    }
                }
                text
            }
        };
        match m.role.as_str() {
            "system" | "developer" => context.push(text),
            "user" => {
                attached.extend(inputs.into_iter().map(|(at, input)| Attached {
                    turn: Some(turns.len()),
                    at,
                    input,
                }));
                turns.push(Message::user(text));
            }
            "assistant" => {
                let calls = m.tool_calls.unwrap_or_default();
                let calls = calls
                    .into_iter()
                    .map(|c| ToolCall {
                        id: c.id,
                        name: c.function.name,
                        arguments: oy3o::tool::parse_arguments(c.function.arguments),
                        signature: None,
                    })
                    .collect();
                turns.push(Message::answer(text, calls));
            }
            "tool" => {
                let Some(call_id) = m.tool_call_id else {
                    return Err(format!(
                        "messages[{i}]: a tool message needs the `tool_call_id` it answers"
                    ));
                };
                let result = Part::ToolResult {
                    call_id,
                    content: text,
                    is_error: false,
                };
                // The results of one answer's calls are one tool message to the engine.
                match turns.last_mut() {
                    Some(last) if last.role == Role::Tool => last.parts.push(result),
                    _ => turns.push(Message::tool_results([result])),
                }
            }
            other => {
                return Err(format!(
                    "messages[{i}]: role {other:?} is not supported; use system, user, assistant \
                     or tool"
                ));
            }
        }
    }
    match turns.pop() {
        Some(prompt) if matches!(prompt.role, Role::User | Role::Tool) => {
            let last = turns.len();
            for a in &mut attached {
                if a.turn == Some(last) {
                    a.turn = None;
                }
            }
            Ok((
                Conversation {
                    context: (!context.is_empty()).then(|| context.join("\n\n")),
                    history: turns,
                    prompt,
                },
                attached,
            ))
        }
        _ => Err("the last message must be from the user (or tool results)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(v: Value) -> Vec<InMessage> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn system_messages_become_the_context_and_earlier_turns_the_history() {
        let (c, _) = conversation(msgs(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "how "}, {"type": "text", "text": "are you"}]},
        ])))
        .unwrap();
        assert_eq!(c.context.as_deref(), Some("Be brief."));
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.prompt.text(), "how are you");
    }

    #[test]
    fn a_conversation_must_end_with_the_user() {
        assert!(conversation(msgs(json!([{"role": "assistant", "content": "x"}]))).is_err());
        assert!(conversation(Vec::new()).is_err());
        // A tool message must say which call it answers.
        assert!(conversation(msgs(json!([{"role": "tool", "content": "x"}]))).is_err());
        let image = json!([{"role": "user", "content": [{"type": "input_image", "image_url": {"url": "x"}}]}]);
        assert!(conversation(msgs(image)).is_err());
        let in_answer = json!([{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]}, {"role": "user", "content": "hi"}]);
        let err = conversation(msgs(in_answer)).err().unwrap();
        assert!(err.starts_with("messages[0].content[0]"), "{err}");
    }

    #[test]
    fn attachments_are_kept_with_their_place_for_the_loader() {
        let (c, attached) = conversation(msgs(json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,AA==", "filename": "x.pdf"}}, {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}}]},
        ])))
        .unwrap();
        assert_eq!(c.history.len(), 2);
        let places: Vec<(Option<usize>, &str)> =
            attached.iter().map(|a| (a.turn, a.at.as_str())).collect();
        assert_eq!(
            places,
            [
                (Some(0), "messages[0].content[1]"),
                (None, "messages[2].content[0]"),
                (None, "messages[2].content[1]")
            ]
        );
        assert_eq!(attached[1].input.name.as_deref(), Some("x.pdf"));
        assert_eq!(attached[2].input.mime.as_deref(), Some("audio/wav"));
    }

    #[test]
    fn one_pass_reads_what_is_carried_out_and_names_the_first_field_that_is_not() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u",
            "logprobs":false,"tools":[],"stream_options":{"include_usage":true},
            "temperature":1e39,"response_format":{"type":"json_object"},"top_logprobs":3}"#;
        let r = parse(body).unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert_eq!(r.include_usage, Some(true));
        assert_eq!(
            r.temperature,
            Some(1e39),
            "kept wide, for the range check to refuse"
        );
        assert_eq!(r.unsupported.as_deref(), Some("top_logprobs"));
        assert_eq!(r.response_format.as_ref().unwrap()["type"], "json_object");
    }

    #[test]
    fn a_body_without_messages_or_with_a_wrong_type_says_where() {
        let e = parse(br#"{"model":"m"}"#).err().unwrap();
        assert!(e.contains("missing field `messages`"), "{e}");
        let e = parse(br#"{"messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
            .err()
            .unwrap();
        assert!(e.contains("at `stream`"), "{e}");
    }
}
