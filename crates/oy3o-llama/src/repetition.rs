//! Ends an answer whose tail repeats itself: a small model decoding greedily can fall into a
//! loop ("la femme au martyre, la femme au martyre, …") and would otherwise run until the cap or
//! the end of the context window. The repeat penalty makes loops rarer (its window is 64 tokens,
//! so a longer block can still come round again); this ends the rest.
//!
//! A loop is a block of 1 to [`MAX_PERIOD`] tokens that the last tokens repeat back to back,
//! covering at least [`MIN_SPAN`] tokens and at least [`MIN_REPEATS`] copies of the block. So a
//! one-token loop ends after 48 copies, a 16-token one after 3 copies (48 tokens), a 40-token
//! one after 3 copies (120 tokens). Ordinary text does not repeat a long stretch verbatim three
//! times in a row; lists, tables and code vary their items.

use serde::{Deserialize, Serialize};

/// The longest repeated block looked for, in tokens.
pub const MAX_PERIOD: usize = 64;
/// The fewest tokens a loop must cover before it ends the answer.
pub const MIN_SPAN: usize = 48;
/// The fewest back-to-back copies of the block.
pub const MIN_REPEATS: usize = 3;

/// A loop found at the end of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loop {
    /// The length of the repeated block, in tokens.
    pub period_tokens: u32,
    /// How many whole copies of the block the tail holds.
    pub repeats: u32,
}

/// Watches the tokens of one answer as they are generated.
#[derive(Debug, Default)]
pub(crate) struct RepetitionGuard {
    tokens: Vec<i32>,
}

impl RepetitionGuard {
    /// Adds a generated token; returns the loop the answer's tail now is, if any.
    pub(crate) fn push(&mut self, token: i32) -> Option<Loop> {
        self.tokens.push(token);
        looping_tail(&self.tokens)
    }
}

/// The shortest block that `tokens` ends by repeating, when the repetition is long enough to be
/// a loop (see the module docs).
pub(crate) fn looping_tail(tokens: &[i32]) -> Option<Loop> {
    let n = tokens.len();
    for period in 1..=MAX_PERIOD {
        let span = (period * MIN_REPEATS).max(MIN_SPAN);
        if span > n {
            // Spans only grow with the period.
            return None;
        }
        let tail = &tokens[n - span..];
        if tail[period..].iter().zip(tail).all(|(a, b)| a == b) {
            let mut start = n - span;
            while start > 0 && tokens[start - 1] == tokens[start - 1 + period] {
                start -= 1;
            }
            let count = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
            return Some(Loop {
                period_tokens: count(period),
                repeats: count((n - start) / period),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_loop(tokens: &[i32]) -> Option<(usize, Loop)> {
        let mut guard = RepetitionGuard::default();
        tokens
            .iter()
            .enumerate()
            .find_map(|(i, &t)| guard.push(t).map(|l| (i + 1, l)))
    }

    /// Distinct tokens, as ordinary text mostly is.
    fn prose(n: usize) -> Vec<i32> {
        (1000..).take(n).collect()
    }

    #[test]
    fn a_phrase_repeated_three_times_ends_the_answer_at_its_third_copy() {
        let phrase: Vec<i32> = (1..=20).collect();
        let mut tokens = prose(30);
        for _ in 0..10 {
            tokens.extend(&phrase);
        }
        let (at, found) = first_loop(&tokens).expect("a loop");
        assert_eq!(found.period_tokens, 20);
        assert_eq!(found.repeats, 3);
        assert_eq!(
            at,
            30 + 60,
            "stopped as soon as the third copy was complete"
        );
    }

    #[test]
    fn a_short_phrase_needs_the_minimum_span() {
        let mut tokens = prose(5);
        for _ in 0..40 {
            tokens.extend([7, 8, 9]);
        }
        let (at, found) = first_loop(&tokens).expect("a loop");
        assert_eq!(found.period_tokens, 3);
        assert_eq!(found.repeats, 16);
        assert_eq!(at, 5 + MIN_SPAN);
    }

    #[test]
    fn one_token_repeated_ends_the_answer_after_the_minimum_span() {
        let mut tokens = prose(10);
        tokens.extend(std::iter::repeat_n(42, 100));
        let (at, found) = first_loop(&tokens).expect("a loop");
        assert_eq!((found.period_tokens, at), (1, 10 + MIN_SPAN));
    }

    #[test]
    fn text_without_a_repeated_tail_goes_on() {
        assert_eq!(first_loop(&prose(2000)), None);
        // Two copies of a long block, then something else: not a loop.
        let block = prose(60);
        let mut tokens = block.clone();
        tokens.extend(&block);
        tokens.extend(1..40);
        assert_eq!(first_loop(&tokens), None);
    }

    #[test]
    fn a_list_whose_items_vary_is_not_a_loop() {
        // "1. a\n2. a\n3. a\n…": the number changes in every item.
        let mut tokens = Vec::new();
        for i in 0..100 {
            tokens.extend([500 + i, 11, 12, 13, 14]);
        }
        assert_eq!(first_loop(&tokens), None);
    }

    #[test]
    fn a_block_longer_than_the_longest_period_is_not_looked_for() {
        let block = prose(MAX_PERIOD + 1);
        let tokens: Vec<i32> = block
            .iter()
            .copied()
            .cycle()
            .take(block.len() * 4)
            .collect();
        assert_eq!(first_loop(&tokens), None);
    }
}
