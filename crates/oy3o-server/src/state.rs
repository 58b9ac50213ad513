//! What every handler shares: the engine config, the settings, the metrics, the named chains,
//! the shutdown signal and the conversation store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use oy3o::{Chain, Config, Conversations, Target};
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
    /// Models already resolved against `config`, by the name a request gave.
    resolved: RwLock<HashMap<Option<String>, Arc<[Target]>>>,
    /// The conversation store, when one is configured.
    pub store: Stored,
    /// Where every face's conversations open: resumed from and recorded into the store when
    /// there is one. Without a store each WebSocket connection keeps its chats to itself (as
    /// the original library did), so this one serves one-shot answers only.
    pub conversations: Arc<Conversations>,
    /// The MCP servers of the engine config, whose tools clients may name as
    /// [`Settings::tools`] allows; started on first use and shared by every connection.
    pub mcp: oy3o::mcp::McpTools,
    /// The store's keys, as this instance has looked them up ([`Settings::keys`]).
    pub keys: crate::keys::Keys,
    /// What keys may spend and how fast.
    pub quotas: crate::policy::quota::Quotas,
}

/// How many model names [`AppState::targets`] remembers; names past it resolve per request, so
/// clients naming endless models cannot grow the server's memory.
const RESOLVED_MODELS: usize = 256;

impl AppState {
    /// Loads the named chains; a broken chain file stops the start with its error.
    pub(crate) fn new(mut config: Config, settings: Settings, store: Stored) -> Result<Arc<Self>> {
        // Every chain the server runs (a client's, or a named one) is held to this bound.
        config.max_prompt_bytes = Some(
            config
                .max_prompt_bytes
                .map_or(settings.limits.max_prompt_bytes, |own| {
                    own.min(settings.limits.max_prompt_bytes)
                }),
        );
        let mut chains = BTreeMap::new();
        for (name, path) in &settings.chains {
            let chain =
                Chain::load(path).map_err(|e| Error::config(format!("chain {name:?}: {e}")))?;
            chains.insert(name.clone(), chain);
        }
        for name in &settings.tools {
            let server = name.split('.').next().unwrap_or_default();
            if !config.mcp.contains_key(server) {
                return Err(Error::config(format!(
                    "server.tools names `{name}`, but no [mcp.{server}] section is configured"
                )));
            }
        }
        let metrics = Metrics::for_settings(&settings);
        if settings.keys && settings.store.is_none() {
            return Err(Error::config(
                "server.keys = true needs a store (the keys live there): set `store` in the config",
            ));
        }
        let quotas =
            crate::policy::quota::Quotas::new(settings.limits_url.as_deref(), config.prices())
                .map_err(Error::config)?;
        Ok(Arc::new(Self {
            keys: crate::keys::Keys::default(),
            quotas,
            mcp: oy3o::mcp::McpTools::new(&config),
            config: Arc::new(config),
            settings,
            metrics,
            chains,
            shutdown: CancellationToken::new(),
            resolved: RwLock::default(),
            conversations: Arc::new(Conversations::new(store.open_store().map(|open| {
                oy3o_store::RecordedConversations::new(open.recorder.clone()).shared()
            }))),
            store,
        }))
    }

    /// A toolbox of the tools a client names, from the server's shared MCP registry; `None`
    /// when it names none. The names were checked against the client's grant with the request
    /// (`policy::check_tools`).
    pub(crate) async fn toolbox(
        &self,
        names: Option<&[String]>,
    ) -> oy3o::Result<Option<Arc<oy3o::tool_loop::Toolbox>>> {
        let Some(names) = names.filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(Some(Arc::new(self.mcp.toolbox(&names).await?)))
    }

    /// Gives the tasks of `chain` that name tools their toolboxes (see
    /// [`oy3o::mcp::McpTools::equip`]); the names were checked against the client's grant
    /// with the request (a served chain's are the operator's own).
    pub(crate) async fn equip(&self, chain: &mut Chain) -> oy3o::Result<()> {
        self.mcp.equip(chain.tasks_mut()).await
    }

    /// The targets of `model` (or the default) against the server's own config, resolved once
    /// per name and then shared: the config does not change while the server runs, and
    /// resolving (aliases, provider section, environment, credential) cost ~7,000 instructions
    /// per request in callgrind. Failures are not remembered: each gets its own fresh error.
    /// Requests with the client's own credential or proxy resolve on their own config.
    pub(crate) fn targets(&self, model: Option<&str>) -> oy3o::Result<Arc<[Target]>> {
        let key = model.map(str::to_owned);
        if let Some(known) = self
            .resolved
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(known.clone());
        }
        let targets: Arc<[Target]> = self.config.resolve_all(model)?.into();
        let mut resolved = self.resolved.write().unwrap_or_else(|p| p.into_inner());
        if resolved.len() < RESOLVED_MODELS {
            resolved.insert(key, targets.clone());
        }
        Ok(targets)
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
