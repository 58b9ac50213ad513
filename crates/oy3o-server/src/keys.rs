//! The keys of a team server, read from the store: a presented secret is hashed (SHA-256) and
//! looked up by its hash, so the secret is never stored or compared in the clear. Answers are
//! cached for [`KEY_TTL`], so a key added or revoked by `oy3o keys` on any machine takes effect
//! on every instance within that time, without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oy3o_store::{KeyRecord, Store};

/// How long a key looked up in the store (found or not) is trusted before it is read again:
/// the most a revocation waits to reach an instance.
pub(crate) const KEY_TTL: Duration = Duration::from_secs(2);

/// The most hashes remembered; past it the cache starts over (clients sending endless wrong
/// secrets cannot grow the server's memory).
const MAX_CACHED: usize = 10_000;

/// A key as last read (or found missing), and when.
type Cached = (Instant, Option<Arc<KeyRecord>>);

/// Keys as this instance knows them, by the hash of their secret.
#[derive(Default)]
pub(crate) struct Keys {
    cache: Mutex<HashMap<String, Cached>>,
}

impl Keys {
    /// The live key whose secret hashes to `hash`; `None` for an unknown or revoked one, or
    /// when the store cannot answer (a key that cannot be checked is not accepted).
    pub(crate) async fn find(&self, store: &Arc<dyn Store>, hash: &str) -> Option<Arc<KeyRecord>> {
        if let Some((read, key)) = self.lock().get(hash)
            && read.elapsed() < KEY_TTL
        {
            return key.clone();
        }
        let found = match store.key_by_hash(hash).await {
            Ok(found) => found.filter(|k| k.revoked_at.is_none()).map(Arc::new),
            Err(e) => {
                tracing::warn!("store: cannot look a key up: {e}");
                return None;
            }
        };
        // The row was found by its hash; compare again in constant time all the same.
        let found = found.filter(|k| crate::auth::same_secret(hash.as_bytes(), k.hash.as_bytes()));
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(hash.to_owned(), (Instant::now(), found.clone()));
        found
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
