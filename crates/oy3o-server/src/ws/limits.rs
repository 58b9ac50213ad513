//! Per-connection limits: frame size, replies in flight, and the bookkeeping of a running
//! reply (counted on the connection and in the metrics until it ends, however it ends).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::state::AppState;

/// The frame size past which the WebSocket layer itself closes the connection (code 1009)
/// instead of answering with an error frame: four times the limit, at least 64 KiB more.
pub(crate) fn protocol_max(max_frame_bytes: usize) -> usize {
    max_frame_bytes
        .saturating_mul(4)
        .max(max_frame_bytes.saturating_add(64 << 10))
}

/// Counts the replies running on one connection.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Starts a reply if fewer than `max` are running.
    pub(crate) fn try_start(&self, max: usize, state: &Arc<AppState>) -> Option<Running> {
        let taken = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| {
            state.metrics.reply_started();
            Running {
                count: self.0.clone(),
                state: state.clone(),
                started: Instant::now(),
            }
        })
    }

    /// Replies running now.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A running reply; dropping it ends the count.
pub(crate) struct Running {
    count: Arc<AtomicUsize>,
    state: Arc<AppState>,
    started: Instant,
}

impl Running {
    /// When the request arrived.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// The shared state (metrics).
    pub(crate) fn state(&self) -> &Arc<AppState> {
        &self.state
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.state.metrics.reply_finished(self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_cap_is_well_above_the_answered_limit() {
        assert_eq!(protocol_max(1 << 20), 4 << 20);
        assert_eq!(protocol_max(100), 100 + (64 << 10));
        assert_eq!(protocol_max(usize::MAX), usize::MAX);
    }
}
