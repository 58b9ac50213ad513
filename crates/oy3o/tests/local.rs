//! The `local` provider on the real SmolLM2 model (pulled into the cache on first use): an
//! answer that would run on ends at the provider's default cap, and `max_tokens` from the
//! config replaces that cap.

#![cfg(feature = "local")]

use futures::StreamExt;
use oy3o::providers::local::DEFAULT_MAX_TOKENS;
use oy3o::{Config, Options};

/// Counting this far takes far more than the cap, and no stretch of it repeats.
const LONG_PROMPT: &str = "Count from 1 to 1000, one number per line.";

struct Answer {
    text: String,
    finish_reason: Option<String>,
    output_tokens: u64,
}

async fn ask(config: &Config) -> Answer {
    let mut reply = oy3o::exec(LONG_PROMPT, None, Some("local:smollm2"), config);
    while let Some(chunk) = reply.next().await {
        if let Err(e) = chunk {
            panic!("the local model failed: {e}");
        }
    }
    Answer {
        text: reply.answer().to_owned(),
        finish_reason: reply.finish_reason().map(str::to_owned),
        output_tokens: reply.usage().map_or(0, |u| u.output_tokens),
    }
}

#[tokio::test]
async fn a_long_answer_ends_at_the_default_cap_and_config_max_tokens_replaces_it() {
    let capped = ask(&Config::default()).await;
    eprintln!(
        "default: {} tokens, {} chars",
        capped.output_tokens,
        capped.text.len()
    );
    assert_eq!(capped.finish_reason.as_deref(), Some("length"));
    assert_eq!(capped.output_tokens, u64::from(DEFAULT_MAX_TOKENS));

    let config = Config {
        options: Options {
            max_tokens: Some(20),
            ..Options::default()
        },
        ..Config::default()
    };
    let short = ask(&config).await;
    assert_eq!(short.finish_reason.as_deref(), Some("length"));
    assert_eq!(short.output_tokens, 20);
    assert!(
        capped.text.starts_with(&short.text),
        "{:?} / {:?}",
        short.text,
        capped.text
    );
}
