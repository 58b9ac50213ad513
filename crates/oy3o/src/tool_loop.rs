//! Tools the engine runs itself, and the loop that runs them: a turn with a [`Toolbox`] sends
//! the model the toolbox's tools; while the model answers with calls, the engine runs them (in
//! parallel, each bounded in time and output), sends the results back and streams the next
//! answer into the same reply, at most [`Options::max_tool_steps`](crate::Options) times. A
//! tool that fails, times out, panics or returns too much, an unknown tool name and invalid
//! arguments all become error results the model reads: never a crashed turn.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::config::Options;
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::message::{Message, Part};
use crate::provider::{Delta, DeltaStream, Session, cut_off};
use crate::tool::{ToolCall, ToolChoice, ToolSpec, Tools};

/// The steps a turn may take when the options set none.
pub const DEFAULT_MAX_TOOL_STEPS: u32 = 8;

/// A tool the engine runs: its definition, and a call that gives its output text or says what
/// went wrong.
pub trait Tool: Send + Sync + 'static {
    /// What the model is told about it.
    fn spec(&self) -> &ToolSpec;
    /// Runs it on `arguments` (a JSON object that has the schema's required keys).
    fn call(&self, arguments: Value) -> BoxFuture<'static, std::result::Result<String, String>>;

    /// The longest one call may run, for a tool that bounds its calls itself (an MCP server's
    /// `timeout_secs`, and the time to start it again); `None`: the toolbox's
    /// [`Toolbox::timeout`].
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// A [`Tool`] made of a definition and an async function.
///
/// ```
/// use oy3o::tool_loop::FnTool;
/// use oy3o::ToolSpec;
/// let add = FnTool::new(
///     ToolSpec { name: "add".into(), description: None, parameters: None, strict: None },
///     |args| async move {
///         let a = args["a"].as_i64().ok_or("a must be a number")?;
///         let b = args["b"].as_i64().ok_or("b must be a number")?;
///         Ok((a + b).to_string())
///     },
/// );
/// # let _ = add;
/// ```
pub struct FnTool<F> {
    spec: ToolSpec,
    function: F,
}

impl<F, Fut> FnTool<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<String, String>> + Send + 'static,
{
    /// A tool that calls `function`; an `Err` (text) is the error result the model reads.
    pub fn new(spec: ToolSpec, function: F) -> Self {
        Self { spec, function }
    }
}

impl<F, Fut> Tool for FnTool<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<String, String>> + Send + 'static,
{
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, arguments: Value) -> BoxFuture<'static, std::result::Result<String, String>> {
        (self.function)(arguments).boxed()
    }
}

/// What a tool gave back, as reported in a `tool_result` event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolResult {
    /// The call it answers.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// Its output, or what went wrong (bounded).
    pub content: String,
    /// Whether it failed.
    pub is_error: bool,
    /// How long it ran.
    pub elapsed_ms: u64,
}

/// The tools of a turn that the engine runs, with their limits.
#[derive(Clone)]
pub struct Toolbox {
    tools: Vec<Arc<dyn Tool>>,
    specs: Arc<Tools>,
    last_step: Arc<Tools>,
    /// The longest one call may run, unless the tool bounds its calls itself
    /// ([`Tool::timeout`]).
    pub timeout: Duration,
    /// The most output of one call sent to the model; more is cut, saying so.
    pub max_output_bytes: usize,
}

impl Toolbox {
    /// A toolbox of `tools`; their names must be valid and unique.
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Result<Self> {
        let specs = Tools {
            specs: tools.iter().map(|t| t.spec().clone()).collect(),
            choice: None,
            parallel: None,
        };
        specs.check()?;
        let last_step = Tools {
            choice: Some(ToolChoice::None),
            ..specs.clone()
        };
        Ok(Self {
            tools,
            specs: Arc::new(specs),
            last_step: Arc::new(last_step),
            timeout: Duration::from_secs(60),
            max_output_bytes: 64 << 10,
        })
    }

    /// The toolbox asking the model for `choice` (`required`, a named tool) on every step but
    /// the last, which asks for an answer without tools. Small models that would not call a
    /// tool on their own then do: `local` holds such an answer to a valid call by grammar.
    pub fn with_choice(mut self, choice: ToolChoice) -> Self {
        Arc::make_mut(&mut self.specs).choice = Some(choice);
        self
    }

    /// The tools' definitions.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs.specs
    }

    /// Runs one call; every failure is an error result.
    pub async fn run(&self, call: &ToolCall) -> ToolResult {
        use tracing::Instrument as _;
        let started = Instant::now();
        let span = crate::trace::tool_span(call);
        let outcome = self.outcome(call).instrument(span.clone()).await;
        let (content, is_error) = match outcome {
            Ok(text) => (text, false),
            Err(text) => {
                crate::trace::failed(&span, "tool_error");
                (text, true)
            }
        };
        ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content: bounded(content, self.max_output_bytes),
            is_error,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }

    async fn outcome(&self, call: &ToolCall) -> std::result::Result<String, String> {
        let Some(tool) = self.tools.iter().find(|t| t.spec().name == call.name) else {
            let names: Vec<&str> = self.specs().iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "unknown tool {:?}; the tools of this turn are: {}",
                call.name,
                names.join(", ")
            ));
        };
        check_arguments(tool.spec(), &call.arguments)?;
        let running =
            std::panic::AssertUnwindSafe(tool.call(call.arguments.clone())).catch_unwind();
        let limit = tool.timeout().unwrap_or(self.timeout);
        match tokio::time::timeout(limit, running).await {
            Err(_) => Err(format!(
                "the tool {:?} did not finish within {} s and was stopped",
                call.name,
                limit.as_secs_f32()
            )),
            Ok(Err(_)) => Err(format!("the tool {:?} failed (it panicked)", call.name)),
            Ok(Ok(result)) => result,
        }
    }
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.specs().iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Toolbox").field("tools", &names).finish()
    }
}

impl PartialEq for Toolbox {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.specs, &other.specs)
    }
}

/// Arguments must be a JSON object holding the schema's `required` keys.
fn check_arguments(spec: &ToolSpec, arguments: &Value) -> std::result::Result<(), String> {
    let object = match arguments {
        Value::Object(o) => o,
        Value::String(raw) => {
            return Err(format!(
                "the arguments are not valid JSON: {}; send a JSON object",
                bounded(raw.clone(), 200)
            ));
        }
        other => return Err(format!("the arguments must be a JSON object, not {other}")),
    };
    let required = spec
        .parameters
        .as_ref()
        .and_then(|p| p["required"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    for key in required {
        if !object.contains_key(key) {
            return Err(format!("missing argument `{key}`"));
        }
    }
    Ok(())
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how much there was.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!(
        "\n[cut: the output was {total} bytes; the first {end} are shown]"
    ));
    text
}

/// Puts a session's history back as it was before a turn, unless the turn ends with an answer
/// ([`Rollback::keep`]): a turn cancelled or failed between steps would leave calls without
/// results in it, which the providers refuse on every later turn.
struct Rollback {
    session: Arc<dyn Session>,
    before: Option<Vec<Message>>,
}

impl Rollback {
    fn new(session: &Arc<dyn Session>) -> Self {
        Self {
            session: session.clone(),
            before: Some(session.history()),
        }
    }

    fn keep(&mut self) {
        self.before = None;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if let Some(before) = self.before.take()
            && self.session.history().len() != before.len()
        {
            // A session that cannot restore (a stateful service) takes no tools either.
            let _ = self.session.restore(before);
        }
    }
}

/// One turn with engine-run tools: answer, run the calls, send the results, until the model
/// answers without calls or the steps run out (the last step asks it to answer without tools).
/// A turn that does not get to its answer leaves the history as it found it.
pub(crate) fn run(
    session: Arc<dyn Session>,
    prompt: Message,
    options: Options,
    toolbox: Arc<Toolbox>,
) -> DeltaStream {
    Box::pin(async_stream::try_stream! {
        let mut rollback = Rollback::new(&session);
        let max_steps = options.max_tool_steps.unwrap_or(DEFAULT_MAX_TOOL_STEPS);
        let mut prompt = prompt;
        let mut step = 0;
        loop {
            let mut asked = options.clone();
            asked.tools = Some(if step < max_steps {
                toolbox.specs.clone()
            } else {
                toolbox.last_step.clone()
            });
            let mut upstream = session.send(prompt, asked);
            let mut calls = Vec::new();
            let mut finish = None;
            while let Some(delta) = upstream.next().await {
                match delta? {
                    Delta::Done { finish_reason } => {
                        finish = Some(finish_reason);
                        break;
                    }
                    delta => {
                        if let Delta::Event(Event::ToolCall(call)) = &delta {
                            calls.push(call.clone());
                        }
                        yield delta;
                    }
                }
            }
            let Some(finish_reason) = finish else {
                Err(cut_off())?;
                return;
            };
            if calls.is_empty() || step >= max_steps {
                rollback.keep();
                yield Delta::Done { finish_reason };
                return;
            }
            let results = futures::future::join_all(calls.iter().map(|c| toolbox.run(c))).await;
            let mut parts = Vec::with_capacity(results.len());
            for result in results {
                parts.push(Part::ToolResult {
                    call_id: result.call_id.clone(),
                    content: result.content.clone(),
                    is_error: result.is_error,
                });
                yield Delta::Event(Event::ToolResult(result));
            }
            prompt = Message::tool_results(parts);
            step += 1;
        }
    })
}

/// The error for a toolbox on a model that takes no tools.
pub(crate) fn no_tools(model: &str) -> Error {
    Error::new(
        ErrorCode::BadRequest,
        format!(
            "{model} cannot take tools here; send the request without tools or use a model \
             that takes them (openai, anthropic, gemini, ollama, or a local model whose chat \
             template shows tools: `oy3o pull qwen2.5-0.5b`, then local:qwen2.5-0.5b)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: None,
            parameters: Some(json!({"type": "object", "required": ["city"]})),
            strict: None,
        }
    }

    fn call(name: &str, arguments: Value) -> ToolCall {
        ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments,
            signature: None,
        }
    }

    #[tokio::test]
    async fn failures_of_every_kind_are_bounded_error_results() {
        let echo: Arc<dyn Tool> = Arc::new(FnTool::new(spec("echo"), |args: Value| async move {
            Ok(args["city"].as_str().unwrap_or_default().repeat(100))
        }));
        let slow: Arc<dyn Tool> = Arc::new(FnTool::new(spec("slow"), |_| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok("late".to_string())
        }));
        let failing: Arc<dyn Tool> = Arc::new(FnTool::new(spec("failing"), |_| async {
            Err("the service said no".to_string())
        }));
        let panicking: Arc<dyn Tool> = Arc::new(FnTool::new(spec("panicking"), |_| async {
            if true {
                panic!("boom");
            }
            Ok(String::new())
        }));
        let mut toolbox = Toolbox::new(vec![echo, slow, failing, panicking]).unwrap();
        toolbox.timeout = Duration::from_millis(50);
        toolbox.max_output_bytes = 120;

        let ok = toolbox.run(&call("echo", json!({"city": "é"}))).await;
        assert!(!ok.is_error);
        assert!(ok.content.starts_with("éé"));
        assert!(
            ok.content.contains("[cut: the output was 200 bytes"),
            "{}",
            ok.content
        );

        for (c, says) in [
            (call("slow", json!({"city": "x"})), "did not finish"),
            (call("failing", json!({"city": "x"})), "the service said no"),
            (call("panicking", json!({"city": "x"})), "panicked"),
            (call("nope", json!({})), "unknown tool \"nope\""),
            (call("echo", json!({})), "missing argument `city`"),
            (
                call("echo", Value::String("{\"city\":".into())),
                "not valid JSON",
            ),
            (call("echo", json!([1])), "JSON object"),
        ] {
            let r = toolbox.run(&c).await;
            assert!(r.is_error, "{c:?}");
            assert!(r.content.contains(says), "{}: {}", says, r.content);
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        let a: Arc<dyn Tool> = Arc::new(FnTool::new(spec("a"), |_| async { Ok(String::new()) }));
        let b: Arc<dyn Tool> = Arc::new(FnTool::new(spec("a"), |_| async { Ok(String::new()) }));
        assert!(Toolbox::new(vec![a, b]).is_err());
    }
}
