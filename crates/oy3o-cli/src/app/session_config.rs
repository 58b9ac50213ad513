//! The part of the config a saved session keeps, so that reopening it elsewhere answers the same
//! way: the default model and context, the per-model contexts and the generation options. Never
//! credentials, proxies (their URLs may hold passwords) or provider sections (their headers may
//! hold keys).

use std::collections::BTreeMap;

use oy3o::{Config, Options};
use serde::{Deserialize, Serialize};

/// The config of a saved session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// The default model reference or alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The default context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Contexts by model reference or provider name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contexts: BTreeMap<String, String>,
    /// Generation options.
    #[serde(default)]
    pub options: Options,
}

impl SessionConfig {
    /// What a session saved now keeps of `config`.
    pub fn of(config: &Config) -> Self {
        Self {
            model: config.model.clone(),
            context: config.context.clone(),
            contexts: config.contexts.clone(),
            options: config.options.clone(),
        }
    }

    /// Fills what `config` leaves unset from this saved one: the config in use wins.
    pub fn fill(&self, config: &mut Config) {
        if config.model.is_none() {
            config.model = self.model.clone();
        }
        if config.context.is_none() {
            config.context = self.context.clone();
        }
        for (key, context) in &self.contexts {
            config
                .contexts
                .entry(key.clone())
                .or_insert_with(|| context.clone());
        }
        config.options = self.options.overlay(&config.options);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_fills_only_what_the_config_in_use_leaves_unset() {
        let mut saved_from = Config {
            model: Some("openai:saved".into()),
            context: Some("Saved.".into()),
            proxy: Some("http://user:secret@proxy:8080".into()),
            cookie: Some(oy3o::Credential::Key("sk-secret-123".into())),
            ..Config::default()
        };
        saved_from.options.temperature = Some(0.5);
        saved_from.options.max_tokens = Some(100);
        let saved = SessionConfig::of(&saved_from);
        let text = serde_json::to_string(&saved).unwrap();
        assert!(!text.contains("secret"), "{text}");

        let mut config = Config {
            model: Some("openai:mine".into()),
            ..Config::default()
        };
        config.options.max_tokens = Some(7);
        let back: SessionConfig = serde_json::from_str(&text).unwrap();
        back.fill(&mut config);
        assert_eq!(config.model.as_deref(), Some("openai:mine"));
        assert_eq!(config.context.as_deref(), Some("Saved."));
        assert_eq!(config.options.temperature, Some(0.5));
        assert_eq!(config.options.max_tokens, Some(7));
        assert!(config.proxy.is_none() && config.cookie.is_none());
    }
}
