//! Model references: `provider:model`, or a bare provider name for its default model.

use std::fmt;

use crate::error::{Error, ErrorCode, Result};

/// A parsed model reference such as `openai:gpt-4o-mini` or `bing`.
///
/// ```
/// use oy3o::ModelRef;
/// let r = ModelRef::parse("openai:gpt-4o-mini").unwrap();
/// assert_eq!(r.provider, "openai");
/// assert_eq!(r.model.as_deref(), Some("gpt-4o-mini"));
/// let bare = ModelRef::parse("bing").unwrap();
/// assert_eq!(bare.model, None);
/// // Model names may contain colons themselves (Ollama tags, paths).
/// assert_eq!(ModelRef::parse("ollama:llama3.2:1b").unwrap().model.as_deref(), Some("llama3.2:1b"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// The provider name (`openai`, `anthropic`, `local`, ...), lower case.
    pub provider: String,
    /// The model inside the provider; `None` means the provider's default.
    pub model: Option<String>,
}

impl ModelRef {
    /// Parses `provider:model` or `provider`. Rejects empty parts and white space with a
    /// `not_found` error: a name that cannot be read names no model, as one with an unknown
    /// provider does, so every face reports both alike (the CLI's exit code 3, Python's
    /// `NotFoundError`, the server's 404).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let not_found = |message: String| Error::new(ErrorCode::NotFound, message);
        if text.is_empty() {
            return Err(not_found(
                "empty model reference: write it as provider:model, e.g. openai:gpt-4o-mini".into(),
            ));
        }
        let (provider, model) = match text.split_once(':') {
            Some((p, m)) => (p, Some(m)),
            None => (text, None),
        };
        let valid_provider = !provider.is_empty()
            && provider
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_provider {
            return Err(not_found(format!(
                "malformed model reference {text:?}: the provider part must be a name such as openai, \
                 anthropic, gemini, ollama, local or bing (write provider:model)"
            )));
        }
        if let Some(m) = model
            && m.trim().is_empty()
        {
            return Err(not_found(format!(
                "malformed model reference {text:?}: nothing after the colon; write {provider}:MODEL \
                 or just {provider} for its default model"
            )));
        }
        Ok(Self {
            provider: provider.to_ascii_lowercase(),
            model: model.map(str::to_owned),
        })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.model {
            Some(m) => write!(f, "{}:{m}", self.provider),
            None => f.write_str(&self.provider),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_malformed_references_name_no_model() {
        for bad in ["", "  ", ":gpt", "open ai:gpt", "openai:", "a/b:c"] {
            let err = ModelRef::parse(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::NotFound, "{bad:?}");
        }
    }

    #[test]
    fn provider_names_are_case_insensitive_and_round_trip() {
        let r = ModelRef::parse("OpenAI:gpt-4o").unwrap();
        assert_eq!(r.to_string(), "openai:gpt-4o");
    }
}
