//! The order of a conversation's turns: each turn takes a ticket when it is *sent*, and runs
//! when every earlier ticket is done, however its stream is polled. A turn dropped before its
//! turn came (a client that gave up, a cancel) gives its place up without holding the others.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Hands out tickets in send order and says which one may run.
#[derive(Clone)]
pub(crate) struct TurnOrder {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the tickets waiting when the turn moves on. Only woken when one waits: most
    /// conversations (every HTTP answer is one) never have a turn queued behind another.
    moved_on: Notify,
}

#[derive(Default)]
struct State {
    next: u64,
    /// The ticket that may run now.
    serving: u64,
    /// Tickets waiting for their turn.
    waiting: usize,
    /// Tickets given up before their turn came; skipped when it does.
    abandoned: BTreeSet<u64>,
}

impl TurnOrder {
    /// An order with no turn taken.
    pub(crate) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                moved_on: Notify::new(),
            }),
        }
    }

    /// Takes the next place, now.
    pub(crate) fn ticket(&self) -> Ticket {
        let mut s = lock(&self.shared.state);
        let number = s.next;
        s.next += 1;
        Ticket {
            number,
            shared: Some(self.shared.clone()),
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Plain counters: a panic elsewhere cannot leave them half-written.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A place in the order. Dropping it (done, failed, cancelled, or never polled) lets the next
/// turn run.
pub(crate) struct Ticket {
    number: u64,
    shared: Option<Arc<Shared>>,
}

impl Ticket {
    /// Waits until every earlier turn is done.
    pub(crate) async fn wait(&self) {
        let Some(shared) = &self.shared else { return };
        loop {
            let moved_on = shared.moved_on.notified();
            let mut moved_on = std::pin::pin!(moved_on);
            {
                let mut s = lock(&shared.state);
                if s.serving >= self.number {
                    return;
                }
                // Registered before the lock is let go: a release after it wakes this one.
                moved_on.as_mut().enable();
                s.waiting += 1;
            }
            // Counted out again however the wait ends (woken, or dropped by a cancel).
            let _counted = Waiting(shared);
            moved_on.await;
        }
    }

    /// Lets the next turn run now (also done on drop).
    pub(crate) fn release(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut s = lock(&shared.state);
        if s.serving != self.number {
            // Given up before its turn: skipped when the turn before it ends.
            s.abandoned.insert(self.number);
            return;
        }
        let mut next = s.serving + 1;
        while s.abandoned.remove(&next) {
            next += 1;
        }
        s.serving = next;
        if s.waiting > 0 {
            shared.moved_on.notify_waiters();
        }
    }
}

/// One ticket's place among the waiting, given back when its wait ends.
struct Waiting<'a>(&'a Shared);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).waiting -= 1;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_run_in_the_order_their_tickets_were_taken_not_polled() {
        let order = TurnOrder::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<Ticket> = (0..5).map(|_| order.ticket()).collect();
        let mut tasks = Vec::new();
        // Spawned (and so polled) last ticket first.
        for (i, mut ticket) in tickets.into_iter().enumerate().rev() {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                ticket.wait().await;
                log.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(2)).await;
                ticket.release();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn a_ticket_dropped_while_waiting_holds_no_one_up_and_lets_no_one_jump() {
        let order = TurnOrder::new();
        let mut first = order.ticket();
        let second = order.ticket();
        let third = order.ticket();
        drop(second);
        // The third must still wait for the first.
        let waited = tokio::time::timeout(Duration::from_millis(30), third.wait()).await;
        assert!(waited.is_err(), "the third ran while the first was running");
        first.wait().await;
        first.release();
        tokio::time::timeout(Duration::from_secs(1), third.wait())
            .await
            .expect("the third runs once the first is done");
    }
}
