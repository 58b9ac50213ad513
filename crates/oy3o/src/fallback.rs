//! Fallback models: a chat over an alias such as `smart = ["anthropic:claude-sonnet-4-5",
//! "openai:gpt-4o"]` tries its models in order on every turn. A model that fails before its
//! answer starts (rate limit, server error, unreachable, timeout, after its own retries) hands
//! the turn to the next one, with a `retry` event naming both. Once output has started, a
//! failure is the turn's error: the partial answer is kept, never replayed elsewhere.
//!
//! A model that cannot take the turn's conversation (an image for a model without vision) is
//! skipped before anything is sent to it, with a `retry` event saying why.
//!
//! The conversation is one: the session that completed the last turn holds the history, and a
//! model that takes a turn over is given that history first. Sessions open on first use.

use std::sync::{Arc, Mutex};

use futures::StreamExt;

use crate::attachment::Capabilities;
use crate::config::{Options, Target};
use crate::error::{Error, ErrorCode, Result};
use crate::event::Event;
use crate::message::Message;
use crate::provider::{Delta, DeltaStream, Session};

/// The failures that move a turn to the next model, if no output has been produced yet.
fn falls_back(error: &Error) -> bool {
    matches!(
        error.code(),
        ErrorCode::RateLimit | ErrorCode::Provider | ErrorCode::Network | ErrorCode::Timeout
    )
}

struct State {
    /// One slot per target, filled on first use.
    sessions: Vec<Option<Arc<dyn Session>>>,
    /// The context set by `update`, if any (`Some(None)`: cleared); a session opened later
    /// gets it instead of its model's default.
    context: Option<Option<String>>,
    /// The session whose history is the conversation's.
    current: usize,
    closed: bool,
}

/// A [`Session`] over several models tried in order (see the module docs).
pub(crate) struct FallbackSession {
    targets: Arc<Vec<Target>>,
    /// What each target can take: a model that cannot take the conversation is skipped.
    can: Arc<Vec<Capabilities>>,
    state: Arc<Mutex<State>>,
    /// Held for a whole turn, across the models it visits.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl FallbackSession {
    /// Opens the first model's session now and the others when they are needed. `can` holds
    /// what each target can take, in order.
    pub(crate) fn open(targets: Vec<Target>, can: Vec<Capabilities>) -> Result<Self> {
        let first = match targets.first() {
            Some(t) => Arc::from(crate::trace::open(t)?),
            None => return Err(Error::config("no model to open a chat with")),
        };
        let mut sessions: Vec<Option<Arc<dyn Session>>> = vec![None; targets.len()];
        sessions[0] = Some(first);
        Ok(Self {
            targets: Arc::new(targets),
            can: Arc::new(can),
            state: Arc::new(Mutex::new(State {
                sessions,
                context: None,
                current: 0,
                closed: false,
            })),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        })
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The session of model `index`, opened (with the chat's context) if it was not yet, and
/// holding the conversation so far.
fn session_for(targets: &[Target], state: &Mutex<State>, index: usize) -> Result<Arc<dyn Session>> {
    let mut s = lock(state);
    if s.closed {
        return Err(Error::config("this chat is closed; open a new one"));
    }
    let session = match &s.sessions[index] {
        Some(session) => session.clone(),
        None => {
            let target = &targets[index];
            let session: Arc<dyn Session> = Arc::from(crate::trace::open(target)?);
            if let Some(context) = &s.context {
                session.update(context.clone());
            }
            s.sessions[index] = Some(session.clone());
            session
        }
    };
    if s.current != index
        && let Some(holder) = &s.sessions[s.current]
    {
        session.restore(holder.history())?;
    }
    Ok(session)
}

/// Whether the model `reference` can take the conversation so far and `prompt`
/// ([`crate::message::require_supported`]).
fn fits(state: &Mutex<State>, prompt: &Message, reference: &str, can: &Capabilities) -> Result<()> {
    crate::message::require_supported(std::slice::from_ref(prompt), reference, can)?;
    let history = {
        let s = lock(state);
        s.sessions[s.current]
            .as_ref()
            .map(|holder| holder.history())
    };
    match history {
        Some(history) => crate::message::require_supported(&history, reference, can),
        None => Ok(()),
    }
}

impl Session for FallbackSession {
    fn update(&self, context: Option<String>) {
        let mut s = lock(&self.state);
        for session in s.sessions.iter().flatten() {
            session.update(context.clone());
        }
        s.context = Some(context);
    }

    fn send(&self, prompt: Message, options: Options) -> DeltaStream {
        let targets = self.targets.clone();
        let can = self.can.clone();
        let state = self.state.clone();
        let turn = self.turn.clone();
        Box::pin(async_stream::try_stream! {
            let _turn = turn.lock_owned().await;
            let mut index = 0;
            // Why the last model tried did not answer, if one was tried.
            let mut last_failure: Option<Error> = None;
            loop {
                let from = targets[index].reference.to_string();
                if let Err(cannot) = fits(&state, &prompt, &from, &can[index]) {
                    let next = index + 1;
                    if next >= targets.len() {
                        Err(last_failure.unwrap_or_else(|| Error::new(
                            cannot.code(),
                            format!("none of the fallback models can take this: {}", cannot.message()),
                        )))?;
                        return;
                    }
                    let to = targets[next].reference.to_string();
                    yield Delta::Event(Event::Retry {
                        attempt: next as u32,
                        delay_ms: 0,
                        reason: format!("{}; falling back to {to}", cannot.message()),
                    });
                    index = next;
                    continue;
                }
                let session = session_for(&targets, &state, index)?;
                let mut answer = session.send(prompt.clone(), options.clone());
                let mut started = false;
                let mut failure = None;
                while let Some(delta) = answer.next().await {
                    match delta {
                        Ok(delta) => {
                            if let Delta::Done { .. } = delta {
                                lock(&state).current = index;
                            }
                            // A provider's own retries are not output; anything else is.
                            started |= !matches!(delta, Delta::Event(Event::Retry { .. }));
                            yield delta;
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                let Some(error) = failure else {
                    return;
                };
                let next = index + 1;
                if started || next >= targets.len() || !falls_back(&error) {
                    Err(error)?;
                    return;
                }
                let to = targets[next].reference.to_string();
                let said = shortened(error.message(), REASON_CHARS);
                yield Delta::Event(Event::Retry {
                    attempt: next as u32,
                    delay_ms: 0,
                    reason: format!(
                        "{from} failed before answering ({}: {said}); falling back to {to}",
                        error.code()
                    ),
                });
                last_failure = Some(error);
                index = next;
            }
        })
    }

    fn history(&self) -> Vec<Message> {
        let s = lock(&self.state);
        s.sessions[s.current]
            .as_ref()
            .map(|session| session.history())
            .unwrap_or_default()
    }

    fn restore(&self, history: Vec<Message>) -> Result<()> {
        let session = {
            let s = lock(&self.state);
            s.sessions[s.current].clone()
        };
        match session {
            Some(session) => session.restore(history),
            None => Ok(()),
        }
    }

    fn handle(&self) -> Option<serde_json::Value> {
        let s = lock(&self.state);
        s.sessions[s.current]
            .as_ref()
            .and_then(|session| session.handle())
    }

    fn resume(&self, handle: Option<&serde_json::Value>, history: Vec<Message>) -> Result<()> {
        let session = {
            let s = lock(&self.state);
            s.sessions[s.current].clone()
        };
        match session {
            Some(session) => session.resume(handle, history),
            None => Ok(()),
        }
    }

    fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        for session in s.sessions.iter().flatten() {
            session.close();
        }
    }
}

/// The most characters of a failure a fallback's reason quotes.
const REASON_CHARS: usize = 200;

/// `text` cut to at most `max` characters at the end of a word, with `…` when cut.
fn shortened(text: &str, max: usize) -> String {
    let Some((end, _)) = text.char_indices().nth(max) else {
        return text.to_owned();
    };
    let cut = &text[..end];
    // The last word is whole when the text goes on with white space right after it.
    let whole = text[end..].starts_with(char::is_whitespace);
    let kept = match cut.rfind(char::is_whitespace) {
        Some(space) if !whole => &cut[..space],
        _ => cut,
    };
    format!(
        "{}…",
        kept.trim_end_matches(|c: char| c.is_whitespace() || ",;:".contains(c))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_shortened_at_the_end_of_a_word() {
        assert_eq!(shortened("short enough", 200), "short enough");
        assert_eq!(shortened("the network address", 13), "the network…");
        assert_eq!(shortened("the network address", 11), "the network…");
        assert_eq!(shortened("the network, address", 14), "the network…");
        assert_eq!(shortened("overlongword", 4), "over…");
        assert_eq!(shortened("ünïcödé wörds hère", 9), "ünïcödé…");
    }
}
