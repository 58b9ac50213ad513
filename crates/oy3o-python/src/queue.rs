//! A bounded queue from an engine task (producer) to the Python consumer, with a socket that
//! becomes readable when items arrive (for asyncio's `add_reader`) and a condition variable (for
//! blocking iteration with the GIL released). The producer never touches Python objects.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Items waiting before the producer is paused (back-pressure on the upstream).
const CAPACITY: usize = 4096;

/// One thing for Python: `(kind, a, b)` strings, cheap to convert.
pub type Item = (&'static str, String, String);

#[derive(Default)]
struct State {
    items: VecDeque<Item>,
    done: bool,
}

/// Both ends of the queue.
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    space: Semaphore,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Queue {
    /// A new queue.
    pub fn new() -> std::io::Result<Arc<Self>> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Arc::new(Self {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            space: Semaphore::new(CAPACITY),
            wake_tx,
            wake_rx,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item, waiting while the queue is full.
    pub async fn push(&self, item: Item) {
        if let Ok(permit) = self.space.acquire().await {
            permit.forget();
        }
        self.push_now(item);
    }

    /// Adds an item at once (events from listeners, which cannot wait).
    pub fn push_now(&self, item: Item) {
        let was_empty = {
            let mut s = self.lock();
            let was_empty = s.items.is_empty();
            s.items.push_back(item);
            was_empty
        };
        if was_empty {
            self.wake();
        }
    }

    /// Marks the end of the stream.
    pub fn finish(&self) {
        self.lock().done = true;
        self.wake();
    }

    fn wake(&self) {
        self.ready.notify_all();
        // A full socket buffer means a wake-up is already pending: nothing to do.
        let _ = (&self.wake_tx).write(&[1]);
    }

    /// The socket that turns readable when items (or the end) arrive.
    pub fn fileno(&self) -> i32 {
        self.wake_rx.as_raw_fd()
    }

    /// Takes every waiting item; `true` once the stream has ended and nothing is left.
    pub fn take(&self) -> (Vec<Item>, bool) {
        let mut sink = [0u8; 256];
        while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        let mut s = self.lock();
        let items: Vec<Item> = s.items.drain(..).collect();
        let ended = s.done;
        drop(s);
        self.space.add_permits(items.len().min(CAPACITY));
        (items, ended)
    }

    /// Waits up to `timeout` for items or the end (call with the GIL released).
    pub fn wait(&self, timeout: Duration) {
        let s = self.lock();
        if s.items.is_empty() && !s.done {
            let _ = self.ready.wait_timeout(s, timeout);
        }
    }
}
