//! `oy3o serve`: the WebSocket + HTTP server (crate `oy3o-server`) on one port, with the
//! config's models and credentials. Settings come from the config file's `[server]` table,
//! then the flags. It prints the address it listens on and serves until Ctrl+C or SIGTERM.

use std::io::Write as _;
use std::path::Path;

use oy3o::{Config, Error, ErrorCode};
use oy3o_server::{Server, Settings, Token};

/// The flags of `oy3o serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to bind; anything but loopback needs a token [default: 127.0.0.1, or the
    /// config's `[server] host`].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port; 0 picks a free one [default: 8443, or the config's `[server] port`].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// The token clients must send (`Authorization: Bearer T` or `?token=T`).
    #[arg(
        long,
        env = "OY3O_SERVER_TOKEN",
        hide_env_values = true,
        value_name = "T"
    )]
    pub token: Option<String>,
}

/// Binds, prints `listening on http://ADDR`, and serves until a shutdown signal. Chats are kept
/// in `store` (the same setting as every command: `--store`, `OY3O_STORE`, the config's `store`,
/// else SQLite in the data dir).
pub async fn run(
    args: &ServeArgs,
    config_path: Option<&Path>,
    config: Config,
    store: oy3o_store::StoreSetting,
) -> Result<(), Error> {
    let mut settings = settings_from(config_path)?;
    settings.store = Some(store);
    if let Some(host) = &args.host {
        settings.host = host.clone();
    }
    if let Some(port) = args.port {
        settings.port = port;
    }
    if let Some(token) = &args.token {
        settings.token = Token::new(token.clone());
    }
    let listening = Server::new(config, settings)
        .bind()
        .await
        .map_err(server_error)?;
    let addr = listening.local_addr();
    let mut stdout = std::io::stdout();
    // Scripts and tests wait for this line to know the port.
    let _ = writeln!(
        stdout,
        "listening on http://{addr} (WebSocket ws://{addr}/, OpenAI API http://{addr}/v1)"
    );
    let _ = stdout.flush();
    listening
        .run_until(shutdown())
        .await
        .map_err(server_error)?;
    eprintln!("oy3o: server stopped");
    Ok(())
}

/// The `[server]` table of the config file in use (given, or the default one if present).
fn settings_from(given: Option<&Path>) -> Result<Settings, Error> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => match crate::config_file::path(None) {
            Ok(path) if path.is_file() => path,
            _ => return Ok(Settings::default()),
        },
    };
    Settings::from_config_file(&path).map_err(server_error)
}

fn server_error(e: oy3o_server::Error) -> Error {
    // A port in use (or an OS refusal) is the network's condition, not a setting's.
    let code = match e {
        oy3o_server::Error::Io(_) | oy3o_server::Error::Bind { .. } => ErrorCode::Network,
        _ => ErrorCode::Config,
    };
    Error::new(code, e.to_string())
}

/// Resolves on Ctrl+C or, on Unix, SIGTERM.
async fn shutdown() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
