//! The engine's `tracing` spans for every turn, provider call and tool step, named and
//! attributed after the OpenTelemetry GenAI semantic conventions (v1.41.0:
//! <https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/> and
//! <https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-agent-spans/>), so that any
//! face's subscriber (the server's OTLP exporter) gets the same tree:
//!
//! ```text
//! invoke_agent oy3o            one turn (the whole answer, tool steps included)
//! ├── chat gpt-4o              one provider call (each fallback model tried is one)
//! ├── execute_tool get_time    one tool call the engine runs
//! └── chat gpt-4o              the next step's call
//! ```
//!
//! What it is not: an exporter. Without a subscriber that enables the target [`TARGET`] (the
//! default: none is installed), every span here is disabled at its call site and nothing is
//! wrapped or allocated.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use tracing::Span;
use tracing::field::Empty;

use crate::config::Target;
use crate::event::{Event, Usage};
use crate::provider::{Delta, DeltaStream};

/// The `tracing` target of every span here: a subscriber selects them by it.
pub const TARGET: &str = "oy3o::trace";

/// The attribute a turn's cost (US dollars, a float) is recorded in, when a price is known:
/// `reply.span().record(COST_ATTRIBUTE, usd)` once the turn's usage is priced. Not a
/// semantic-conventions attribute (they have none for cost).
pub const COST_ATTRIBUTE: &str = "oy3o.cost.usd";

/// The attribute of the seconds from a turn's or call's start to its first answer text (or
/// reasoning): the conventions define this only as a metric
/// (`gen_ai.client.operation.time_to_first_chunk`), so ours is named after it.
pub const FIRST_CHUNK_ATTRIBUTE: &str = "oy3o.time_to_first_chunk";

/// Whether spans of [`TARGET`] are wanted now (a subscriber enables them).
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// The span of one turn of a chat on `model` (as asked: an alias or `provider:model`).
pub(crate) fn turn_span(model: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "invoke_agent",
        otel.name = "invoke_agent oy3o",
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = "oy3o",
        gen_ai.request.model = model,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.response.finish_reasons = Empty,
        oy3o.time_to_first_chunk = Empty,
        oy3o.cost.usd = Empty,
        "error.type" = Empty,
    )
}

/// The span of one call to `target`'s provider.
fn call_span(target: &Target) -> Span {
    tracing::info_span!(
        target: TARGET,
        "chat",
        otel.name = %format_args!("chat {}", target.model),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = target.reference.provider.as_str(),
        gen_ai.request.model = target.model.as_str(),
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.response.finish_reasons = Empty,
        oy3o.time_to_first_chunk = Empty,
        "error.type" = Empty,
    )
}

/// The span of one tool call the engine runs.
pub(crate) fn tool_span(call: &crate::tool::ToolCall) -> Span {
    tracing::info_span!(
        target: TARGET,
        "execute_tool",
        otel.name = %format_args!("execute_tool {}", call.name),
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = call.name.as_str(),
        gen_ai.tool.call.id = call.id.as_str(),
        "gen_ai.tool.type" = "function",
        "error.type" = Empty,
    )
}

/// Marks `span` failed with `kind` (the error code, or `tool_error`).
pub(crate) fn failed(span: &Span, kind: &str) {
    span.record("otel.status_code", "error");
    span.record("error.type", kind);
}

/// `upstream` run inside the turn span `span`, which records the turn's usage (summed over
/// its steps), first chunk, finish reason and error. A disabled span wraps nothing.
pub(crate) fn turn(span: Span, upstream: DeltaStream) -> DeltaStream {
    traced(span, upstream, Sum::Total, None)
}

/// A provider session whose calls are spans (see [`open`]).
struct TracedSession {
    inner: Box<dyn crate::provider::Session>,
    target: Target,
}

/// Opens `target`'s provider session; while spans are wanted, each of its calls is a span.
pub(crate) fn open(target: &Target) -> crate::Result<Box<dyn crate::provider::Session>> {
    let inner = target.provider.open(target)?;
    if !enabled() {
        return Ok(inner);
    }
    Ok(Box::new(TracedSession {
        inner,
        target: target.clone(),
    }))
}

impl crate::provider::Session for TracedSession {
    fn update(&self, context: Option<String>) {
        self.inner.update(context);
    }

    fn send(&self, prompt: crate::Message, options: crate::Options) -> DeltaStream {
        let span = call_span(&self.target);
        let upstream = span.in_scope(|| self.inner.send(prompt, options));
        let model = self.target.model.clone();
        traced(span, upstream, Sum::Last, Some(model))
    }

    fn history(&self) -> Vec<crate::Message> {
        self.inner.history()
    }

    fn restore(&self, history: Vec<crate::Message>) -> crate::Result<()> {
        self.inner.restore(history)
    }

    fn handle(&self) -> Option<serde_json::Value> {
        self.inner.handle()
    }

    fn resume(
        &self,
        handle: Option<&serde_json::Value>,
        history: Vec<crate::Message>,
    ) -> crate::Result<()> {
        self.inner.resume(handle, history)
    }

    fn close(&self) {
        self.inner.close();
    }
}

/// How usage events add up in a span: a call reports its own (the last one counts), a turn
/// the sum of its calls'.
#[derive(Clone, Copy)]
enum Sum {
    Last,
    Total,
}

fn traced(span: Span, upstream: DeltaStream, sum: Sum, model: Option<String>) -> DeltaStream {
    if span.is_disabled() {
        return upstream;
    }
    Box::pin(Traced {
        upstream,
        span,
        started: Instant::now(),
        first: false,
        usage: None,
        sum,
        model,
    })
}

/// `n` as an `i64` (OTLP's integer; `tracing-opentelemetry` writes a `u64` as text).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A delta stream polled inside its span, recording what passes.
struct Traced {
    upstream: DeltaStream,
    span: Span,
    started: Instant,
    first: bool,
    usage: Option<Usage>,
    sum: Sum,
    model: Option<String>,
}

impl Traced {
    fn saw(&mut self, delta: &Delta) {
        match delta {
            Delta::Text(_) | Delta::Event(Event::Reasoning(_)) if !self.first => {
                self.first = true;
                let secs = self.started.elapsed().as_secs_f64();
                self.span.record(FIRST_CHUNK_ATTRIBUTE, secs);
            }
            Delta::Event(Event::Usage(u)) => {
                let total = match (self.sum, self.usage.take()) {
                    (Sum::Total, Some(before)) => Usage {
                        input_tokens: before.input_tokens + u.input_tokens,
                        output_tokens: before.output_tokens + u.output_tokens,
                        ..Usage::default()
                    },
                    _ => u.clone(),
                };
                // Signed: an exporter writes u64 fields as text.
                self.span
                    .record("gen_ai.usage.input_tokens", signed(total.input_tokens));
                self.span
                    .record("gen_ai.usage.output_tokens", signed(total.output_tokens));
                self.usage = Some(total);
            }
            Delta::Done { finish_reason } => {
                // A string array in the conventions; `tracing` fields are scalars, so the one
                // reason is a string here and an exporter makes it an array.
                self.span
                    .record("gen_ai.response.finish_reasons", finish_reason.as_str());
                if let Some(model) = &self.model {
                    self.span.record("gen_ai.response.model", model.as_str());
                }
            }
            _ => {}
        }
    }
}

impl Stream for Traced {
    type Item = crate::Result<Delta>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = {
            let _inside = this.span.enter();
            this.upstream.as_mut().poll_next(cx)
        };
        match &item {
            Poll::Ready(Some(Ok(delta))) => this.saw(delta),
            Poll::Ready(Some(Err(e))) => failed(&this.span, e.code().as_str()),
            _ => {}
        }
        item
    }
}
