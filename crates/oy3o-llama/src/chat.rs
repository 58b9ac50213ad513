//! The values that go into a generation (messages, options) and come out of it (pieces, stats).

use serde::{Deserialize, Serialize};

pub use crate::repetition::Loop;

/// One message of a conversation, shaped as Hugging Face chat templates read it.
///
/// ```
/// let m = oy3o_llama::ChatMessage::user("What is 1+1?");
/// assert_eq!(m.role, "user");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text of the message (a tool's output in a `tool` message).
    pub content: String,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// In a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// In a `tool` message: the name of the tool that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A tool call, in a model's answer or in an earlier assistant message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id (made up for models that give none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object; a string when the model wrote something else).
    pub arguments: serde_json::Value,
}

/// A tool a model may call, as chat templates show it (inside
/// `{"type": "function", "function": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments; `None` takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

/// What to answer: the conversation, the tools the template shows, and what holds the answer
/// to a shape.
///
/// ```
/// use oy3o_llama::{ChatMessage, ChatRequest};
/// let request = ChatRequest::new(vec![ChatMessage::user("Hi")]);
/// assert!(request.tools.is_empty() && request.grammar.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tools rendered through the chat template's `tools` variable (the template must use it:
    /// see [`ChatTemplate::takes_tools`](crate::ChatTemplate::takes_tools)).
    pub tools: Vec<ToolDefinition>,
    /// A Jinja chat template used instead of the one in the model file.
    pub chat_template: Option<String>,
    /// Holds generation to this grammar (JSON of a schema, a tool call).
    pub grammar: Option<crate::Grammar>,
}

impl ChatRequest {
    /// A request of `messages` alone.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// An assistant message that called tools (`content` may be empty).
    pub fn assistant_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::new("assistant", content)
        }
    }

    /// A `tool` message: what the call `call_id` of tool `name` returned.
    pub fn tool_result(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            tool_call_id: Some(call_id.into()),
            name: Some(name.into()),
            ..Self::new("tool", content)
        }
    }

    /// A `system` message (instructions that steer the assistant).
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message (an earlier answer).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The repeat penalty used when [`GenerateOptions::repeat_penalty`] is `None`, greedy or
/// sampling: llama.cpp's server (llama-cpp-python) and Ollama apply 1.1 by default.
pub const DEFAULT_REPEAT_PENALTY: f32 = 1.1;

/// How many of the answer's last tokens the repeat penalty looks at, as llama.cpp's
/// `repeat_last_n` and Ollama's default.
pub const REPEAT_WINDOW: usize = 64;

/// When sampling and [`GenerateOptions::top_k`] is `None`: llama.cpp's default.
pub const DEFAULT_TOP_K: u32 = 40;
/// When sampling and [`GenerateOptions::top_p`] is `None`: llama.cpp's default.
pub const DEFAULT_TOP_P: f32 = 0.95;
/// When sampling and [`GenerateOptions::min_p`] is `None`: llama.cpp's default.
pub const DEFAULT_MIN_P: f32 = 0.05;

/// How to pick tokens. The default is greedy decoding after a repeat penalty over the answer's
/// last tokens; a temperature above 0 samples instead, with llama.cpp's server's defaults for
/// what is not set. Either way an answer whose tail loops ends with [`Finish::Repetition`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateOptions {
    /// Sampling temperature; `None` or `0` means greedy (always the most likely token).
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the smallest set of tokens whose probability adds up to this
    /// ([`DEFAULT_TOP_P`] when `None`, `1.0` for all). Only used when sampling (temperature
    /// above 0).
    pub top_p: Option<f32>,
    /// Keep only this many of the most likely tokens ([`DEFAULT_TOP_K`] when `None`, `0` for
    /// all). Only used when sampling.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Drop the tokens less likely than this fraction of the most likely one
    /// ([`DEFAULT_MIN_P`] when `None`, `0` for none). Only used when sampling.
    #[serde(default)]
    pub min_p: Option<f32>,
    /// Seed for sampling, for repeatable answers; random when `None`.
    pub seed: Option<u32>,
    /// Stop after this many new tokens; by default generation runs until the model ends its
    /// answer, loops, or the context window is full.
    pub max_tokens: Option<u32>,
    /// After this many new tokens, end the answer where its current sentence or paragraph ends
    /// (with [`Finish::Length`]) instead of letting it run on to `max_tokens`: a short answer
    /// that still reads whole.
    #[serde(default)]
    pub soft_max_tokens: Option<u32>,
    /// Divides (or for negative logits, multiplies) the logit of every token seen in the
    /// answer's last [`REPEAT_WINDOW`] tokens; `None` means [`DEFAULT_REPEAT_PENALTY`]; `1.0`
    /// turns it off.
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Stop sequences: the answer ends (with [`Finish::Stop`]) as soon as its text contains
    /// one of them, and the sequence itself is not part of the answer. Empty ones are ignored.
    #[serde(default)]
    pub stop: Vec<String>,
}

/// One item of a generation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// More answer text (always whole UTF-8 characters).
    Text(String),
    /// A whole tool call the answer made (only when the request offered tools).
    ToolCall(ToolCall),
    /// The answer is complete; always the last item of a stream that did not fail.
    Done(Stats),
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// The model ended its answer, or it reached a stop sequence
    /// ([`GenerateOptions::stop`]).
    Stop,
    /// `max_tokens` was reached, the context window filled up, or the answer ended at a
    /// sentence's end after `soft_max_tokens`.
    Length,
    /// The answer's tail repeated itself (see [`Loop`]), so it was ended there.
    Repetition(Loop),
    /// The model ended its answer after calling tools (see [`Piece::ToolCall`]).
    ToolCalls,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Tokens in the rendered prompt (the whole conversation).
    pub prompt_tokens: u32,
    /// Prompt tokens that were already in the KV cache from an earlier turn and not read again.
    pub cached_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Milliseconds spent loading the model for this request (0 when it was already loaded).
    pub load_ms: u64,
    /// Milliseconds spent reading the new part of the prompt.
    pub prompt_ms: u64,
    /// Milliseconds spent generating the answer.
    pub generation_ms: u64,
    /// Why generation ended.
    pub finish: Finish,
}

/// A conversation rendered with the model's chat template, and its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPrompt {
    /// The prompt text, special tokens written out (for example `<|im_start|>`).
    pub text: String,
    /// The token ids llama.cpp reads.
    pub tokens: Vec<i32>,
}
