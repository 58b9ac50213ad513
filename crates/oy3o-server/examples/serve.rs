//! The server alone, as `oy3o serve --port PORT --config FILE` runs it, without the rest of
//! the `oy3o` command (no local model to build): the config file's models, credentials,
//! `store` and `[server]` table. It prints `listening on http://ADDR` and serves until it is
//! stopped.
//!
//! ```sh
//! cargo run -p oy3o-server --example serve -- --port 0 --config oy3o.toml
//! ```

use std::path::PathBuf;

use oy3o_server::{Server, Settings};
use oy3o_store::StoreSetting;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut config) = (8443, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "serve" => {}
            "--port" => port = args.next().ok_or("--port needs a value")?.parse()?,
            "--config" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            other => {
                return Err(format!("unknown argument {other}; use --port N --config FILE").into());
            }
        }
    }
    let path = config.ok_or("--config FILE is required")?;
    let engine = oy3o::Config::load(&path)?;
    let mut settings = Settings::from_config_file(&path)?;
    settings.port = port;
    settings.store = StoreSetting::choose(None, None, engine.store.as_deref())?;
    let listening = Server::new(engine, settings).bind().await?;
    println!("listening on http://{}", listening.local_addr());
    listening.run_until(std::future::pending::<()>()).await?;
    Ok(())
}
