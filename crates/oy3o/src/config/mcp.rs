//! MCP servers in the config: `[mcp.NAME]` sections, each a child process spoken to over stdio
//! (`command = ["prog", "arg"]`) or a streamable-HTTP endpoint (`url = "http://…/mcp"`). The
//! engine's `mcp` feature connects to them (`oy3o::mcp`); the sections parse and are checked
//! without it, so one config file serves every build.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// How long one tool call may take when `timeout_secs` is not set.
pub const DEFAULT_MCP_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers the MCP transport sets itself; a section may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// How to reach one MCP server.
#[derive(Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process started with this program and arguments, spoken to over stdin/stdout.
    Stdio(Vec<String>),
    /// A streamable-HTTP endpoint (`http://127.0.0.1:8000/mcp`).
    Http(String),
}

/// One `[mcp.NAME]` section.
///
/// ```
/// let config = oy3o::Config::parse_file(
///     "[mcp.time]\ncommand = [\"mcp-server-time\", \"--local-timezone\", \"UTC\"]\ntimeout_secs = 10\n",
///     std::path::Path::new("oy3o.toml"),
/// ).unwrap();
/// let time = &config.mcp["time"];
/// assert!(matches!(&time.transport, oy3o::config::McpTransport::Stdio(argv) if argv[0] == "mcp-server-time"));
/// assert_eq!(time.timeout, std::time::Duration::from_secs(10));
/// ```
#[derive(Clone, PartialEq)]
pub struct McpServerConfig {
    /// How to reach it.
    pub transport: McpTransport,
    /// Environment variables set for a child process (on top of ours). Values are secrets:
    /// never shown, and cut out of the child's stderr when it is quoted in an error.
    pub env: BTreeMap<String, String>,
    /// HTTP headers sent with every request to a `url` server (e.g. `Authorization`). Values
    /// are secrets like `env`'s.
    pub headers: BTreeMap<String, String>,
    /// The longest one tool call (starting the server included) may take.
    pub timeout: Duration,
}

impl McpServerConfig {
    /// A server started as a child process (`argv[0]` is the program), with the defaults.
    pub fn stdio<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self::with(McpTransport::Stdio(
            argv.into_iter().map(Into::into).collect(),
        ))
    }

    /// A streamable-HTTP server at `url`, with the defaults.
    pub fn http(url: impl Into<String>) -> Self {
        Self::with(McpTransport::Http(url.into()))
    }

    fn with(transport: McpTransport) -> Self {
        Self {
            transport,
            env: BTreeMap::new(),
            headers: BTreeMap::new(),
            timeout: DEFAULT_MCP_TIMEOUT,
        }
    }

    /// The secrets of this section (`env` and `headers` values), to cut out of quoted output.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.env
            .values()
            .chain(self.headers.values())
            .map(String::as_str)
    }
}

impl std::fmt::Debug for McpServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be keys.
        let mut s = f.debug_struct("McpServerConfig");
        match &self.transport {
            McpTransport::Stdio(argv) => s.field("command", argv),
            McpTransport::Http(url) => s.field("url", &super::redact_url(url)),
        };
        s.field("env", &self.env.keys().collect::<Vec<_>>())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl std::fmt::Debug for McpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdio(argv) => f.debug_tuple("Stdio").field(argv).finish(),
            Self::Http(url) => f
                .debug_tuple("Http")
                .field(&super::redact_url(url))
                .finish(),
        }
    }
}

/// An `[mcp.NAME]` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct McpSection {
    command: Option<Vec<String>>,
    url: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    timeout_secs: Option<f64>,
}

impl McpSection {
    /// The checked section, or what is wrong with it and the key (below `mcp.NAME`) it is at.
    pub(super) fn into_config(self, name: &str) -> Result<McpServerConfig, (&'static str, String)> {
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err((
                "",
                "a server name is 1 to 32 letters, digits, `_` or `-` (its tools are named \
                 NAME.tool)"
                    .into(),
            ));
        }
        let transport = match (self.command, self.url) {
            (Some(_), Some(_)) => {
                return Err((
                    "",
                    "give `command` (a child process over stdio) or `url` (streamable HTTP), \
                     not both"
                        .into(),
                ));
            }
            (None, None) => {
                return Err((
                    "",
                    "give `command = [\"program\", \"arg\", …]` (a child process over stdio) or \
                     `url = \"http://…/mcp\"` (streamable HTTP)"
                        .into(),
                ));
            }
            (Some(argv), None) => {
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err((
                        "command",
                        "the command is empty: name the program first, then its arguments".into(),
                    ));
                }
                McpTransport::Stdio(argv)
            }
            (None, Some(url)) => {
                let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
                if !scheme_ok || reqwest::Url::parse(&url).is_err() {
                    return Err((
                        "url",
                        format!(
                            "{:?} is not an http:// or https:// URL",
                            super::redact_url(&url)
                        ),
                    ));
                }
                McpTransport::Http(url)
            }
        };
        if matches!(transport, McpTransport::Stdio(_)) && !self.headers.is_empty() {
            return Err((
                "headers",
                "headers go to a `url` server; a `command` server takes `env`".into(),
            ));
        }
        if matches!(transport, McpTransport::Http(_)) && !self.env.is_empty() {
            return Err((
                "env",
                "env goes to a `command` server; a `url` server takes `headers`".into(),
            ));
        }
        for (header, value) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| ("headers", format!("{header:?} is not a valid header name")))?;
            if RESERVED_HEADERS.contains(&name.as_str()) {
                return Err((
                    "headers",
                    format!("{header} is set by the MCP transport itself; leave it out"),
                ));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err((
                    "headers",
                    format!("the value of {header} is not a valid header value"),
                ));
            }
        }
        let timeout = match self.timeout_secs {
            None => DEFAULT_MCP_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err((
                    "timeout_secs",
                    format!("{s} is not a positive number of seconds"),
                ));
            }
        };
        Ok(McpServerConfig {
            transport,
            env: self.env,
            headers: self.headers,
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn load(text: &str) -> crate::Result<Config> {
        Config::parse_file(text, Path::new("m.toml"))
    }

    fn error(text: &str) -> String {
        match load(text) {
            Ok(c) => panic!("loaded: {:?}", c.mcp),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn stdio_and_http_sections_load_with_their_settings() {
        let c = load(
            "model = \"a:b\"\n[mcp.time]\ncommand = [\"mcp-server-time\", \"--local-timezone\", \"UTC\"]\n\
             env = { TZ = \"UTC\" }\n[mcp.web]\nurl = \"https://example.com/mcp\"\n\
             headers = { Authorization = \"Bearer sk-secret\" }\ntimeout_secs = 2.5\n",
        )
        .unwrap();
        let time = &c.mcp["time"];
        assert_eq!(
            time.transport,
            super::McpTransport::Stdio(vec![
                "mcp-server-time".into(),
                "--local-timezone".into(),
                "UTC".into()
            ])
        );
        assert_eq!(time.env["TZ"], "UTC");
        assert_eq!(time.timeout, super::DEFAULT_MCP_TIMEOUT);
        let web = &c.mcp["web"];
        assert_eq!(
            web.transport,
            super::McpTransport::Http("https://example.com/mcp".into())
        );
        assert_eq!(web.timeout, std::time::Duration::from_millis(2500));
        assert!(!format!("{web:?}").contains("sk-secret"), "{web:?}");
    }

    #[test]
    fn a_json_config_takes_the_same_sections() {
        let c = Config::parse_file(
            r#"{"mcp": {"git": {"command": ["mcp-server-git"], "timeout_secs": 5}}}"#,
            Path::new("m.json"),
        )
        .unwrap();
        assert_eq!(c.mcp["git"].timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn both_or_neither_of_command_and_url_is_an_error_naming_the_section_line() {
        let both = error(
            "model = \"a:b\"\n\n[mcp.x]\ncommand = [\"p\"]\nurl = \"http://127.0.0.1:1/mcp\"\n",
        );
        assert!(both.contains("m.toml line 3, key `mcp.x`"), "{both}");
        assert!(both.contains("not both"), "{both}");
        let neither = error("[mcp.x]\ntimeout_secs = 3\n");
        assert!(neither.contains("line 1, key `mcp.x`"), "{neither}");
        assert!(neither.contains("command = ["), "{neither}");
    }

    #[test]
    fn an_empty_command_names_its_line() {
        let msg = error("[mcp.a]\ncommand = [\"p\"]\n[mcp.b]\ncommand = []\n");
        assert!(msg.contains("line 4, key `mcp.b.command`"), "{msg}");
        assert!(msg.contains("empty"), "{msg}");
        assert!(error("[mcp.b]\ncommand = [\" \"]\n").contains("empty"));
    }

    #[test]
    fn an_unknown_key_names_its_line_and_key() {
        let msg = error("[mcp.time]\ncommand = [\"p\"]\ncwd = \"/tmp\"\n");
        assert!(msg.contains("m.toml line 3"), "{msg}");
        assert!(msg.contains("cwd"), "{msg}");
    }

    #[test]
    fn bad_urls_headers_names_and_timeouts_are_refused() {
        for (text, says) in [
            ("[mcp.w]\nurl = \"ftp://h/mcp\"\n", "not an http"),
            (
                "[mcp.w]\nurl = \"http://h/mcp\"\nheaders = { Accept = \"x\" }\n",
                "set by the MCP transport",
            ),
            (
                "[mcp.w]\nurl = \"http://h/mcp\"\nheaders = { \"a b\" = \"x\" }\n",
                "not a valid header name",
            ),
            (
                "[mcp.w]\nurl = \"http://h/mcp\"\nenv = { A = \"x\" }\n",
                "env goes to a `command` server",
            ),
            (
                "[mcp.w]\ncommand = [\"p\"]\nheaders = { A = \"x\" }\n",
                "headers go to a `url` server",
            ),
            ("[mcp.w]\ncommand = [\"p\"]\ntimeout_secs = 0\n", "positive"),
            ("[mcp.\"a.b\"]\ncommand = [\"p\"]\n", "server name"),
        ] {
            let msg = error(text);
            assert!(msg.contains(says), "{text}: {msg}");
        }
    }
}
