//! Parsing the command line: options every command takes (`--config`, `--store`, `--model`, …,
//! marked `global` in clap) mean the same before or after a subcommand, as in `git -C DIR status`
//! or `cargo --locked build`: `oy3o --config F serve` is `oy3o serve --config F`.
//!
//! A word that names a subcommand is that subcommand wherever it comes, so the prompt and the
//! options of a one-shot answer or the app (`--chat`, `--no-stream`, …) cannot go with one: that
//! is a usage error rather than a silently ignored option. A prompt that is a subcommand's name
//! goes after `--` (`oy3o -- log`). Likewise an option every command takes is refused with a
//! subcommand that has no use for it (`oy3o models --model x`), and left out of its help.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

/// Which global options (by id) each subcommand has no use for: `(subcommand, ids)`.
pub type Unused<'a> = &'a [(&'a str, &'a [&'a str])];

/// Parses `argv` (program name first) into `P`, refusing top-level-only arguments given with a
/// subcommand, and the global options `unused` names for the subcommand given (which its
/// `--help` does not list).
///
/// # Errors
/// A clap error (usage, or `--help` / `--version` output) that `exit()` prints with its exit code.
pub fn parse<P, I, T>(argv: I, unused: Unused<'_>) -> Result<P, clap::Error>
where
    P: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = P::command();
    // Built first, so the global options are in every subcommand and can be hidden there.
    command.build();
    for (name, ids) in unused {
        command = command.mut_subcommand(name, |sub| hide(sub, ids));
    }
    let matches = command.try_get_matches_from_mut(argv)?;
    if let Some((name, _)) = matches.subcommand() {
        let ids = unused
            .iter()
            .find(|(sub, _)| *sub == name)
            .map_or(&[][..], |(_, ids)| *ids);
        let given = command.get_arguments().find(|arg| {
            ids.contains(&arg.get_id().as_str())
                && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        });
        if let Some(arg) = given {
            let long = arg.get_long().unwrap_or_default();
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                format!("--{long} does nothing with `{name}`: leave it out"),
            ));
        }
        let stray = command.get_arguments().find(|arg| {
            !arg.is_global_set()
                && matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        });
        if let Some(arg) = stray {
            let what = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => "a prompt".to_owned(),
            };
            return Err(command.error(
                ErrorKind::ArgumentConflict,
                format!(
                    "{what} does not go with `{name}` (a prompt that is a command's name goes \
                     after `--`: oy3o -- {name})"
                ),
            ));
        }
    }
    P::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// `command` (and its own subcommands) with the options `ids` left out of the help.
fn hide(command: clap::Command, ids: &[&str]) -> clap::Command {
    let command = command.mut_args(|arg| {
        if ids.contains(&arg.get_id().as_str()) {
            arg.hide(true)
        } else {
            arg
        }
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| hide(sub, ids))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Args, Command};

    fn args(argv: &[&str]) -> Args {
        let argv: Vec<&str> = std::iter::once("oy3o")
            .chain(argv.iter().copied())
            .collect();
        match parse::<Args, _, _>(argv.clone(), crate::UNUSED_OPTIONS) {
            Ok(args) => args,
            Err(e) => panic!("{argv:?} did not parse: {e}"),
        }
    }

    fn refused(argv: &[&str]) -> clap::Error {
        let argv: Vec<&str> = std::iter::once("oy3o")
            .chain(argv.iter().copied())
            .collect();
        match parse::<Args, _, _>(argv.clone(), crate::UNUSED_OPTIONS) {
            Ok(args) => panic!("{argv:?} parsed as {args:?}"),
            Err(e) => e,
        }
    }

    /// The options given before the subcommand parse exactly as when given after it.
    fn same_before_and_after(global: &[&str], subcommand: &[&str]) -> Args {
        let before = args(&[global, subcommand].concat());
        let (name, rest) = subcommand.split_first().expect("a subcommand");
        let after = args(&[&[*name][..], global, rest].concat());
        assert_eq!(format!("{before:?}"), format!("{after:?}"));
        assert!(before.prompt.is_none(), "{before:?}");
        before
    }

    #[test]
    fn options_before_serve_apply_to_serve() {
        let a = same_before_and_after(&["--config", "oy3o.toml"], &["serve"]);
        assert!(matches!(a.command, Some(Command::Serve(_))));
        assert_eq!(a.common.config.as_deref(), Some("oy3o.toml".as_ref()));
    }

    #[test]
    fn options_before_log_apply_to_log() {
        let a = same_before_and_after(&["--store", "none"], &["log", "-n", "3"]);
        assert!(matches!(a.command, Some(Command::Log(_))));
        assert_eq!(a.common.store.as_deref(), Some("none"));
    }

    #[test]
    fn options_before_chats_apply_to_chats() {
        let a = same_before_and_after(&["--store=sqlite:x.db"], &["chats"]);
        assert!(matches!(a.command, Some(Command::Chats)));
        assert_eq!(a.common.store.as_deref(), Some("sqlite:x.db"));
    }

    #[test]
    fn options_before_chain_apply_to_chain() {
        let a = same_before_and_after(
            &["--proxy", "socks5h://127.0.0.1:1080"],
            &["chain", "c.toml"],
        );
        assert!(matches!(a.command, Some(Command::Chain { .. })));
        assert_eq!(a.common.proxy.as_deref(), Some("socks5h://127.0.0.1:1080"));
    }

    #[test]
    fn options_before_pull_apply_to_pull() {
        let a = same_before_and_after(&["--config", "c.toml"], &["pull", "smollm2"]);
        assert!(matches!(a.command, Some(Command::Pull { ref name }) if name == "smollm2"));
    }

    #[test]
    fn options_before_models_apply_to_models() {
        let a = same_before_and_after(&["--key", "sk-x", "--config", "c.toml"], &["models"]);
        assert!(matches!(a.command, Some(Command::Models)));
        assert_eq!(a.common.key.as_deref(), Some("sk-x"));
    }

    #[test]
    fn options_before_mcp_apply_to_mcp() {
        let a = same_before_and_after(&["--config", "c.toml"], &["mcp", "--json"]);
        assert!(matches!(a.command, Some(Command::Mcp { json: true })));
        assert_eq!(a.common.config.as_deref(), Some("c.toml".as_ref()));
        let e = refused(&["--model", "x", "mcp"]);
        assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn an_option_a_subcommand_has_no_use_for_is_refused_before_or_after_it() {
        for argv in [
            &["models", "--model", "foo"][..],
            &["--model", "foo", "models"],
            &["log", "--proxy", "http://p:1"],
            &["pull", "--store", "none"],
            &["config", "path", "--model", "x"],
        ] {
            let e = refused(argv);
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{argv:?}");
            assert!(e.to_string().contains("does nothing with"), "{e}");
            assert_eq!(e.exit_code(), 2);
        }
    }

    #[test]
    fn a_subcommands_help_lists_only_the_options_it_uses() {
        let help = |argv: &[&str]| {
            let argv: Vec<&str> = std::iter::once("oy3o")
                .chain(argv.iter().copied())
                .collect();
            match parse::<Args, _, _>(argv, crate::UNUSED_OPTIONS) {
                Err(e) if e.kind() == ErrorKind::DisplayHelp => e.to_string(),
                other => panic!("no help: {other:?}"),
            }
        };
        let models = help(&["models", "--help"]);
        assert!(
            !models.contains("--model") && !models.contains("--proxy"),
            "{models}"
        );
        assert!(
            models.contains("--config") && models.contains("--key"),
            "{models}"
        );
        let log = help(&["log", "--help"]);
        assert!(
            log.contains("--store") && !log.contains("--context"),
            "{log}"
        );
        let path = help(&["config", "path", "--help"]);
        assert!(
            !path.contains("--store") && path.contains("--config"),
            "{path}"
        );
        let chain = help(&["chain", "--help"]);
        for option in ["--model", "--context", "--key", "--proxy", "--store"] {
            assert!(chain.contains(option), "{chain}");
        }
    }

    #[test]
    fn options_before_config_apply_to_config() {
        let a = same_before_and_after(&["--config", "c.toml"], &["config", "path"]);
        assert!(matches!(a.command, Some(Command::Config { .. })));
        assert_eq!(a.common.config.as_deref(), Some("c.toml".as_ref()));
    }

    #[test]
    fn a_prompt_with_options_is_still_a_prompt() {
        let a = args(&["--model", "openai", "What is 1+1?", "--no-stream"]);
        assert!(a.command.is_none());
        assert_eq!(a.prompt.as_deref(), Some("What is 1+1?"));
        assert_eq!(a.common.model.as_deref(), Some("openai"));
    }

    #[test]
    fn a_prompt_named_like_a_command_goes_after_a_double_dash() {
        let a = args(&["--store", "none", "--", "log"]);
        assert!(a.command.is_none());
        assert_eq!(a.prompt.as_deref(), Some("log"));
    }

    #[test]
    fn a_prompt_or_an_answer_option_with_a_subcommand_is_a_usage_error() {
        for argv in [
            &["hello", "log"][..],
            &["--chat", "work", "log"],
            &["--no-stream", "serve"],
            &["--load", "s.json", "chats"],
        ] {
            let e = refused(argv);
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{argv:?}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
