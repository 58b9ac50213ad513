//! The request controls of a one-shot prompt: `--reasoning`, `--schema`, `--search`, `--stop`,
//! `--extra-body`, turned into the engine's [`Options`] (checked by the engine before anything
//! is sent; a bad value here is a usage error naming the flag).

use std::path::PathBuf;
use std::sync::Arc;

use oy3o::Options;
use oy3o::config::Reasoning;
use oy3o::structured::OutputSchema;

use crate::Failure;

/// Request controls for this answer; they override the config's `[options]`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ControlArgs {
    /// How hard a reasoning model thinks: low, medium or high.
    #[arg(long, value_name = "LEVEL")]
    pub reasoning: Option<String>,
    /// A JSON Schema file the answer must follow: the answer is JSON, validated (asked for
    /// once more if it does not follow), printed as the model wrote it.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Let the model search the web (where its provider has a search tool).
    #[arg(long)]
    pub search: bool,
    /// Stop the answer where this text would appear (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
    /// JSON fields merged into the provider's request body (an escape hatch), e.g.
    /// '{"service_tier": "flex"}'.
    #[arg(long, value_name = "JSON")]
    pub extra_body: Option<String>,
}

impl ControlArgs {
    /// Whether an answer must follow a schema (it is then printed as written, not rendered).
    pub fn structured(&self) -> bool {
        self.schema.is_some()
    }

    /// The options these flags ask for.
    pub fn options(&self) -> Result<Options, Failure> {
        let reasoning = match &self.reasoning {
            Some(level) => Some(
                level
                    .parse::<Reasoning>()
                    .map_err(|e| Failure::Usage(format!("--reasoning: {}", e.message())))?,
            ),
            None => None,
        };
        let schema = match &self.schema {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::Usage(format!("--schema: cannot read {}: {e}", path.display()))
                })?;
                let origin = path.display().to_string();
                let schema = OutputSchema::parse(&text, &origin)
                    .map_err(|e| Failure::Usage(format!("--schema: {}", e.message())))?;
                Some(Arc::new(schema))
            }
            None => None,
        };
        let extra_body = match &self.extra_body {
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                Ok(_) => {
                    return Err(Failure::Usage(
                        "--extra-body: give a JSON object, e.g. '{\"service_tier\": \"flex\"}'"
                            .into(),
                    ));
                }
                Err(e) => return Err(Failure::Usage(format!("--extra-body is not JSON: {e}"))),
            },
            None => None,
        };
        Ok(Options {
            reasoning,
            schema,
            search: self.search.then_some(true),
            stop: (!self.stop.is_empty()).then(|| self.stop.clone()),
            extra_body,
            ..Options::default()
        })
    }
}
