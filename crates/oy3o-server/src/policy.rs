//! What a client may ask the server to do on its behalf: which proxies may carry the server's
//! own credentials, which models it may name (`models_allowed`), which `local:` files it may
//! load (`model_dirs`), and the ranges of the numbers it sends. The faces call these before
//! anything is opened or sent; each refusal names the setting that decides it.

use std::path::{Component, Path, PathBuf};

use oy3o::Options;
use oy3o::transport::client::check_proxy;

use crate::settings::Settings;
use crate::state::AppState;

mod counters;
pub(crate) mod quota;

/// Why a request is refused: the error code sent back and the message.
#[derive(Debug, PartialEq)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
    /// Seconds to wait before trying again (`rate_limited`, `budget_exceeded`): HTTP's
    /// `Retry-After`, a WebSocket error frame's `retry_after`.
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// This refusal, to be tried again after `seconds`.
    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// One entry of `client_proxies`: a host, optionally with a port (from a URL or `host:port`).
#[derive(Debug, PartialEq)]
pub(crate) struct ProxyEntry {
    host: String,
    port: Option<u16>,
}

impl ProxyEntry {
    /// Reads `http://host:port`, `host:port` or `host`; an unsupported URL is an error.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.contains("://") {
            let addr = check_proxy(text).map_err(|e| e.message().to_owned())?;
            return Ok(Self {
                host: addr.host,
                port: Some(addr.port),
            });
        }
        let text = text.trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                let port = p
                    .parse()
                    .map_err(|_| format!("{text:?}: the port must be a number"))?;
                (h, Some(port))
            }
            _ => (text, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{text:?} names no host"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn admits(&self, host: &str, port: u16) -> bool {
        self.host == host && self.port.is_none_or(|p| p == port)
    }
}

/// Checks a client's `proxy`: a supported URL (else `bad_request`), and either one the
/// operator listed in `client_proxies`, or a request that brings its own credential (whose
/// proxy then carries only that credential: see `ClientOverrides::apply`). The server's own
/// keys never go through a proxy a client picked.
pub(crate) fn check_client_proxy(
    settings: &Settings,
    proxy: &str,
    own_credential: bool,
) -> Result<(), Refusal> {
    check_proxy(proxy).map_err(|e| Refusal::new("bad_request", e.message()))?;
    if trusted_proxy(settings, proxy) || own_credential {
        return Ok(());
    }
    Err(Refusal::new(
        "forbidden",
        "a proxy from a client carries only the client's own credential: send a key or cookie \
         with it, or ask the operator to list this proxy in client_proxies; the server's \
         credentials never go through a proxy a client picked",
    ))
}

/// True when `proxy` is listed in `client_proxies`.
pub(crate) fn trusted_proxy(settings: &Settings, proxy: &str) -> bool {
    let Ok(addr) = check_proxy(proxy) else {
        return false;
    };
    settings
        .client_proxies
        .iter()
        .any(|entry| ProxyEntry::parse(entry).is_ok_and(|e| e.admits(&addr.host, addr.port)))
}

/// Checks a model name a client gave: a `local:` file only inside `model_dirs` (judged from
/// the name alone, so the answer never says whether a file exists), and a name
/// `models_allowed` admits. `None` (the server's default) is always allowed.
pub(crate) fn check_model(state: &AppState, model: Option<&str>) -> Result<(), Refusal> {
    let Some(model) = model.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(());
    };
    let settings = &state.settings;
    let is_alias = state.config.aliases.contains_key(model);
    if !is_alias && let Some(path) = local_path(model) {
        let inside = lexically_inside(&path, &settings.model_dirs);
        if !inside {
            return Err(Refusal::new(
                "forbidden",
                format!(
                    "model {model:?}: clients may load local model files only from the folders \
                     listed in model_dirs{}",
                    if settings.model_dirs.is_empty() {
                        " (none are), or use a catalog model such as local:smollm2"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let Some(globs) = &settings.models_allowed else {
        return Ok(());
    };
    if globs.iter().any(|g| glob_match(g, model)) {
        return Ok(());
    }
    // "openai" or an alias stands for models the list may name in full.
    let resolved = state.targets(Some(model)).ok().is_some_and(|targets| {
        !targets.is_empty()
            && targets.iter().all(|t| {
                let name = t.reference.to_string();
                globs.iter().any(|g| glob_match(g, &name))
            })
    });
    if resolved {
        Ok(())
    } else {
        Err(Refusal::new(
            "forbidden",
            format!("model {model:?} is not among the models this server allows (models_allowed)"),
        ))
    }
}

/// The file a `local:` model name stands for, when it is not a catalog model.
fn local_path(model: &str) -> Option<PathBuf> {
    let parsed = oy3o::ModelRef::parse(model).ok()?;
    // By name, not through the registry: a build without the local provider refuses the same.
    if !parsed.provider.eq_ignore_ascii_case("local") {
        return None;
    }
    let name = parsed.model?;
    if oy3o::providers::is_local_catalog_model(&name) {
        return None;
    }
    Some(PathBuf::from(name))
}

/// True when `path` is absolute, has no `..`, and lies under one of `dirs`: decided from the
/// text alone (no file system call, so no existence oracle).
fn lexically_inside(path: &Path, dirs: &[PathBuf]) -> bool {
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return false;
    }
    dirs.iter().any(|dir| {
        dir.is_absolute()
            && !dir.components().any(|c| matches!(c, Component::ParentDir))
            && path.starts_with(dir)
            && path != dir
    })
}

/// `*` (any run of characters, `:` and `/` included) and `?` (one character) globs: the
/// engine's, the one the price table matches models with.
pub(crate) use oy3o::price::glob_match;

/// Whether `name` (a server `time` or a tool `time.now`) is among `granted`: named itself, or
/// a tool of a granted server.
pub(crate) fn tool_granted(granted: &[String], name: &str) -> bool {
    granted.iter().any(|g| {
        name == g
            || (!g.contains('.')
                && name.len() > g.len()
                && name.starts_with(g.as_str())
                && name.as_bytes()[g.len()] == b'.')
    })
}

/// The tools the client whose chats belong to `owner` ([`crate::auth::owner`]) may name: its
/// token's own list, else `server.tools`.
pub(crate) fn granted_tools<'a>(settings: &'a Settings, owner: &str) -> &'a [String] {
    settings
        .tokens
        .iter()
        .filter(|t| t.tools.is_some())
        .find(|t| crate::auth::owner_of(t.expose()) == owner)
        .and_then(|t| t.tools.as_deref())
        .unwrap_or(&settings.tools)
}

/// Checks the tools a client names against what it was granted; at most
/// [`MAX_CLIENT_TOOLS`] names. The refusal names the setting that decides.
pub(crate) fn check_tools(granted: &[String], asked: &[String]) -> Result<(), Refusal> {
    if asked.len() > MAX_CLIENT_TOOLS {
        return Err(Refusal::new(
            "bad_request",
            format!("at most {MAX_CLIENT_TOOLS} tools a request"),
        ));
    }
    match asked.iter().find(|name| !tool_granted(granted, name)) {
        None => Ok(()),
        Some(name) if granted.is_empty() => Err(Refusal::new(
            "forbidden",
            format!(
                "tool `{name}` is not offered: this server offers clients no tools (its \
                 operator lists them in server.tools)"
            ),
        )),
        Some(name) => Err(Refusal::new(
            "forbidden",
            format!(
                "tool `{name}` is not offered to this client; it may name: {}",
                granted.join(", ")
            ),
        )),
    }
}

/// The most tool names one request may carry.
pub(crate) const MAX_CLIENT_TOOLS: usize = 64;

/// The most tool steps a client may ask of one turn (each step is an upstream request on the
/// server's key).
pub(crate) const MAX_CLIENT_TOOL_STEPS: u32 = 32;

/// Checks the numbers of a client's options: a temperature in 0–2, a `top_p` in 0–1 (finite:
/// `1e39` reads as infinity and would go upstream as `null`), at most
/// [`MAX_CLIENT_TOOL_STEPS`] tool steps.
pub(crate) fn check_options(options: &Options, field: &str) -> Result<(), Refusal> {
    check_number(field, "temperature", options.temperature, 2.0)?;
    check_number(field, "top_p", options.top_p, 1.0)?;
    // The request controls: bounded here, before any work (the engine checks them against
    // the model again). A client's extra_body only adds JSON fields to the upstream body: the
    // server's credentials, base URL and headers are never in it.
    if let Some(stop) = &options.stop {
        oy3o::controls::check_stop(stop).map_err(|e| {
            Refusal::new(
                "bad_request",
                format!("field `{field}stop`: {}", e.message()),
            )
        })?;
    }
    if let Some(extra) = &options.extra_body {
        oy3o::controls::check_extra_body(extra, &format!("field `{field}extra_body`"))
            .map_err(|e| Refusal::new("bad_request", e.message()))?;
    }
    match options.max_tool_steps {
        Some(n) if n > MAX_CLIENT_TOOL_STEPS => Err(Refusal::new(
            "bad_request",
            format!("field `{field}max_tool_steps`: at most {MAX_CLIENT_TOOL_STEPS} steps a turn"),
        )),
        _ => Ok(()),
    }
}

/// `value` must be finite and in `0..=max`.
pub(crate) fn check_number(
    field: &str,
    name: &str,
    value: Option<f32>,
    max: f32,
) -> Result<(), Refusal> {
    match value {
        Some(v) if !(v.is_finite() && (0.0..=max).contains(&v)) => Err(Refusal::new(
            "bad_request",
            format!("field `{field}{name}`: must be a number from 0 to {max}"),
        )),
        _ => Ok(()),
    }
}

/// Whether the attachments a client sends (`field`: `attachments`, `messages[2].content`)
/// are within this server's count ([`crate::settings::Limits::max_attachments`]) and, when
/// given by URL, whether the server accepts URLs ([`Settings::allow_attachment_urls`]).
pub(crate) fn check_attachments(
    settings: &Settings,
    inputs: &[oy3o::attachment::Input],
    field: &str,
) -> Result<(), Refusal> {
    let max = settings.limits.max_attachments;
    if inputs.len() > max {
        return Err(Refusal::new(
            "limit",
            format!(
                "field `{field}`: {} attachments, more than this server takes in one request \
                 (max_attachments = {max})",
                inputs.len()
            ),
        ));
    }
    if !settings.allow_attachment_urls
        && let Some(i) = inputs
            .iter()
            .position(|a| matches!(a.origin, oy3o::attachment::Origin::Url(_)))
    {
        return Err(Refusal::new(
            "forbidden",
            format!(
                "field `{field}[{i}]`: this server does not take attachments by URL \
                 (allow_attachment_urls = false); send the bytes inline (base64 or a data: URL)"
            ),
        ));
    }
    Ok(())
}

/// Loads a request's attachments with the engine's loader and the config's size limits
/// (`[attachments]`); an error names the attachment as `field[i]`.
pub(crate) fn load_attachments(
    state: &AppState,
    inputs: &[oy3o::attachment::Input],
    field: &str,
) -> oy3o::Result<Vec<oy3o::Part>> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    let limits = state.config.attachments.unwrap_or_default();
    oy3o::attachment::load_all(inputs, &limits, |i| format!("field `{field}[{i}]`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("openai:*", "openai:gpt-4o"));
        assert!(glob_match("*mini", "openai:gpt-4o-mini"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("openai:*", "anthropic:x"));
        assert!(!glob_match("openai", "openai:gpt-4o"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn local_files_are_judged_by_their_path_alone() {
        let dirs = [PathBuf::from("/srv/models")];
        assert!(lexically_inside(Path::new("/srv/models/a.gguf"), &dirs));
        assert!(!lexically_inside(
            Path::new("/srv/models/../../etc/shadow"),
            &dirs
        ));
        assert!(!lexically_inside(Path::new("/etc/shadow"), &dirs));
        assert!(!lexically_inside(Path::new("models/a.gguf"), &dirs));
        assert!(!lexically_inside(Path::new("/srv/models"), &dirs));
        assert!(!lexically_inside(Path::new("/srv/modelsx/a.gguf"), &dirs));
        assert_eq!(local_path("openai:gpt-4o"), None);
        assert_eq!(local_path("local:/etc/shadow"), Some("/etc/shadow".into()));
        assert_eq!(local_path("local:Cargo.toml"), Some("Cargo.toml".into()));
    }

    #[test]
    fn listed_proxies_match_by_host_and_port() {
        let settings = Settings {
            client_proxies: vec!["http://Proxy.example:3128".into(), "10.0.0.1".into()],
            ..Settings::default()
        };
        assert!(trusted_proxy(&settings, "http://u:p@proxy.example:3128"));
        assert!(!trusted_proxy(&settings, "http://proxy.example:3129"));
        assert!(trusted_proxy(&settings, "socks5h://10.0.0.1:1080"));
        assert!(!trusted_proxy(&settings, "http://127.0.0.3:1"));
        let refused = check_client_proxy(&settings, "http://127.0.0.3:1", false).unwrap_err();
        assert_eq!(refused.code, "forbidden");
        assert!(refused.message.contains("client_proxies"));
        assert!(check_client_proxy(&settings, "http://127.0.0.3:1", true).is_ok());
        let bad = check_client_proxy(&settings, "ftp://127.0.0.3:1", true).unwrap_err();
        assert_eq!(bad.code, "bad_request");
    }

    #[test]
    fn numbers_out_of_range_are_refused_by_name() {
        let options = Options {
            temperature: Some(f32::INFINITY),
            ..Options::default()
        };
        let e = check_options(&options, "options.").unwrap_err();
        assert!(e.message.contains("`options.temperature`"), "{}", e.message);
        let steps = Options {
            max_tool_steps: Some(MAX_CLIENT_TOOL_STEPS + 1),
            ..Options::default()
        };
        let e = check_options(&steps, "options.").unwrap_err();
        assert!(e.message.contains("max_tool_steps"), "{}", e.message);
        assert!(check_options(&Options::default(), "").is_ok());
    }

    #[test]
    fn a_granted_server_covers_its_tools_and_nothing_else() {
        let granted = vec!["time".to_string(), "git.git_status".to_string()];
        for ok in ["time", "time.now", "git.git_status"] {
            assert!(tool_granted(&granted, ok), "{ok}");
        }
        for refused in ["timex", "timex.now", "git", "git.git_log", "tim", ""] {
            assert!(!tool_granted(&granted, refused), "{refused}");
        }
        let e = check_tools(&granted, &["git.git_log".into()]).unwrap_err();
        assert_eq!(e.code, "forbidden");
        assert!(e.message.contains("time, git.git_status"), "{}", e.message);
        let e = check_tools(&[], &["time".into()]).unwrap_err();
        assert!(e.message.contains("server.tools"), "{}", e.message);
        let many: Vec<String> = (0..=MAX_CLIENT_TOOLS).map(|_| "time".into()).collect();
        assert_eq!(
            check_tools(&granted, &many).unwrap_err().code,
            "bad_request"
        );
    }

    #[test]
    fn a_token_with_tools_narrows_the_servers_list() {
        let settings = Settings::parse_file(
            "[server]\ntools = [\"time\", \"git\"]\ntokens = [\"t-a\", { token = \"t-b\", tools = [\"time\"] }]\n",
            Path::new("/etc/c.toml"),
        )
        .unwrap();
        let owner = crate::auth::owner_of;
        assert_eq!(granted_tools(&settings, &owner("t-a")), ["time", "git"]);
        assert_eq!(granted_tools(&settings, &owner("t-b")), ["time"]);
        assert_eq!(granted_tools(&settings, ""), ["time", "git"]);
        let beyond = Settings::parse_file(
            "[server]\ntools = [\"time\"]\ntokens = [{ token = \"t\", tools = [\"git\"] }]\n",
            Path::new("/etc/c.toml"),
        )
        .unwrap_err();
        assert!(beyond.to_string().contains("server.tokens[0]"), "{beyond}");
        assert!(format!("{:?}", settings.tokens).contains("<redacted>"));
        assert!(!format!("{:?}", settings.tokens).contains("t-b"));
    }
}
