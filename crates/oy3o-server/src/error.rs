//! The server's error type: what went wrong while configuring, binding or running it.

use std::net::SocketAddr;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are invalid (a `[server]` table, a chain file, a flag).
    #[error("{0}")]
    Config(String),
    /// A non-loopback address was asked for without a token.
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could use your \
         models and keys; set OY3O_SERVER_TOKEN (or token_env in [server]; --token works too but \
         shows in the process list), or bind 127.0.0.1"
    )]
    TokenRequired {
        /// The address that was refused.
        addr: SocketAddr,
    },
    /// The host name did not resolve to an address.
    #[error("cannot resolve host {host:?}: {message}")]
    Resolve {
        /// The host as given.
        host: String,
        /// Why.
        message: String,
    },
    /// The socket could not be bound (in use, no permission).
    #[error("cannot listen on {addr}: {source}; choose another --port or stop what uses it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A [`Error::Config`] error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
