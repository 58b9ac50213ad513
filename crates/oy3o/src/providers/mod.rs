//! The provider registry. Adding a provider: a folder here plus one line in `PROVIDERS`.

pub mod anthropic;
pub mod bing;
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
    &bing::Bing,
    #[cfg(feature = "local")]
    &local::Local,
];

/// Other names of providers: `copilot` is what the service behind `bing` is called now.
static ALIASES: &[(&str, &str)] = &[("copilot", "bing")];

/// The provider named `name` (lower case), or one of its other names, if known.
pub fn find(name: &str) -> Option<&'static dyn Provider> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, real)| *real);
    PROVIDERS.iter().copied().find(|p| p.info().name == name)
}

/// True when `model` (the part after `local:`) names a model of the built-in catalog, pulled
/// into the cache, rather than a file path. Faces that take model names from others use it to
/// keep such paths inside the folders they allow. Always false in a build without the local
/// provider (where no `local:` model runs at all).
pub fn is_local_catalog_model(model: &str) -> bool {
    #[cfg(feature = "local")]
    {
        local::is_catalog_model(model)
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = model;
        false
    }
}

/// Unloads the local models (ending the answers they generate) and waits up to `within` for
/// their threads: faces call it before the process exits, since a model still decoding while
/// the process tears llama.cpp down crashes it. True when no model thread is left running;
/// always true in a build without the local provider.
pub fn unload_local_models(within: std::time::Duration) -> bool {
    #[cfg(feature = "local")]
    {
        local::unload(within)
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = within;
        true
    }
}

/// The names of every known provider.
pub fn names() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.info().name).collect()
}
