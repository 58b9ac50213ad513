//! Model aliases: a short name for one model, or for an ordered list of models where each one
//! after the first is a fallback for those before it.

use std::fmt;

/// What an alias stands for. In a file: `fast = "openai:gpt-4o-mini"` or
/// `smart = ["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]`. Entries may name other aliases.
///
/// ```
/// use oy3o::Alias;
/// let one = Alias::from("openai:gpt-4o-mini");
/// assert_eq!(one, "openai:gpt-4o-mini");
/// let smart = Alias::from(vec!["anthropic:claude-sonnet-4-5", "openai:gpt-4o"]);
/// assert_eq!(smart.models().len(), 2);
/// assert_eq!(smart.to_string(), "anthropic:claude-sonnet-4-5, then openai:gpt-4o");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alias {
    models: Vec<String>,
}

impl Alias {
    /// An alias for these models, in the order they are tried.
    pub fn new(models: Vec<String>) -> Self {
        Self { models }
    }

    /// The models (or aliases) it names, in the order they are tried.
    pub fn models(&self) -> &[String] {
        &self.models
    }
}

impl From<&str> for Alias {
    fn from(model: &str) -> Self {
        Self::new(vec![model.to_owned()])
    }
}

impl From<String> for Alias {
    fn from(model: String) -> Self {
        Self::new(vec![model])
    }
}

impl From<Vec<String>> for Alias {
    fn from(models: Vec<String>) -> Self {
        Self::new(models)
    }
}

impl From<Vec<&str>> for Alias {
    fn from(models: Vec<&str>) -> Self {
        Self::new(models.into_iter().map(str::to_owned).collect())
    }
}

/// An alias equals a string when it names exactly that one model.
impl PartialEq<str> for Alias {
    fn eq(&self, other: &str) -> bool {
        matches!(self.models.as_slice(), [only] if only == other)
    }
}

impl PartialEq<&str> for Alias {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.models.join(", then "))
    }
}
