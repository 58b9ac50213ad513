//! `NativeChat`: a conversation, owned by the Python `Chat`, opened through the engine's one
//! conversation path ([`oy3o::Conversations`]). With a name it is resumed from the store and
//! each turn is recorded there (the terminal's `--chat NAME` continues it, and the other way
//! round); the engine orders, numbers and records the turns.

use std::sync::atomic::{AtomicBool, Ordering};

use oy3o::{Conversation, Opening};
use pyo3::prelude::*;

use crate::attach;
use crate::conversations;
use crate::convert;
use crate::mcp;
use crate::runtime::runtime;
use crate::stream::Stream;

/// Whose chats a Python program sees: the local user, as in the terminal.
const LOCAL: &str = "";

/// An open chat. Two `Chat` objects opened on one name share one conversation; closing one
/// closes that object only.
#[pyclass(module = "oy3opy._native")]
pub struct NativeChat {
    conversation: Conversation,
    /// The MCP servers of the config the chat was opened under (shared, started on first use).
    mcp: oy3o::mcp::McpTools,
    /// The config's attachment size limits.
    limits: oy3o::attachment::Limits,
    stored: bool,
    closed: AtomicBool,
}

/// Opens a chat with `model` under the config `layers` (global first); with `name`, resumes
/// the stored chat `name` (its model unless `model` is given, its context unless `context` is,
/// its history and provider handle) or creates it.
#[pyfunction]
#[pyo3(signature = (model, layers, name=None, context=None))]
pub fn open_chat(
    py: Python<'_>,
    model: Option<String>,
    layers: Vec<String>,
    name: Option<String>,
    context: Option<String>,
) -> PyResult<NativeChat> {
    let config = convert::config(&layers).map_err(convert::to_py_err)?;
    let rt = runtime()?;
    let _entered = rt.enter();
    let opening = Opening::one_shot(LOCAL)
        .model(model.as_deref())
        .context(context.as_deref());
    let Some(name) = name else {
        let conversation = conversations::unstored()
            .one_shot(&opening, &config)
            .map_err(convert::to_py_err)?;
        return Ok(NativeChat::new(conversation, &config, false));
    };
    let setting = conversations::store_setting(&config).map_err(convert::to_py_err)?;
    let chats = conversations::stored(&setting);
    let stored = chats.store().is_some();
    let opening = Opening {
        name: Some(&name),
        ..opening
    };
    let opened = py.detach(|| rt.block_on(chats.open(opening, &config)));
    match opened {
        Ok(conversation) => Ok(NativeChat::new(conversation, &config, stored)),
        Err(e) => {
            if stored {
                conversations::forget(&setting);
            }
            Err(convert::to_py_err(e))
        }
    }
}

impl NativeChat {
    fn new(conversation: Conversation, config: &oy3o::Config, stored: bool) -> Self {
        Self {
            conversation,
            mcp: mcp::registry(config),
            limits: config.attachments.unwrap_or_default(),
            stored,
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(convert::to_py_err(oy3o::Error::config(
                "this chat is closed; open a new Chat to go on",
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl NativeChat {
    /// The resolved model reference.
    #[getter]
    fn model(&self) -> String {
        self.conversation.model()
    }

    /// Whether the chat is kept in a store.
    #[getter]
    fn stored(&self) -> bool {
        self.stored
    }

    /// Sets the context.
    fn update(&self, context: String) -> PyResult<()> {
        self.check_open()?;
        self.conversation.update(context);
        Ok(())
    }

    /// Checks that `names` pick MCP tools of the chat's config (starting their servers); an
    /// unknown one is raised.
    fn check_mcp_tools(&self, py: Python<'_>, names: Vec<String>) -> PyResult<()> {
        mcp::resolve(py, &self.mcp, &names).map(drop)
    }

    /// Sends a prompt; the answer streams through the returned `Stream`. The turn takes its
    /// place in the conversation now, before the stream is first read. `tools`: the Python
    /// functions' definitions as JSON; the engine runs the tool loop and the stream's reader
    /// runs the functions. `mcp_tools`: names of MCP servers or tools of the chat's config,
    /// run by the engine (an unknown one is raised before anything is sent). `attachments`:
    /// `(kind, value, mime, name)` tuples ([`attach::message`]), loaded before anything is sent.
    /// `controls`: the request controls as JSON ([`crate::controls::options`]).
    #[pyo3(signature = (prompt, tools=None, mcp_tools=Vec::new(), attachments=Vec::new(), controls=None))]
    fn send(
        &self,
        py: Python<'_>,
        prompt: String,
        tools: Option<String>,
        mcp_tools: Vec<String>,
        attachments: Vec<attach::Raw<'_>>,
        controls: Option<String>,
    ) -> PyResult<Stream> {
        self.check_open()?;
        let controls =
            crate::controls::options(controls.as_deref()).map_err(crate::convert::to_py_err)?;
        let prompt = attach::message(prompt, attachments, &self.limits)?;
        let engine_tools = mcp::resolve(py, &self.mcp, &mcp_tools)?;
        let rt = runtime()?;
        let _entered = rt.enter();
        Stream::reply(tools.as_deref(), engine_tools, controls, |options| {
            self.conversation.send(prompt, options)
        })
    }

    /// The history (turns answered completely) as `[(role, content), ...]`.
    fn history(&self) -> Vec<(String, String)> {
        self.conversation
            .history()
            .into_iter()
            .map(|m| (m.role.as_str().to_owned(), m.text().into_owned()))
            .collect()
    }

    /// Closes this chat object; a chat kept by name stays open for the others sharing it.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::Relaxed) && self.conversation.record().name.is_none() {
            self.conversation.close();
        }
    }
}
