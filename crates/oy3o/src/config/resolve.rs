//! From a model name to everything needed to open a session: the [`Target`].

use super::{Config, Options, ProviderSettings};
use crate::credential::Credential;
use crate::error::{Error, ErrorCode, Result};
use crate::listener::Listeners;
use crate::model_ref::ModelRef;
use crate::provider::{KeyPolicy, Provider};
use crate::providers;

/// The model used when neither the call nor the config names one: the embedded local model.
pub const DEFAULT_MODEL: &str = "local:smollm2";

/// A model resolved against a config: the provider, the model, and every setting that applies.
#[derive(Clone)]
pub struct Target {
    /// The provider that serves the model.
    pub provider: &'static dyn Provider,
    /// The full reference (`provider:model`), after alias expansion and provider defaults.
    pub reference: ModelRef,
    /// The model name inside the provider.
    pub model: String,
    /// The API base URL (config, then the provider's env var, then its default).
    pub base_url: Option<String>,
    /// The credential, if any was found.
    pub credential: Option<Credential>,
    /// Where a credential is looked for, for messages (`OPENAI_API_KEY`).
    pub key_env: Option<String>,
    /// Proxy URL.
    pub proxy: Option<String>,
    /// The default context for this model.
    pub context: Option<String>,
    /// Global plus per-model listeners.
    pub listeners: Listeners,
    /// The provider's section with env and defaults applied.
    pub settings: ProviderSettings,
    /// Generation options.
    pub options: Options,
    /// Size limits of attachments.
    pub attachments: crate::attachment::Limits,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("reference", &self.reference.to_string())
            .field("base_url", &self.base_url)
            .field("credential", &self.credential)
            .field("proxy", &self.proxy.as_deref().map(redact_url))
            .field("context", &self.context)
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

/// Hides the password of a `scheme://user:pass@host` URL.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}<redacted>@{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

impl Config {
    /// Resolves a model name (a reference, an alias, or `None` for the default) into a
    /// [`Target`].
    ///
    /// ```
    /// use oy3o::Config;
    /// let mut config = Config::default();
    /// config.aliases.insert("fast".into(), "openai:gpt-4o-mini".into());
    /// config.contexts.insert("openai".into(), "Be brief.".into());
    /// config.cookies.insert("openai".into(), oy3o::Credential::parse("sk-x"));
    /// let target = config.resolve(Some("fast")).unwrap();
    /// assert_eq!(target.reference.to_string(), "openai:gpt-4o-mini");
    /// assert_eq!(target.context.as_deref(), Some("Be brief."));
    /// assert!(config.resolve(Some("nosuch:model")).is_err());
    /// ```
    ///
    /// For an alias with fallbacks this is its first model; see [`Config::resolve_all`].
    pub fn resolve(&self, model: Option<&str>) -> Result<Target> {
        let asked = self.asked(model);
        let models = self.expand_alias(&asked)?;
        self.resolve_entry(&asked, &models[0])
    }

    /// Resolves a model name into every model it stands for, in the order they are tried: one
    /// target for a model reference, the whole list (aliases inside it expanded) for an alias
    /// with fallbacks. Every entry must resolve, so a broken fallback is found at once rather
    /// than when it is needed.
    ///
    /// ```
    /// use oy3o::{Config, Credential};
    /// let mut config = Config::default();
    /// config.aliases.insert("smart".into(), vec!["anthropic:claude-sonnet-4-5", "openai:gpt-4o"].into());
    /// config.cookies.insert("anthropic".into(), Credential::parse("sk-ant-x"));
    /// config.cookies.insert("openai".into(), Credential::parse("sk-x"));
    /// let targets = config.resolve_all(Some("smart")).unwrap();
    /// let names: Vec<String> = targets.iter().map(|t| t.reference.to_string()).collect();
    /// assert_eq!(names, ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]);
    /// assert_eq!(config.resolve(Some("smart")).unwrap().reference.to_string(), names[0]);
    /// ```
    pub fn resolve_all(&self, model: Option<&str>) -> Result<Vec<Target>> {
        let asked = self.asked(model);
        let models = self.expand_alias(&asked)?;
        models
            .iter()
            .map(|reference| self.resolve_entry(&asked, reference))
            .collect()
    }

    /// The names per-model settings (contexts, cookies, proxies, listeners) are looked up
    /// under for `model`, most specific first: the name as asked (after the config's default
    /// and `OY3O_MODEL`), the full reference and the provider of the model it resolves to (an
    /// alias's first). Only the name as asked when it does not resolve. A face that keeps its
    /// own listeners (Python) looks them up under these names, as the engine does.
    ///
    /// ```
    /// let mut config = oy3o::Config::default();
    /// config.aliases.insert("fast".into(), "openai:gpt-4o-mini".into());
    /// config.cookies.insert("openai".into(), oy3o::Credential::parse("sk-x"));
    /// assert_eq!(config.lookup_keys(Some("fast")), ["fast", "openai:gpt-4o-mini", "openai"]);
    /// assert_eq!(config.lookup_keys(Some("nosuch:m")), ["nosuch:m"]);
    /// ```
    pub fn lookup_keys(&self, model: Option<&str>) -> Vec<String> {
        let asked = self.asked(model);
        let resolved = self.expand_alias(&asked).ok().and_then(|models| {
            let parsed = ModelRef::parse(&models[0]).ok()?;
            let info = providers::find(&parsed.provider)?.info();
            let section = self.providers.get(info.name);
            let model = parsed
                .model
                .or_else(|| section.and_then(|s| s.default_model.clone()))
                .unwrap_or_else(|| info.default_model.to_owned());
            let full = ModelRef {
                provider: info.name.to_owned(),
                model: Some(model),
            };
            Some((full.to_string(), info.name))
        });
        let mut keys = vec![asked];
        if let Some((full, provider)) = resolved {
            for key in [full, provider.to_owned()] {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// The model asked for: the call's, else the config's, else `OY3O_MODEL`, else the default.
    fn asked(&self, model: Option<&str>) -> String {
        model
            .map(str::to_owned)
            .or_else(|| self.model.clone())
            .or_else(|| std::env::var("OY3O_MODEL").ok().filter(|m| !m.is_empty()))
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned())
    }

    /// Resolves one model an alias stands for; errors name the alias.
    fn resolve_entry(&self, asked: &str, reference: &str) -> Result<Target> {
        self.resolve_one(asked, reference).map_err(|e| {
            if asked == reference {
                e
            } else {
                let message = format!("alias {asked:?}, model {reference:?}: {}", e.message());
                Error::new(e.code(), message)
            }
        })
    }

    /// Resolves one model reference (aliases already expanded); `asked` is the name as given,
    /// for messages and per-model lookups.
    fn resolve_one(&self, asked: &str, expanded: &str) -> Result<Target> {
        let parsed = ModelRef::parse(expanded)?;
        let provider = providers::find(&parsed.provider).ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!(
                    "unknown provider {:?} in model {expanded:?}; known providers: {}",
                    parsed.provider,
                    providers::names().join(", ")
                ),
            )
        })?;
        let info = provider.info();
        let section = self.providers.get(info.name).cloned().unwrap_or_default();
        let model_name = parsed
            .model
            .clone()
            .or_else(|| section.default_model.clone())
            .unwrap_or_else(|| info.default_model.to_owned());
        let reference = ModelRef {
            provider: info.name.to_owned(),
            model: Some(model_name.clone()),
        };
        let full = reference.to_string();
        let keys = [asked, full.as_str(), info.name];

        let base_url = section
            .base_url
            .clone()
            .or_else(|| first_env(info.base_url_env))
            .or_else(|| info.default_base_url.map(str::to_owned));
        let key_env = section
            .api_key_env
            .clone()
            .or_else(|| info.key_env.first().map(|s| (*s).to_owned()));
        let env_key = match &section.api_key_env {
            Some(var) => std::env::var(var).ok(),
            None => first_env(info.key_env),
        }
        .filter(|k| !k.trim().is_empty())
        .map(|k| Credential::parse(&k));
        let credential = lookup(&self.cookies, &keys)
            .or_else(|| self.cookie.clone())
            .or_else(|| section.api_key.clone())
            .or(env_key);
        let custom_base = base_url.as_deref() != info.default_base_url;
        let needs_key = match info.key_policy {
            KeyPolicy::Required => true,
            KeyPolicy::UnlessCustomBaseUrl => !custom_base,
            KeyPolicy::Optional => false,
        };
        if needs_key && credential.is_none() {
            let var = key_env.as_deref().unwrap_or("the provider's key variable");
            return Err(Error::new(
                ErrorCode::Auth,
                format!(
                    "no credential for {full}: set {var}, or pass --key / --cookie, or add \
                     cookies.{} to the config",
                    info.name
                ),
            ));
        }

        let mut listeners = self.listeners.clone();
        for k in keys {
            if let Some(set) = self.model_listeners.get(k) {
                listeners.extend(set);
                break;
            }
        }
        Ok(Target {
            provider,
            reference,
            model: model_name,
            base_url,
            credential,
            key_env,
            proxy: lookup(&self.proxies, &keys).or_else(|| self.proxy.clone()),
            context: lookup(&self.contexts, &keys).or_else(|| self.context.clone()),
            listeners,
            settings: section,
            options: self.options.clone(),
            attachments: self.attachments.unwrap_or_default(),
        })
    }

    /// Follows aliases into the model references they stand for, in order and without
    /// repeats (up to a few hops deep, so a cycle is an error, not a hang).
    fn expand_alias(&self, name: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.expand_into(name, name, 0, &mut out)?;
        Ok(out)
    }

    fn expand_into(
        &self,
        asked: &str,
        name: &str,
        depth: usize,
        out: &mut Vec<String>,
    ) -> Result<()> {
        let Some(alias) = self.aliases.get(name) else {
            if !out.iter().any(|m| m == name) {
                out.push(name.to_owned());
            }
            return Ok(());
        };
        if depth >= 8 {
            return Err(Error::config(format!(
                "model alias {asked:?} does not resolve: the aliases form a cycle"
            )));
        }
        if alias.models().is_empty() {
            return Err(Error::config(format!(
                "model alias {name:?} names no model; give it at least one model reference"
            )));
        }
        for model in alias.models() {
            self.expand_into(asked, model, depth + 1, out)?;
        }
        Ok(())
    }
}

/// The entry for the first key present: the name as asked, the full reference, the provider.
fn lookup<V: Clone>(map: &std::collections::BTreeMap<String, V>, keys: &[&str]) -> Option<V> {
    keys.iter().find_map(|k| map.get(*k)).cloned()
}

fn first_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok())
        .filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key() -> Config {
        let mut c = Config::default();
        c.cookies
            .insert("openai".into(), Credential::parse("sk-test"));
        c
    }

    #[test]
    fn per_model_entries_beat_provider_entries_beat_defaults() {
        let mut c = with_key();
        c.context = Some("global".into());
        c.contexts.insert("openai".into(), "provider".into());
        c.contexts.insert("openai:gpt-4o".into(), "model".into());
        assert_eq!(
            c.resolve(Some("openai:gpt-4o")).unwrap().context.as_deref(),
            Some("model")
        );
        assert_eq!(
            c.resolve(Some("openai:other")).unwrap().context.as_deref(),
            Some("provider")
        );
    }

    #[test]
    fn bare_provider_uses_its_default_model_or_the_configured_one() {
        let mut c = with_key();
        assert_eq!(c.resolve(Some("openai")).unwrap().model, "gpt-4o-mini");
        c.providers.insert(
            "openai".into(),
            ProviderSettings {
                default_model: Some("gpt-5".into()),
                ..Default::default()
            },
        );
        assert_eq!(c.resolve(Some("openai")).unwrap().model, "gpt-5");
    }

    #[test]
    fn alias_cycles_and_unknown_providers_are_clear_errors() {
        let mut c = with_key();
        c.aliases.insert("a".into(), "b".into());
        c.aliases.insert("b".into(), "a".into());
        assert!(
            c.resolve(Some("a"))
                .unwrap_err()
                .message()
                .contains("cycle")
        );
        let e = c.resolve(Some("nosuch:x")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert!(e.message().contains("openai"), "{}", e.message());
    }

    #[test]
    fn fallback_lists_expand_nested_aliases_in_order_without_repeats() {
        let mut c = with_key();
        c.aliases.insert("fast".into(), "openai:gpt-4o-mini".into());
        c.aliases.insert(
            "smart".into(),
            vec!["openai:gpt-4o", "fast", "openai:gpt-4o"].into(),
        );
        c.aliases
            .insert("best".into(), vec!["smart", "openai:o3"].into());
        let refs: Vec<String> = c
            .resolve_all(Some("best"))
            .unwrap()
            .iter()
            .map(|t| t.reference.to_string())
            .collect();
        assert_eq!(refs, ["openai:gpt-4o", "openai:gpt-4o-mini", "openai:o3"]);
        assert_eq!(c.resolve(Some("best")).unwrap().model, "gpt-4o");
    }

    #[test]
    fn a_fallback_that_cannot_resolve_is_named_in_the_error() {
        let mut c = with_key();
        c.aliases
            .insert("smart".into(), vec!["openai:gpt-4o", "nosuch:x"].into());
        let e = c.resolve_all(Some("smart")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert!(e.message().contains("\"nosuch:x\""), "{}", e.message());
        assert!(
            c.resolve(Some("smart")).is_ok(),
            "the first model alone resolves"
        );
    }

    #[test]
    fn a_custom_base_url_needs_no_key_for_openai_compatible_servers() {
        let mut c = Config::default();
        c.providers.insert(
            "openai".into(),
            ProviderSettings {
                base_url: Some("http://127.0.0.1:1/v1".into()),
                ..Default::default()
            },
        );
        assert!(c.resolve(Some("openai:x")).is_ok());
    }

    #[test]
    fn debug_output_redacts_credentials_and_proxy_passwords() {
        let mut c = with_key();
        c.proxy = Some("http://user:hunter2@127.0.0.1:3128".into());
        let shown = format!("{:?}", c.resolve(Some("openai:x")).unwrap());
        assert!(
            !shown.contains("sk-test") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
