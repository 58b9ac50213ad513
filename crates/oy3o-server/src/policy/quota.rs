//! What a key may spend and how fast: its model globs (`forbidden`), its `rpm`, `tpm` and
//! `concurrent` limits (`rate_limited`, with the seconds to wait) and its budget
//! (`budget_exceeded` until the period turns). Both faces call [`Quotas::admit`] before a
//! request goes upstream and settle the returned [`Charge`] with the answer's usage.
//!
//! Where the numbers live: spend in the store (`key_spend`, added atomically, so instances
//! sharing PostgreSQL add up), read through a cache of [`SPEND_TTL`]; request, token and
//! concurrency counts in Redis when `[server] limits` names one, else in this process
//! ([`super::counters`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oy3o::Usage;
use oy3o::price::Prices;
use oy3o_store::{KeyRecord, Store, now_ms};

use super::Refusal;
use super::counters::{Caps, Counters};

/// How long a key's spend is read from memory before the store is asked again: an instance
/// sees another's spending within this.
pub(crate) const SPEND_TTL: Duration = Duration::from_secs(2);

/// The limits of every key, and what they have used.
pub(crate) struct Quotas {
    counters: Arc<Counters>,
    spend: Arc<SpendCache>,
    prices: Prices,
}

/// What keys spent, as last read or added here.
type SpendCache = Mutex<HashMap<String, Spent>>;

#[derive(Clone, Copy)]
struct Spent {
    period_start: i64,
    usd: f64,
    read: Instant,
}

impl Quotas {
    /// Counters in Redis at `redis` (or in this process), costs at `prices`.
    pub(crate) fn new(redis: Option<&str>, prices: Prices) -> Result<Self, String> {
        Ok(Self {
            counters: Arc::new(Counters::new(redis)?),
            spend: Arc::default(),
            prices,
        })
    }

    /// `local` or `redis`.
    pub(crate) fn counters_kind(&self) -> &'static str {
        self.counters.kind()
    }

    /// Lets a request of `key` for `models` (the names it resolves to) go upstream, or says why
    /// not. The [`Charge`] counts it as running until it is settled or dropped.
    pub(crate) async fn admit(
        &self,
        key: &Arc<KeyRecord>,
        models: &[String],
        store: Option<&Arc<dyn Store>>,
    ) -> Result<Charge, Refusal> {
        check_models(key, models)?;
        if let Some(budget) = key.budget {
            let now = now_ms();
            let period_start = budget.period.start(now);
            let spent = self.spent(&key.name, period_start, store).await?;
            if spent >= budget.usd {
                let turns = (budget.period.next_start(now) - now).max(1000) / 1000;
                return Err(Refusal::new(
                    "budget_exceeded",
                    format!(
                        "key {:?} spent ${spent:.4} of its ${} {} budget; it renews in {turns} s",
                        key.name,
                        budget.usd,
                        budget.period.as_str(),
                    ),
                )
                .retry_after(turns as u64));
            }
        }
        let caps = Caps {
            rpm: key.rpm,
            tpm: key.tpm,
            concurrent: key.concurrent,
        };
        let admitted = self.counters.admit(&key.name, caps).await.map_err(|e| {
            tracing::warn!("limits: {e}");
            Refusal::new(
                "unavailable",
                "the server cannot count this key's requests right now (its limits store is \
                 unreachable); try again shortly",
            )
        })?;
        if let Err(limited) = admitted {
            let max = match limited.limit {
                "rpm" => key.rpm,
                "tpm" => key.tpm,
                _ => key.concurrent,
            };
            return Err(Refusal::new(
                "rate_limited",
                format!(
                    "key {:?} is over its {} limit ({}); retry after {} s",
                    key.name,
                    limited.limit,
                    max.unwrap_or(0),
                    limited.retry_after
                ),
            )
            .retry_after(limited.retry_after));
        }
        Ok(Charge {
            key: key.clone(),
            counters: self.counters.clone(),
            store: store.cloned(),
            spend: self.spend.clone(),
            prices: self.prices.clone(),
            model: models.first().cloned(),
            settled: AtomicBool::new(false),
        })
    }

    /// What `key` spent in the period from `period_start`: from memory for [`SPEND_TTL`],
    /// else from the store. Without a store (or when it fails) a budget cannot be kept, so
    /// the request is refused.
    async fn spent(
        &self,
        key: &str,
        period_start: i64,
        store: Option<&Arc<dyn Store>>,
    ) -> Result<f64, Refusal> {
        let cached = self.lock().get(key).copied();
        if let Some(s) = cached
            && s.period_start == period_start
            && s.read.elapsed() < SPEND_TTL
        {
            return Ok(s.usd);
        }
        let unavailable = || {
            Refusal::new(
                "unavailable",
                "the server cannot read this key's spending right now (the store is \
                 unavailable); try again shortly",
            )
        };
        let store = store.ok_or_else(unavailable)?;
        let usd = store.spend(key, period_start).await.map_err(|e| {
            tracing::warn!("store: cannot read the spend of key {key:?}: {e}");
            unavailable()
        })?;
        remember(&self.spend, key, period_start, usd);
        Ok(usd)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Spent>> {
        self.spend.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn remember(cache: &SpendCache, key: &str, period_start: i64, usd: f64) {
    let mut spend = cache.lock().unwrap_or_else(|p| p.into_inner());
    if spend.len() > 10_000 {
        spend.clear();
    }
    spend.insert(
        key.to_owned(),
        Spent {
            period_start,
            usd,
            read: Instant::now(),
        },
    );
}

/// A model outside the key's globs is `forbidden`. Every name the request resolves to must
/// match (an alias that may fall back to another model is judged by all of them).
pub(crate) fn check_models(key: &KeyRecord, models: &[String]) -> Result<(), Refusal> {
    if key.models.is_empty() {
        return Ok(());
    }
    match models
        .iter()
        .find(|m| !key.models.iter().any(|g| super::glob_match(g, m)))
    {
        None => Ok(()),
        Some(model) => Err(Refusal::new(
            "forbidden",
            format!(
                "key {:?} may not use model {model:?}; it may use: {}",
                key.name,
                key.models.join(", ")
            ),
        )),
    }
}

/// A request let in: it counts as running until settled (or dropped, when the answer ends
/// without usage); settling adds its tokens to the key's `tpm` window and its cost to the
/// key's spend.
pub(crate) struct Charge {
    key: Arc<KeyRecord>,
    counters: Arc<Counters>,
    store: Option<Arc<dyn Store>>,
    spend: Arc<SpendCache>,
    prices: Prices,
    model: Option<String>,
    settled: AtomicBool,
}

impl Charge {
    /// Ends the request with `usage` (once; later calls do nothing). The counting happens in
    /// the background: the answer never waits for Redis or the database.
    pub(crate) fn settle(&self, usage: Option<&Usage>) {
        if self.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        let tokens = usage.map_or(0, |u| u.input_tokens + u.output_tokens);
        let cost = usage.and_then(|u| {
            self.model
                .as_deref()
                .and_then(|model| self.prices.cost(model, u))
        });
        let key = self.key.clone();
        let counters = self.counters.clone();
        let store = self.store.clone();
        let spend = self.spend.clone();
        tokio::spawn(async move {
            if let Err(e) = counters.finish(&key.name, tokens).await {
                tracing::warn!("limits: {e}");
            }
            if let (Some(budget), Some(cost), Some(store)) = (key.budget, cost, store)
                && cost > 0.0
            {
                let start = budget.period.start(now_ms());
                match store.add_spend(&key.name, start, cost).await {
                    Ok(total) => remember(&spend, &key.name, start, total),
                    Err(e) => {
                        tracing::warn!("store: cannot add the spend of key {:?}: {e}", key.name)
                    }
                }
            }
        });
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if !self.settled.load(Ordering::Acquire) && tokio::runtime::Handle::try_current().is_ok() {
            self.settle(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_outside_the_keys_globs_is_forbidden() {
        let mut key = KeyRecord::new("ci", "h");
        assert!(
            check_models(&key, &["anthropic:x".into()]).is_ok(),
            "no globs: any"
        );
        key.models = vec!["openai:*".into(), "ollama:llama*".into()];
        assert!(check_models(&key, &["openai:gpt-4o".into()]).is_ok());
        let refused =
            check_models(&key, &["openai:gpt-4o".into(), "anthropic:x".into()]).unwrap_err();
        assert_eq!(refused.code, "forbidden");
        assert!(
            refused.message.contains("anthropic:x"),
            "{}",
            refused.message
        );
    }
}
