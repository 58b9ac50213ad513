//! Opening a connection to one MCP server with the official SDK (`rmcp` 3.11): a child process
//! over stdio, or streamable HTTP; then the `initialize` handshake and the list of its tools.
//!
//! API as in rmcp 3.11.0's own docs and source: `ClientConfig::new(..).with_protocol_version`,
//! `ServiceExt::serve`, `TokioChildProcess::builder(..).stderr(Stdio::piped()).spawn()`,
//! `StreamableHttpClientTransport::from_config`, `Peer::list_all_tools`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion, Tool};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{Peer, ServiceError, ServiceExt};

use super::stderr::{self, StderrTail};
use crate::config::{McpServerConfig, McpTransport, redact_url};
use crate::error::{Error, ErrorCode, Result};

/// The least time a server is given to start and list its tools (a child started through
/// `npx` or `uvx` may fetch packages first); a longer `timeout_secs` gives it that.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a failed child may take to finish writing stderr before the error is reported.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// A live connection to one server, and what it said when it started.
pub(crate) struct Connection {
    service: RunningService<RoleClient, ClientConfig>,
    /// Its tools, listed once when it started.
    pub(crate) tools: Vec<Tool>,
    /// A child's stderr (none for HTTP).
    stderr: Option<Arc<StderrTail>>,
    /// The task that reads it, awaited once the child has gone.
    drained: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Connection {
    /// The handle requests go through.
    pub(crate) fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }

    /// Whether the server has gone (the child exited, or the connection closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.peer().is_transport_closed()
    }

    /// The child's last stderr lines, to end an error message (empty for HTTP). A child that
    /// has gone is given a moment to finish writing them.
    pub(crate) async fn stderr_quote(&self) -> String {
        let drained = self.drained.lock().ok().and_then(|mut d| d.take());
        if let Some(drained) = drained {
            let _ = tokio::time::timeout(STDERR_GRACE, drained).await;
        }
        self.stderr.as_ref().map(|t| t.quote()).unwrap_or_default()
    }

    /// Closes it: a child's stdin is closed, then it is asked to stop, then killed (the MCP
    /// stdio shutdown); an HTTP session is ended. Dropping it does the same in the background.
    pub(crate) async fn close(mut self) {
        let _ = self
            .service
            .close_with_timeout(Duration::from_secs(5))
            .await;
    }
}

/// Who we are in `initialize`; the newest protocol version with the handshake, which servers
/// met today speak (a newer server answers with its own choice).
/// `initialize` over `transport`, then every page of `tools/list`; an error says why, in the
/// deepest cause's words.
async fn handshake<T, E, A>(
    transport: T,
) -> std::result::Result<(RunningService<RoleClient, ClientConfig>, Vec<Tool>), String>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    // The service outlives the request that started it, and rmcp's tasks keep the span current
    // at their start: without a subscriber here they keep none, not the first request's span
    // (which would then never end, nor be exported; see crate::trace).
    let service = tracing::instrument::WithSubscriber::with_subscriber(
        identity().serve(transport),
        tracing::subscriber::NoSubscriber::default(),
    )
    .await
    .map_err(|e| start_error(&e))?;
    let tools = service
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| service_error(&e))?;
    Ok((service, tools))
}

fn identity() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("oy3o", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::V_2025_11_25)
}

/// How long server `config` is given to start.
pub(crate) fn start_timeout(config: &McpServerConfig) -> Duration {
    config.timeout.max(START_TIMEOUT)
}

/// Starts server `name` and lists its tools. Errors name the server and say what to check.
pub(crate) async fn connect(name: &str, config: &McpServerConfig) -> Result<Connection> {
    match &config.transport {
        McpTransport::Stdio(argv) => connect_child(name, argv, config).await,
        McpTransport::Http(url) => connect_http(name, url, config).await,
    }
}

async fn connect_child(
    name: &str,
    argv: &[String],
    config: &McpServerConfig,
) -> Result<Connection> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::config(format!(
            "MCP server `{name}`: its command is empty; set `command` in [mcp.{name}]"
        )));
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args).envs(&config.env).kill_on_drop(true);
    let mut wrapped = CommandWrap::from(command);
    // Its own process group, so that stopping it also stops what it started (`npx`, `uvx`,
    // `sh -c`), and a Ctrl+C meant for us does not reach it first.
    wrapped.wrap(ProcessGroup::leader());
    let (transport, child_stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::config(format!(
                "MCP server `{name}`: cannot start {program:?}: {e}; check `command` in \
                 [mcp.{name}] (is the program installed and on PATH?)"
            ))
        })?;
    let tail = StderrTail::new(config.secrets());
    let mut drained = child_stderr.map(|s| stderr::drain(s, tail.clone()));
    let started = handshake(transport);
    match tokio::time::timeout(start_timeout(config), started).await {
        Ok(Ok((service, tools))) => Ok(Connection {
            service,
            tools,
            stderr: Some(tail),
            drained: std::sync::Mutex::new(drained),
        }),
        failed => {
            // The transport is gone by now, so the child is being stopped: let its last
            // words reach the tail.
            if let Some(drained) = drained.take() {
                let _ = tokio::time::timeout(STDERR_GRACE, drained).await;
            }
            let what = match failed {
                Ok(Err(e)) => format!("did not start: {e}."),
                _ => format!(
                    "did not answer `initialize` and `tools/list` within {} s.",
                    start_timeout(config).as_secs_f32()
                ),
            };
            Err(Error::provider(format!(
                "MCP server `{name}` ({program}) {what}{} Check `command` and `env` in \
                 [mcp.{name}]; run the command yourself to see more.",
                tail.quote()
            )))
        }
    }
}

async fn connect_http(name: &str, url: &str, config: &McpServerConfig) -> Result<Connection> {
    let mut headers = HashMap::new();
    for (header, value) in &config.headers {
        // Checked when the config was read; a hand-built config gets the same message.
        let parsed = (
            reqwest::header::HeaderName::from_bytes(header.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        );
        let (Ok(header), Ok(value)) = parsed else {
            return Err(Error::config(format!(
                "MCP server `{name}`: the header {header:?} in [mcp.{name}] is not valid"
            )));
        };
        headers.insert(header, value);
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers),
    );
    let started = handshake(transport);
    let shown = redact_url(url);
    match tokio::time::timeout(start_timeout(config), started).await {
        Ok(Ok((service, tools))) => Ok(Connection {
            service,
            tools,
            stderr: None,
            drained: std::sync::Mutex::new(None),
        }),
        Ok(Err(e)) => Err(Error::new(
            ErrorCode::Network,
            format!(
                "MCP server `{name}` at {shown} did not answer: {}. Check that it runs and \
                 the `url` in [mcp.{name}].",
                redact(&e, config)
            ),
        )),
        Err(_) => Err(Error::new(
            ErrorCode::Timeout,
            format!(
                "MCP server `{name}` at {shown} did not answer within {} s. Check that it \
                 runs and the `url` in [mcp.{name}].",
                start_timeout(config).as_secs_f32()
            ),
        )),
    }
}

/// Why starting failed: for a transport error its deepest cause (`Connection refused`), not
/// the SDK's type names around it.
fn start_error(e: &ClientInitializeError) -> String {
    match e {
        ClientInitializeError::TransportError { error, .. } => deepest(error.error.as_ref()),
        other => other.to_string(),
    }
}

/// Why a request failed, as [`start_error`] says it.
pub(crate) fn service_error(e: &ServiceError) -> String {
    match e {
        ServiceError::TransportSend(error) => deepest(error.error.as_ref()),
        other => other.to_string(),
    }
}

/// The message of the innermost error of `e`'s chain (through the HTTP client's error, which
/// the SDK wraps without naming it as the source).
fn deepest(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    loop {
        if let Some(source) = e.source() {
            e = source;
        } else if let Some(StreamableHttpError::Client(client)) =
            e.downcast_ref::<StreamableHttpError<reqwest::Error>>()
        {
            e = client;
        } else {
            return e.to_string();
        }
    }
}

/// `text` with the config's secrets cut out.
fn redact(text: &str, config: &McpServerConfig) -> String {
    config
        .secrets()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |t, s| t.replace(s, "[redacted]"))
}
