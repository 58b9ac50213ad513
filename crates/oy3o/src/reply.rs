//! [`Reply`]: the stream a chat or a one-shot prompt returns. It yields answer text, calls the
//! listeners for every event on the consuming task, and ends with a `result` or an `error`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use crate::error::{Error, Result};
use crate::event::{Event, Usage};
use crate::listener::Listeners;
use crate::provider::{Delta, DeltaStream};
use crate::tool::ToolCall;

/// One item of a reply when events are wanted too ([`Reply::outputs`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A chunk of answer text.
    Text(String),
    /// An event (listeners have already been called for it).
    Event(Event),
}

/// A streaming answer. As a [`Stream`] it yields text chunks; events go to the listeners.
/// Dropping it cancels the request upstream.
///
/// ```no_run
/// # async fn demo() -> oy3o::Result<()> {
/// use futures::StreamExt;
/// let mut reply = oy3o::exec("What is 1+1?", None, Some("openai:gpt-4o-mini"), &oy3o::Config::default());
/// while let Some(chunk) = reply.next().await {
///     print!("{}", chunk?);
/// }
/// # Ok(()) }
/// ```
pub struct Reply {
    upstream: Option<DeltaStream>,
    listeners: Listeners,
    queued: VecDeque<Result<Output>>,
    text: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    tool_calls: Vec<ToolCall>,
    span: tracing::Span,
}

impl Reply {
    /// A reply over a provider stream; `prelude` events are delivered first.
    pub fn new(upstream: DeltaStream, listeners: Listeners, prelude: Vec<Event>) -> Self {
        Self {
            upstream: Some(upstream),
            listeners,
            queued: prelude.into_iter().map(|e| Ok(Output::Event(e))).collect(),
            text: String::new(),
            usage: None,
            finish_reason: None,
            tool_calls: Vec::new(),
            span: tracing::Span::none(),
        }
    }

    /// The reply with its turn's span (see [`crate::trace`]).
    pub(crate) fn in_span(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    /// The span of this turn (`invoke_agent`, see [`crate::trace`]); disabled when no
    /// subscriber wants it. A face that prices the turn records its cost here:
    /// `reply.span().record(oy3o::trace::COST_ATTRIBUTE, usd)`.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// A reply that fails at once (e.g. the model could not be resolved); the `error` event
    /// still reaches the listeners.
    pub fn failed(error: Error, listeners: Listeners) -> Self {
        let mut reply = Self::new(Box::pin(futures::stream::empty()), listeners, Vec::new());
        reply.upstream = None;
        reply.queued.push_back(Err(error));
        reply
    }

    /// Yields events as well as text.
    pub fn outputs(self) -> Outputs {
        Outputs(self)
    }

    /// Waits for the whole answer.
    pub async fn text(mut self) -> Result<String> {
        use futures::StreamExt;
        while let Some(item) = self.next().await {
            item?;
        }
        Ok(self.text)
    }

    /// The answer so far.
    pub fn answer(&self) -> &str {
        &self.text
    }

    /// Token counts, once the provider has sent them.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// Why the model stopped, once it has.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    /// The tools the model called and left for the caller to run, once its answer ended
    /// (finish reason `tool_calls`); calls the engine ran itself ([`Options::toolbox`]) are
    /// not among them.
    ///
    /// [`Options::toolbox`]: crate::Options::toolbox
    pub fn tool_calls(&self) -> &[ToolCall] {
        &self.tool_calls
    }

    fn deliver(&mut self, item: Result<Output>) -> Result<Output> {
        match &item {
            Ok(Output::Event(event)) => self.listeners.emit(event),
            Err(error) => {
                self.upstream = None;
                self.queued.clear();
                self.listeners.emit(&Event::Error {
                    code: error.code(),
                    message: error.message().to_owned(),
                });
            }
            Ok(Output::Text(_)) => {}
        }
        item
    }

    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Output>>> {
        loop {
            if let Some(item) = self.queued.pop_front() {
                return Poll::Ready(Some(self.deliver(item)));
            }
            let Some(upstream) = self.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            let item = match upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(item) => item,
            };
            let output = match item {
                Some(Ok(Delta::Text(t))) => {
                    if t.is_empty() {
                        continue;
                    }
                    self.text.push_str(&t);
                    Ok(Output::Text(t))
                }
                Some(Ok(Delta::Event(e))) => {
                    match &e {
                        Event::Usage(u) => self.usage = Some(u.clone()),
                        Event::ToolCall(call) => self.tool_calls.push(call.clone()),
                        // The engine ran them (a tool loop): not the caller's to run.
                        Event::ToolResult(_) => self.tool_calls.clear(),
                        _ => {}
                    }
                    Ok(Output::Event(e))
                }
                Some(Ok(Delta::Done { finish_reason })) => {
                    self.upstream = None;
                    self.finish_reason = Some(finish_reason.clone());
                    Ok(Output::Event(Event::Result {
                        text: self.text.clone(),
                        finish_reason,
                    }))
                }
                Some(Err(e)) => Err(e),
                None => Err(crate::provider::cut_off()),
            };
            return Poll::Ready(Some(self.deliver(output)));
        }
    }
}

impl Stream for Reply {
    type Item = Result<String>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return match this.poll_output(cx) {
                Poll::Ready(Some(Ok(Output::Event(_)))) => continue,
                Poll::Ready(Some(Ok(Output::Text(t)))) => Poll::Ready(Some(Ok(t))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// A [`Reply`] that yields events as well as text (see [`Reply::outputs`]).
pub struct Outputs(Reply);

impl Outputs {
    /// The reply inside, for its answer and usage.
    pub fn reply(&self) -> &Reply {
        &self.0
    }
}

impl Stream for Outputs {
    type Item = Result<Output>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_output(cx)
    }
}
