//! One configured MCP server: connected on first use and kept; started again on the next use
//! after it died. Its calls give the text a model reads, every failure an error text.

use std::sync::Arc;

use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, Tool};
use serde_json::Value;

use super::connect::{Connection, connect, service_error};
use super::content::result_text;
use crate::config::McpServerConfig;
use crate::error::Result;

/// One server of the registry.
pub(crate) struct Server {
    pub(crate) name: String,
    pub(crate) config: McpServerConfig,
    live: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl Server {
    pub(crate) fn new(name: String, config: McpServerConfig) -> Self {
        Self {
            name,
            config,
            live: tokio::sync::Mutex::new(None),
        }
    }

    /// The live connection, started (again) if there is none. Callers that come while it
    /// starts wait for that start rather than starting their own.
    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut live = self.live.lock().await;
        if let Some(connection) = live.as_ref()
            && !connection.is_closed()
        {
            return Ok(connection.clone());
        }
        // A dead connection is dropped here, which stops what is left of its child.
        *live = None;
        let connection = Arc::new(connect(&self.name, &self.config).await?);
        *live = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets `connection` if it is still the live one, so the next use starts the server.
    async fn forget(&self, connection: &Arc<Connection>) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, connection)) {
            *live = None;
        }
    }

    /// Its tools (listed when it started), starting it if needed.
    pub(crate) async fn tools(&self) -> Result<Vec<Tool>> {
        Ok(self.connection().await?.tools.clone())
    }

    /// Calls its tool `tool` with `arguments` (a JSON object), starting the server if needed
    /// (bounded by its start time), then within the server's `timeout_secs`.
    pub(crate) async fn call(
        &self,
        tool: &str,
        arguments: Value,
    ) -> std::result::Result<String, String> {
        let arguments = match arguments {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => return Err(format!("the arguments must be a JSON object, not {other}")),
        };
        let connection = self
            .connection()
            .await
            .map_err(|e| e.message().to_owned())?;
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let timeout = self.config.timeout;
        // Dropping the call when time is up tells the server it was cancelled.
        let answer = match tokio::time::timeout(timeout, connection.peer().call_tool(params)).await
        {
            Ok(answer) => answer,
            Err(_) => {
                return Err(format!(
                    "the MCP server `{}` did not answer the call to `{tool}` within {} s (its \
                     `timeout_secs`); the call was cancelled",
                    self.name,
                    timeout.as_secs_f32()
                ));
            }
        };
        match answer {
            Ok(result) => {
                let json = serde_json::to_value(&result).map_err(|e| {
                    format!(
                        "the MCP server `{}` sent a result that cannot be read: {e}",
                        self.name
                    )
                })?;
                result_text(&json)
            }
            // A JSON-RPC error: the server is fine, the call was not (an unknown tool, bad
            // arguments).
            Err(ServiceError::McpError(e)) => Err(format!(
                "the MCP server `{}` refused the call to `{tool}`: {}",
                self.name, e.message
            )),
            Err(e) => {
                let gone = connection.is_closed()
                    || matches!(
                        e,
                        ServiceError::TransportClosed | ServiceError::TransportSend(_)
                    );
                if !gone {
                    return Err(format!(
                        "the call to `{tool}` on the MCP server `{}` failed: {}",
                        self.name,
                        service_error(&e)
                    ));
                }
                self.forget(&connection).await;
                Err(format!(
                    "the MCP server `{}` stopped during the call to `{tool}` ({}); it is \
                     started again on its next use.{}",
                    self.name,
                    service_error(&e),
                    connection.stderr_quote().await
                ))
            }
        }
    }

    /// Closes the live connection, if any (the child is stopped).
    pub(crate) async fn close(&self) {
        let connection = self.live.lock().await.take();
        if let Some(connection) = connection.and_then(|c| Arc::try_unwrap(c).ok()) {
            connection.close().await;
        }
    }
}
