//! The provider registry. Adding a provider: a folder here plus one line in `PROVIDERS`.

pub mod anthropic;
pub mod gemini;
#[cfg(feature = "local")]
pub mod local;
pub mod ollama;
pub mod openai;

use crate::provider::Provider;

/// Every provider this build knows, by name.
static PROVIDERS: &[&dyn Provider] = &[
    &openai::OpenAi,
    &anthropic::Anthropic,
    &gemini::Gemini,
    &ollama::Ollama,
    #[cfg(feature = "local")]
    &local::Local,
];

/// The provider named `name` (lower case), if known.
pub fn find(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.iter().copied().find(|p| p.info().name == name)
}

/// The names of every known provider.
pub fn names() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.info().name).collect()
}
