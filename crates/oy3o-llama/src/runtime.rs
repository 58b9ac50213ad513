//! [`Runtime`]: the one entry point for inference. It keeps up to `max_loaded_models` model
//! threads (least recently used first out) and routes each request to its model's queue.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::backend;
use crate::catalog::{CatalogModel, TEMPLATE_CHECK_QUESTION};
use crate::chat::{ChatMessage, ChatRequest, GenerateOptions, Piece, RenderedPrompt};
use crate::error::LlamaError;
use crate::model_thread::{Job, ModelThread, Settings};

/// Pieces buffered between the model thread and a slow reader before the model waits.
const PIECE_BUFFER: usize = 256;

/// How a [`Runtime`] uses the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// CPU threads per model; `None` means every core this process may use. (llama.cpp's own
    /// default of 4 is several times slower on a 2-core machine.)
    pub threads: Option<usize>,
    /// Models kept loaded at once; loading another unloads the least recently used.
    pub max_loaded_models: usize,
    /// Context window in tokens (capped at what the model was trained for).
    pub context_tokens: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            threads: None,
            max_loaded_models: 1,
            context_tokens: 8192,
        }
    }
}

/// In-process inference on GGUF models. Cheap to clone; make one per process and share it.
///
/// Each loaded model has its own OS thread (never a tokio worker): requests to a model are
/// served one at a time in arrival order, and the KV cache of the last conversation is kept,
/// so the next turn of a chat reads only its new messages.
///
/// ```no_run
/// # async fn demo() -> Result<(), oy3o_llama::LlamaError> {
/// use oy3o_llama::{ChatMessage, GenerateOptions, Piece, Runtime, RuntimeOptions};
/// let runtime = Runtime::new(RuntimeOptions::default())?;
/// let mut pieces = runtime.generate(
///     "model.gguf",
///     vec![ChatMessage::user("What is 1+1?")],
///     GenerateOptions::default(),
/// );
/// while let Some(piece) = pieces.recv().await {
///     match piece? {
///         Piece::Text(text) => print!("{text}"),
///         Piece::ToolCall(call) => println!("\n{}({})", call.name, call.arguments),
///         Piece::Done(stats) => println!("\n{} tokens", stats.completion_tokens),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    max_loaded: usize,
    /// Loaded models, least recently used first.
    models: Mutex<Vec<(PathBuf, ModelThread)>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("threads", &self.inner.settings.threads)
            .field("context_tokens", &self.inner.settings.context_tokens)
            .field("max_loaded_models", &self.inner.max_loaded)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts the runtime. Models are loaded lazily, on their first request.
    ///
    /// # Errors
    /// [`LlamaError::Backend`] when llama.cpp cannot be initialised.
    pub fn new(options: RuntimeOptions) -> Result<Self, LlamaError> {
        backend::backend()?;
        let threads = options.threads.filter(|&n| n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(Self {
            inner: Arc::new(Inner {
                settings: Settings {
                    threads: i32::try_from(threads).unwrap_or(i32::MAX),
                    context_tokens: options.context_tokens.max(16),
                },
                max_loaded: options.max_loaded_models.max(1),
                models: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The CPU threads each model uses.
    pub fn threads(&self) -> usize {
        usize::try_from(self.inner.settings.threads).unwrap_or(1)
    }

    /// Whether the model at `model` is loaded (or loading), so its next answer starts without
    /// the load.
    pub fn is_loaded(&self, model: impl AsRef<Path>) -> bool {
        let Ok(key) = std::fs::canonicalize(model.as_ref()) else {
            return false;
        };
        self.inner
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(path, _)| *path == key)
    }

    /// Answers the conversation `messages` with the model at `model`, streaming the answer.
    ///
    /// The stream yields [`Piece::Text`] pieces and ends with [`Piece::Done`], or with one error.
    /// Dropping the receiver cancels the generation before its next token. Works from async and
    /// plain code alike (`recv().await` or `blocking_recv()`).
    pub fn generate(
        &self,
        model: impl AsRef<Path>,
        messages: Vec<ChatMessage>,
        options: GenerateOptions,
    ) -> mpsc::Receiver<Result<Piece, LlamaError>> {
        self.chat(model, ChatRequest::new(messages), options)
    }

    /// Like [`generate`](Self::generate), for a whole [`ChatRequest`]: tools shown through the
    /// chat template (their calls come as [`Piece::ToolCall`]s, the answer then ends with
    /// [`Finish::ToolCalls`](crate::Finish::ToolCalls)), a template of its own, a grammar.
    /// Tools offered to a template without them fail with [`LlamaError::NoTools`]; a grammar
    /// llama.cpp cannot parse with [`LlamaError::Schema`].
    pub fn chat(
        &self,
        model: impl AsRef<Path>,
        request: ChatRequest,
        options: GenerateOptions,
    ) -> mpsc::Receiver<Result<Piece, LlamaError>> {
        let (reply, pieces) = mpsc::channel(PIECE_BUFFER);
        self.dispatch(
            model.as_ref(),
            Job::Generate {
                request: Box::new(request),
                options,
                reply,
            },
        );
        pieces
    }

    /// Renders `messages` with the model's chat template and tokenizes the result, as
    /// [`generate`](Self::generate) would, without generating. Loads the model if needed.
    ///
    /// # Errors
    /// Loading or template errors, as for `generate`.
    pub async fn render(
        &self,
        model: impl AsRef<Path>,
        messages: Vec<ChatMessage>,
    ) -> Result<RenderedPrompt, LlamaError> {
        self.render_request(model, ChatRequest::new(messages)).await
    }

    /// Renders and tokenizes a whole [`ChatRequest`] (tools, its own template) as
    /// [`chat`](Self::chat) would, without generating.
    ///
    /// # Errors
    /// As [`render`](Self::render), and [`LlamaError::NoTools`].
    pub async fn render_request(
        &self,
        model: impl AsRef<Path>,
        request: ChatRequest,
    ) -> Result<RenderedPrompt, LlamaError> {
        let (reply, rendered) = oneshot::channel();
        self.dispatch(
            model.as_ref(),
            Job::Render {
                request: Box::new(request),
                reply,
            },
        );
        rendered
            .await
            .unwrap_or_else(|_| Err(LlamaError::Thread("the model thread stopped".into())))
    }

    /// Checks that the chat template in `model`'s file renders `entry`'s
    /// [`expected_prompt`](CatalogModel::expected_prompt) for one question (loads the model).
    ///
    /// # Errors
    /// [`LlamaError::TemplateMismatch`] when it renders something else; loading or template
    /// errors as for [`render`](Self::render).
    pub async fn check_template(
        &self,
        model: impl AsRef<Path>,
        entry: &CatalogModel,
    ) -> Result<(), LlamaError> {
        let question = vec![ChatMessage::user(TEMPLATE_CHECK_QUESTION)];
        let rendered = self.render(model, question).await?;
        if rendered.text == entry.expected_prompt {
            Ok(())
        } else {
            Err(LlamaError::TemplateMismatch {
                model: entry.name.to_owned(),
                expected: entry.expected_prompt.to_owned(),
                got: rendered.text,
            })
        }
    }

    /// Unloads every model, ending the work in progress: a generation stops before its next
    /// token (its stream ends without [`Piece::Done`]), queued requests are dropped, and each
    /// model thread frees its model and exits. Waits up to `within` for the threads; true when
    /// all of them have ended. A later request loads its model again.
    ///
    /// Call it before the process exits while an answer may still be generated: llama.cpp's
    /// static data is destroyed at exit, and a thread still decoding then would crash the
    /// process.
    pub fn stop(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let threads: Vec<ModelThread> = self
            .inner
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .map(|(_, thread)| thread)
            .collect();
        // Every thread is stopped, even after one that did not end in time.
        let mut all_ended = true;
        for thread in threads {
            all_ended &= thread.stop(deadline);
        }
        all_ended
    }

    /// Queues `job` on its model's thread, starting (and evicting) threads as needed.
    fn dispatch(&self, model: &Path, job: Job) {
        let key = match std::fs::canonicalize(model) {
            Ok(key) => key,
            Err(_) => {
                return job.fail(LlamaError::ModelNotFound {
                    path: model.to_path_buf(),
                });
            }
        };
        let mut models = self
            .inner
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut job = job;
        if let Some(i) = models.iter().position(|(path, _)| *path == key) {
            let entry = models.remove(i);
            match entry.1.send(job) {
                Ok(()) => return models.push(entry),
                // The thread died; start a new one below.
                Err(returned) => job = returned,
            }
        }
        let evicted = if models.len() >= self.inner.max_loaded {
            Some(models.remove(0).1)
        } else {
            None
        };
        match ModelThread::spawn(key.clone(), self.inner.settings, evicted) {
            Ok(thread) => match thread.send(job) {
                Ok(()) => models.push((key, thread)),
                Err(job) => job.fail(LlamaError::Thread(
                    "the model thread stopped at once".into(),
                )),
            },
            Err(e) => job.fail(e),
        }
    }
}
