//! The names models see for MCP tools. MCP allows 1–128 of `[A-Za-z0-9_.-]` (the MCP
//! specification, 2025-11-25, server/tools "Tool Names"); OpenAI and Anthropic take only 1–64
//! of `[A-Za-z0-9_-]` (see `docs/DESIGN.md`, MCP). A tool `get_time` of the
//! server `time` is offered as `time__get_time`: other characters become `_`, and a name over
//! 64 characters, or one that two tools would share, is cut and ends in a short hash of the
//! real `server.tool` name. The registry keeps the real name to call back.

use sha2::{Digest, Sha256};

/// Between the server's name and the tool's in a model-side name.
pub const SEPARATOR: &str = "__";

/// The longest name every provider takes.
const MAX: usize = 64;

/// Hex digits of the hash that ends a cut or disambiguated name.
const HASH_DIGITS: usize = 8;

/// The model-side names of `tools` (`(server, tool)` pairs), in their order: unique, and each
/// 1–64 of `[A-Za-z0-9_-]`.
///
/// ```
/// use oy3o::mcp::model_names;
/// let names = model_names(&[("time", "get_current_time"), ("admin", "tools.list")]);
/// assert_eq!(names, ["time__get_current_time", "admin__tools_list"]);
/// ```
pub fn model_names(tools: &[(&str, &str)]) -> Vec<String> {
    let plain: Vec<String> = tools.iter().map(|(s, t)| plain(s, t)).collect();
    plain
        .iter()
        .zip(tools)
        .map(|(name, (server, tool))| {
            let shared = plain.iter().filter(|other| *other == name).count() > 1;
            if shared || name.len() > MAX {
                hashed(name, server, tool)
            } else {
                name.clone()
            }
        })
        .collect()
}

/// `server__tool` with every character outside `[A-Za-z0-9_-]` made `_`.
fn plain(server: &str, tool: &str) -> String {
    format!("{server}{SEPARATOR}{tool}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `name` cut to leave room for `_` and a hash of the real `server.tool`.
fn hashed(name: &str, server: &str, tool: &str) -> String {
    let digest = Sha256::digest(format!("{server}.{tool}").as_bytes());
    let hex: String = digest
        .iter()
        .take(HASH_DIGITS / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    // `name` is ASCII by now, so any byte index is a character boundary.
    let keep = name.len().min(MAX - 1 - HASH_DIGITS);
    format!("{}_{hex}", &name[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolSpec;

    fn valid(name: &str) -> bool {
        ToolSpec {
            name: name.into(),
            description: None,
            parameters: None,
            strict: None,
        }
        .check()
        .is_ok()
    }

    #[test]
    fn dots_and_other_characters_become_underscores() {
        assert_eq!(model_names(&[("git", "git.log/x")]), ["git__git_log_x"]);
        assert_eq!(model_names(&[("a-b", "c-d")]), ["a-b__c-d"]);
    }

    #[test]
    fn a_long_name_is_cut_to_64_with_a_hash_of_the_real_name() {
        let long = "x".repeat(100);
        let other = format!("{long}y");
        let names = model_names(&[("srv", &long), ("srv", &other)]);
        assert_eq!(names[0].len(), 64);
        assert!(names[0].starts_with("srv__xxx"), "{}", names[0]);
        assert_ne!(names[0], names[1], "the hash tells them apart");
        assert!(names.iter().all(|n| valid(n)), "{names:?}");
        // The same tool always gets the same name.
        assert_eq!(model_names(&[("srv", &long)])[0], names[0]);
    }

    #[test]
    fn names_that_would_clash_each_get_a_hash() {
        let names = model_names(&[("s", "a.b"), ("s", "a_b"), ("s", "c")]);
        assert_ne!(names[0], names[1]);
        assert!(names[0].starts_with("s__a_b_") && names[0].len() == 7 + HASH_DIGITS);
        assert_eq!(names[2], "s__c");
        assert!(names.iter().all(|n| valid(n)), "{names:?}");
    }
}
