//! What a turn costs: a price table per model (US dollars per million tokens), shipped for the
//! built-in providers' common models (`prices.toml`) and overridden by a config file's
//! `[prices."provider:model"]` tables, and the cost of a [`Usage`] at a [`Price`].
//!
//! The formula works on the engine's [`Usage`], which every provider mapping normalizes the
//! same way: `input_tokens` counts every token read, the cached ones included (OpenAI and
//! Gemini report it so; Anthropic reports cache reads and writes beside `input_tokens`, and its
//! mapping adds them in), and `output_tokens` counts every token written, reasoning included
//! (OpenAI reports it so; Gemini's mapping adds its thought tokens in). So:
//!
//! ```text
//! cost = (input - cached)     × input_price
//!      + cached               × cached_input_price
//!      + (output - reasoning) × output_price
//!      + reasoning            × reasoning_price          (prices per 1,000,000 tokens)
//! ```
//!
//! Anthropic's cache writes (billed at 1.25× input) are counted at the input price: the
//! engine's `Usage` does not keep them apart.
//!
//! ```
//! use oy3o::price::{Price, Prices};
//! let usage = oy3o::Usage { input_tokens: 1_000_000, output_tokens: 0, ..Default::default() };
//! let price = Prices::shipped().find("openai:gpt-4o-mini").unwrap();
//! assert!((price.cost(&usage) - 0.15).abs() < 1e-9);
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::event::Usage;

/// The prices of one model, in US dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens not served from a cache.
    pub input: f64,
    /// Input tokens served from a cache; `None`: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Output tokens besides reasoning.
    pub output: f64,
    /// Reasoning tokens; `None`: the output price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

impl Price {
    /// The cost of `usage` in US dollars (see the module doc for the formula).
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens.unwrap_or(0).min(usage.input_tokens);
        let reasoning = usage.reasoning_tokens.unwrap_or(0).min(usage.output_tokens);
        let tokens = |n: u64, per_million: f64| n as f64 * per_million / 1_000_000.0;
        tokens(usage.input_tokens - cached, self.input)
            + tokens(cached, self.cached_input.unwrap_or(self.input))
            + tokens(usage.output_tokens - reasoning, self.output)
            + tokens(reasoning, self.reasoning.unwrap_or(self.output))
    }

    /// The first field that is not a finite number of dollars at least 0, if any.
    pub fn invalid_field(&self) -> Option<&'static str> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        [
            ("input", Some(self.input)),
            ("cached_input", self.cached_input),
            ("output", Some(self.output)),
            ("reasoning", self.reasoning),
        ]
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| !ok(v)))
        .map(|(name, _)| name)
    }
}

/// A price table: model reference globs (`openai:gpt-4o*`) to prices, the config's entries
/// over the shipped ones. Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prices {
    /// The config's entries, asked first.
    overrides: Arc<BTreeMap<String, Price>>,
    /// The shipped entries (empty in [`Prices::shipped`]'s own `overrides`).
    shipped: Arc<BTreeMap<String, Price>>,
}

impl Prices {
    /// The table oy3o ships (`prices.toml`; its comment names the sources and their date).
    pub fn shipped() -> &'static Prices {
        static SHIPPED: OnceLock<Prices> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            // Checked by the test `the_shipped_table_parses_and_prices_every_builtin_provider`.
            let entries: BTreeMap<String, Price> =
                toml::from_str(include_str!("prices.toml")).unwrap_or_default();
            Prices {
                overrides: Arc::default(),
                shipped: Arc::new(entries),
            }
        })
    }

    /// The shipped table with `overrides` (a config's `[prices]`) on top: a model any override
    /// matches takes the best matching override's price, whatever the shipped table says.
    pub fn with_overrides(overrides: &BTreeMap<String, Price>) -> Prices {
        Prices {
            overrides: Arc::new(overrides.clone()),
            shipped: Self::shipped().shipped.clone(),
        }
    }

    /// The price of `model` (a reference such as `openai:gpt-4o-mini-2024-07-18`): from the
    /// overrides, else the shipped table; in each, the exact entry, else the matching glob
    /// with the most literal characters.
    pub fn find(&self, model: &str) -> Option<Price> {
        best(&self.overrides, model).or_else(|| best(&self.shipped, model))
    }

    /// The cost of `usage` on `model`, when the table prices it.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.find(model).map(|p| p.cost(usage))
    }

    /// Every entry, the overrides' first, by glob.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Price)> {
        self.overrides
            .iter()
            .chain(
                self.shipped
                    .iter()
                    .filter(|(k, _)| !self.overrides.contains_key(*k)),
            )
            .map(|(k, v)| (k.as_str(), v))
    }
}

fn best(entries: &BTreeMap<String, Price>, model: &str) -> Option<Price> {
    if let Some(price) = entries.get(model) {
        return Some(*price);
    }
    entries
        .iter()
        .filter(|(glob, _)| glob_match(glob, model))
        .max_by_key(|(glob, _)| glob.chars().filter(|c| !matches!(c, '*' | '?')).count())
        .map(|(_, price)| *price)
}

/// `*` (any run of characters) and `?` (one character) globs over a whole name.
pub fn glob_match(glob: &str, text: &str) -> bool {
    // Walks both strings in place (no copy into `Vec<char>`: this runs for every glob of a
    // key on every request, and for every price entry on every recorded turn). `star`: the
    // glob after the last `*` and the text that `*` was last tried at.
    let (mut g, mut t) = (glob, text);
    let mut star: Option<(&str, &str)> = None;
    while let Some(tc) = t.chars().next() {
        let mut rest = g.chars();
        match rest.next() {
            Some(gc) if gc == '?' || gc == tc => {
                g = rest.as_str();
                t = &t[tc.len_utf8()..];
            }
            Some('*') => {
                star = Some((rest.as_str(), t));
                g = rest.as_str();
            }
            _ => match star {
                Some((after, at)) => {
                    // `at` holds at least `t`, which is not empty.
                    let next = &at[at.chars().next().map_or(0, char::len_utf8)..];
                    star = Some((after, next));
                    (g, t) = (after, next);
                }
                None => return false,
            },
        }
    }
    g.chars().all(|c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64, reasoning: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_tokens: Some(cached),
            reasoning_tokens: Some(reasoning),
        }
    }

    #[test]
    fn cached_input_and_reasoning_are_priced_apart_from_the_rest() {
        // 10,000 tokens read, 4,000 of them cached; 3,000 written, 1,000 of them reasoning.
        let price = Price {
            input: 2.0,
            cached_input: Some(0.5),
            output: 8.0,
            reasoning: Some(12.0),
        };
        let cost = price.cost(&usage(10_000, 4_000, 3_000, 1_000));
        let expected =
            6_000.0 * 2.0 / 1e6 + 4_000.0 * 0.5 / 1e6 + 2_000.0 * 8.0 / 1e6 + 1_000.0 * 12.0 / 1e6;
        assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
        assert!((cost - 0.042).abs() < 1e-12, "{cost}");
        // Without their own prices, cached input costs as input and reasoning as output.
        let plain = Price {
            input: 2.0,
            cached_input: None,
            output: 8.0,
            reasoning: None,
        };
        assert!((plain.cost(&usage(10_000, 4_000, 3_000, 1_000)) - 0.044).abs() < 1e-12);
        // Counts a provider got wrong (more cached than read) never go negative.
        assert!(plain.cost(&usage(10, 50, 10, 50)) >= 0.0);
    }

    #[test]
    fn the_shipped_table_parses_and_prices_every_builtin_provider() {
        let shipped = Prices::shipped();
        assert!(shipped.entries().count() > 10);
        for model in [
            "openai:gpt-4o",
            "anthropic:claude-sonnet-4-5",
            "gemini:gemini-2.5-flash",
            "ollama:llama3.2",
            "local:smollm2",
        ] {
            assert!(shipped.find(model).is_some(), "{model}");
        }
        for (glob, price) in shipped.entries() {
            assert_eq!(price.invalid_field(), None, "{glob}");
        }
    }

    #[test]
    fn the_most_specific_glob_wins_and_overrides_beat_the_shipped_table() {
        let shipped = Prices::shipped();
        let mini = shipped.find("openai:gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(mini.input, 0.15);
        assert_eq!(shipped.find("openai:gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(shipped.find("nobody:model"), None);
        let mut mine = BTreeMap::new();
        mine.insert(
            "openai:*".to_owned(),
            Price {
                input: 1.0,
                output: 1.0,
                ..Price::default()
            },
        );
        mine.insert(
            "openai:gpt-4o".to_owned(),
            Price {
                input: 9.0,
                output: 9.0,
                ..Price::default()
            },
        );
        let prices = Prices::with_overrides(&mine);
        assert_eq!(prices.find("openai:gpt-4o").unwrap().input, 9.0);
        assert_eq!(prices.find("openai:gpt-4o-mini").unwrap().input, 1.0);
        assert_eq!(
            prices.find("anthropic:claude-haiku-4-5").unwrap().input,
            1.0
        );
        assert_eq!(
            prices.find("anthropic:claude-opus-4-1").unwrap().input,
            15.0
        );
    }
}
