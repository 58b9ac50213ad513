//! A panic in a request's work must not leave the client waiting: the reply ends with an
//! `error` frame and a `signal`, as every reply does, and the connection goes on.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::connection::Out;
use super::outbox::Outbox;
use super::protocol::{self, Ending, Tag};
use super::reply::Job;

const MESSAGE: &str = "the server failed while handling this request (an internal error, logged); \
                       try again";

/// Runs `work`; if it panics, `tag`'s request gets an `internal` error and, when it asked for
/// a reply (`signal`), a `signal`.
pub(crate) async fn guard<F: Future<Output = ()>>(tag: Tag, signal: bool, out: &Outbox, work: F) {
    if AssertUnwindSafe(work).catch_unwind().await.is_err() {
        ended_by_panic(&tag, signal, out).await;
    }
}

/// Spawns the reply `run` makes of `job`, guarded like [`guard`]: whatever panics inside it
/// (the engine, a provider, a chain task), the client gets an error and a `signal`. The job's
/// in-flight count is released as the panic unwinds.
pub(crate) fn spawn_reply<F>(job: Job, run: impl FnOnce(Job) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    use tracing::Instrument as _;
    let (tag, out) = (job.tag.clone(), job.out.clone());
    // The request's span (disabled without an exporter) goes with the work: a chain's turns
    // are its children.
    let work = run(job).instrument(tracing::Span::current());
    tokio::spawn(async move { guard(tag, true, &out, work).await });
}

async fn ended_by_panic(tag: &Tag, signal: bool, out: &Outbox) {
    tracing::error!("a request's work panicked; it was answered with an internal error");
    let _ = out
        .send(Out::Text(protocol::error(tag, "internal", MESSAGE)))
        .await;
    if signal {
        let _ = out
            .send(Out::Text(protocol::signal(tag, &Ending::default())))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Limits;

    #[tokio::test]
    async fn a_panic_is_answered_with_an_error_and_a_signal() {
        let (out, mut inbox) = super::super::outbox::channel(&Limits::default());
        let tag = protocol::parse(r#"{"id":"a","prompt":"p"}"#).unwrap().tag;
        guard(tag, true, &out, async { panic!("boom") }).await;
        let mut frames = Vec::new();
        while let Some(Out::Text(text)) = inbox.try_next() {
            frames.push(text);
        }
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(
            frames[0].contains(r#""type":"error","id":"a","code":"internal""#),
            "{}",
            frames[0]
        );
        assert!(
            frames[1].contains(r#""type":"signal","id":"a""#),
            "{}",
            frames[1]
        );
    }
}
