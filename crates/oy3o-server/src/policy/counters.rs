//! The request, token and concurrency counters behind a key's `rpm`, `tpm` and `concurrent`
//! limits: in this process, or in Redis when `[server] limits = "redis://…"` is set, so that
//! every instance sharing the Redis counts against the same limits.
//!
//! Requests and tokens count in fixed one-minute windows (UTC minutes): Redis `INCR`/`INCRBY`
//! on `oy3o:{rpm|tpm}:KEY:MINUTE` with a two-minute expiry
//! (https://redis.io/docs/latest/commands/incr/#pattern-rate-limiter-1). Concurrency is
//! `INCR`/`DECR` on `oy3o:conc:KEY`, refreshed to expire after ten minutes so that the count of
//! an instance that died while answering does not hold a key back for longer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a request over a limit waits, and for how long.
#[derive(Debug, PartialEq)]
pub(crate) struct Limited {
    /// `rpm`, `tpm` or `concurrent`.
    pub limit: &'static str,
    /// Seconds until it may be tried again.
    pub retry_after: u64,
}

/// A key's limits as the counters need them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Caps {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub concurrent: Option<u64>,
}

/// Where the counters live.
pub(crate) enum Counters {
    /// In this process: each instance counts alone.
    Local(Mutex<Local>),
    /// In Redis: shared by every instance.
    Redis(Redis),
}

/// This process's counters, by key name.
#[derive(Default)]
pub(crate) struct Local {
    minute: u64,
    requests: HashMap<String, u64>,
    tokens: HashMap<String, u64>,
    running: HashMap<String, u64>,
}

/// A Redis client with one multiplexed connection, made again after a failure.
pub(crate) struct Redis {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

/// The current UTC minute, and the seconds left in it (at least 1).
fn minute_now() -> (u64, u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 60, 60 - secs % 60)
}

impl Counters {
    /// Counters in Redis at `url`, or in this process without one. A URL the client cannot
    /// read is an error naming the setting; the connection itself is made on first use.
    pub(crate) fn new(url: Option<&str>) -> Result<Self, String> {
        match url {
            None => Ok(Self::Local(Mutex::default())),
            Some(url) => {
                let client = redis::Client::open(url).map_err(|e| {
                    format!("server.limits: cannot use {url:?} as a Redis URL: {e}")
                })?;
                Ok(Self::Redis(Redis {
                    client,
                    connection: tokio::sync::Mutex::new(None),
                }))
            }
        }
    }

    /// `redis` or `local`, for `GET /health`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Redis(_) => "redis",
        }
    }

    /// Counts one request of `key` against its caps: refused (and not counted) when it is over
    /// `rpm`, its tokens this minute are over `tpm`, or `concurrent` requests run already.
    /// Admitted, it counts as running until [`Counters::finish`].
    pub(crate) async fn admit(&self, key: &str, caps: Caps) -> Result<Result<(), Limited>, String> {
        let (minute, left) = minute_now();
        match self {
            Self::Local(local) => {
                let mut l = local.lock().unwrap_or_else(|p| p.into_inner());
                if l.minute != minute {
                    l.minute = minute;
                    l.requests.clear();
                    l.tokens.clear();
                }
                let requests = l.requests.get(key).copied().unwrap_or(0);
                let tokens = l.tokens.get(key).copied().unwrap_or(0);
                let running = l.running.get(key).copied().unwrap_or(0);
                if let Some(refusal) = judge(caps, requests + 1, tokens, running + 1, left) {
                    return Ok(Err(refusal));
                }
                *l.requests.entry(key.to_owned()).or_default() += 1;
                *l.running.entry(key.to_owned()).or_default() += 1;
                Ok(Ok(()))
            }
            Self::Redis(redis) => redis.admit(key, caps, minute, left).await,
        }
    }

    /// Ends a request [`Counters::admit`] let in, adding the tokens it used.
    pub(crate) async fn finish(&self, key: &str, tokens: u64) -> Result<(), String> {
        let (minute, _) = minute_now();
        match self {
            Self::Local(local) => {
                let mut l = local.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = l.running.get_mut(key) {
                    *n = n.saturating_sub(1);
                }
                if l.minute == minute && tokens > 0 {
                    *l.tokens.entry(key.to_owned()).or_default() += tokens;
                }
                Ok(())
            }
            Self::Redis(redis) => redis.finish(key, tokens, minute).await,
        }
    }
}

/// The refusal for counts that include the request being judged, if any.
fn judge(caps: Caps, requests: u64, tokens: u64, running: u64, left: u64) -> Option<Limited> {
    if caps.concurrent.is_some_and(|max| running > max) {
        return Some(Limited {
            limit: "concurrent",
            retry_after: 1,
        });
    }
    if caps.rpm.is_some_and(|max| requests > max) {
        return Some(Limited {
            limit: "rpm",
            retry_after: left,
        });
    }
    if caps.tpm.is_some_and(|max| tokens >= max) {
        return Some(Limited {
            limit: "tpm",
            retry_after: left,
        });
    }
    None
}

impl Redis {
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let mut held = self.connection.lock().await;
        if let Some(c) = held.as_ref() {
            return Ok(c.clone());
        }
        let c = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("cannot reach Redis: {e}"))?;
        *held = Some(c.clone());
        Ok(c)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, String> {
        let mut c = self.connection().await?;
        match pipe.query_async(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.forget_connection().await;
                Err(format!("Redis: {e}"))
            }
        }
    }

    async fn admit(
        &self,
        key: &str,
        caps: Caps,
        minute: u64,
        left: u64,
    ) -> Result<Result<(), Limited>, String> {
        let rpm = format!("oy3o:rpm:{key}:{minute}");
        let tpm = format!("oy3o:tpm:{key}:{minute}");
        let conc = format!("oy3o:conc:{key}");
        // One round trip: count the request and the running one, read the tokens.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(&rpm)
            .cmd("EXPIRE")
            .arg(&rpm)
            .arg(120)
            .ignore()
            .cmd("GET")
            .arg(&tpm)
            .cmd("INCR")
            .arg(&conc)
            .cmd("EXPIRE")
            .arg(&conc)
            .arg(600)
            .ignore();
        let (requests, tokens, running): (u64, Option<u64>, u64) = self.run(&pipe).await?;
        match judge(caps, requests, tokens.unwrap_or(0), running, left) {
            None => Ok(Ok(())),
            Some(refusal) => {
                // Not let in: neither counted as a request nor as running.
                let mut undo = redis::pipe();
                undo.cmd("DECR")
                    .arg(&rpm)
                    .ignore()
                    .cmd("DECR")
                    .arg(&conc)
                    .ignore();
                self.run::<()>(&undo).await?;
                Ok(Err(refusal))
            }
        }
    }

    async fn finish(&self, key: &str, tokens: u64, minute: u64) -> Result<(), String> {
        let tpm = format!("oy3o:tpm:{key}:{minute}");
        let conc = format!("oy3o:conc:{key}");
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DECR").arg(&conc).ignore();
        if tokens > 0 {
            pipe.cmd("INCRBY").arg(&tpm).arg(tokens).ignore();
            pipe.cmd("EXPIRE").arg(&tpm).arg(120).ignore();
        }
        self.run::<()>(&pipe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_counters_refuse_past_each_cap_and_free_a_slot_when_a_request_ends() {
        let counters = Counters::new(None).unwrap();
        let caps = Caps {
            rpm: Some(3),
            tpm: Some(100),
            concurrent: Some(2),
        };
        assert_eq!(counters.admit("k", caps).await.unwrap(), Ok(()));
        assert_eq!(counters.admit("k", caps).await.unwrap(), Ok(()));
        let busy = counters.admit("k", caps).await.unwrap().unwrap_err();
        assert_eq!(
            busy,
            Limited {
                limit: "concurrent",
                retry_after: 1
            }
        );
        counters.finish("k", 150).await.unwrap();
        // Tokens this minute are past tpm (unless the minute turned just now).
        if let Err(limited) = counters.admit("k", caps).await.unwrap() {
            assert_eq!(limited.limit, "tpm");
        }
        let other = counters.admit("other", caps).await.unwrap();
        assert_eq!(other, Ok(()), "keys count apart");
    }
}
