//! Reading the chat socket's events (`shared/wire/COPILOT.md` §A.7, §A.12) into deltas: text
//! from `appendText` deltas (and `replaceText`), `chainOfThought` as reasoning, `citation`s,
//! `titleUpdate` as the title, `suggestedFollowups` as reply suggestions, `done` as the end of
//! the answer, `challenge`s answered or turned into a clear error, `error`s mapped to codes.

use serde::Deserialize;
use serde_json::{Value, json};

use super::challenge;
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Citation, Event};
use crate::provider::Delta;

/// Challenges answered in one turn before giving up (a server that keeps asking is refusing).
const MAX_CHALLENGES: u32 = 3;

/// One server frame; each event fills only its own fields.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Frame {
    event: String,
    id: Option<String>,
    message_id: Option<String>,
    part_id: Option<String>,
    text: Option<String>,
    url: Option<String>,
    title: Option<String>,
    prompt: Option<String>,
    thumbnail_url: Option<String>,
    suggestions: Vec<String>,
    method: Option<String>,
    parameter: Value,
    error_code: Option<String>,
    message: Option<String>,
    body: Option<Value>,
}

/// What the turn does after a frame.
#[derive(Debug, PartialEq)]
pub(super) enum Next {
    /// Keep reading.
    Read,
    /// Answer this challenge (see [`Challenge::answer`]), then keep reading.
    Challenge(Challenge),
    /// The turn is complete.
    Finish,
}

/// A challenge to answer: the method, its parameter and id, as sent.
#[derive(Debug, PartialEq)]
pub(super) struct Challenge {
    method: Option<String>,
    parameter: Value,
    id: Option<String>,
}

impl Challenge {
    /// The frames to send: the response, then the held `send` again (COPILOT.md §A.6.4). The
    /// proof of work is computed on a blocking thread, off the runtime's workers.
    pub(super) async fn answer(self, send: &Value) -> Result<Vec<Value>> {
        let Challenge {
            method,
            parameter,
            id,
        } = self;
        let (method, token) = tokio::task::spawn_blocking(move || {
            let token = challenge::solve(method.as_deref(), &parameter);
            (method, token)
        })
        .await
        .map_err(|e| Error::provider(format!("solving Copilot's challenge failed: {e}")))?;
        let response = super::frames::challenge_response(
            &token?,
            method.as_deref().unwrap_or_default(),
            id.as_deref(),
        );
        Ok(vec![response, send.clone()])
    }
}

/// The state of one answer.
#[derive(Default)]
pub(super) struct Answer {
    /// The bot message this answer is (from `startMessage`).
    bot_message: Option<String>,
    /// The part being written and its text so far.
    part: Option<String>,
    part_text: String,
    /// Characters of answer text so far (citations point into it).
    chars: u64,
    /// Sources already reported as `search_result` in this answer.
    sources: std::collections::HashSet<String>,
    /// `done` arrived: only the title and suggestions may follow.
    pub(super) done: bool,
    challenges: u32,
}

impl Answer {
    /// Maps one text frame.
    pub(super) fn read(&mut self, text: &str, out: &mut Vec<Delta>) -> Result<Next> {
        let frame: Frame = serde_json::from_str(text).map_err(|e| {
            Error::provider(format!(
                "Copilot sent a frame that is not the expected JSON ({e}): {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        match frame.event.as_str() {
            "startMessage" if self.bot_message.is_none() => self.bot_message = frame.message_id,
            "appendText" if self.mine(&frame) => {
                if let Some(t) = frame.text.filter(|t| !t.is_empty()) {
                    self.enter_part(frame.part_id, out);
                    self.part_text.push_str(&t);
                    self.push_text(t, out);
                }
            }
            "replaceText" if self.mine(&frame) => {
                let new = frame.text.unwrap_or_default();
                self.enter_part(frame.part_id.clone(), out);
                if let Some(rest) = new.strip_prefix(self.part_text.as_str()) {
                    // A replacement that only extends the part is more text.
                    if !rest.is_empty() {
                        self.push_text(rest.to_owned(), out);
                    }
                } else {
                    // Text already streamed cannot be taken back: say what replaced it.
                    out.push(Delta::Event(Event::Other {
                        name: "replace_text".to_owned(),
                        message: json!({"part": frame.part_id, "text": new}),
                    }));
                }
                self.part_text = new;
            }
            "chainOfThought" => {
                if let Some(t) = frame.text.filter(|t| !t.is_empty()) {
                    out.push(Delta::Event(Event::Reasoning(t)));
                }
            }
            "citation" => {
                if let Some(url) = frame.url.filter(|u| !u.is_empty()) {
                    let title = frame.title.filter(|t| !t.is_empty());
                    // The original's `search_result`: each source the answer read, once; then
                    // the `citation` pointing into the text.
                    if self.sources.insert(url.clone()) {
                        out.push(Delta::Event(Event::SearchResult(Citation {
                            url: url.clone(),
                            title: title.clone(),
                            start: None,
                            end: None,
                        })));
                    }
                    out.push(Delta::Event(Event::Citation(Citation {
                        url,
                        title,
                        start: Some(self.chars),
                        end: None,
                    })));
                }
            }
            "generatingImage" => out.push(Delta::Event(Event::Other {
                name: "generating_image".to_owned(),
                message: json!({"prompt": frame.prompt}),
            })),
            "imageGenerated" => out.push(Delta::Event(Event::Other {
                name: "image".to_owned(),
                message: json!({"url": frame.url, "thumbnail_url": frame.thumbnail_url}),
            })),
            "done" if self.mine(&frame) => self.done = true,
            "titleUpdate" => {
                if let Some(t) = frame.title.filter(|t| !t.is_empty()) {
                    out.push(Delta::Event(Event::Title(t)));
                }
            }
            "suggestedFollowups" => {
                out.extend(
                    frame
                        .suggestions
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| Delta::Event(Event::ReplySuggestion(s))),
                );
                // The last event of a turn (§A.8).
                if self.done {
                    return Ok(Next::Finish);
                }
            }
            "challenge" => {
                self.challenges += 1;
                if self.challenges > MAX_CHALLENGES {
                    return Err(Error::new(
                        ErrorCode::Auth,
                        "Copilot kept asking for challenges after they were answered; export \
                         the cookies again from a browser where copilot.microsoft.com works",
                    ));
                }
                return Ok(Next::Challenge(Challenge {
                    method: frame.method,
                    parameter: frame.parameter,
                    id: frame.id,
                }));
            }
            "error" => return Err(service_error(&frame)),
            // `connected`, `received`, `partCompleted`, `partialImageGenerated`, frames of other
            // messages and events this client does not know: nothing to show (§A.7).
            _ => {}
        }
        Ok(Next::Read)
    }

    /// Whether a frame belongs to the bot message being answered (any, before it is known).
    fn mine(&self, frame: &Frame) -> bool {
        match (&self.bot_message, &frame.message_id) {
            (Some(bot), Some(id)) => bot == id,
            _ => true,
        }
    }

    /// Starts a new part when `part` differs from the current one; parts of one answer are
    /// separated by a blank line.
    fn enter_part(&mut self, part: Option<String>, out: &mut Vec<Delta>) {
        let part = part.unwrap_or_else(|| "0".to_owned());
        if self.part.as_deref() == Some(part.as_str()) {
            return;
        }
        if self.part.is_some() && self.chars > 0 {
            self.push_text("\n\n".to_owned(), out);
        }
        self.part = Some(part);
        self.part_text.clear();
    }

    fn push_text(&mut self, text: String, out: &mut Vec<Delta>) {
        self.chars += text.chars().count() as u64;
        out.push(Delta::Text(text));
    }
}

/// An `error` event as an [`Error`] with a code and what to do (§A.11).
fn service_error(frame: &Frame) -> Error {
    let code = frame.error_code.clone().unwrap_or_default();
    let said = frame
        .message
        .clone()
        .or_else(|| frame.body.as_ref().map(Value::to_string))
        .map(|m| format!(": {}", m.chars().take(300).collect::<String>()))
        .unwrap_or_default();
    let lower = code.to_ascii_lowercase();
    let (kind, next) = match lower.as_str() {
        "chat-service-unavailable" => (
            ErrorCode::Provider,
            "Copilot is not available to this session, usually because anonymous chat is \
             blocked in the region: export cookies of a signed-in session, or use a proxy in a \
             supported region",
        ),
        "invalid-event" => (
            ErrorCode::Provider,
            "the service refused a frame of this client; the web protocol may have changed: \
             update oy3o",
        ),
        c if c.contains("auth") || c.contains("session") || c.contains("login") => (
            ErrorCode::Auth,
            "the cookies are missing or expired: export them again from the browser",
        ),
        c if c.contains("throttl") || c.contains("rate") || c.contains("limit") => (
            ErrorCode::RateLimit,
            "Copilot asks to slow down: wait and try again",
        ),
        _ => (
            ErrorCode::Provider,
            "Copilot failed the turn; try again later",
        ),
    };
    let code = if code.is_empty() {
        "no code".to_owned()
    } else {
        code
    };
    Error::new(
        kind,
        format!("Copilot answered error {code}{said} ({next})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(frames: &[&str]) -> (Vec<Delta>, Result<Next>) {
        let mut answer = Answer::default();
        let mut out = Vec::new();
        let mut last = Ok(Next::Read);
        for f in frames {
            last = answer.read(f, &mut out);
            if last.is_err() {
                break;
            }
        }
        (out, last)
    }

    fn text(deltas: &[Delta]) -> String {
        deltas
            .iter()
            .filter_map(|d| match d {
                Delta::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn append_text_deltas_of_the_bot_message_make_the_answer() {
        let (out, next) = feed(&[
            r#"{"event":"received","conversationId":"c","messageId":"u1","id":"0"}"#,
            r#"{"event":"startMessage","conversationId":"c","messageId":"b1","id":"1"}"#,
            r#"{"event":"appendText","messageId":"b1","partId":"0","text":"Received","id":"2"}"#,
            r#"{"event":"appendText","messageId":"other","partId":"0","text":"NOT MINE","id":"3"}"#,
            r#"{"event":"appendText","messageId":"b1","partId":"0","text":"! Test","id":"4"}"#,
            r#"{"event":"partCompleted","messageId":"b1","partId":"0","id":"5"}"#,
            r#"{"event":"done","messageId":"b1","id":"6"}"#,
            r#"{"event":"titleUpdate","conversationId":"c","title":"Test","id":"7"}"#,
            r#"{"event":"suggestedFollowups","messageId":"b1","suggestions":["More?"],"id":"8"}"#,
        ]);
        assert_eq!(next.unwrap(), Next::Finish);
        assert_eq!(text(&out), "Received! Test");
        assert!(out.contains(&Delta::Event(Event::Title("Test".into()))));
        assert!(out.contains(&Delta::Event(Event::ReplySuggestion("More?".into()))));
    }

    #[test]
    fn replace_text_that_extends_the_part_streams_the_rest_and_a_rewrite_is_an_event() {
        let (out, _) = feed(&[
            r#"{"event":"appendText","messageId":"b","partId":"0","text":"Hello"}"#,
            r#"{"event":"replaceText","messageId":"b","partId":"0","text":"Hello world"}"#,
            r#"{"event":"replaceText","messageId":"b","partId":"0","text":"Bye"}"#,
            r#"{"event":"appendText","messageId":"b","partId":"1","text":"Next"}"#,
        ]);
        assert_eq!(text(&out), "Hello world\n\nNext");
        assert!(out.iter().any(
            |d| matches!(d, Delta::Event(Event::Other { name, .. }) if name == "replace_text")
        ));
    }

    #[test]
    fn citations_point_at_the_answer_so_far_and_reasoning_stays_out_of_the_text() {
        let (out, _) = feed(&[
            r#"{"event":"chainOfThought","text":"Thinking"}"#,
            r#"{"event":"appendText","messageId":"b","partId":"0","text":"Héllo"}"#,
            r#"{"event":"citation","url":"https://example.com/a","title":"Example","iconUrl":"x"}"#,
            r#"{"event":"citation","url":"https://example.com/a","title":"Example","iconUrl":"x"}"#,
        ]);
        assert_eq!(text(&out), "Héllo");
        assert_eq!(out[0], Delta::Event(Event::Reasoning("Thinking".into())));
        // The source once as a search result, then a citation per mention.
        let results = out
            .iter()
            .filter(|d| matches!(d, Delta::Event(Event::SearchResult(_))))
            .count();
        assert_eq!(results, 1);
        assert_eq!(
            out[2],
            Delta::Event(Event::SearchResult(Citation {
                url: "https://example.com/a".into(),
                title: Some("Example".into()),
                start: None,
                end: None,
            }))
        );
        assert_eq!(
            out[3],
            Delta::Event(Event::Citation(Citation {
                url: "https://example.com/a".into(),
                title: Some("Example".into()),
                start: Some(5),
                end: None,
            }))
        );
    }

    #[tokio::test]
    async fn a_hashcash_challenge_is_answered_and_the_send_repeated() {
        let (_, next) = feed(&[
            r#"{"event":"challenge","method":"hashcash","parameter":"abc:4","id":"0.0001"}"#,
        ]);
        let Next::Challenge(challenge) = next.unwrap() else {
            panic!("expected a challenge");
        };
        let frames = challenge.answer(&json!({"event": "send"})).await.unwrap();
        assert_eq!(frames[0]["event"], "challengeResponse");
        assert_eq!(frames[0]["method"], "hashcash");
        assert_eq!(frames[0]["id"], "0.0001");
        assert_eq!(frames[1], json!({"event": "send"}));
    }

    #[tokio::test]
    async fn service_errors_and_browser_checks_map_to_codes() {
        let code = |c: &str| {
            let (_, next) = feed(&[&format!(r#"{{"event":"error","errorCode":"{c}"}}"#)]);
            next.unwrap_err().code()
        };
        assert_eq!(code("chat-service-unavailable"), ErrorCode::Provider);
        assert_eq!(code("invalid-event"), ErrorCode::Provider);
        assert_eq!(code("unauthorized"), ErrorCode::Auth);
        assert_eq!(code("throttled"), ErrorCode::RateLimit);
        let (_, null) = feed(&[r#"{"event":"challenge","method":null,"parameter":null,"id":"1"}"#]);
        let Ok(Next::Challenge(null)) = null else {
            panic!("expected a challenge");
        };
        let refused = null.answer(&json!({})).await;
        assert_eq!(refused.unwrap_err().code(), ErrorCode::Auth);
    }
}
