//! Messages of a conversation, made of parts: text, and the parts that tools, attachments and
//! reasoning need (see `docs/DESIGN.md`, "Messages made of parts").
//!
//! Every provider takes text parts; a part a model cannot take (a tool call to a model without
//! tools, an image to a model without vision) is refused before anything is sent
//! ([`require_supported`]), never silently dropped.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attachment::Capabilities;
use crate::error::{Error, Result};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The context (system prompt).
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
    /// The result of a tool the model called.
    Tool,
}

impl Role {
    /// `system`, `user`, `assistant` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }
}

/// Bytes of an attachment: inline (base64 on the wire and in the store) or at a URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The bytes themselves, base64-encoded.
    Base64(String),
    /// Where to fetch them.
    Url(String),
}

/// One piece of a message.
///
/// ```
/// use oy3o::Part;
/// let part = Part::text("hi");
/// assert_eq!(part.as_text(), Some("hi"));
/// assert_eq!(serde_json::to_string(&part).unwrap(), r#"{"type":"text","text":"hi"}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image (PNG, JPEG, WebP, GIF).
    Image {
        /// Its media type (`image/png`).
        mime: String,
        /// Its bytes.
        source: Source,
    },
    /// A document (PDF, plain text).
    Document {
        /// Its media type (`application/pdf`).
        mime: String,
        /// Its bytes.
        source: Source,
        /// Its file name, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A sound recording.
    Audio {
        /// Its media type (`audio/wav`).
        mime: String,
        /// Its bytes.
        source: Source,
    },
    /// The model asks for a tool to be run.
    ToolCall {
        /// The call's id, which its result names.
        id: String,
        /// The tool's name.
        name: String,
        /// Its arguments (a JSON object).
        arguments: Value,
        /// An opaque token the provider wants back with the call (Gemini's `thoughtSignature`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// What a tool returned.
    ToolResult {
        /// The id of the call it answers.
        call_id: String,
        /// What it returned.
        content: String,
        /// Whether it failed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// The model's reasoning, kept so that providers that ask for it back get it.
    Reasoning {
        /// The reasoning text.
        text: String,
    },
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            _ => None,
        }
    }

    /// The SHA-256 of an attachment's bytes in lower-case hex ([`crate::attachment::digest`]),
    /// the address the store keeps it under. `None` for parts that are not attachments, for
    /// attachments at a URL, and for base64 that does not decode.
    ///
    /// ```
    /// use oy3o::{Part, Source};
    /// let part = Part::Audio { mime: "audio/wav".into(), source: Source::Base64("YWJj".into()) };
    /// assert_eq!(part.digest().unwrap(), oy3o::attachment::digest(b"abc"));
    /// assert_eq!(Part::text("abc").digest(), None);
    /// ```
    pub fn digest(&self) -> Option<String> {
        match self {
            Self::Image {
                source: Source::Base64(data),
                ..
            }
            | Self::Document {
                source: Source::Base64(data),
                ..
            }
            | Self::Audio {
                source: Source::Base64(data),
                ..
            } => crate::attachment::decoded(data).map(|b| crate::attachment::digest(&b)),
            _ => None,
        }
    }

    /// What kind of part this is, in the words errors use (`text`, `image`, `tool_call`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Image { .. } => "image",
            Self::Document { .. } => "document",
            Self::Audio { .. } => "audio",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::Reasoning { .. } => "reasoning",
        }
    }
}

/// One message: its author and its parts.
///
/// ```
/// use oy3o::{Message, Role};
/// let m = Message::user("hi");
/// assert_eq!(m.role, Role::User);
/// assert_eq!(m.text(), "hi");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Its author.
    pub role: Role,
    /// What it holds, in order.
    pub parts: Vec<Part>,
}

impl Message {
    /// A message of `role` holding one text part.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            parts: vec![Part::text(text)],
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text)
    }

    /// An assistant's answer: its text (left out when empty and it called tools), then the
    /// tools it called.
    pub fn answer(text: String, calls: Vec<crate::tool::ToolCall>) -> Self {
        let mut parts = Vec::with_capacity(1 + calls.len());
        if !text.is_empty() || calls.is_empty() {
            parts.push(Part::Text { text });
        }
        parts.extend(calls.into_iter().map(|c| Part::ToolCall {
            id: c.id,
            name: c.name,
            arguments: c.arguments,
            signature: c.signature,
        }));
        Self {
            role: Role::Assistant,
            parts,
        }
    }

    /// The results of tool calls, as one `tool` message.
    pub fn tool_results(results: impl IntoIterator<Item = Part>) -> Self {
        Self {
            role: Role::Tool,
            parts: results.into_iter().collect(),
        }
    }

    /// Its text parts, joined (borrowed when there is one).
    pub fn text(&self) -> Cow<'_, str> {
        let mut texts = self.parts.iter().filter_map(Part::as_text);
        match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(only), None) => Cow::Borrowed(only),
            (Some(first), Some(second)) => {
                let mut joined = String::from(first);
                joined.push_str(second);
                texts.for_each(|t| joined.push_str(t));
                Cow::Owned(joined)
            }
        }
    }

    /// Whether it holds text parts only.
    pub fn is_text_only(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text { .. }))
    }
}

/// The name of the tool the call `call_id` among `messages` asked for (providers that name a
/// result by its tool, not only by its call id, need it), or `""` when no call has that id.
pub fn tool_name_of<'a>(messages: &'a [Message], call_id: &str) -> &'a str {
    messages
        .iter()
        .flat_map(|m| &m.parts)
        .find_map(|p| match p {
            Part::ToolCall { id, name, .. } if id == call_id => Some(name.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Checks that a model can take `messages`, before anything is sent: text always; tool calls
/// (from the assistant) and tool results (in `tool` messages) when it takes tools;
/// attachments (in user messages) of the kinds, and from the sources, its [`Capabilities`]
/// allow. Anything else is a `bad_request` naming the part and the model.
pub fn require_supported(messages: &[Message], model: &str, can: &Capabilities) -> Result<()> {
    if !can.tools {
        require_text_or_attachments(messages, model)?;
    }
    for m in messages {
        for part in &m.parts {
            let fits = match part {
                Part::Text { .. } => m.role != Role::Tool,
                Part::ToolCall { .. } => m.role == Role::Assistant,
                Part::ToolResult { .. } => m.role == Role::Tool,
                Part::Image { .. } | Part::Document { .. } | Part::Audio { .. } => {
                    if m.role != Role::User {
                        false
                    } else if let Err(what) = can.takes(part) {
                        return Err(Error::new(
                            crate::error::ErrorCode::BadRequest,
                            format!(
                                "{model} cannot take {what}; send it to a model that can, or \
                                 leave it out"
                            ),
                        ));
                    } else {
                        true
                    }
                }
                Part::Reasoning { .. } => false,
            };
            if !fits {
                return Err(Error::new(
                    crate::error::ErrorCode::BadRequest,
                    format!(
                        "{model} cannot take {} parts in {} messages; tool calls belong to \
                         the assistant, tool results to tool messages, attachments to user \
                         messages, other parts are text",
                        part.kind(),
                        m.role.as_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Text only (no tool calls, results or tool messages), letting attachments through to be
/// checked on their own.
fn require_text_or_attachments(messages: &[Message], model: &str) -> Result<()> {
    for m in messages {
        if m.role == Role::Tool {
            return Err(Error::new(
                crate::error::ErrorCode::BadRequest,
                format!("{model} cannot take tool messages; send text only to this model"),
            ));
        }
        if let Some(part) = m
            .parts
            .iter()
            .find(|p| matches!(p, Part::ToolCall { .. } | Part::ToolResult { .. }))
        {
            return Err(Error::new(
                crate::error::ErrorCode::BadRequest,
                format!(
                    "{model} cannot take {} parts; it takes no tools",
                    part.kind()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_joins_the_text_parts_and_skips_others() {
        let m = Message {
            role: Role::User,
            parts: vec![
                Part::text("a"),
                Part::Image {
                    mime: "image/png".into(),
                    source: Source::Url("http://x/y.png".into()),
                },
                Part::text("b"),
            ],
        };
        assert_eq!(m.text(), "ab");
        assert!(!m.is_text_only());
        assert!(matches!(Message::user("x").text(), Cow::Borrowed("x")));
    }

    #[test]
    fn a_text_only_model_names_the_part_it_cannot_take() {
        let text = Capabilities::TEXT;
        let ok = [Message::system("c"), Message::user("p")];
        assert!(require_supported(&ok, "ollama", &text).is_ok());
        let image = Message {
            role: Role::User,
            parts: vec![Part::Image {
                mime: "image/png".into(),
                source: Source::Base64("AA==".into()),
            }],
        };
        let e = require_supported(&[image], "ollama", &text).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::BadRequest);
        assert!(e.message().contains("image"), "{}", e.message());
        let tool = Message::new(Role::Tool, "42");
        assert!(
            require_supported(&[tool], "bing", &text)
                .unwrap_err()
                .message()
                .contains("tool")
        );
    }

    #[test]
    fn parts_round_trip_through_json() {
        let m = Message {
            role: Role::Assistant,
            parts: vec![
                Part::Reasoning { text: "hm".into() },
                Part::ToolCall {
                    id: "c1".into(),
                    name: "add".into(),
                    arguments: serde_json::json!({"a": 1}),
                    signature: Some("sig".into()),
                },
            ],
        };
        let json = serde_json::to_string(&m).unwrap();
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
