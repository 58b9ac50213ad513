//! Per-connection limits: frame size, what a request may ask for (chain size, models,
//! proxies, numbers), upstream requests in flight, and the bookkeeping of a running reply
//! (counted on the connection and in the metrics until it ends, however it ends).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::protocol::{ChainSpec, Request};
use crate::policy::{self, Refusal};
use crate::state::AppState;

/// Checks everything a request of `owner` asks for before anything is opened or sent: its
/// proxy, its models (the chain's tasks' too), its tools, its numbers, and the size of an
/// inline chain. Each refusal names the setting or field that decides it.
pub(crate) fn check_request(
    state: &AppState,
    request: &Request,
    owner: &str,
) -> Result<(), Refusal> {
    let settings = &state.settings;
    if let Some(tools) = &request.tools {
        policy::check_tools(policy::granted_tools(settings, owner), tools)?;
    }
    let limits = &settings.limits;
    if let Some(proxy) = &request.proxy
        && settings.allow_client_proxy == Some(true)
    {
        policy::check_client_proxy(settings, proxy, request.credential.is_some())?;
    }
    policy::check_model(state, request.model.as_deref())?;
    policy::check_attachments(settings, &request.attachments, "attachments")?;
    if let Some(options) = &request.options {
        policy::check_options(options, "options.")?;
    }
    let Some(ChainSpec::Inline(chain)) = &request.chain else {
        return Ok(());
    };
    if chain.stages.len() > limits.max_chain_stages {
        return Err(Refusal::new(
            "limit",
            format!(
                "the chain has {} stages, more than this server runs (max_chain_stages = {})",
                chain.stages.len(),
                limits.max_chain_stages
            ),
        ));
    }
    for (s, stage) in chain.stages.iter().enumerate() {
        if stage.tasks.len() > limits.max_stage_tasks {
            return Err(Refusal::new(
                "limit",
                format!(
                    "stage {} of the chain has {} tasks, more than this server runs in one \
                     stage (max_stage_tasks = {})",
                    s + 1,
                    stage.tasks.len(),
                    limits.max_stage_tasks
                ),
            ));
        }
        for (t, task) in stage.tasks.iter().enumerate() {
            let at = format!("chain[{s}][{t}].");
            policy::check_model(state, task.model.as_deref())?;
            if let Some(tools) = &task.tools {
                policy::check_tools(policy::granted_tools(settings, owner), tools)?;
            }
            policy::check_number(&at, "temperature", task.temperature, 2.0)?;
            if task.timeout.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(Refusal::new(
                    "bad_request",
                    format!("field `{at}timeout`: must be a number of seconds"),
                ));
            }
        }
    }
    Ok(())
}

/// The models a request names, as a key's globs judge them: each name resolved to the
/// models it stands for (an alias to all its fallbacks; no name: the server's default), with
/// an inline chain's task models too. A name that does not resolve is judged as written.
pub(crate) fn requested_models(state: &AppState, request: &Request) -> Vec<String> {
    let mut names: Vec<Option<&str>> = vec![request.model.as_deref()];
    if let Some(ChainSpec::Inline(chain)) = &request.chain {
        for stage in &chain.stages {
            names.extend(stage.tasks.iter().map(|t| t.model.as_deref()));
        }
    }
    let mut out = Vec::new();
    for name in names {
        match state.targets(name) {
            Ok(targets) => out.extend(targets.iter().map(|t| t.reference.to_string())),
            Err(_) => out.extend(name.map(str::to_owned)),
        }
    }
    out.dedup();
    out
}

/// How many upstream requests a request may run at once: one for a prompt, for a chain its
/// widest stage (at most the config's task concurrency).
pub(crate) fn upstream_wanted(state: &AppState, request: &Request) -> usize {
    let chain = match &request.chain {
        Some(ChainSpec::Inline(chain)) => chain,
        Some(ChainSpec::Named(name)) => match state.chains.get(name) {
            Some(chain) => chain,
            None => return 1,
        },
        None => return 1,
    };
    let widest = chain
        .stages
        .iter()
        .map(|s| s.tasks.len())
        .max()
        .unwrap_or(1);
    let concurrency = state
        .config
        .task_concurrency
        .unwrap_or(oy3o::DEFAULT_CONCURRENCY);
    widest.min(concurrency).max(1)
}

/// The frame size past which the WebSocket layer itself closes the connection (code 1009)
/// instead of answering with an error frame: four times the limit, at least 64 KiB more.
pub(crate) fn protocol_max(max_frame_bytes: usize) -> usize {
    max_frame_bytes
        .saturating_mul(4)
        .max(max_frame_bytes.saturating_add(64 << 10))
}

/// Counts the upstream requests running for one connection: one per reply, a chain's width
/// for a chain.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Starts a reply that may run up to `wanted` upstream requests at once, with as many of
    /// them as are free under `max` (at least one, else `None`); [`Running::width`] says how
    /// many it got.
    pub(crate) fn try_start_wide(
        &self,
        max: usize,
        wanted: usize,
        state: &Arc<AppState>,
    ) -> Option<Running> {
        let mut width = 0;
        let taken = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                width = wanted.min(max.saturating_sub(n));
                (width > 0).then_some(n + width)
            })
            .is_ok();
        taken.then(|| {
            state.metrics.reply_started();
            Running {
                count: self.0.clone(),
                width,
                state: state.clone(),
                started: Instant::now(),
            }
        })
    }

    /// Upstream requests counted now.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A running reply; dropping it ends the count.
pub(crate) struct Running {
    count: Arc<AtomicUsize>,
    /// How many upstream requests it may run at once.
    width: usize,
    state: Arc<AppState>,
    started: Instant,
}

impl Running {
    /// When the request arrived.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// How many upstream requests it may run at once.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The shared state (metrics).
    pub(crate) fn state(&self) -> &Arc<AppState> {
        &self.state
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.count.fetch_sub(self.width, Ordering::AcqRel);
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
