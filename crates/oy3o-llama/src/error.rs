//! The two error types of this crate: [`LlamaError`] for inference and [`PullError`] for getting
//! model files. Every message says what went wrong and what to do next.

use std::fmt;
use std::path::PathBuf;

/// Why a generation (or loading the model for it) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LlamaError {
    /// The model file is not there.
    #[error(
        "model file {} does not exist: pass the path of a .gguf file, or a catalog name such as `smollm2` to download one",
        path.display()
    )]
    ModelNotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read, or is not a GGUF file.
    #[error("{} is not a usable GGUF model: {reason}", path.display())]
    NotGguf {
        /// The path that was asked for.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// llama.cpp refused to load the file.
    #[error(
        "llama.cpp could not load {}: {reason}; the file may be truncated or corrupt (download it again) \
         or use an architecture this build of llama.cpp does not support",
        path.display()
    )]
    Load {
        /// The model file.
        path: PathBuf,
        /// llama.cpp's reason, as far as it tells one.
        reason: String,
    },
    /// llama.cpp itself could not start (backend or inference context).
    #[error("llama.cpp could not start: {0}")]
    Backend(String),
    /// The model's chat template failed to render the conversation.
    #[error(
        "the model's chat template could not render this conversation: {0}; check the message roles \
         (system, user, assistant) and their order"
    )]
    Template(String),
    /// A catalog model's chat template renders a different prompt than the catalog expects, so
    /// this crate would talk to it in a format it was not trained on.
    #[error(
        "the chat template of {model} renders {got:?} for one question, expected {expected:?}: \
         the file is not the one the catalog describes, or its template is one this crate renders \
         differently; use another model or report it"
    )]
    TemplateMismatch {
        /// The catalog name.
        model: String,
        /// The catalog's prompt.
        expected: String,
        /// What the file's template rendered.
        got: String,
    },
    /// The rendered conversation does not fit the context window.
    #[error(
        "the conversation is {prompt_tokens} tokens but the context holds {context_tokens}: \
         start a new conversation (or drop old messages), or use a model with a larger context"
    )]
    PromptTooLong {
        /// Tokens in the rendered prompt.
        prompt_tokens: usize,
        /// The context window size in tokens.
        context_tokens: u32,
    },
    /// llama.cpp failed while evaluating tokens.
    #[error("llama.cpp failed while evaluating the prompt or a new token: {0}")]
    Decode(String),
    /// A JSON Schema (of structured output or of a tool's arguments) cannot become a grammar.
    #[error("the JSON Schema cannot constrain a local model's output {0}")]
    Schema(String),
    /// Tools were offered to a model whose chat template cannot show them.
    #[error(
        "{model}'s chat template has no tools, so it cannot be offered any: use a model whose \
         template has them (`oy3o pull qwen2.5-0.5b`, then local:qwen2.5-0.5b), or set a \
         tools-capable `chat_template` in [providers.local]"
    )]
    NoTools {
        /// The model file or catalog name.
        model: String,
    },
    /// The inference thread could not be started or stopped unexpectedly.
    #[error("the inference thread failed: {0}; start the runtime again")]
    Thread(String),
}

/// One source that was tried while pulling a model, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFailure {
    /// The source as written in the catalog (`https://…`, `pip:package==version`, `file:/path`).
    pub source: String,
    /// Why it failed.
    pub reason: String,
}

/// Why [`ensure_model`](crate::ensure_model) could not produce a verified model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// Neither an existing file nor a catalog name.
    #[error(
        "unknown model `{name}`: it is neither an existing .gguf file nor a catalog name (known: {})",
        known.join(", ")
    )]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// The catalog names.
        known: Vec<String>,
    },
    /// A path was given, but there is no file there.
    #[error("model file {} does not exist: check the path, or use a catalog name such as `smollm2`", path.display())]
    MissingFile {
        /// The path that was given.
        path: PathBuf,
    },
    /// A source specification (catalog or `OY3O_MODEL_SOURCES`) could not be understood.
    #[error(
        "cannot understand model source `{spec}`: write `https://…`, `http://…`, `pip:package==version` or `file:/path`"
    )]
    InvalidSource {
        /// The text that was given.
        spec: String,
    },
    /// The platform has no cache directory and none was given.
    #[error(
        "this platform has no cache directory: pass one explicitly (for example with --models-dir)"
    )]
    NoCacheDir,
    /// A local file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot create", "cannot read", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Every source was tried and none gave a file with the right size and SHA-256.
    #[error("{}", AllFailed { model, file_name, sha256, failures })]
    AllSourcesFailed {
        /// The catalog name.
        model: String,
        /// The file that was wanted.
        file_name: String,
        /// Its expected SHA-256.
        sha256: String,
        /// Each source tried, in order, with its failure.
        failures: Vec<SourceFailure>,
    },
}

impl PullError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Display helper for [`PullError::AllSourcesFailed`]: one line per source, then the way out.
struct AllFailed<'a> {
    model: &'a str,
    file_name: &'a str,
    sha256: &'a str,
    failures: &'a [SourceFailure],
}

impl fmt::Display for AllFailed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "could not get model `{}` ({}) from any source:",
            self.model, self.file_name
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            writeln!(f, "  {}. {}: {}", i + 1, failure.source, failure.reason)?;
        }
        write!(
            f,
            "check the network or proxy settings and try again, or download {} yourself \
             (SHA-256 {}) and run with --model local:/path/to/{}",
            self.file_name, self.sha256, self.file_name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_too_long_names_only_fixes_the_person_has() {
        let e = LlamaError::PromptTooLong {
            prompt_tokens: 9000,
            context_tokens: 8192,
        };
        let message = e.to_string();
        assert!(message.contains("9000 tokens"), "{message}");
        assert!(message.contains("start a new conversation"), "{message}");
        // No config table accepts it: it must not be suggested.
        assert!(!message.contains("context_tokens"), "{message}");
    }
}
