//! `NativeChat`: a conversation, owned by the Python `Chat`; with a name, kept in the store
//! (issue #10) so that it resumes in another process, the terminal's `--chat NAME` included.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oy3o_store::{ChatRecord, Recorder, StoreSetting};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::convert;
use crate::runtime::runtime;
use crate::stream::Stream;

/// Whose chats a Python program sees: the local user, as in the terminal.
const LOCAL: &str = "";

/// How long the end of an answer waits for its turn to be written (the text has streamed
/// already), so that a program that exits right after still leaves it in the store.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The `store` event that ends an answer whose turn could not be written in time: the answer
/// is whole; the turn waits in memory and is written when the store answers again while the
/// program runs (the next answer's end waits for it too).
fn store_event(recorder: &Recorder, error: &str) -> crate::queue::Item {
    let message = serde_json::json!({
        "status": "failing",
        "error": error,
        "pending": recorder.pending(),
    });
    ("event", "store".to_owned(), message.to_string())
}

/// An open chat.
#[pyclass(module = "oy3opy._native")]
pub struct NativeChat {
    chat: Arc<oy3o::Chat>,
    stored: Option<Stored>,
}

/// A named chat's place in the store.
struct Stored {
    recorder: Recorder,
    chat: Mutex<(ChatRecord, i64)>,
}

/// The store in force: the config's `store`, else `OY3O_STORE`, else the CLI's SQLite file.
fn setting(config: &oy3o::Config) -> PyResult<StoreSetting> {
    let given = config.store.clone().or_else(|| {
        std::env::var("OY3O_STORE")
            .ok()
            .filter(|s| !s.trim().is_empty())
    });
    match given {
        Some(text) => StoreSetting::parse(&text)
            .map_err(|e| PyValueError::new_err(format!("[config] store: {e}"))),
        None => StoreSetting::default_sqlite()
            .map_err(|e| PyValueError::new_err(format!("[config] {e}"))),
    }
}

/// Opens a chat with `model` under `config_json`; with `name`, resumes the stored chat `name`
/// (its model unless `model` is given, its context unless one is set, and its history).
#[pyfunction]
#[pyo3(signature = (model, config_json, name=None))]
pub fn open_chat(
    py: Python<'_>,
    model: Option<String>,
    config_json: &str,
    name: Option<String>,
) -> PyResult<NativeChat> {
    let config = convert::config(config_json).map_err(convert::to_py_err)?;
    let rt = runtime()?;
    let _context = rt.enter();
    let Some(name) = name else {
        let chat = oy3o::Chat::open(model.as_deref(), &config).map_err(convert::to_py_err)?;
        return Ok(NativeChat {
            chat: Arc::new(chat),
            stored: None,
        });
    };
    let setting = setting(&config)?;
    let opened = py.detach(|| {
        rt.block_on(async {
            let Some(store) = oy3o_store::open(&setting).await? else {
                return Ok(None);
            };
            let found = match store.find_chat(LOCAL, &name).await? {
                Some(chat) => {
                    let turns = store.turns(LOCAL, &chat.id).await?;
                    Some((chat, turns))
                }
                None => None,
            };
            Ok::<_, oy3o_store::StoreError>(Some((store, found)))
        })
    });
    let opened = opened.map_err(|e| PyValueError::new_err(format!("[config] store: {e}")))?;
    let Some((store, found)) = opened else {
        // `store = "none"`: a plain chat.
        let chat = oy3o::Chat::open(model.as_deref(), &config).map_err(convert::to_py_err)?;
        return Ok(NativeChat {
            chat: Arc::new(chat),
            stored: None,
        });
    };
    let model = model.or_else(|| found.as_ref().and_then(|(c, _)| c.model.clone()));
    let chat = oy3o::Chat::open(model.as_deref(), &config).map_err(convert::to_py_err)?;
    let (record, next) = match found {
        Some((mut record, turns)) => {
            if config.context.is_none()
                && let Some(context) = record.context.as_ref().filter(|c| !c.is_empty())
            {
                chat.update(context.clone());
            }
            chat.restore(oy3o_store::history(&turns))
                .map_err(convert::to_py_err)?;
            record.model = Some(chat.model().to_owned());
            (record, turns.last().map_or(0, |t| t.seq + 1))
        }
        None => (
            ChatRecord::new(
                LOCAL,
                Some(&name),
                Some(chat.model()),
                config.context.as_deref(),
            ),
            0,
        ),
    };
    Ok(NativeChat {
        chat: Arc::new(chat),
        stored: Some(Stored {
            recorder: Recorder::new(store),
            chat: Mutex::new((record, next)),
        }),
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
        if let Some(stored) = &self.stored {
            let mut chat = stored.chat.lock().unwrap_or_else(|e| e.into_inner());
            chat.0.context = Some(context.clone()).filter(|c| !c.is_empty());
        }
        self.chat.update(context);
    }

    /// Sends a prompt; the answer streams through the returned `Stream`.
    fn send(&self, prompt: String) -> PyResult<Stream> {
        let chat = self.chat.clone();
        let recorded = self.stored.as_ref().map(|stored| {
            let mut slot = stored.chat.lock().unwrap_or_else(|e| e.into_inner());
            let seq = slot.1;
            slot.1 += 1;
            (
                stored.recorder.clone(),
                stored.recorder.begin_turn(&slot.0, seq, &prompt),
            )
        });
        Stream::start(move |queue| async move {
            let reply = chat.send(prompt);
            match recorded {
                Some((recorder, turn)) => {
                    Stream::feed_recorded(queue.clone(), reply, Some(turn)).await;
                    let written = tokio::time::timeout(FLUSH_TIMEOUT, recorder.flush()).await;
                    let failure = match written {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some(format!(
                            "the turn was not written within {}s",
                            FLUSH_TIMEOUT.as_secs()
                        )),
                    };
                    if let Some(error) = failure {
                        queue.push(store_event(&recorder, &error)).await;
                    }
                }
                None => Stream::feed_reply(queue, reply).await,
            }
        })
    }

    /// The history as `[(role, content), ...]`.
    fn history(&self) -> Vec<(String, String)> {
        self.chat
            .history()
            .into_iter()
            .map(|m| (m.role.as_str().to_owned(), m.text().into_owned()))
            .collect()
    }

    /// Closes the chat.
    fn close(&self) {
        self.chat.close();
    }
}
