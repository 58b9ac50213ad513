//! `NativeChat`: a conversation, owned by the Python `Chat`.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::convert;
use crate::runtime::runtime;
use crate::stream::Stream;

/// An open chat.
#[pyclass(module = "oy3opy._native")]
pub struct NativeChat {
    chat: Arc<oy3o::Chat>,
}

/// Opens a chat with `model` under `config_json`.
#[pyfunction]
#[pyo3(signature = (model, config_json))]
pub fn open_chat(model: Option<String>, config_json: &str) -> PyResult<NativeChat> {
    let config = convert::config(config_json).map_err(convert::to_py_err)?;
    let _context = runtime()?.enter();
    let chat = oy3o::Chat::open(model.as_deref(), &config).map_err(convert::to_py_err)?;
    Ok(NativeChat {
        chat: Arc::new(chat),
    })
}

#[pymethods]
impl NativeChat {
    /// The resolved model reference.
    #[getter]
    fn model(&self) -> String {
        self.chat.model().to_owned()
    }

    /// Sets the context.
    fn update(&self, context: String) {
        self.chat.update(context);
    }

    /// Sends a prompt; the answer streams through the returned `Stream`.
    fn send(&self, prompt: String) -> PyResult<Stream> {
        let chat = self.chat.clone();
        Stream::start(move |queue| async move {
            let reply = chat.send(prompt);
            Stream::feed_reply(queue, reply).await;
        })
    }

    /// The history as `[(role, content), ...]`.
    fn history(&self) -> Vec<(String, String)> {
        self.chat
            .history()
            .into_iter()
            .map(|m| (m.role.as_str().to_owned(), m.content))
            .collect()
    }

    /// Closes the chat.
    fn close(&self) {
        self.chat.close();
    }
}
