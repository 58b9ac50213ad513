//! Server settings: defaults, the `[server]` table of a config file, and the limits.
//!
//! ```toml
//! [server]
//! host = "127.0.0.1"
//! port = 8443
//! token_env = "OY3O_SERVER_TOKEN"      # or token = "..." (required off loopback)
//! origins = ["https://chat.example"]   # browser origins besides the page's own; "*" for any
//! allow_client_credentials = true      # accept per-request cookie / key
//! allow_client_proxy = true            # accept per-request proxy (default: on loopback only)
//! client_proxies = ["http://proxy.internal:3128"] # proxies trusted with the server's own keys
//! models_allowed = ["openai:*", "fast"] # models clients may name (globs; default: any)
//! model_dirs = ["/srv/models"]         # folders clients may load local:<path> models from
//! allow_attachment_urls = false      # let clients attach http(s) URLs (see Settings)
//! max_frame_bytes = 1048576
//! max_attachments = 16                 # attachments in one request (WebSocket or HTTP)
//! max_chats = 64                       # per WebSocket connection
//! max_in_flight = 16                   # upstream requests at once per WebSocket connection
//! max_stage_tasks = 64                 # tasks in one stage of a client's chain
//! max_chain_stages = 16                # stages in a client's chain
//! max_prompt_bytes = 1048576           # a chain task's prompt and context, references filled in
//! max_id_bytes = 1024                  # a request's id, and its ref as JSON
//! max_outbound_bytes = 8388608         # frames waiting for a slow WebSocket client
//! idle_timeout_secs = 300
//! header_timeout_secs = 10             # HTTP: request headers, and a new connection's first request
//! keepalive_timeout_secs = 60          # HTTP: the wait for the next request on a kept-alive connection
//! body_timeout_secs = 60               # HTTP: a whole request body
//! max_connections = 512                # TCP connections at once (HTTP and WebSocket)
//! models = ["openai:gpt-4o"]           # listed by GET /v1/models besides the defaults
//! chains = { moa = "moa.toml" }        # served as the model chain:moa (paths relative to the file)
//! tokens = ["t-alice", "t-bob"]        # more accepted tokens; each client's chats are its own
//! tools = ["time", "git.git_status"]   # tools clients may name: MCP servers or server.tool
//! # a token may be a table narrowing the tools its clients may name, and naming its key in
//! # the metrics (`key` label; else `token-` and the start of its hash):
//! # tokens = ["t-alice", { name = "bob", token_env = "BOB_TOKEN", tools = ["time"] }]
//! otlp = "http://127.0.0.1:4318"       # send traces there (OTLP/HTTP); see docs/observability.md
//! metrics_label_values = 64            # distinct keys, and models, in the metrics; more are `other`
//! # a token may be a table narrowing the tools its clients may name:
//! # tokens = ["t-alice", { token_env = "BOB_TOKEN", tools = ["time"] }]
//! keys = true                          # accept the keys `oy3o keys add` keeps in the store
//! limits = "redis://127.0.0.1:6379"    # count keys' rpm/tpm/concurrency in Redis (all instances)
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The default port, as in the original library's examples.
pub const DEFAULT_PORT: u16 = 8443;

/// A secret that never shows in `Debug` output or logs, with the tools its clients may name
/// when it narrows [`Settings::tools`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    secret: String,
    /// The tools a client presenting this token may name; `None`: every one of
    /// [`Settings::tools`].
    pub tools: Option<Vec<String>>,
    /// The token's name, its `key` label in the metrics; `None`: `token-` and the first eight
    /// hex digits of its hash.
    pub name: Option<String>,
}

impl Token {
    /// Wraps a token; `None` when it is empty.
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.trim().is_empty()).then(|| Self {
            secret: value.trim().to_owned(),
            tools: None,
            name: None,
        })
    }

    /// The secret itself, for comparison.
    pub(crate) fn expose(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tools {
            None => f.write_str("Token(<redacted>)"),
            Some(tools) => write!(f, "Token(<redacted>, tools: {tools:?})"),
        }
    }
}

/// Limits that protect the server from a client; each is answered with an `error` frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest WebSocket text frame accepted (default 1 MiB). Frames up to four times larger
    /// are answered with an error frame; beyond that the connection is closed (code 1009).
    pub max_frame_bytes: usize,
    /// Largest HTTP request body (default 8 MiB).
    pub max_body_bytes: usize,
    /// Attachments in one request, WebSocket or HTTP (default 16). Their sizes are bounded by
    /// the frame or body size and by the engine config's `[attachments]` limits.
    pub max_attachments: usize,
    /// Chats open at once on one WebSocket connection (default 64).
    pub max_chats: usize,
    /// Upstream requests running at once for one WebSocket connection (default 16): a reply
    /// counts one, a chain as many as it runs at once (its tasks run at most this wide).
    pub max_in_flight: usize,
    /// A WebSocket connection with no frame from the client and no reply running for this
    /// long is closed (default 300 s); so is one whose frames cannot be written for this long.
    pub idle_timeout: Duration,
    /// Tasks in one stage of a chain a client sends (default 64).
    pub max_stage_tasks: usize,
    /// Stages in a chain a client sends (default 16).
    pub max_chain_stages: usize,
    /// A chain task's prompt and context once its `{{references}}` are filled in, in bytes
    /// (default 1 MiB); a larger one fails before it is sent.
    pub max_prompt_bytes: usize,
    /// A request's `id`, and its `ref` as JSON, in bytes (default 1 KiB): both are copied into
    /// every frame of the reply.
    pub max_id_bytes: usize,
    /// Bytes of frames waiting for one WebSocket client (default 8 MiB). Past it the replies
    /// are cancelled, the client gets an error if it still reads, and the connection closes.
    pub max_outbound_bytes: usize,
    /// HTTP: time to send a request's headers, from its first byte, or on a new connection
    /// from when it opened (default 10 s).
    pub header_timeout: Duration,
    /// HTTP: how long a kept-alive connection may wait for its next request after a response
    /// (default 60 s); then it is closed. A connection serving a request (a streamed answer
    /// too) is never idle.
    pub keepalive_timeout: Duration,
    /// HTTP: time to send a whole request body (default 60 s).
    pub body_timeout: Duration,
    /// TCP connections served at once, HTTP and WebSocket (default 512); more are closed as
    /// soon as they are accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            max_body_bytes: 8 << 20,
            max_attachments: 16,
            max_chats: 64,
            max_in_flight: 16,
            idle_timeout: Duration::from_secs(300),
            max_stage_tasks: 64,
            max_chain_stages: 16,
            max_prompt_bytes: 1 << 20,
            max_id_bytes: 1 << 10,
            max_outbound_bytes: 8 << 20,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
}

/// Everything the server needs besides the engine's [`oy3o::Config`].
///
/// ```
/// let settings = oy3o_server::Settings::default();
/// assert_eq!(settings.host, "127.0.0.1");
/// assert!(settings.token.is_none());
/// ```
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address or host name to bind (default `127.0.0.1`).
    pub host: String,
    /// Port (default 8443; 0 picks a free one).
    pub port: u16,
    /// The bearer token clients must present; required to bind beyond loopback.
    pub token: Option<Token>,
    /// Browser origins allowed besides the server's own (`"*"` allows any).
    pub origins: Vec<String>,
    /// Accept per-request `cookie` / `key` (default true).
    pub allow_client_credentials: bool,
    /// Accept a per-request `proxy`. Unset: accepted on loopback (the original protocol's use,
    /// a user's own machine), refused beyond it, where a client-chosen proxy would let anyone
    /// with the token make the server open connections wherever they like.
    pub allow_client_proxy: Option<bool>,
    /// Proxies (URLs, `host:port` or hosts) the operator trusts with the server's own
    /// credentials. Any other proxy a client names is used only for a request that brings its
    /// own key or cookie, and only for that credential's model.
    pub client_proxies: Vec<String>,
    /// Accept attachments given by `http(s)` URL (WebSocket `url`, HTTP `image_url` with a
    /// URL). Off by default: the server (or the model's service) would fetch a URL a client
    /// chose, which lets anyone with the token reach addresses the server can reach (SSRF).
    /// Inline bytes (base64, data URLs) are always accepted.
    pub allow_attachment_urls: bool,
    /// Globs (`*`, `?`) of the model names clients may ask for; `None` allows any. A name is
    /// allowed when it matches, or when every model it resolves to does.
    pub models_allowed: Option<Vec<String>>,
    /// Folders a client's `local:<path>` model may come from; without any, clients can name
    /// catalog models (`local:smollm2`) but no file.
    pub model_dirs: Vec<PathBuf>,
    /// Protection limits.
    pub limits: Limits,
    /// Extra model names listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// Named chain files, served as the models `chain:NAME`.
    pub chains: BTreeMap<String, PathBuf>,
    /// More tokens accepted besides [`Settings::token`]. Chats are scoped to the token that
    /// created them, so each token is one owner of its own chats.
    pub tokens: Vec<Token>,
    /// The tools clients may name (`tools` in a WebSocket request, `server_tools` over HTTP),
    /// which the server runs: MCP servers (`time`: all its tools) or single tools
    /// (`time.get_current_time`) of the engine config's `[mcp.NAME]` sections. Empty (the
    /// default): clients can name none. A [`Token::tools`] list narrows it per token.
    pub tools: Vec<String>,
    /// Where chats are kept (issue #10): `None` or [`oy3o_store::StoreSetting::None`] keeps
    /// nothing. Not read from `[server]`: `oy3o serve` passes the engine config's `store`. A store that cannot be opened leaves the server serving without it (a warning
    /// and `"store": {"status": "unavailable"}` in `GET /health`).
    pub store: Option<oy3o_store::StoreSetting>,
    /// Where traces go: an OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is added).
    /// `None`: the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// when set, else no traces (and no cost for them). See `docs/observability.md`.
    pub otlp: Option<String>,
    /// Distinct values of the `key` label, and of the `model` label, in the metrics (default
    /// 64); answers past them count under `other`.
    pub metrics_label_values: usize,
    /// Accept the keys kept in the store (`oy3o keys add`), each with its models, limits and
    /// budget; a server with keys requires a token or key from every client. Needs a store.
    pub keys: bool,
    /// Where the keys' request, token and concurrency counters live: a `redis://` URL shared
    /// by every instance; `None`: each instance counts alone.
    pub limits_url: Option<String>,
}

impl Settings {
    /// Whether clients must present a token (one is set).
    pub fn has_token(&self) -> bool {
        self.token.is_some() || !self.tokens.is_empty() || self.keys
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            token: None,
            origins: Vec::new(),
            allow_client_credentials: true,
            allow_client_proxy: None,
            client_proxies: Vec::new(),
            allow_attachment_urls: false,
            models_allowed: None,
            model_dirs: Vec::new(),
            limits: Limits::default(),
            models: Vec::new(),
            chains: BTreeMap::new(),
            tokens: Vec::new(),
            tools: Vec::new(),
            store: None,
            otlp: None,
            metrics_label_values: 64,
            keys: false,
            limits_url: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Section {
    host: Option<String>,
    port: Option<u16>,
    token: Option<String>,
    token_env: Option<String>,
    origins: Option<Vec<String>>,
    allow_client_credentials: Option<bool>,
    allow_client_proxy: Option<bool>,
    client_proxies: Option<Vec<String>>,
    allow_attachment_urls: Option<bool>,
    models_allowed: Option<Vec<String>>,
    model_dirs: Option<Vec<PathBuf>>,
    max_frame_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    max_attachments: Option<usize>,
    max_chats: Option<usize>,
    max_in_flight: Option<usize>,
    idle_timeout_secs: Option<f64>,
    max_stage_tasks: Option<usize>,
    max_chain_stages: Option<usize>,
    max_prompt_bytes: Option<usize>,
    max_id_bytes: Option<usize>,
    max_outbound_bytes: Option<usize>,
    header_timeout_secs: Option<f64>,
    keepalive_timeout_secs: Option<f64>,
    body_timeout_secs: Option<f64>,
    max_connections: Option<usize>,
    models: Option<Vec<String>>,
    chains: Option<BTreeMap<String, PathBuf>>,
    tokens: Option<Vec<TokenEntry>>,
    tools: Option<Vec<String>>,
    otlp: Option<String>,
    metrics_label_values: Option<usize>,
    keys: Option<bool>,
    limits: Option<String>,
}

/// One entry of `tokens`: the secret, or a table with the secret (or the variable holding it)
/// and the tools its clients may name.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenEntry {
    Secret(String),
    Table(TokenTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenTable {
    name: Option<String>,
    token: Option<String>,
    token_env: Option<String>,
    tools: Option<Vec<String>>,
}

/// The part of a config file the server reads; every other key belongs to the engine.
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    server: Option<Section>,
}

impl Settings {
    /// The defaults with the `[server]` table of a config file (TOML or JSON) on top. A file
    /// without one gives the defaults. Errors name the file, the line and the key.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("oy3o-doc-server-settings");
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("oy3o.toml");
    /// std::fs::write(&path, "model = \"openai:gpt-4o-mini\"\n[server]\nport = 9000\nmax_chats = 8\n").unwrap();
    /// let settings = oy3o_server::Settings::from_config_file(&path).unwrap();
    /// assert_eq!((settings.port, settings.limits.max_chats), (9000, 8));
    /// ```
    pub fn from_config_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::parse_file(&text, path)
    }

    /// Like [`Settings::from_config_file`], from text; `path` names it in errors and anchors
    /// relative chain paths.
    pub fn parse_file(text: &str, path: &Path) -> Result<Settings> {
        let syntax = oy3o::config::syntax_of(path, text);
        let file: File =
            oy3o::config::parse(text, path, syntax, "config error in", oy3o::config::key)
                .map_err(|e| Error::config(e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Settings::default().with_section(file.server.unwrap_or_default(), path, base)
    }

    fn with_section(mut self, s: Section, path: &Path, base: &Path) -> Result<Settings> {
        let bad = |key: &str, why: &str| {
            Error::config(format!(
                "config error in {}, key `server.{key}`: {why}",
                path.display()
            ))
        };
        if let Some(host) = s.host {
            self.host = host;
        }
        if let Some(port) = s.port {
            self.port = port;
        }
        if let Some(token) = s.token {
            self.token = Token::new(token);
        }
        if let Some(var) = s.token_env {
            let value = std::env::var(&var).map_err(|_| {
                bad(
                    "token_env",
                    &format!("environment variable {var} is not set"),
                )
            })?;
            self.token = Token::new(value);
        }
        if let Some(origins) = s.origins {
            self.origins = origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect();
        }
        if let Some(v) = s.allow_client_credentials {
            self.allow_client_credentials = v;
        }
        if let Some(v) = s.allow_client_proxy {
            self.allow_client_proxy = Some(v);
        }
        if let Some(v) = s.allow_attachment_urls {
            self.allow_attachment_urls = v;
        }
        let positive = |key: &str, v: Option<usize>, into: &mut usize| match v {
            Some(0) => Err(bad(key, "must be at least 1")),
            Some(n) => {
                *into = n;
                Ok(())
            }
            None => Ok(()),
        };
        positive(
            "max_frame_bytes",
            s.max_frame_bytes,
            &mut self.limits.max_frame_bytes,
        )?;
        positive(
            "max_body_bytes",
            s.max_body_bytes,
            &mut self.limits.max_body_bytes,
        )?;
        positive(
            "max_attachments",
            s.max_attachments,
            &mut self.limits.max_attachments,
        )?;
        positive("max_chats", s.max_chats, &mut self.limits.max_chats)?;
        positive(
            "max_in_flight",
            s.max_in_flight,
            &mut self.limits.max_in_flight,
        )?;
        let l = &mut self.limits;
        positive("max_stage_tasks", s.max_stage_tasks, &mut l.max_stage_tasks)?;
        positive(
            "max_chain_stages",
            s.max_chain_stages,
            &mut l.max_chain_stages,
        )?;
        positive(
            "max_prompt_bytes",
            s.max_prompt_bytes,
            &mut l.max_prompt_bytes,
        )?;
        positive("max_id_bytes", s.max_id_bytes, &mut l.max_id_bytes)?;
        positive(
            "max_outbound_bytes",
            s.max_outbound_bytes,
            &mut l.max_outbound_bytes,
        )?;
        positive("max_connections", s.max_connections, &mut l.max_connections)?;
        let seconds = |key: &str, v: Option<f64>, into: &mut Duration| match v {
            Some(secs) => match Duration::try_from_secs_f64(secs) {
                Ok(d) if secs > 0.0 => {
                    *into = d;
                    Ok(())
                }
                _ => Err(bad(key, "must be a positive number of seconds")),
            },
            None => Ok(()),
        };
        seconds(
            "idle_timeout_secs",
            s.idle_timeout_secs,
            &mut l.idle_timeout,
        )?;
        seconds(
            "header_timeout_secs",
            s.header_timeout_secs,
            &mut l.header_timeout,
        )?;
        seconds(
            "keepalive_timeout_secs",
            s.keepalive_timeout_secs,
            &mut l.keepalive_timeout,
        )?;
        seconds(
            "body_timeout_secs",
            s.body_timeout_secs,
            &mut l.body_timeout,
        )?;
        if let Some(proxies) = s.client_proxies {
            for p in &proxies {
                crate::policy::ProxyEntry::parse(p).map_err(|m| bad("client_proxies", &m))?;
            }
            self.client_proxies = proxies;
        }
        if let Some(globs) = s.models_allowed {
            self.models_allowed = Some(globs);
        }
        if let Some(dirs) = s.model_dirs {
            self.model_dirs = dirs.into_iter().map(|d| base.join(d)).collect();
        }
        if let Some(models) = s.models {
            self.models = models;
        }
        if let Some(chains) = s.chains {
            self.chains = chains
                .into_iter()
                .map(|(name, p)| (name, base.join(p)))
                .collect();
        }
        if let Some(tools) = s.tools {
            self.tools = tools;
        }
        if let Some(otlp) = s.otlp.filter(|u| !u.trim().is_empty()) {
            if !(otlp.starts_with("http://") || otlp.starts_with("https://")) {
                return Err(bad(
                    "otlp",
                    "give the collector's OTLP/HTTP base URL, as http://host:4318",
                ));
            }
            self.otlp = Some(otlp);
        }
        if let Some(n) = s.metrics_label_values {
            if n == 0 {
                return Err(bad("metrics_label_values", "must be at least 1"));
            }
            self.metrics_label_values = n;
        }
        if let Some(keys) = s.keys {
            self.keys = keys;
        }
        if let Some(url) = s.limits {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(bad("limits", "must be a redis:// or rediss:// URL"));
            }
            self.limits_url = Some(url);
        }
        if let Some(tokens) = s.tokens {
            self.tokens = Vec::with_capacity(tokens.len());
            for (i, entry) in tokens.into_iter().enumerate() {
                let at = format!("tokens[{i}]");
                let table = match entry {
                    TokenEntry::Secret(secret) => {
                        self.tokens.extend(Token::new(secret));
                        continue;
                    }
                    TokenEntry::Table(table) => table,
                };
                let secret = match (table.token, table.token_env) {
                    (Some(secret), None) => secret,
                    (None, Some(var)) => std::env::var(&var)
                        .map_err(|_| bad(&at, &format!("environment variable {var} is not set")))?,
                    _ => return Err(bad(&at, "give either `token` or `token_env`")),
                };
                let Some(mut token) = Token::new(secret) else {
                    return Err(bad(&at, "the token is empty"));
                };
                token.name = table.name.filter(|n| !n.trim().is_empty());
                if let Some(tools) = table.tools {
                    if let Some(beyond) = tools
                        .iter()
                        .find(|t| !crate::policy::tool_granted(&self.tools, t))
                    {
                        return Err(bad(
                            &at,
                            &format!(
                                "tool `{beyond}` is not among server.tools; a token's tools \
                                 narrow server.tools"
                            ),
                        ));
                    }
                    token.tools = Some(tools);
                }
                self.tokens.push(token);
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings> {
        Settings::parse_file(text, Path::new("/etc/oy3o/c.toml"))
    }

    #[test]
    fn a_file_without_a_server_table_gives_the_defaults() {
        let s = parse("model = \"openai:x\"\n[providers.openai]\nbase_url = \"http://h/v1\"\n")
            .unwrap();
        assert_eq!(s.port, DEFAULT_PORT);
        assert_eq!(s.limits, Limits::default());
    }

    #[test]
    fn the_server_table_sets_limits_origins_and_chain_paths() {
        let s = parse(
            "[server]\nidle_timeout_secs = 1.5\norigins = [\"https://a.example/\"]\nchains = { moa = \"moa.toml\" }\ntoken = \"t0k\"\n",
        )
        .unwrap();
        assert_eq!(s.limits.idle_timeout, Duration::from_millis(1500));
        assert_eq!(s.origins, ["https://a.example"]);
        assert_eq!(s.chains["moa"], Path::new("/etc/oy3o/moa.toml"));
        assert_eq!(format!("{:?}", s.token), "Some(Token(<redacted>))");
    }

    #[test]
    fn the_server_table_sets_more_tokens_without_showing_them() {
        let s = parse("[server]\ntokens = [\"a1\", \" \", \"b2\"]\n").unwrap();
        assert_eq!(s.tokens.len(), 2);
        assert!(s.has_token());
        let shown = format!("{s:?}");
        assert!(!shown.contains("a1") && !shown.contains("b2"), "{shown}");
        assert!(!parse("[server]\n").unwrap().has_token());
    }

    #[test]
    fn the_hardening_limits_are_read_and_checked() {
        let s = parse(
            "[server]\nmax_stage_tasks = 3\nmax_outbound_bytes = 4096\nheader_timeout_secs = 0.5\n\
             keepalive_timeout_secs = 2.5\n\
             client_proxies = [\"http://p.example:3128\"]\nmodels_allowed = [\"openai:*\"]\n\
             model_dirs = [\"models\"]\n",
        )
        .unwrap();
        assert_eq!(s.limits.max_stage_tasks, 3);
        assert_eq!(s.limits.max_outbound_bytes, 4096);
        assert_eq!(s.limits.header_timeout, Duration::from_millis(500));
        assert_eq!(s.limits.keepalive_timeout, Duration::from_millis(2500));
        assert_eq!(s.model_dirs, [Path::new("/etc/oy3o/models")]);
        for bad in [
            "[server]\nbody_timeout_secs = 1e300\n",
            "[server]\nmax_id_bytes = 0\n",
            "[server]\nkeepalive_timeout_secs = 0\n",
            "[server]\nclient_proxies = [\"ftp://p:21\"]\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let e = parse("model = \"x:y\"\n[server]\nmax_chat = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("max_chat"), "{e}");
        let e = parse("[server]\nport = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("server.port"), "{e}");
        let e = Settings::parse_file("{\"server\": {\"max_chats\": 0}}", Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.max_chats"), "{e}");
    }
}
