//! The one error type of the engine: a machine-readable [`ErrorCode`] plus a message that says
//! what to do next.

use std::fmt;

/// What kind of failure an [`Error`] is. Faces pass the snake_case name on (WebSocket `code`,
/// Python exception attribute, CLI exit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A credential is missing, wrong or expired.
    Auth,
    /// The provider asked us to slow down and the retries ran out.
    RateLimit,
    /// No answer (or no next chunk) arrived in time.
    Timeout,
    /// The provider could not be reached, or the connection broke mid-answer.
    Network,
    /// The request was refused as malformed (unknown parameter, context too long, ...).
    BadRequest,
    /// The provider failed on its side (5xx, overload, an in-stream error).
    Provider,
    /// The caller stopped the request.
    Cancelled,
    /// The configuration (a file, an option, a proxy, the store setting) is invalid.
    Config,
    /// A model name names no model (an unknown provider or alias, a name that cannot be read,
    /// a model its provider does not have), or a chat or file does not exist.
    NotFound,
}

impl ErrorCode {
    /// The snake_case name used on every wire (`"rate_limit"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::RateLimit => "rate_limit",
            Self::Timeout => "timeout",
            Self::Network => "network",
            Self::BadRequest => "bad_request",
            Self::Provider => "provider",
            Self::Cancelled => "cancelled",
            Self::Config => "config",
            Self::NotFound => "not_found",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine error: a [`ErrorCode`] and a message written for the person who must act on it.
///
/// ```
/// use oy3o::{Error, ErrorCode};
/// let e = Error::new(ErrorCode::Auth, "no API key for openai: set OPENAI_API_KEY");
/// assert_eq!(e.code(), ErrorCode::Auth);
/// assert!(e.to_string().contains("OPENAI_API_KEY"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// An error of the given kind with a message that says what to do next.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A [`ErrorCode::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    /// A [`ErrorCode::Network`] error.
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Network, message)
    }

    /// A [`ErrorCode::Provider`] error.
    pub fn provider(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Provider, message)
    }

    /// The kind of failure.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
