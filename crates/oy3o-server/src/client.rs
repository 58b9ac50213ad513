//! What a client may bring with a request: its own credential and proxy. They apply to that
//! request only, beat the server's entries for the model, and are scrubbed from every message
//! sent back. What the operator configured (keys, provider `headers`) never goes through a
//! proxy the client picked unless the operator lists it in `client_proxies`.

use std::borrow::Cow;

use oy3o::{Config, Credential, DEFAULT_MODEL};

use crate::settings::Settings;

/// A client's credential and proxy for one request.
#[derive(Clone, Default)]
pub(crate) struct ClientOverrides {
    pub credential: Option<Credential>,
    pub proxy: Option<String>,
    /// The proxy is one the operator lists in `client_proxies`.
    pub proxy_trusted: bool,
}

impl ClientOverrides {
    /// A request's credential and proxy; `settings` says whether the operator trusts the proxy.
    pub(crate) fn new(
        credential: Option<Credential>,
        proxy: Option<String>,
        settings: &Settings,
    ) -> Self {
        let proxy_trusted = proxy
            .as_deref()
            .is_some_and(|p| crate::policy::trusted_proxy(settings, p));
        Self {
            credential,
            proxy,
            proxy_trusted,
        }
    }

    /// True when the client sent neither.
    pub(crate) fn is_empty(&self) -> bool {
        self.credential.is_none() && self.proxy.is_none()
    }

    /// The config for a request on `model`: the server's, or a copy with the client's
    /// credential and proxy filed under the model name as asked (the first key the engine
    /// looks up, so they win over the server's per-model and per-provider entries).
    ///
    /// With the client's own credential, its proxy is filed under that name only, beside the
    /// credential: a chain task on another model (which would use the server's key) goes
    /// direct. Without one, the proxy is one the operator trusts (`client_proxies`, checked
    /// by `policy::check_client_proxy`) and is the default for every model.
    ///
    /// A proxy the operator does not list also gets none of the operator's provider `headers`
    /// (they may hold secrets too): they are dropped for every provider the model as asked
    /// resolves to, the only ones whose requests take that proxy.
    pub(crate) fn apply<'a>(&self, base: &'a Config, model: Option<&str>) -> Cow<'a, Config> {
        if self.is_empty() {
            return Cow::Borrowed(base);
        }
        let asked = asked_model(base, model);
        let mut config = base.clone();
        if let Some(credential) = &self.credential {
            config.cookies.insert(asked.clone(), credential.clone());
            config.cookie = Some(credential.clone());
        }
        if let Some(proxy) = &self.proxy {
            config.proxies.insert(asked.clone(), proxy.clone());
            if self.credential.is_none() {
                config.proxy = Some(proxy.clone());
            }
            if !self.proxy_trusted {
                drop_provider_headers(&mut config, &asked);
            }
        }
        Cow::Owned(config)
    }

    /// `text` with the client's secrets (key, cookie values, proxy password) replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = match &self.credential {
            Some(c) => c.redact(text),
            None => text.to_owned(),
        };
        if let Some(password) = self.proxy.as_deref().and_then(proxy_password)
            && password.len() >= 3
        {
            out = out.replace(password, "<redacted>");
        }
        out
    }
}

/// Clears the configured `headers` of every provider `asked` resolves to (an alias's
/// fallbacks too); of every provider when it does not resolve.
fn drop_provider_headers(config: &mut Config, asked: &str) {
    let reached: Vec<String> = match config.resolve_all(Some(asked)) {
        Ok(targets) => targets
            .iter()
            .map(|t| t.provider.info().name.to_owned())
            .collect(),
        Err(_) => config.providers.keys().cloned().collect(),
    };
    for name in reached {
        if let Some(section) = config.providers.get_mut(&name) {
            section.headers.clear();
        }
    }
}

/// The password of `scheme://user:password@host`, if any.
fn proxy_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p)
}

/// The model name as the engine will look it up: the request's, the config's, `OY3O_MODEL`,
/// else the built-in default.
fn asked_model(config: &Config, model: Option<&str>) -> String {
    model
        .map(str::to_owned)
        .or_else(|| config.model.clone())
        .or_else(|| std::env::var("OY3O_MODEL").ok().filter(|m| !m.is_empty()))
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_key_beats_the_servers_per_provider_key() {
        let mut base = Config::default();
        base.cookies
            .insert("openai".into(), Credential::parse("sk-server"));
        let client = ClientOverrides {
            credential: Some(Credential::parse("sk-client")),
            proxy: None,
            ..ClientOverrides::default()
        };
        let config = client.apply(&base, Some("openai:gpt-4o-mini"));
        let target = config.resolve(Some("openai:gpt-4o-mini")).unwrap();
        assert_eq!(
            target
                .credential
                .and_then(|c| c.key().map(str::to_owned))
                .as_deref(),
            Some("sk-client")
        );
    }

    #[test]
    fn a_clients_proxy_carries_only_the_clients_credential() {
        let mut base = Config::default();
        base.cookies
            .insert("anthropic".into(), Credential::parse("sk-server"));
        let client = ClientOverrides {
            credential: Some(Credential::parse("sk-client")),
            proxy: Some("http://127.0.0.3:9".into()),
            ..ClientOverrides::default()
        };
        let config = client.apply(&base, Some("openai:gpt-4o-mini"));
        let own = config.resolve(Some("openai:gpt-4o-mini")).unwrap();
        assert_eq!(own.proxy.as_deref(), Some("http://127.0.0.3:9"));
        // A chain task on another model uses the server's key, so it goes direct.
        let other = config.resolve(Some("anthropic:claude-x")).unwrap();
        assert_eq!(
            other
                .credential
                .and_then(|c| c.key().map(str::to_owned))
                .as_deref(),
            Some("sk-server")
        );
        assert_eq!(other.proxy, None);
    }

    #[test]
    fn an_unlisted_proxy_gets_none_of_the_operators_provider_headers() {
        let mut base = Config::default();
        base.aliases.insert(
            "both".into(),
            vec!["openai:gpt-4o-mini", "anthropic:claude-x"].into(),
        );
        for provider in ["openai", "anthropic", "gemini"] {
            base.providers.insert(
                provider.into(),
                oy3o::ProviderSettings {
                    headers: [("x-secret".to_owned(), "canary".to_owned())].into(),
                    ..oy3o::ProviderSettings::default()
                },
            );
        }
        let headers_for = |client: &ClientOverrides, asked: &str, model: &str| {
            let config = client.apply(&base, Some(asked));
            let target = config.resolve(Some(model)).unwrap();
            target.settings.headers.get("x-secret").cloned()
        };
        let own = |proxy: Option<&str>, proxy_trusted: bool| ClientOverrides {
            credential: Some(Credential::parse("sk-client")),
            proxy: proxy.map(str::to_owned),
            proxy_trusted,
        };
        let unlisted = own(Some("http://127.0.0.3:9"), false);
        assert_eq!(
            headers_for(&unlisted, "openai:gpt-4o-mini", "openai:gpt-4o-mini"),
            None
        );
        // An alias takes the proxy to each of its models.
        for model in ["openai:gpt-4o-mini", "anthropic:claude-x"] {
            assert_eq!(headers_for(&unlisted, "both", model), None, "{model}");
        }
        // A provider the proxy never reaches keeps them.
        let canary = Some("canary".to_owned());
        assert_eq!(headers_for(&unlisted, "both", "gemini:g"), canary);
        // So does a listed proxy, and a request without one.
        let listed = own(Some("http://127.0.0.3:9"), true);
        assert_eq!(
            headers_for(&listed, "openai:gpt-4o-mini", "openai:gpt-4o-mini"),
            canary
        );
        let direct = own(None, false);
        assert_eq!(
            headers_for(&direct, "openai:gpt-4o-mini", "openai:gpt-4o-mini"),
            canary
        );
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let client = ClientOverrides {
            credential: Some(Credential::parse(r#"{"_U": "cookievalue"}"#)),
            proxy: Some("http://me:pa55word@127.0.0.1:3128".into()),
            ..ClientOverrides::default()
        };
        let text = client.redact("bad cookie cookievalue via http://me:pa55word@127.0.0.1:3128");
        assert!(
            !text.contains("cookievalue") && !text.contains("pa55word"),
            "{text}"
        );
    }
}
