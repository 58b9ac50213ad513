//! Streaming one reply (a chat turn, a one-shot prompt, or a chain) into frames: text as
//! `message` frames, events as `event` frames, a failure as an `error` frame, and always a
//! final `signal`. A cancel stops it between two items and drops the upstream request.

use futures::StreamExt;
use oy3o::{Chain, Config, Event, Output, Reply, Usage};
use oy3o_store::{ChainRunRecord, Recorder, TurnState};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connection::Out;
use super::limits::Running;
use super::outbox::Outbox;
use super::protocol::{self, Ending, Tag};
use crate::client::ClientOverrides;

/// Where a reply's frames go and what can stop it.
pub(crate) struct Job {
    pub tag: Tag,
    pub out: Outbox,
    pub cancel: CancellationToken,
    pub running: Running,
    pub client: ClientOverrides,
    /// This answer's series in the metrics (its key and model).
    pub series: std::sync::Arc<crate::metrics::Series>,
    /// The key's admission, settled with the reply's usage when it ends.
    pub charge: Option<crate::policy::quota::Charge>,
}

impl Job {
    async fn send(&self, frame: String) -> bool {
        self.out.send(Out::Text(frame)).await.is_ok()
    }

    /// Counts the reply's usage against its key, if it has one.
    fn settle(&self, usage: Option<&Usage>) {
        if let Some(charge) = &self.charge {
            charge.settle(usage);
        }
    }

    async fn fail(&self, code: &str, message: &str, usage: Option<&Usage>) {
        self.settle(usage);
        self.running.state().metrics.error(code);
        self.series.error(code);
        self.series.usage(usage);
        let text = self.client.redact(message);
        if self.send(protocol::error(&self.tag, code, &text)).await {
            let ending = Ending {
                usage,
                ..Ending::default()
            };
            self.send(protocol::signal(&self.tag, &ending)).await;
        }
    }

    async fn cancelled(&self, usage: Option<&Usage>) {
        self.series.usage(usage);
        self.settle(usage);
        let ending = Ending {
            usage,
            cancelled: true,
            ..Ending::default()
        };
        self.send(protocol::signal(&self.tag, &ending)).await;
    }
}

/// Events that already reach the client another way: `send` echoes the request, `result`
/// repeats the streamed text (its finish reason and the usage go on the `signal`).
fn forwarded(event: &Event) -> bool {
    !matches!(event.name(), "send" | "result" | "usage")
}

/// Streams a chat turn or a one-shot reply.
pub(crate) async fn stream_reply(reply: Reply, job: Job) {
    let mut outputs = reply.outputs();
    let mut first = true;
    loop {
        let item = tokio::select! {
            biased;
            _ = job.cancel.cancelled() => {
                let usage = outputs.reply().usage().cloned();
                drop(outputs);
                job.cancelled(usage.as_ref()).await;
                return;
            }
            item = outputs.next() => item,
        };
        let sent = match item {
            Some(Ok(Output::Text(text))) => {
                if first {
                    first = false;
                    let elapsed = job.running.started().elapsed();
                    job.running.state().metrics.first_chunk(elapsed);
                    job.series.first_chunk(elapsed);
                }
                job.send(protocol::message(&job.tag, &text)).await
            }
            Some(Ok(Output::Event(event))) => {
                if forwarded(&event) {
                    job.send(protocol::event(&job.tag, event.name(), &event.message()))
                        .await
                } else {
                    true
                }
            }
            Some(Err(e)) => {
                let usage = outputs.reply().usage().cloned();
                drop(outputs);
                job.fail(e.code().as_str(), e.message(), usage.as_ref())
                    .await;
                return;
            }
            None => {
                let reply = outputs.reply();
                job.series.usage(reply.usage());
                job.settle(reply.usage());
                let ending = Ending {
                    usage: reply.usage(),
                    finish_reason: reply.finish_reason(),
                    cancelled: false,
                };
                let frame = protocol::signal(&job.tag, &ending);
                drop(outputs);
                job.send(frame).await;
                return;
            }
        };
        if !sent {
            return; // the connection is gone; dropping the reply stops the upstream request
        }
    }
}

/// The chain events a client sees: progress and each stage's answers.
const CHAIN_EVENTS: &[&str] = &[
    "stage_start",
    "task_start",
    "task_done",
    "stage_done",
    "retry",
];

/// Where a chain run is kept: the store's recorder, the owner and the chain's name.
pub(crate) struct ChainLog {
    pub recorder: Recorder,
    pub owner: String,
    pub name: String,
}

impl ChainLog {
    /// Hands the run to the store's background writer: the frames never wait for it, and a
    /// database that is down gets it when it returns.
    fn save(self, stages: &[Value], state: TurnState) {
        self.recorder.save_chain_run(ChainRunRecord {
            id: oy3o_store::new_id(),
            owner: self.owner,
            name: self.name,
            result: json!({ "stages": stages }),
            state,
            created_at: oy3o_store::now_ms(),
        });
    }
}

/// Runs a chain: progress and answers as `event` frames, then a `signal` with the summed
/// usage of every task; with `log`, the run is stored once it ends.
pub(crate) async fn stream_chain(chain: Chain, config: Config, job: Job, log: Option<ChainLog>) {
    let mut done: Vec<Value> = Vec::new();
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut config = config;
    config.listeners.on("*", move |event| {
        if CHAIN_EVENTS.contains(&event.name()) {
            let _ = events_tx.send(event.clone());
        }
    });
    let mut stages = oy3o::exec_tasks_chain(chain, &config);
    drop(config);
    let mut usage: Option<Usage> = None;
    loop {
        tokio::select! {
            biased;
            _ = job.cancel.cancelled() => {
                drop(stages);
                if let Some(log) = log {
                    log.save(&done, TurnState::Cancelled);
                }
                job.cancelled(usage.as_ref()).await;
                return;
            }
            Some(event) = events.recv() => {
                if !job.send(protocol::event(&job.tag, event.name(), &event.message())).await {
                    return;
                }
            }
            next = stages.next() => {
                match next {
                    Some(Ok(stage)) => {
                        if log.is_some() {
                            done.push(stage.to_json());
                        }
                        for u in stage.results.iter().filter_map(|r| r.usage.as_ref()) {
                            let sum = usage.get_or_insert_with(Usage::default);
                            sum.input_tokens += u.input_tokens;
                            sum.output_tokens += u.output_tokens;
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        drop(stages);
                        if let Some(log) = log {
                            log.save(&done, TurnState::Error);
                        }
                        while let Ok(event) = events.try_recv() {
                            job.send(protocol::event(&job.tag, event.name(), &event.message())).await;
                        }
                        job.fail(e.code().as_str(), e.message(), usage.as_ref()).await;
                    }
                    None => {
                        drop(stages);
                        if let Some(log) = log {
                            log.save(&done, TurnState::Done);
                        }
                        while let Ok(event) = events.try_recv() {
                            job.send(protocol::event(&job.tag, event.name(), &event.message())).await;
                        }
                        job.settle(usage.as_ref());
                        let ending = Ending { usage: usage.as_ref(), ..Ending::default() };
                        job.send(protocol::signal(&job.tag, &ending)).await;
                    }
                }
                // Marks the chain as finished for the connection's bookkeeping.
                job.cancel.cancel();
                return;
            }
        }
    }
}
