//! The `local` provider on the real SmolLM2 model (pulled into the cache on first use): the
//! config's `max_tokens` ends an answer that would run on, with finish reason `length`, and
//! without it the answer to a one-line question ends with its sentence after a paragraph.
//! (The default cap itself is a unit test in `providers/local`: reaching 512 tokens takes
//! minutes on a busy 2-core machine.)

#![cfg(feature = "local")]

use futures::StreamExt;
use oy3o::{Config, Options};

#[tokio::test]
async fn the_configs_max_tokens_ends_a_long_answer_with_length() {
    let config = Config {
        options: Options {
            max_tokens: Some(20),
            ..Options::default()
        },
        ..Config::default()
    };
    let prompt = "Tell me a very long story about a dragon and a knight.";
    let mut reply = oy3o::exec(prompt, None, Some("local:smollm2"), &config);
    while let Some(chunk) = reply.next().await {
        if let Err(e) = chunk {
            panic!("the local model failed: {e}");
        }
    }
    assert_eq!(
        reply.finish_reason(),
        Some("length"),
        "{:?}",
        reply.answer()
    );
    assert_eq!(reply.usage().map(|u| u.output_tokens), Some(20));
}

#[tokio::test]
async fn a_one_line_question_gets_an_answer_that_ends_with_its_sentence_after_a_paragraph() {
    let prompt = "Tell me a very long story about a dragon and a knight.";
    let mut reply = oy3o::exec(prompt, None, Some("local:smollm2"), &Config::default());
    while let Some(chunk) = reply.next().await {
        if let Err(e) = chunk {
            panic!("the local model failed: {e}");
        }
    }
    let answer = reply.answer();
    assert_eq!(reply.finish_reason(), Some("length"), "{answer:?}");
    let tokens = reply.usage().map_or(0, |u| u.output_tokens);
    assert!(
        (u64::from(oy3o::providers::local::SHORT_ANSWER_TOKENS)
            ..u64::from(oy3o::providers::local::DEFAULT_MAX_TOKENS))
            .contains(&tokens),
        "{tokens} tokens: {answer:?}"
    );
    let end = answer.trim_end().trim_end_matches(['"', '\'', ')', '*']);
    assert!(end.ends_with(['.', '!', '?']), "{answer:?}");
}
