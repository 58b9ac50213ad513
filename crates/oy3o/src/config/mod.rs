//! Configuration in the original library's shape: defaults (`model`, `context`, `cookie`,
//! `proxy`, `listeners`) plus per-model maps (`contexts`, `cookies`, `proxies`,
//! `model_listeners`), provider sections and model aliases.
//!
//! A per-call config overrides the global one field by field ([`Config::overlay`]); files are
//! TOML or JSON ([`Config::load`]); [`Config::resolve`] turns a model name into a [`Target`].

mod alias;
mod file;
mod mcp;
mod parse;
mod resolve;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::credential::Credential;
use crate::listener::Listeners;

pub use alias::Alias;
pub use mcp::{DEFAULT_MCP_TIMEOUT, McpServerConfig, McpTransport};
pub use parse::{Syntax, key, parse, syntax_of};
pub(crate) use resolve::redact_url;
pub use resolve::{DEFAULT_MODEL, Target};

/// How a model should generate. Unset fields leave the provider's own default.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Upper bound of answer tokens.
    pub max_tokens: Option<u32>,
    /// Seed for reproducible sampling, where supported.
    pub seed: Option<u32>,
    /// The caller reads the answer only once it is complete (`send_once`, `exec_once`, an HTTP
    /// request with `stream: false`). A provider that can ask its API for one whole answer
    /// does so (one JSON body instead of a stream of events to decode); the others stream as
    /// always. Either way the reply yields the same kinds of items (text, reasoning, citations,
    /// usage, the finish reason) in the same order, so listeners cannot tell. Not a config
    /// setting: it belongs to the call.
    #[serde(skip)]
    pub whole: bool,
    /// Tools the model may call in this answer (shared: options are copied per turn). Not a
    /// config setting yet: it belongs to the call.
    #[serde(skip)]
    pub tools: Option<std::sync::Arc<crate::tool::Tools>>,
    /// Tools the engine runs itself until the model answers ([`crate::tool_loop`]); they are
    /// what the model is offered (over `tools`). It belongs to the call.
    #[serde(skip)]
    pub toolbox: Option<std::sync::Arc<crate::tool_loop::Toolbox>>,
    /// The most tool steps (answers with calls, then their results) of one turn; the last
    /// step asks for an answer without tools. Default 8.
    pub max_tool_steps: Option<u32>,
    /// How hard a reasoning model should think (OpenAI reasoning effort, Anthropic thinking
    /// budget, Gemini thinking budget, Ollama `think`). `reasoning = "low"` in a file.
    pub reasoning: Option<Reasoning>,
    /// A JSON Schema the answer must follow ([`crate::structured`]): the provider's native
    /// structured mode where it has one, validated on arrival. Usually given with the call
    /// (CLI `--schema FILE`, Python `schema=`, HTTP `response_format`, WebSocket `options`);
    /// as data (a file's `[options]`, a WebSocket request) it is the schema itself, or
    /// `{name, schema, strict?}` ([`crate::structured::deserialize`]).
    #[serde(
        default,
        deserialize_with = "crate::structured::deserialize",
        skip_serializing
    )]
    pub schema: Option<std::sync::Arc<crate::structured::OutputSchema>>,
    /// Let the model search the web with its provider's search tool (`search = true`).
    pub search: Option<bool>,
    /// Texts that end the answer where they would appear (not included).
    pub stop: Option<Vec<String>>,
    /// JSON fields merged last into the provider's request body: an escape hatch for
    /// parameters oy3o has no option for. Merged over the provider's own `extra_body`
    /// (`[providers.NAME] extra_body`), key by key.
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
}

/// How hard a reasoning model should think: `low`, `medium` or `high`.
///
/// ```
/// use oy3o::config::Reasoning;
/// assert_eq!("high".parse::<Reasoning>().unwrap(), Reasoning::High);
/// assert!("max".parse::<Reasoning>().unwrap_err().to_string().contains("low, medium or high"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reasoning {
    /// Little thinking: fast and cheap.
    Low,
    /// The providers' usual default.
    Medium,
    /// Think long.
    High,
}

impl Reasoning {
    /// The lowercase name (`"low"`, `"medium"`, `"high"`), as OpenAI's `reasoning_effort` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl std::fmt::Display for Reasoning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Reasoning {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(crate::Error::new(
                crate::ErrorCode::BadRequest,
                format!("unknown reasoning level {s:?}: use low, medium or high"),
            )),
        }
    }
}

impl Options {
    /// Fields set in `over` win; the others come from `self`.
    pub fn overlay(&self, over: &Options) -> Options {
        Options {
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            max_tokens: over.max_tokens.or(self.max_tokens),
            seed: over.seed.or(self.seed),
            whole: over.whole || self.whole,
            tools: over.tools.clone().or_else(|| self.tools.clone()),
            toolbox: over.toolbox.clone().or_else(|| self.toolbox.clone()),
            max_tool_steps: over.max_tool_steps.or(self.max_tool_steps),
            reasoning: over.reasoning.or(self.reasoning),
            schema: over.schema.clone().or_else(|| self.schema.clone()),
            search: over.search.or(self.search),
            stop: over.stop.clone().or_else(|| self.stop.clone()),
            extra_body: match (&self.extra_body, &over.extra_body) {
                (Some(base), Some(top)) => {
                    let mut merged = base.clone();
                    merged.extend(top.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Some(merged)
                }
                (base, top) => top.clone().or_else(|| base.clone()),
            },
        }
    }
}

/// Network time limits of one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending the request to the first byte of the answer.
    pub first_byte: Duration,
    /// Between two chunks of a streaming answer.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

/// One provider's section of the config (`[providers.NAME]` in a file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProviderSettings {
    /// Base URL of the API (e.g. `http://127.0.0.1:8080/v1` for a llama.cpp server).
    pub base_url: Option<String>,
    /// The key itself (prefer `api_key_env`).
    pub api_key: Option<Credential>,
    /// The environment variable that holds the key (overrides the provider's conventional one).
    pub api_key_env: Option<String>,
    /// The model used when a reference names only the provider.
    pub default_model: Option<String>,
    /// Which request field carries the answer-length limit (`max_tokens` or
    /// `max_completion_tokens`) for OpenAI-compatible servers.
    pub max_tokens_field: Option<String>,
    /// Which of the provider's APIs to use: for `openai`, `chat` (Chat Completions, the
    /// default) or `responses` (the Responses API).
    pub api: Option<String>,
    /// Time limits; unset parts keep their defaults.
    pub connect_timeout: Option<Duration>,
    /// See [`Timeouts::first_byte`].
    pub first_byte_timeout: Option<Duration>,
    /// See [`Timeouts::idle`].
    pub idle_timeout: Option<Duration>,
    /// Retries before the first answer byte (default 2).
    pub max_retries: Option<u32>,
    /// Extra HTTP headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// JSON fields merged last into every request body to this provider (an escape hatch);
    /// a request's own [`Options::extra_body`] wins key by key.
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// For `local` models: a Jinja chat template used instead of the one in the model file
    /// (for example one that shows tools, for a model whose own template has none).
    pub chat_template: Option<String>,
}

impl ProviderSettings {
    /// Fields set in `over` win; headers are merged.
    pub fn overlay(&self, over: &ProviderSettings) -> ProviderSettings {
        let mut headers = self.headers.clone();
        headers.extend(over.headers.clone());
        ProviderSettings {
            base_url: over.base_url.clone().or_else(|| self.base_url.clone()),
            api_key: over.api_key.clone().or_else(|| self.api_key.clone()),
            api_key_env: over
                .api_key_env
                .clone()
                .or_else(|| self.api_key_env.clone()),
            default_model: over
                .default_model
                .clone()
                .or_else(|| self.default_model.clone()),
            max_tokens_field: over
                .max_tokens_field
                .clone()
                .or_else(|| self.max_tokens_field.clone()),
            api: over.api.clone().or_else(|| self.api.clone()),
            connect_timeout: over.connect_timeout.or(self.connect_timeout),
            first_byte_timeout: over.first_byte_timeout.or(self.first_byte_timeout),
            idle_timeout: over.idle_timeout.or(self.idle_timeout),
            max_retries: over.max_retries.or(self.max_retries),
            headers,
            extra_body: over.extra_body.clone().or_else(|| self.extra_body.clone()),
            chat_template: over
                .chat_template
                .clone()
                .or_else(|| self.chat_template.clone()),
        }
    }

    /// The time limits with defaults filled in.
    pub fn timeouts(&self) -> Timeouts {
        let d = Timeouts::default();
        Timeouts {
            connect: self.connect_timeout.unwrap_or(d.connect),
            first_byte: self.first_byte_timeout.unwrap_or(d.first_byte),
            idle: self.idle_timeout.unwrap_or(d.idle),
        }
    }
}

/// The engine's configuration. Build one in code, or [`Config::load`] a file.
///
/// ```
/// use oy3o::Config;
/// let global = Config { model: Some("openai:gpt-4o-mini".into()), ..Config::default() };
/// let call = Config { context: Some("Be brief.".into()), ..Config::default() };
/// let merged = global.overlay(&call);
/// assert_eq!(merged.model.as_deref(), Some("openai:gpt-4o-mini"));
/// assert_eq!(merged.context.as_deref(), Some("Be brief."));
///
/// // A context given with the call beats the global per-model one.
/// let mut global = global;
/// global.contexts.insert("openai".into(), "Global.".into());
/// global.cookies.insert("openai".into(), oy3o::Credential::parse("sk-x"));
/// let merged = global.overlay(&call);
/// let target = merged.resolve(Some("openai:gpt-4o-mini")).unwrap();
/// assert_eq!(target.context.as_deref(), Some("Be brief."));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// The default model reference or alias.
    pub model: Option<String>,
    /// The default context (system prompt).
    pub context: Option<String>,
    /// The default credential (key or cookie jar).
    pub cookie: Option<Credential>,
    /// The default proxy URL (`http://`, `https://`, `socks5://`, `socks5h://`), or
    /// [`NO_PROXY`](crate::transport::client::NO_PROXY) (`""`) for none, even over
    /// `HTTPS_PROXY`; `None` follows the environment. In an [`overlay`](Config::overlay)'s call
    /// layer, `""` turns the base's proxies off for that call.
    pub proxy: Option<String>,
    /// Listeners called for every model.
    pub listeners: Listeners,
    /// Contexts by model reference or provider name.
    pub contexts: BTreeMap<String, String>,
    /// Credentials by model reference or provider name.
    pub cookies: BTreeMap<String, Credential>,
    /// Proxies by model reference or provider name (`""`: none for that model).
    pub proxies: BTreeMap<String, String>,
    /// Listeners by model reference or provider name (the original's `listeners` map).
    pub model_listeners: BTreeMap<String, Listeners>,
    /// Provider sections by provider name.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// Model aliases: `fast = "openai:gpt-4o-mini"`, or an ordered list of fallbacks:
    /// `smart = ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]`.
    pub aliases: BTreeMap<String, Alias>,
    /// Default generation options.
    pub options: Options,
    /// How many tasks of a task list or chain stage run at once (default 16).
    pub task_concurrency: Option<usize>,
    /// The largest prompt plus context a chain task may send once its `{{references}}` are
    /// filled in, in bytes; a larger one fails that task before anything is sent (`None`: no
    /// limit). A server sets it, so one small chain frame cannot grow into a huge request.
    pub max_prompt_bytes: Option<usize>,
    /// Where faces keep conversations: `none`, `sqlite:PATH` or `postgres://…` (read by the
    /// `oy3o-store` crate; the engine itself never writes there). `None`: the face's default.
    pub store: Option<String>,
    /// MCP servers by name (`[mcp.NAME]` in a file): their tools are offered as `NAME.tool`
    /// (see `oy3o::mcp`, behind the engine's `mcp` feature).
    pub mcp: BTreeMap<String, McpServerConfig>,
    /// Size limits of attachments (`[attachments]` in a file); `None`: the defaults.
    pub attachments: Option<crate::attachment::Limits>,
    /// Prices by model reference glob (`[prices."openai:gpt-4o*"]` in a file), over the
    /// shipped table: see [`Config::prices`].
    pub prices: BTreeMap<String, crate::price::Price>,
}

impl Config {
    /// The price table turns are costed with: this config's `prices` over the shipped table
    /// ([`crate::price::Prices::shipped`]).
    pub fn prices(&self) -> crate::price::Prices {
        crate::price::Prices::with_overrides(&self.prices)
    }

    /// This config with every field set in `call` taking precedence. Maps are merged key by key;
    /// listeners add up (global ones first). The most specific setting wins: a `context`,
    /// `cookie` or `proxy` the call gives beats this config's per-model `contexts`, `cookies`
    /// and `proxies` (the call's own per-model entries still apply).
    pub fn overlay(&self, call: &Config) -> Config {
        fn merged<V: Clone>(
            a: &BTreeMap<String, V>,
            b: &BTreeMap<String, V>,
        ) -> BTreeMap<String, V> {
            let mut out = a.clone();
            out.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
            out
        }
        // The most specific setting wins: one the call gives for every model beats this
        // config's per-model ones, which beat this config's global one.
        fn specific<V: Clone, S>(
            a: &BTreeMap<String, V>,
            call_global: &Option<S>,
            b: &BTreeMap<String, V>,
        ) -> BTreeMap<String, V> {
            match call_global {
                Some(_) => b.clone(),
                None => merged(a, b),
            }
        }
        let mut listeners = self.listeners.clone();
        listeners.extend(&call.listeners);
        let mut model_listeners = self.model_listeners.clone();
        for (name, set) in &call.model_listeners {
            model_listeners.entry(name.clone()).or_default().extend(set);
        }
        let mut providers = self.providers.clone();
        for (name, settings) in &call.providers {
            let base = providers.get(name).cloned().unwrap_or_default();
            providers.insert(name.clone(), base.overlay(settings));
        }
        Config {
            model: call.model.clone().or_else(|| self.model.clone()),
            context: call.context.clone().or_else(|| self.context.clone()),
            cookie: call.cookie.clone().or_else(|| self.cookie.clone()),
            proxy: call.proxy.clone().or_else(|| self.proxy.clone()),
            listeners,
            contexts: specific(&self.contexts, &call.context, &call.contexts),
            cookies: specific(&self.cookies, &call.cookie, &call.cookies),
            proxies: specific(&self.proxies, &call.proxy, &call.proxies),
            model_listeners,
            providers,
            aliases: merged(&self.aliases, &call.aliases),
            options: self.options.overlay(&call.options),
            task_concurrency: call.task_concurrency.or(self.task_concurrency),
            max_prompt_bytes: call.max_prompt_bytes.or(self.max_prompt_bytes),
            store: call.store.clone().or_else(|| self.store.clone()),
            mcp: merged(&self.mcp, &call.mcp),
            attachments: call.attachments.or(self.attachments),
            prices: merged(&self.prices, &call.prices),
        }
    }
}
