//! `serve`: runs the oy3o WebSocket/HTTP server on the extension's runtime for
//! `oy3opy.ai.websocket.listen`. Nothing here calls into Python.

use std::path::Path;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

use crate::convert;
use crate::runtime::runtime;

/// A running server; `stop()` (or dropping it) shuts it down.
#[pyclass(module = "oy3opy._native")]
pub struct ServerHandle {
    address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

#[pymethods]
impl ServerHandle {
    /// `host:port` actually bound.
    #[getter]
    fn address(&self) -> String {
        self.address.clone()
    }

    /// Shuts the server down (WebSocket connections get a going-away close).
    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `host:port` (0 picks a free port) and serves in the background. `server_json` is the
/// config's `[server]` table as JSON (`{"server": {...}}`), may be empty.
#[pyfunction]
#[pyo3(signature = (host, port, layers, server_json, token=None))]
pub fn serve(
    py: Python<'_>,
    host: String,
    port: u16,
    layers: Vec<String>,
    server_json: &str,
    token: Option<String>,
) -> PyResult<ServerHandle> {
    let config = convert::config(&layers).map_err(convert::to_py_err)?;
    let mut settings = if server_json.trim().is_empty() {
        oy3o_server::Settings::default()
    } else {
        oy3o_server::Settings::parse_file(server_json, Path::new("<oy3opy listen>.json"))
            .map_err(|e| PyValueError::new_err(e.to_string()))?
    };
    settings.host = host;
    settings.port = port;
    if let Some(token) = token {
        settings.token = oy3o_server::Token::new(token);
    }
    let rt = runtime()?;
    let bound = py.detach(|| rt.block_on(oy3o_server::Server::new(config, settings).bind()));
    let listening = bound.map_err(|e| PyOSError::new_err(e.to_string()))?;
    let address = listening.local_addr().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    rt.spawn(async move {
        let _ = listening
            .run_until(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(ServerHandle {
        address,
        stop: Some(stop),
    })
}
