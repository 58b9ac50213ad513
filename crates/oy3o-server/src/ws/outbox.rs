//! The frames waiting for one WebSocket client, bounded in bytes as well as in number: a client
//! that stops reading cannot make the server hold more than `max_outbound_bytes` for it. Past
//! the bound the replies are cancelled, the writer drops the backlog, tells the client (if it
//! still reads) and closes; a write that cannot go out for `idle_timeout` closes it too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connection::Out;
use super::protocol::{self, Tag};
use crate::settings::Limits;

/// Frames queued for a slow client before the replies feeding it wait.
const QUEUE: usize = 256;
/// Frames written before one flush.
const BATCH: usize = 64;
/// How long the writer tries to tell a client that stopped reading why it is closed.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// What the queue and the writer share.
struct Shared {
    /// Bytes of text frames queued and not yet taken by the writer.
    queued: AtomicUsize,
    max: usize,
    /// Cancelled when the backlog passed `max`.
    overflow: CancellationToken,
}

/// The sending side: cloned into every reply. `send` has `mpsc::Sender::send`'s shape.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Out>,
    shared: Arc<Shared>,
}

/// The send failed: the connection is closing.
#[derive(Debug)]
pub(crate) struct Closed;

impl Outbox {
    /// Queues a frame, waiting while the queue is full. Fails when the connection is gone, or
    /// when the frame would pass `max_outbound_bytes` (the connection then closes).
    pub(crate) async fn send(&self, item: Out) -> Result<(), Closed> {
        let size = match &item {
            Out::Text(text) => text.len(),
            Out::Close(..) => 0,
        };
        let before = self.shared.queued.fetch_add(size, Ordering::AcqRel);
        if before.saturating_add(size) > self.shared.max || self.shared.overflow.is_cancelled() {
            self.shared.queued.fetch_sub(size, Ordering::AcqRel);
            self.shared.overflow.cancel();
            return Err(Closed);
        }
        self.tx.send(item).await.map_err(|_| {
            self.shared.queued.fetch_sub(size, Ordering::AcqRel);
            Closed
        })
    }
}

/// The writer's side.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Out>,
    shared: Arc<Shared>,
    idle: Duration,
}

impl Inbox {
    /// The next queued frame, if one is waiting (tests).
    #[cfg(test)]
    pub(crate) fn try_next(&mut self) -> Option<Out> {
        let item = self.rx.try_recv().ok()?;
        self.taken(&item);
        Some(item)
    }

    fn taken(&self, item: &Out) {
        if let Out::Text(text) = item {
            self.shared.queued.fetch_sub(text.len(), Ordering::AcqRel);
        }
    }
}

/// A bounded queue of frames for one connection.
pub(crate) fn channel(limits: &Limits) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        max: limits.max_outbound_bytes,
        overflow: CancellationToken::new(),
    });
    (
        Outbox {
            tx,
            shared: shared.clone(),
        },
        Inbox {
            rx,
            shared,
            idle: limits.idle_timeout,
        },
    )
}

/// Why the writer stopped.
enum Stop {
    /// The socket failed, a close frame was sent, or every sender is gone.
    Done,
    /// A batch could not be written within the idle timeout.
    Stuck,
    /// The backlog passed `max_outbound_bytes`.
    Overflow,
}

/// Writes the queued frames, in batches with one flush each, until the queue ends, a close is
/// sent, the socket fails, a batch is stuck for `idle_timeout`, or the backlog overflows. On
/// the way out it cancels `alive`, so the connection's reader and replies stop too.
pub(crate) async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut inbox: Inbox,
    alive: CancellationToken,
) {
    let overflow = inbox.shared.overflow.clone();
    let stop = loop {
        let item = tokio::select! {
            biased;
            _ = overflow.cancelled() => break Stop::Overflow,
            item = inbox.rx.recv() => item,
        };
        let Some(item) = item else { break Stop::Done };
        inbox.taken(&item);
        let idle = inbox.idle;
        let batch = write_batch(&mut sink, &mut inbox, item);
        let result = tokio::select! {
            biased;
            _ = overflow.cancelled() => break Stop::Overflow,
            r = tokio::time::timeout(idle, batch) => r,
        };
        match result {
            Ok(true) => continue,
            Ok(false) => break Stop::Done,
            Err(_) => break Stop::Stuck,
        }
    };
    alive.cancel();
    let (code, why, reason) = match stop {
        Stop::Done => return,
        Stop::Stuck => (
            "idle_timeout",
            "the client read nothing for longer than idle_timeout; closing the connection",
            "idle timeout",
        ),
        Stop::Overflow => (
            "limit",
            "the client reads more slowly than its replies arrive: more than max_outbound_bytes \
             waited for it; its replies are cancelled and the connection closes",
            "outbound limit",
        ),
    };
    // The backlog goes at once; then a last try to say why.
    inbox.rx.close();
    while inbox.rx.try_recv().is_ok() {}
    let frame = protocol::error(&Tag::default(), code, why);
    let close = CloseFrame {
        code: 1008,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(LAST_WORDS, async {
        sink.feed(Message::Text(frame.into())).await?;
        sink.send(Message::Close(Some(close))).await
    })
    .await;
}

/// Writes `first` and whatever else is queued (up to a batch), then flushes. False when the
/// writer should stop (a close was sent, or the socket failed).
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    inbox: &mut Inbox,
    first: Out,
) -> bool {
    let mut item = first;
    for _ in 0..BATCH {
        match item {
            Out::Text(text) => {
                if sink.feed(Message::Text(text.into())).await.is_err() {
                    return false;
                }
            }
            Out::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return false;
            }
        }
        match inbox.rx.try_recv() {
            Ok(next) => {
                inbox.taken(&next);
                item = next;
            }
            Err(_) => break,
        }
    }
    sink.flush().await.is_ok()
}
