//! `oy3o config path` and `oy3o config init`: where the config lives, and a commented example
//! to start from.

use std::path::{Path, PathBuf};

use oy3o::Error;

/// The example `config init` writes: every line a comment, so it loads as the defaults.
pub const EXAMPLE: &str = r#"# oy3o config. Uncomment what you need; every key is optional.
# Docs: the "Config file" section of the README.

# The default model: provider:model, a bare provider, or an alias below.
# model = "openai:gpt-4o-mini"
# context = "Be concise."
# proxy = "socks5h://127.0.0.1:1080"
# store = "sqlite:/path/to/oy3o.db"   # or "postgres://USER@HOST/DB", or "none" (default: the data dir)

# [aliases]
# fast = "openai:gpt-4o-mini"
# smart = ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]   # fallbacks, tried in order

# [contexts]                    # by model reference or provider name
# "openai:gpt-4o-mini" = "You are terse."

# [cookies]                     # credentials: a key, { file = "cookie.json" } or { env = "VAR" }
# openai = { env = "OPENAI_API_KEY" }

# [options]
# temperature = 0.2
# max_tokens = 512
# reasoning = "medium"          # low, medium or high
# stop = ["END"]
# search = true                 # the provider's web search tool

# [providers.openai]
# base_url = "http://127.0.0.1:8080/v1"   # any OpenAI-compatible server
"#;

/// The config file in use: `--config` / `OY3O_CONFIG` when given, else the platform's
/// config dir (`~/.config/oy3o/config.toml` on Linux).
pub fn path(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    dirs::config_dir()
        .map(|d| d.join("oy3o").join("config.toml"))
        .ok_or_else(|| {
            Error::config(
                "no config directory on this system: pass --config PATH or set OY3O_CONFIG",
            )
        })
}

/// Writes [`EXAMPLE`] to `path`; refuses to overwrite a file that exists.
pub fn init(path: &Path) -> Result<(), crate::Failure> {
    if path.exists() {
        // Asked for what it never does (overwrite): a usage mistake, exit 2.
        return Err(crate::Failure::Usage(format!(
            "{} exists already; edit it, or remove it first to start over",
            path.display()
        )));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(std::fs::write(path, EXAMPLE)
        .map_err(|e| Error::config(format!("cannot write {}: {e}", path.display())))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_loads_as_the_default_config() {
        let config = oy3o::Config::parse_file(EXAMPLE, Path::new("config.toml"));
        assert!(config.is_ok(), "{:?}", config.err());
    }
}
