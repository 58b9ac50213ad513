//! # oy3o-server
//!
//! The oy3o engine behind one port, for programs and browsers:
//!
//! - **WebSocket** (at `/`, also `/ws`): the original `oy3opy` protocol, JSON text frames.
//!   In: `{id?, ref?, model?, cookie?, key?, proxy?, context?, prompt?, options?, cancel?,
//!   close?, chain?, history?}`. Out: `message`, `event`, `error` and `signal` frames carrying the
//!   request's `id` and `ref`; many chats per connection, their replies interleaved.
//! - **HTTP**: OpenAI-compatible `POST /v1/chat/completions` (whole or SSE) and
//!   `GET /v1/models`; `GET /health`; `GET /metrics` (Prometheus text); `GET /` the web chat
//!   page.
//! - **Safety**: loopback by default; any other address needs a token (bearer header or
//!   `?token=`); browser origins are checked; bad input gets an error, never a crash or a
//!   dropped connection; secrets never appear in frames or logs.
//!
//! - **Store** (optional, `store` in [`Settings`]): WebSocket chats are kept in SQLite or
//!   PostgreSQL, scoped to the token that created them, and resumed by `id` on any instance
//!   sharing the database; writes leave the streaming path.
//!
//! What it is not: a TLS terminator (put a reverse proxy in front for HTTPS).
//!
//! ```no_run
//! # async fn demo() -> oy3o_server::Result<()> {
//! let config = oy3o::Config::default();
//! let settings = oy3o_server::Settings { port: 0, ..Default::default() };
//! let server = oy3o_server::Server::new(config, settings).bind().await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod auth;
mod client;
mod error;
mod http;
mod keys;
mod labelled;
mod listen;
mod metrics;
mod otlp;
mod policy;
mod settings;
mod spans;
mod state;
mod store;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use auth::check_bind;
pub use error::{Error, Result};
pub use settings::{DEFAULT_PORT, Limits, Settings, Token};

use state::AppState;

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads one WebSocket text frame as the server does: parsed with the default bound on
    /// `id`/`ref`, and peeked at as an oversized frame is.
    pub fn request(text: &str) {
        let max = crate::Limits::default().max_id_bytes;
        let _ = crate::ws::protocol::parse_limited(text, max);
        let _ = crate::ws::protocol::peek(text, max);
    }
}

/// Entry points for the policy benchmark in `benches/policy.rs` (feature `bench`); not an API.
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench {
    use std::sync::Arc;

    use oy3o_store::{KeyRecord, Store};

    /// A key's checks as a request goes through them: models, budget (spend cached), rpm, tpm
    /// and concurrency, then the settling of its usage.
    pub struct Policy {
        quotas: crate::policy::quota::Quotas,
        key: Arc<KeyRecord>,
        store: Option<Arc<dyn Store>>,
        models: Vec<String>,
    }

    impl Policy {
        /// Counters in Redis at `redis`, else in this process.
        pub fn new(
            redis: Option<&str>,
            key: KeyRecord,
            store: Option<Arc<dyn Store>>,
        ) -> Result<Self, String> {
            Ok(Self {
                quotas: crate::policy::quota::Quotas::new(
                    redis,
                    oy3o::price::Prices::shipped().clone(),
                )?,
                key: Arc::new(key),
                store,
                models: vec!["openai:gpt-4o-mini".into()],
            })
        }

        /// Admits one request and settles it with a small usage (the settling's own work runs
        /// in a spawned task).
        pub async fn request(&self) -> Result<(), String> {
            let charge = self
                .quotas
                .admit(&self.key, &self.models, self.store.as_ref())
                .await
                .map_err(|r| r.message)?;
            charge.settle(Some(&oy3o::Usage {
                input_tokens: 10,
                output_tokens: 2,
                ..Default::default()
            }));
            Ok(())
        }
    }
}

/// How long a stopping server waits for its last store writes.
const SHUTDOWN_FLUSH: std::time::Duration = std::time::Duration::from_secs(3);

/// A server to be bound: the engine config plus the server settings.
pub struct Server {
    config: oy3o::Config,
    settings: Settings,
}

impl Server {
    /// A server answering with `config`'s models and credentials.
    pub fn new(config: oy3o::Config, settings: Settings) -> Self {
        Self { config, settings }
    }

    /// Resolves the host, refuses a non-loopback address without a token, loads the named
    /// chains and binds the port. Nothing is served until [`Listening::run_until`].
    pub async fn bind(self) -> Result<Listening> {
        let host = self
            .settings
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, self.settings.port))
            .await
            .map_err(|e| Error::Resolve {
                host: self.settings.host.clone(),
                message: e.to_string(),
            })?
            .collect();
        let Some(&addr) = addrs.first() else {
            return Err(Error::Resolve {
                host: self.settings.host.clone(),
                message: "no address".into(),
            });
        };
        for a in &addrs {
            check_bind(*a, self.settings.has_token())?;
        }
        let mut settings = self.settings;
        let loopback = addrs.iter().all(|a| a.ip().is_loopback());
        settings.allow_client_proxy = Some(settings.allow_client_proxy.unwrap_or(loopback));
        let exporting = otlp::install(settings.otlp.as_deref())?;
        let store = store::Stored::open(settings.store.as_ref(), self.config.prices()).await;
        let state = AppState::new(self.config, settings, store)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener.local_addr()?;
        Ok(Listening {
            listener,
            local,
            state,
            exporting,
        })
    }
}

/// A bound server, ready to run.
pub struct Listening {
    listener: TcpListener,
    local: SocketAddr,
    state: Arc<AppState>,
    /// The trace exporter, when one is configured.
    exporting: Option<otlp::Exporting>,
}

impl Listening {
    /// The address actually bound (the port is known here when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` resolves; then WebSocket connections are closed (code 1001),
    /// running HTTP answers finish, the store's pending writes are flushed (3 s at most), and
    /// it returns.
    pub async fn run_until<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let state = self.state.clone();
        let stop = state.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
        let limits = state.settings.limits.clone();
        let app = http::router(self.state);
        listen::serve(self.listener, app, &limits, state.shutdown.clone()).await;
        // The last turns (those the shutdown cancelled included) reach the store before the
        // process ends; a database that does not answer costs at most this wait.
        if let Some(open) = state.store.open_store()
            && tokio::time::timeout(SHUTDOWN_FLUSH, open.recorder.flush())
                .await
                .is_err()
        {
            tracing::warn!("store: the last turns were not all written before shutdown");
        }
        if let Some(exporting) = self.exporting {
            // The batch processor's thread blocks while it sends the last spans.
            let _ = tokio::task::spawn_blocking(move || exporting.shutdown()).await;
        }
        Ok(())
    }

    /// Serves until the process ends.
    pub async fn run(self) -> Result<()> {
        self.run_until(std::future::pending()).await
    }
}

/// Binds and serves until `shutdown` resolves: [`Server::bind`] then
/// [`Listening::run_until`], for callers that do not need the bound address.
pub async fn serve<F>(config: oy3o::Config, settings: Settings, shutdown: F) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    Server::new(config, settings)
        .bind()
        .await?
        .run_until(shutdown)
        .await
}
