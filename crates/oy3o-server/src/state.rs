//! What every handler shares: the engine config, the settings, the metrics, the named chains,
//! the shutdown signal and the conversation store.

use std::collections::BTreeMap;
use std::sync::Arc;

use oy3o::{Chain, Config};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::Stored;

/// The shared state behind every route.
pub(crate) struct AppState {
    /// The engine config (server-side credentials, aliases, providers).
    pub config: Arc<Config>,
    /// The server settings.
    pub settings: Settings,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Chains served as the models `chain:NAME`, loaded and checked at start.
    pub chains: BTreeMap<String, Chain>,
    /// Cancelled when the server shuts down: WebSocket connections close on it.
    pub shutdown: CancellationToken,
    /// The conversation store, when one is configured.
    pub store: Stored,
}

impl AppState {
    /// Loads the named chains; a broken chain file stops the start with its error.
    pub(crate) fn new(config: Config, settings: Settings, store: Stored) -> Result<Arc<Self>> {
        let mut chains = BTreeMap::new();
        for (name, path) in &settings.chains {
            let chain =
                Chain::load(path).map_err(|e| Error::config(format!("chain {name:?}: {e}")))?;
            chains.insert(name.clone(), chain);
        }
        Ok(Arc::new(Self {
            config: Arc::new(config),
            settings,
            metrics: Metrics::default(),
            chains,
            shutdown: CancellationToken::new(),
            store,
        }))
    }

    /// The models a client can name: the default, aliases, extra listed models, each
    /// provider's default model when it is usable (credential present or not needed), and
    /// the named chains. Pairs of (name, owner).
    pub(crate) fn model_names(&self) -> Vec<(String, String)> {
        let config = &self.config;
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |name: String, owner: String| {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, owner));
            }
        };
        if let Ok(target) = config.resolve(None) {
            push(
                target.reference.to_string(),
                target.reference.provider.clone(),
            );
        }
        for name in config.aliases.keys() {
            push(name.clone(), "alias".into());
        }
        for name in &self.settings.models {
            let owner = name.split(':').next().unwrap_or("oy3o").to_owned();
            push(name.clone(), owner);
        }
        for provider in oy3o::providers::names() {
            if let Ok(target) = config.resolve(Some(provider)) {
                push(target.reference.to_string(), provider.to_owned());
            }
        }
        for name in self.chains.keys() {
            push(format!("chain:{name}"), "chain".into());
        }
        out
    }
}
