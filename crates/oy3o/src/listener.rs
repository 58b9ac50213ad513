//! Listeners: callbacks per event name. Global, per-model and per-call sets add up.

use std::fmt;
use std::sync::Arc;

use crate::event::Event;

/// One callback. It runs on the task that consumes the reply stream, so it must be quick.
pub type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Callbacks by event name. `"*"` receives every event.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use oy3o::{Event, Listeners};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let mut listeners = Listeners::default();
/// let s = seen.clone();
/// listeners.on("title", move |e| s.lock().unwrap().push(e.name().to_owned()));
/// listeners.emit(&Event::Title("Hi".into()));
/// listeners.emit(&Event::Reasoning("no listener".into()));
/// assert_eq!(*seen.lock().unwrap(), vec!["title"]);
/// ```
#[derive(Clone, Default)]
pub struct Listeners {
    /// Shared, copied on write: every chat, reply and task clones its listeners, and a clone
    /// is one reference count instead of a map of names and lists. A list, not a hash map:
    /// a set holds a few names, and comparing them costs less than hashing the name on
    /// every `wants` and `emit` (callgrind, bench/README.md's chain section).
    by_name: Arc<Vec<(String, Vec<Listener>)>>,
}

impl Listeners {
    /// Adds a callback for one event name (`"*"` for all).
    pub fn on(&mut self, event: &str, callback: impl Fn(&Event) + Send + Sync + 'static) {
        self.add(event, Arc::new(callback));
    }

    /// Adds a shared callback for one event name.
    pub fn add(&mut self, event: &str, listener: Listener) {
        self.list_mut(event).push(listener);
    }

    /// Adds every callback of `other` after this set's own.
    pub fn extend(&mut self, other: &Listeners) {
        for (name, list) in other.by_name.iter() {
            self.list_mut(name).extend(list.iter().cloned());
        }
    }

    /// True when no callback is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.iter().all(|(_, list)| list.is_empty())
    }

    /// True when a callback would hear an event of this name (its own or `"*"`): events whose
    /// payload costs something to build (a task's JSON, a copy of a long context) are built
    /// only then.
    pub fn wants(&self, event: &str) -> bool {
        [event, "*"]
            .iter()
            .any(|key| self.list(key).is_some_and(|list| !list.is_empty()))
    }

    /// Calls every callback registered for the event's name, then the `"*"` ones. A panicking
    /// callback is contained: it never stops the answer or the other callbacks.
    pub fn emit(&self, event: &Event) {
        for key in [event.name(), "*"] {
            for listener in self.list(key).into_iter().flatten() {
                let call = std::panic::AssertUnwindSafe(|| listener(event));
                let _ = std::panic::catch_unwind(call);
            }
        }
    }

    fn list(&self, event: &str) -> Option<&Vec<Listener>> {
        self.by_name
            .iter()
            .find(|(name, _)| name == event)
            .map(|(_, list)| list)
    }

    fn list_mut(&mut self, event: &str) -> &mut Vec<Listener> {
        let by_name = Arc::make_mut(&mut self.by_name);
        let at = match by_name.iter().position(|(name, _)| name == event) {
            Some(at) => at,
            None => {
                by_name.push((event.to_owned(), Vec::new()));
                by_name.len() - 1
            }
        };
        &mut by_name[at].1
    }
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts: Vec<(&String, usize)> =
            self.by_name.iter().map(|(k, v)| (k, v.len())).collect();
        counts.sort();
        f.debug_map().entries(counts).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn extended_sets_call_all_callbacks_and_survive_a_panic() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut a = Listeners::default();
        a.on("usage", |_| panic!("listener bug"));
        let mut b = Listeners::default();
        let c = count.clone();
        b.on("usage", move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let c = count.clone();
        b.on("*", move |_| {
            c.fetch_add(10, Ordering::SeqCst);
        });
        a.extend(&b);
        a.emit(&Event::Usage(Default::default()));
        assert_eq!(count.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn a_clone_keeps_its_callbacks_when_the_original_gains_more() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut a = Listeners::default();
        let c = count.clone();
        a.on("title", move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let b = a.clone();
        let c = count.clone();
        a.on("title", move |_| {
            c.fetch_add(10, Ordering::SeqCst);
        });
        b.emit(&Event::Title("x".into()));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        a.emit(&Event::Title("x".into()));
        assert_eq!(count.load(Ordering::SeqCst), 12);
        assert!(!b.wants("usage") && b.wants("title"));
    }

    #[test]
    fn an_event_is_wanted_by_its_own_listeners_or_by_star() {
        let mut l = Listeners::default();
        assert!(!l.wants("update"));
        l.on("update", |_| {});
        assert!(l.wants("update") && !l.wants("create"));
        l.on("*", |_| {});
        assert!(l.wants("create"));
    }
}
