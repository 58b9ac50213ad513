//! `local:` — GGUF chat models run in-process on the CPU by llama.cpp (crate `oy3o-llama`).
//! `local:smollm2` (the default model) is pulled once into the cache with progress events;
//! `local:/path/to/model.gguf` runs any local file. One loaded model is shared by every chat,
//! requests queue in arrival order, and a chat's next turn reuses the KV cache.
//!
//! A `load` event comes before an answer that has to load its model first.
//! Answers are greedy after a repeat penalty (a `temperature` above 0 samples instead; see
//! [`oy3o_llama::GenerateOptions`]), end after [`DEFAULT_MAX_TOKENS`] new tokens unless
//! `max_tokens` says otherwise, and end early when their tail repeats itself: then a
//! `repetition` event says so and the finish reason is `repetition`. Unless `max_tokens` is set,
//! the answer to a one-line question ends with the sentence or paragraph it is in once it has
//! [`SHORT_ANSWER_TOKENS`] tokens (finish reason `length`).
//!
//! `stop` sequences end the answer (finish reason `stop`) before the first one it would write;
//! the sequence itself is never streamed.
//!
//! Tools ([`tools`]) go to models whose chat template shows them (Qwen2.5's; SmolLM2's does
//! not, unless `chat_template` in `[providers.local]` gives one that does); calls come back as
//! `tool_call` events. A `tool_choice` of `required` or a named tool holds the answer to a
//! valid call by grammar.

mod tools;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use oy3o_llama::{ChatMessage, Finish, GenerateOptions, Piece, PullProgress, Runtime};
use serde_json::json;

use crate::config::Target;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, Usage};
use crate::message::Role;
use crate::provider::{
    CompletionRequest, Completions, Delta, DeltaStream, HistorySession, KeyPolicy, Provider,
    ProviderInfo, Session,
};

/// The embedded local-model provider.
pub struct Local;

static INFO: ProviderInfo = ProviderInfo {
    name: "local",
    default_model: "smollm2",
    default_base_url: None,
    base_url_env: &[],
    key_env: &[],
    key_policy: KeyPolicy::Optional,
    events: &["usage", "pull", "load", "repetition"],
};

/// New tokens a `local` answer may have when neither the config nor the call sets `max_tokens`:
/// a small model that rambles stops in seconds instead of filling its context window.
pub const DEFAULT_MAX_TOKENS: u32 = 512;

/// Tokens (about a hundred words, a paragraph) after which the answer to a one-line question
/// ends where its sentence or paragraph ends, when `max_tokens` is not set: a small model goes
/// on past the answer (SmolLM2 from "the sky is blue" to Greek myths and the Olympic flag).
pub const SHORT_ANSWER_TOKENS: u32 = 128;

/// The longest message that counts as a one-line question, in characters; a longer line is
/// more likely text to work on (translate, rewrite) than a question.
const ONE_LINE_QUESTION_CHARS: usize = 200;

impl Provider for Local {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        let completions = LocalModel {
            model: target.model.clone(),
            chat_template: target.settings.chat_template.clone(),
        };
        Ok(Box::new(HistorySession::new(
            completions,
            target.context.clone(),
        )))
    }

    /// When the chat template shows tools: the configured `chat_template`'s, else the
    /// catalog's word for a catalog model, else the model file's own (read from its metadata).
    fn takes_tools(&self, target: &Target) -> bool {
        tools::template_takes_tools(&target.model, target.settings.chat_template.as_deref())
    }

    /// A schema (held by grammar) and stop sequences (matched in the generated text, which
    /// ends before the first one); no reasoning level, search tool or JSON body.
    fn controls(&self, _target: &Target) -> crate::controls::Controls {
        crate::controls::Controls {
            schema: true,
            stop: true,
            ..crate::controls::Controls::NONE
        }
    }
}

/// True when `model` names a model of the built-in catalog (`smollm2`), which is pulled into
/// the cache; any other `local:` model is read as a file path. Faces that take model names from
/// others use it to keep such paths inside the folders they allow.
pub fn is_catalog_model(model: &str) -> bool {
    oy3o_llama::find_model(model).is_some()
}

/// The one runtime of the process, started by the first `local` answer.
static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// Unloads the local models, ending the answers they are generating, and waits up to `within`
/// for their threads; true when none is left running (also when none was ever loaded). A face
/// calls it before its process exits: a model thread still decoding while the process tears
/// llama.cpp's static data down crashes it (see [`Runtime::stop`]).
pub fn unload(within: Duration) -> bool {
    match RUNTIME.get() {
        Some(Ok(runtime)) => runtime.stop(within),
        _ => true,
    }
}

/// The one runtime of the process: loaded models are shared by every chat.
fn runtime() -> Result<Runtime> {
    RUNTIME
        .get_or_init(|| Runtime::new(Default::default()).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| Error::new(ErrorCode::Provider, format!("cannot start llama.cpp: {e}")))
}

struct LocalModel {
    model: String,
    /// `[providers.local] chat_template`, used instead of the file's.
    chat_template: Option<String>,
}

impl Completions for LocalModel {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let model = self.model.clone();
        let chat_template = self.chat_template.clone();
        Box::pin(async_stream::try_stream! {
            // Bad tools or schemas fail before a model is pulled or loaded.
            let shaped = tools::shape(&request.options)?;
            let runtime = runtime()?;
            // Pull (or find) the model file, passing progress on as `pull` events.
            let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
            let name = model.clone();
            let mut pulling = tokio::spawn(async move {
                let dir = oy3o_llama::default_cache_dir().ok_or_else(|| {
                    Error::config("no cache directory on this system: use local:/path/to/model.gguf")
                })?;
                let mut report = throttled(progress_tx);
                oy3o_llama::ensure_model(&name, &dir, &mut report)
                    .await
                    .map_err(|e| Error::new(ErrorCode::NotFound, e.to_string()))
            });
            let joined = loop {
                let step = tokio::select! {
                    Some(p) = progress_rx.recv() => Ok(p),
                    joined = &mut pulling => Err(joined),
                };
                match step {
                    Ok(p) => yield Delta::Event(pull_event(&p)),
                    Err(joined) => break joined,
                }
            };
            let path = joined.map_err(|e| Error::provider(format!("model pull stopped: {e}")))??;
            let messages = tools::messages(&request.messages);
            let mut options = generate_options(&request.options, &messages);
            if shaped.grammar.is_some() || !shaped.tools.is_empty() {
                // A call or a JSON document is not cut at a sentence's end.
                options.soft_max_tokens = None;
            }
            let chat = oy3o_llama::ChatRequest {
                messages,
                tools: shaped.tools,
                chat_template,
                grammar: shaped.grammar,
            };
            if !runtime.is_loaded(&path) {
                // The first answer of a process waits for the load: say so.
                yield Delta::Event(Event::Other {
                    name: "load".into(),
                    message: json!({ "model": model, "path": path.display().to_string() }),
                });
            }
            let mut pieces = runtime.chat(path, chat, options);
            let mut calls = Vec::new();
            while let Some(piece) = pieces.recv().await {
                match piece.map_err(|e| llama_error(&model, e))? {
                    Piece::Text(text) => yield Delta::Text(text),
                    Piece::ToolCall(call) => {
                        let call = tools::engine_call(call, calls.len());
                        yield Delta::Event(Event::ToolCallDelta(crate::tool::ToolCallDelta {
                            index: u32::try_from(calls.len()).unwrap_or(u32::MAX),
                            id: Some(call.id.clone()),
                            name: Some(call.name.clone()),
                            arguments: crate::tool::arguments_text(&call.arguments),
                            signature: None,
                        }));
                        calls.push(call);
                    }
                    Piece::Done(stats) => {
                        for call in std::mem::take(&mut calls) {
                            yield Delta::Event(Event::ToolCall(call));
                        }
                        yield Delta::Event(Event::Usage(Usage {
                            input_tokens: u64::from(stats.prompt_tokens),
                            output_tokens: u64::from(stats.completion_tokens),
                            cached_tokens: Some(u64::from(stats.cached_tokens)),
                            reasoning_tokens: None,
                        }));
                        let (finish_reason, why) = finish(stats.finish);
                        if let Some(event) = why {
                            yield Delta::Event(event);
                        }
                        yield Delta::Done { finish_reason: finish_reason.into() };
                        return;
                    }
                }
            }
            Err(Error::provider("the local model stopped without finishing its answer"))?;
        })
    }
}

/// A llama.cpp error as the engine's: a schema or tools the model cannot take are the
/// request's fault (`bad_request`), the rest the provider's.
fn llama_error(model: &str, e: oy3o_llama::LlamaError) -> Error {
    match e {
        oy3o_llama::LlamaError::NoTools { .. } => Error::new(
            ErrorCode::BadRequest,
            oy3o_llama::LlamaError::NoTools {
                model: format!("local:{model}"),
            }
            .to_string(),
        ),
        e @ oy3o_llama::LlamaError::Schema(_) => Error::new(ErrorCode::BadRequest, e.to_string()),
        e => Error::provider(e.to_string()),
    }
}

/// The engine's options as llama.cpp's: `max_tokens` (config, then call) or the default cap,
/// and when it is the default, a short answer to a one-line question.
fn generate_options(options: &crate::Options, messages: &[ChatMessage]) -> GenerateOptions {
    GenerateOptions {
        temperature: options.temperature,
        top_p: options.top_p,
        seed: options.seed,
        max_tokens: Some(options.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        soft_max_tokens: (options.max_tokens.is_none() && ends_with_one_line_question(messages))
            .then_some(SHORT_ANSWER_TOKENS),
        stop: options.stop.clone().unwrap_or_default(),
        ..GenerateOptions::default()
    }
}

/// True when the conversation ends with a user message of one short line.
fn ends_with_one_line_question(messages: &[ChatMessage]) -> bool {
    messages.last().is_some_and(|m| {
        let text = m.content.trim();
        m.role == Role::User.as_str()
            && !text.contains('\n')
            && text.chars().count() <= ONE_LINE_QUESTION_CHARS
    })
}

/// The finish reason of an answer, and the event that explains an early end: `repetition`
/// when the tail repeated a block of `period_tokens` tokens `repeats` times.
fn finish(finish: Finish) -> (&'static str, Option<Event>) {
    match finish {
        Finish::Stop => ("stop", None),
        Finish::ToolCalls => ("tool_calls", None),
        Finish::Length => ("length", None),
        Finish::Repetition(found) => (
            "repetition",
            Some(Event::Other {
                name: "repetition".into(),
                message: json!({ "period_tokens": found.period_tokens, "repeats": found.repeats }),
            }),
        ),
    }
}

fn pull_event(p: &PullProgress) -> Event {
    Event::Other {
        name: "pull".into(),
        message: json!({ "source": p.source, "downloaded": p.downloaded, "total": p.total }),
    }
}

/// Forwards at most one progress report per 100 ms (and always the last of a source).
fn throttled(
    tx: tokio::sync::mpsc::UnboundedSender<PullProgress>,
) -> impl FnMut(PullProgress) + Send {
    let mut last: Option<Instant> = None;
    move |p: PullProgress| {
        let done = p.total.is_some_and(|t| p.downloaded >= t);
        if done || last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            last = Some(Instant::now());
            let _ = tx.send(p);
        }
    }
}

/// Progress of a model pull.
pub use oy3o_llama::PullProgress as Progress;

/// Makes sure a model (a catalog name such as `smollm2`, or a path) is on disk and verified,
/// downloading it if needed; returns its path. `progress` is called as bytes arrive. A catalog
/// model's chat template is then checked to render the prompt the catalog expects (this loads
/// the model, so the first answer after it starts at once).
pub async fn pull(
    name: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<std::path::PathBuf> {
    let dir = oy3o_llama::default_cache_dir()
        .ok_or_else(|| Error::config("no cache directory on this system"))?;
    let path = oy3o_llama::ensure_model(name, &dir, progress)
        .await
        .map_err(|e| Error::new(ErrorCode::NotFound, e.to_string()))?;
    if let Some(entry) = oy3o_llama::find_model(name) {
        runtime()?
            .check_template(&path, entry)
            .await
            .map_err(|e| Error::provider(e.to_string()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oy3o_llama::Loop;

    #[test]
    fn an_answer_is_capped_at_the_default_unless_max_tokens_is_set() {
        let question = [ChatMessage::user("Why is the sky blue?")];
        let unset = crate::Options::default();
        assert_eq!(
            generate_options(&unset, &question).max_tokens,
            Some(DEFAULT_MAX_TOKENS)
        );
        let set = crate::Options {
            max_tokens: Some(2000),
            temperature: Some(0.5),
            ..crate::Options::default()
        };
        let mapped = generate_options(&set, &question);
        assert_eq!(mapped.max_tokens, Some(2000));
        assert_eq!(mapped.temperature, Some(0.5));
    }

    #[test]
    fn stop_sequences_reach_the_generator_and_the_control_is_taken() {
        let question = [ChatMessage::user("Count to ten.")];
        let stop = crate::Options {
            stop: Some(vec!["5".into(), "\n\n".into()]),
            ..crate::Options::default()
        };
        assert_eq!(generate_options(&stop, &question).stop, ["5", "\n\n"]);
        assert!(
            generate_options(&crate::Options::default(), &question)
                .stop
                .is_empty()
        );
        let target = crate::Config::default()
            .resolve(Some("local:smollm2"))
            .unwrap();
        let can = Local.controls(&target);
        assert!(can.stop && can.schema && !can.reasoning && !can.search);
        assert!(crate::controls::require(&stop, "local:smollm2", &can).is_ok());
    }

    #[test]
    fn only_a_one_line_question_without_max_tokens_gets_a_short_answer() {
        let unset = crate::Options::default();
        let short = |messages: &[ChatMessage]| generate_options(&unset, messages).soft_max_tokens;
        assert_eq!(
            short(&[ChatMessage::user(" Why is the sky blue?\n")]),
            Some(SHORT_ANSWER_TOKENS)
        );
        // Several lines, a long line, or a conversation that does not end with the user.
        assert_eq!(short(&[ChatMessage::user("Translate:\nBonjour")]), None);
        assert_eq!(short(&[ChatMessage::user("word ".repeat(50))]), None);
        assert_eq!(
            short(&[
                ChatMessage::user("Hi"),
                ChatMessage::assistant("Hello! How can I help?")
            ]),
            None
        );
        assert_eq!(short(&[]), None);
        let capped = crate::Options {
            max_tokens: Some(512),
            ..crate::Options::default()
        };
        let question = [ChatMessage::user("Why is the sky blue?")];
        assert_eq!(generate_options(&capped, &question).soft_max_tokens, None);
    }

    #[test]
    fn an_answer_ended_for_repeating_itself_says_so_in_an_event_and_its_finish_reason() {
        let found = Loop {
            period_tokens: 7,
            repeats: 3,
        };
        let (reason, event) = finish(Finish::Repetition(found));
        assert_eq!(reason, "repetition");
        let event = event.expect("an event");
        assert_eq!(event.name(), "repetition");
        assert_eq!(event.message(), json!({ "period_tokens": 7, "repeats": 3 }));
        assert_eq!(finish(Finish::Length), ("length", None));
        assert_eq!(finish(Finish::Stop), ("stop", None));
    }
}
