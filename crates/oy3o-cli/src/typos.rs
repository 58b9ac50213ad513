//! Words that would reach a model by mistake: a mistyped subcommand (`oy3o modles`) is a
//! usage error that names the subcommand meant, and an unquoted prompt of several words
//! (`oy3o what is this`) is told to be quoted. Each would otherwise cost a model's answer.
//!
//! A word given after `--` (`oy3o -- modles`) or quoted with other words is a prompt as typed.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, CommandFactory, FromArgMatches};

/// The largest edit distance at which a word is taken for a subcommand mistyped (less for
/// short names: `dog` is a prompt, not `log`).
const CLOSE: usize = 2;

/// Parses the command line ([`crate::command_line::parse`]), exiting with code 2 (and a hint)
/// on a mistyped subcommand or an unquoted prompt of several words.
pub fn parse<P: CommandFactory + FromArgMatches>() -> P {
    let raw: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match crate::command_line::parse::<P, _, _>(std::env::args_os(), crate::UNUSED_OPTIONS) {
        Ok(args) => {
            let command = P::command();
            if let Ok(matches) = command.clone().try_get_matches_from(&raw) {
                check(&command, &matches, &raw);
            }
            args
        }
        Err(e) if loose_words(&raw) && a_word_misplaced(&e) => usage(&format!(
            "a prompt of several words is one argument: quote it, e.g. oy3o '{}'",
            loose_prompt(&raw)
        )),
        Err(e) => e.exit(),
    }
}

/// Whether clap refused a word (not an option) where no word fits: the second word of a
/// prompt that was not quoted.
fn a_word_misplaced(e: &clap::Error) -> bool {
    let word = |kind| match e.get(kind) {
        Some(ContextValue::String(arg)) => !arg.starts_with('-'),
        _ => false,
    };
    match e.kind() {
        ErrorKind::UnknownArgument => word(ContextKind::InvalidArg),
        ErrorKind::InvalidSubcommand => word(ContextKind::InvalidSubcommand),
        _ => false,
    }
}

/// A usage error for the one word given as the prompt when it is a subcommand mistyped.
fn check(command: &clap::Command, matches: &ArgMatches, raw: &[String]) {
    let Ok(Some(prompt)) = matches.try_get_one::<String>("prompt") else {
        return;
    };
    if raw.iter().any(|a| a == "--") {
        return;
    }
    let names = command
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_all_aliases()))
        .filter(|n| *n != "help");
    if let Some(name) = suggestion(prompt, names) {
        usage(&format!(
            "{prompt:?} is not a subcommand: did you mean `oy3o {name}`? \
             (to send it as a prompt, run oy3o -- {prompt})"
        ));
    }
}

/// The subcommand `word` is a slip for: one word, close to exactly one name by edit distance.
fn suggestion<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.trim();
    if word.len() < 3 || !word.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    names
        .map(|name| (distance(&lower, name), name))
        .filter(|(d, name)| *d <= CLOSE.min(name.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance, with an adjacent swap counting as one edit (`modles` → `models`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// Whether the command line holds two or more words that are no options.
fn loose_words(raw: &[String]) -> bool {
    raw.iter().skip(1).filter(|a| !a.starts_with('-')).count() >= 2
}

/// The words of an unquoted prompt, as the user typed them (options left out).
fn loose_prompt(raw: &[String]) -> String {
    let words: Vec<&str> = raw
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    words.join(" ").replace('\'', "'\\''")
}

/// Says how to call the command, and exits with the usage code.
fn usage(message: &str) -> ! {
    eprintln!("oy3o: {message}");
    std::process::exit(i32::from(crate::USAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 7] = ["chain", "pull", "models", "serve", "chats", "log", "config"];

    #[test]
    fn a_word_a_slip_away_from_a_subcommand_is_taken_for_it() {
        let names = || NAMES.into_iter();
        assert_eq!(suggestion("modles", names()), Some("models"));
        assert_eq!(suggestion("serv", names()), Some("serve"));
        assert_eq!(suggestion("chian", names()), Some("chain"));
        assert_eq!(suggestion("Confgi", names()), Some("config"));
    }

    #[test]
    fn other_words_and_short_ones_are_prompts() {
        let names = || NAMES.into_iter();
        assert_eq!(suggestion("hello", names()), None);
        assert_eq!(suggestion("why?", names()), None);
        assert_eq!(suggestion("lo", names()), None);
        assert_eq!(suggestion("mode", names()), None);
        assert_eq!(suggestion("translate", names()), None);
        assert_eq!(suggestion("dog", names()), None);
    }

    #[test]
    fn an_adjacent_swap_is_one_edit() {
        assert_eq!(distance("modles", "models"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
