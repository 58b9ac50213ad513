//! Loading a config file (TOML or JSON). Every error names the file, the line and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::mcp::McpSection;
use super::{Alias, Config, Options, ProviderSettings};
use crate::credential::Credential;
use crate::error::{Error, Result};
use crate::model_ref::ModelRef;

/// A credential in a file: the secret itself, or `{ file = "cookie.json" }` (relative to the
/// config file), or `{ env = "VAR" }`.
#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum CredentialSource {
    Text(String),
    File { file: PathBuf },
    Env { env: String },
}

/// An alias in a file: one model, or an ordered list of fallbacks.
#[derive(Deserialize)]
#[serde(untagged)]
enum AliasSource {
    One(String),
    Fallbacks(Vec<String>),
}

impl AliasSource {
    fn models(&self) -> &[String] {
        match self {
            Self::One(m) => std::slice::from_ref(m),
            Self::Fallbacks(list) => list,
        }
    }

    fn into_alias(self) -> Alias {
        match self {
            Self::One(m) => Alias::from(m),
            Self::Fallbacks(list) => Alias::new(list),
        }
    }
}

/// The values `api` may take in a provider section.
const APIS: &[&str] = &["chat", "responses"];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProviderSection {
    base_url: Option<String>,
    api_key: Option<CredentialSource>,
    api_key_env: Option<String>,
    default_model: Option<String>,
    max_tokens_field: Option<String>,
    api: Option<String>,
    connect_timeout_secs: Option<f64>,
    first_byte_timeout_secs: Option<f64>,
    idle_timeout_secs: Option<f64>,
    max_retries: Option<u32>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    chat_template: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    model: Option<String>,
    context: Option<String>,
    cookie: Option<CredentialSource>,
    proxy: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, String>,
    #[serde(default)]
    cookies: BTreeMap<String, CredentialSource>,
    #[serde(default)]
    proxies: BTreeMap<String, String>,
    #[serde(default)]
    aliases: BTreeMap<String, AliasSource>,
    #[serde(default)]
    options: Options,
    task_concurrency: Option<usize>,
    store: Option<String>,
    #[serde(default)]
    providers: BTreeMap<String, ProviderSection>,
    #[serde(default)]
    mcp: BTreeMap<String, McpSection>,
    attachments: Option<crate::attachment::Limits>,
    #[serde(default)]
    prices: BTreeMap<String, crate::price::Price>,
    /// Read by the server face; kept opaque here so the engine does not depend on it.
    #[serde(default)]
    server: Option<serde_json::Value>,
}

impl Config {
    /// Loads a TOML file, or a JSON file (by its `.json` extension or a leading `{`).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("oy3o-doc-config");
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("oy3o.toml");
    /// std::fs::write(&path, "model = \"fast\"\n[aliases]\nfast = \"openai:gpt-4o-mini\"\n").unwrap();
    /// let config = oy3o::Config::load(&path).unwrap();
    /// assert_eq!(config.aliases["fast"], "openai:gpt-4o-mini");
    ///
    /// // An alias may list fallbacks, tried in order when a model fails before answering.
    /// std::fs::write(&path, "[aliases]\nsmart = [\"anthropic:claude-sonnet-4-5\", \"openai:gpt-4o\"]\n").unwrap();
    /// let config = oy3o::Config::load(&path).unwrap();
    /// assert_eq!(config.aliases["smart"].models(), ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]);
    ///
    /// std::fs::write(&path, "model = \"fast\"\nmodle = 1\n").unwrap();
    /// let err = oy3o::Config::load(&path).unwrap_err().to_string();
    /// assert!(err.contains("oy3o.toml") && err.contains("line 2") && err.contains("modle"), "{err}");
    /// ```
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "cannot read config file {}: {e}; check the path given to --config or OY3O_CONFIG",
                path.display()
            ))
        })?;
        Self::parse_file(&text, path)
    }

    /// Parses config text; `path` names it in errors and anchors relative credential files.
    pub fn parse_file(text: &str, path: &Path) -> Result<Config> {
        let syntax = super::parse::syntax_of(path, text);
        let file: ConfigFile =
            super::parse::parse(text, path, syntax, "config error in", super::parse::key)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        file.into_config(text, path, base_dir)
    }
}

/// The 1-based line of a dotted `key` (`providers.openai.api`), for errors found after
/// parsing: each part is looked for after the line of the one before it, as a key assigned
/// (`api =`, `"api":`) or a part of a table header (`[providers.openai]`).
fn line_of_key(text: &str, key: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let mut at = None;
    for part in key.split('.') {
        let from = at.unwrap_or(0);
        if let Some(i) = lines[from.min(lines.len())..]
            .iter()
            .position(|l| mentions(l, part))
        {
            at = Some(from + i);
        }
    }
    at.map_or(1, |i| i + 1)
}

/// Whether `line` assigns `part` or names it in a table header.
fn mentions(line: &str, part: &str) -> bool {
    let l = line.trim();
    if let Some(header) = l.strip_prefix('[') {
        let header = header.trim_start_matches('[').trim_end_matches(']');
        return header
            .split('.')
            .any(|p| p.trim().trim_matches('"') == part);
    }
    let l = l.trim_start_matches('"');
    l.starts_with(part) && l[part.len()..].trim_start().starts_with(['=', ':', '"'])
}

fn seconds(value: Option<f64>, key: &str, ctx: &Ctx) -> Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(ctx.error(key, &format!("{s} is not a positive number of seconds"))),
    }
}

struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    base_dir: &'a Path,
}

impl Ctx<'_> {
    fn error(&self, key: &str, message: &str) -> Error {
        Error::config(format!(
            "config error in {} line {}, key `{key}`: {message}",
            self.path.display(),
            line_of_key(self.text, key)
        ))
    }

    fn credential(&self, source: CredentialSource, key: &str) -> Result<Credential> {
        match source {
            CredentialSource::Text(t) => Ok(Credential::parse(&t)),
            CredentialSource::File { file } => {
                let full = self.base_dir.join(&file);
                Credential::from_file(&full).map_err(|e| self.error(key, e.message()))
            }
            CredentialSource::Env { env } => std::env::var(&env)
                .map(|v| Credential::parse(&v))
                .map_err(|_| self.error(key, &format!("environment variable {env} is not set"))),
        }
    }

    fn model_ref<V>(&self, value: &str, key: &str, aliases: &BTreeMap<String, V>) -> Result<()> {
        if aliases.contains_key(value) {
            return Ok(());
        }
        ModelRef::parse(value)
            .map(|_| ())
            .map_err(|e| self.error(key, e.message()))
    }
}

impl ConfigFile {
    fn into_config(self, text: &str, path: &Path, base_dir: &Path) -> Result<Config> {
        let ctx = Ctx {
            text,
            path,
            base_dir,
        };
        if let Some(model) = &self.model {
            ctx.model_ref(model, "model", &self.aliases)?;
        }
        for (name, alias) in &self.aliases {
            let key = format!("aliases.{name}");
            if alias.models().is_empty() {
                return Err(ctx.error(&key, "the list names no model; add at least one"));
            }
            for target in alias.models() {
                ctx.model_ref(target, &key, &self.aliases)?;
            }
        }
        let mut cookies = BTreeMap::new();
        for (name, source) in self.cookies {
            let key = format!("cookies.{name}");
            cookies.insert(name, ctx.credential(source, &key)?);
        }
        let mut providers = BTreeMap::new();
        for (name, s) in self.providers {
            let key = |k: &str| format!("providers.{name}.{k}");
            if let Some(api) = &s.api
                && !APIS.contains(&api.as_str())
            {
                return Err(ctx.error(
                    &key("api"),
                    &format!("unknown API {api:?}: use \"chat\" (Chat Completions) or \"responses\" (the Responses API)"),
                ));
            }
            if let Some(extra) = &s.extra_body {
                crate::controls::check_extra_body(extra, "extra_body")
                    .map_err(|e| ctx.error(&key("extra_body"), e.message()))?;
            }
            let api_key = match s.api_key {
                Some(source) => Some(ctx.credential(source, &key("api_key"))?),
                None => None,
            };
            let settings = ProviderSettings {
                base_url: s.base_url,
                api_key,
                api_key_env: s.api_key_env,
                default_model: s.default_model,
                max_tokens_field: s.max_tokens_field,
                api: s.api,
                connect_timeout: seconds(
                    s.connect_timeout_secs,
                    &key("connect_timeout_secs"),
                    &ctx,
                )?,
                first_byte_timeout: seconds(
                    s.first_byte_timeout_secs,
                    &key("first_byte_timeout_secs"),
                    &ctx,
                )?,
                idle_timeout: seconds(s.idle_timeout_secs, &key("idle_timeout_secs"), &ctx)?,
                max_retries: s.max_retries,
                headers: s.headers,
                extra_body: s.extra_body,
                chat_template: s.chat_template,
            };
            providers.insert(name, settings);
        }
        let mut mcp = BTreeMap::new();
        for (name, section) in self.mcp {
            let server = section.into_config(&name).map_err(|(at, message)| {
                let key = match at {
                    "" => format!("mcp.{name}"),
                    at => format!("mcp.{name}.{at}"),
                };
                ctx.error(&key, &message)
            })?;
            mcp.insert(name, server);
        }
        let cookie = match self.cookie {
            Some(source) => Some(ctx.credential(source, "cookie")?),
            None => None,
        };
        let _ = self.server;
        for (glob, price) in &self.prices {
            if let Some(field) = price.invalid_field() {
                return Err(ctx.error(
                    &format!("prices.{glob}.{field}"),
                    "must be a number of US dollars per million tokens, at least 0",
                ));
            }
        }
        if let Some(extra) = &self.options.extra_body {
            crate::controls::check_extra_body(extra, "extra_body")
                .map_err(|e| ctx.error("options.extra_body", e.message()))?;
        }
        if let Some(stop) = &self.options.stop {
            crate::controls::check_stop(stop)
                .map_err(|e| ctx.error("options.stop", e.message()))?;
        }
        if let Some(store) = &self.store {
            check_store(store).map_err(|m| ctx.error("store", m))?;
        }
        let proxies = self.proxy.iter().map(|p| ("proxy".to_owned(), p));
        let per_model = self
            .proxies
            .iter()
            .map(|(m, p)| (format!("proxies.{m}"), p));
        for (key, url) in proxies.chain(per_model) {
            crate::transport::client::check_proxy_setting(url)
                .map_err(|e| ctx.error(&key, e.message()))?;
        }
        Ok(Config {
            model: self.model,
            context: self.context,
            cookie,
            proxy: self.proxy,
            contexts: self.contexts,
            cookies,
            proxies: self.proxies,
            providers,
            aliases: self
                .aliases
                .into_iter()
                .map(|(name, alias)| (name, alias.into_alias()))
                .collect(),
            options: self.options,
            task_concurrency: self.task_concurrency,
            store: self.store,
            mcp,
            attachments: self.attachments,
            prices: self.prices,
            ..Config::default()
        })
    }
}

/// The forms of the `store` setting (parsed in full by `oy3o-store`, which the engine does not
/// depend on; checked here so a typo is a config error with its file and line).
fn check_store(value: &str) -> std::result::Result<(), &'static str> {
    let v = value.trim();
    let ok = v.eq_ignore_ascii_case("none")
        || v.strip_prefix("sqlite:")
            .is_some_and(|p| !p.trim_start_matches('/').is_empty())
        || v.starts_with("postgres://")
        || v.starts_with("postgresql://");
    if ok {
        Ok(())
    } else {
        Err("use \"none\", \"sqlite:PATH\" or \"postgres://USER@HOST/DB\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, name: &str) -> Result<Config> {
        Config::parse_file(text, Path::new(name))
    }

    #[test]
    fn toml_with_providers_aliases_and_options_loads() {
        let c = load(
            r#"
model = "fast"
context = "Be brief."
[aliases]
fast = "openai:gpt-4o-mini"
[options]
temperature = 0.2
[providers.openai]
base_url = "http://127.0.0.1:9/v1"
api_key = "sk-test"
idle_timeout_secs = 2.5
headers = { "X-Title" = "oy3o" }
"#,
            "c.toml",
        )
        .unwrap();
        let openai = &c.providers["openai"];
        assert_eq!(openai.base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(
            openai.api_key.as_ref().and_then(|k| k.key()),
            Some("sk-test")
        );
        assert_eq!(openai.idle_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(c.options.temperature, Some(0.2));
    }

    #[test]
    fn request_controls_load_and_bad_ones_name_file_line_and_key() {
        let c = load(
            r#"
[options]
reasoning = "high"
search = true
stop = ["END"]
extra_body = { user = "me" }
[providers.openai]
extra_body = { service_tier = "flex" }
"#,
            "c.toml",
        )
        .unwrap();
        assert_eq!(c.options.reasoning, Some(super::super::Reasoning::High));
        assert_eq!(c.options.search, Some(true));
        assert_eq!(c.options.stop.as_deref(), Some(&["END".to_owned()][..]));
        assert_eq!(c.options.extra_body.as_ref().unwrap()["user"], "me");
        let extra = c.providers["openai"].extra_body.as_ref().unwrap();
        assert_eq!(extra["service_tier"], "flex");

        let err = load("[options]\nreasoning = \"max\"\n", "c.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("c.toml") && msg.contains("line 2") && msg.contains("max"),
            "{msg}"
        );
        let err = load(
            "[providers.openai]\nbase_url = \"http://x\"\nextra_body = { model = \"gpt-5\" }\n",
            "c.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 3") && err.contains("\"model\""), "{err}");
    }

    #[test]
    fn json_errors_name_file_line_and_key() {
        let err = load(
            "{\n  \"model\": \"openai:x\",\n  \"proxies\": {\"a\": 5}\n}",
            "c.json",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("c.json line 3"), "{msg}");
        assert!(msg.contains("proxies.a"), "{msg}");
    }

    #[test]
    fn toml_syntax_error_names_its_line() {
        let msg = load("model = \"a:b\"\n\ncontext = \n", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bad.toml line 3"), "{msg}");
    }

    #[test]
    fn nested_unknown_key_is_named_with_its_path() {
        let msg = load("[providers.openai]\nbase_ur = \"x\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("base_ur"), "{msg}");
    }

    #[test]
    fn invalid_model_reference_names_its_key_and_line() {
        let msg = load("context = \"x\"\nmodel = \"open ai:gpt\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("m.toml line 2, key `model`"), "{msg}");
    }

    #[test]
    fn aliases_may_list_fallbacks_in_toml_and_json() {
        let toml = load(
            "[aliases]\nfast = \"openai:gpt-4o-mini\"\nsmart = [\"anthropic:claude-sonnet-4-5\", \"fast\"]\n",
            "a.toml",
        )
        .unwrap();
        assert_eq!(toml.aliases["fast"], "openai:gpt-4o-mini");
        assert_eq!(
            toml.aliases["smart"].models(),
            ["anthropic:claude-sonnet-4-5", "fast"]
        );
        let json = load(
            r#"{"aliases": {"smart": ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]}}"#,
            "a.json",
        )
        .unwrap();
        assert_eq!(json.aliases["smart"].models().len(), 2);
    }

    #[test]
    fn an_empty_or_malformed_fallback_list_names_its_key_and_line() {
        let empty = load("model = \"x:y\"\n[aliases]\nsmart = []\n", "e.toml")
            .unwrap_err()
            .to_string();
        assert!(
            empty.contains("e.toml line 3, key `aliases.smart`"),
            "{empty}"
        );
        let bad = load(
            "[aliases]\nsmart = [\"openai:x\", \"open ai:y\"]\n",
            "b.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("line 2, key `aliases.smart`"), "{bad}");
    }

    #[test]
    fn the_api_setting_accepts_chat_or_responses_only() {
        let c = load("[providers.openai]\napi = \"responses\"\n", "r.toml").unwrap();
        assert_eq!(c.providers["openai"].api.as_deref(), Some("responses"));
        let msg = load(
            "[providers.openai]\napi_key = \"sk-x\"\napi = \"assistants\"\n",
            "r.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("r.toml line 3, key `providers.openai.api`") && msg.contains("responses"),
            "{msg}"
        );
    }

    #[test]
    fn prices_override_the_shipped_table_and_a_bad_one_names_its_line() {
        let c = load(
            "[prices.\"openai:gpt-4o\"]\ninput = 1.0\noutput = 2.0\n",
            "p.toml",
        )
        .unwrap();
        assert_eq!(c.prices().find("openai:gpt-4o").unwrap().output, 2.0);
        assert_eq!(c.prices().find("openai:gpt-4o-mini").unwrap().input, 0.15);
        let msg = load(
            "model = \"a:b\"\n[prices.\"my:model\"]\ninput = -1.0\noutput = 2.0\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("p.toml line 3") && msg.contains("prices.my:model.input"),
            "{msg}"
        );
        let msg = load(
            "[prices.\"my:model\"]\ninput = 1.0\nouput = 2.0\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn the_store_setting_takes_three_forms_and_a_typo_names_its_line() {
        let c = load("store = \"sqlite:/tmp/x.db\"\n", "s.toml").unwrap();
        assert_eq!(c.store.as_deref(), Some("sqlite:/tmp/x.db"));
        assert!(load("store = \"none\"\n", "s.toml").is_ok());
        assert!(load("store = \"postgres://u@h/db\"\n", "s.toml").is_ok());
        let msg = load("model = \"a:b\"\nstore = \"mysql://x\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("s.toml line 2, key `store`"), "{msg}");
    }

    #[test]
    fn an_unsupported_proxy_scheme_is_an_error_naming_its_line() {
        assert!(load("proxy = \"socks5h://127.0.0.1:1080\"\n", "p.toml").is_ok());
        let msg = load(
            "model = \"a:b\"\nproxy = \"ftp://u:pw1234@h:21\"\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("p.toml line 2, key `proxy`"), "{msg}");
        assert!(!msg.contains("pw1234"), "{msg}");
        let msg = load("[proxies]\n\"openai:x\" = \"htp://h:1\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("proxies.openai:x"), "{msg}");
    }

    #[test]
    fn an_empty_proxy_means_no_proxy_and_loads() {
        let c = load("proxy = \"\"\n[proxies]\nopenai = \"\"\n", "p.toml").unwrap();
        assert_eq!(c.proxy.as_deref(), Some(crate::transport::client::NO_PROXY));
        assert_eq!(c.proxies["openai"], "");
    }

    #[test]
    fn credential_files_resolve_relative_to_the_config() {
        let dir = std::env::temp_dir().join(format!("oy3o-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cookie.json"), r#"[{"name":"_U","value":"v"}]"#).unwrap();
        let path = dir.join("c.toml");
        let c =
            Config::parse_file("[cookies]\nbing = { file = \"cookie.json\" }\n", &path).unwrap();
        assert_eq!(c.cookies["bing"].cookie("_U"), Some("v"));
        let missing = Config::parse_file("cookie = { file = \"nope.json\" }\n", &path)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("key `cookie`") && missing.contains("nope.json"),
            "{missing}"
        );
    }
}
