//! Copilot's proof-of-work challenges (`shared/wire/COPILOT.md` §A.9, after sums001's
//! `copilot/challenges.py`): `hashcash` and `copilot` can be computed; `cloudflare` and a `null`
//! method need a browser, so the user must refresh the cookies.

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};

/// The hardest hashcash accepted: about 2^24 hashes, well under a second. A harder one is a
/// sign of a changed protocol, not something to burn a CPU on.
const MAX_DIFFICULTY: u32 = 24;

/// The answer to a challenge, or an error saying what the user must do.
pub(super) fn solve(method: Option<&str>, parameter: &serde_json::Value) -> Result<String> {
    match method {
        Some("hashcash") => {
            let text = parameter.as_str().unwrap_or_default();
            let (seed, difficulty) = text
                .rsplit_once(':')
                .and_then(|(seed, d)| Some((seed, d.trim().parse::<u32>().ok()?)))
                .ok_or_else(|| unreadable("hashcash", text))?;
            if difficulty > MAX_DIFFICULTY {
                return Err(Error::provider(format!(
                    "Copilot asked for a hashcash proof of difficulty {difficulty}, more than the \
                     {MAX_DIFFICULTY} this client computes; the protocol may have changed: update oy3o"
                )));
            }
            Ok(hashcash(seed, difficulty).to_string())
        }
        Some("copilot") => {
            let a = match parameter {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .ok_or_else(|| unreadable("copilot", &parameter.to_string()))?;
            Ok(format!("{}", copilot(a)))
        }
        Some("cloudflare") | None => Err(clearance_needed(method.unwrap_or("null"))),
        Some(other) => Err(Error::provider(format!(
            "Copilot asked for a challenge of an unknown kind ({other}); the protocol may have \
             changed: update oy3o"
        ))),
    }
}

/// The error for a challenge only a browser can pass.
fn clearance_needed(method: &str) -> Error {
    Error::new(
        ErrorCode::Auth,
        format!(
            "Copilot asked for a browser check (challenge method {method}): the cf_clearance \
             cookie is missing or stale, or the network looks like a data centre or VPN. Open \
             copilot.microsoft.com in the browser you exported the cookies from, send one message \
             there, export the cookies again (cf_clearance lasts about 30 minutes and only works \
             with that browser's user agent: set it with headers.User-Agent in [providers.bing]) \
             and retry"
        ),
    )
}

fn unreadable(method: &str, parameter: &str) -> Error {
    Error::provider(format!(
        "Copilot sent a {method} challenge this client cannot read ({}); the protocol may have \
         changed: update oy3o",
        parameter.chars().take(80).collect::<String>()
    ))
}

/// The smallest `n` such that SHA-256(seed ‖ decimal(n)) starts with `difficulty` zero bits.
pub fn hashcash(seed: &str, difficulty: u32) -> u64 {
    let prefix = Sha256::new_with_prefix(seed.as_bytes());
    (0u64..)
        .find(|n| {
            let digest = prefix
                .clone()
                .chain_update(n.to_string().as_bytes())
                .finalize();
            leading_zero_bits(&digest) >= difficulty
        })
        .unwrap_or(0)
}

/// Counts the zero bits at the start of `bytes`.
pub fn leading_zero_bits(bytes: &[u8]) -> u32 {
    let mut bits = 0;
    for b in bytes {
        if *b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

/// round(((a³ / 100 + 25·a) mod 22)).
pub fn copilot(a: f64) -> i64 {
    ((a.powi(3) / 100.0 + 25.0 * a).rem_euclid(22.0)).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashcash_finds_the_smallest_nonce_with_enough_zero_bits() {
        let n = hashcash("seed", 8);
        let digest = Sha256::digest(format!("seed{n}").as_bytes());
        assert!(leading_zero_bits(&digest) >= 8);
        for smaller in 0..n {
            let d = Sha256::digest(format!("seed{smaller}").as_bytes());
            assert!(leading_zero_bits(&d) < 8, "{smaller} would do");
        }
        assert_eq!(
            solve(Some("hashcash"), &serde_json::json!("seed:8")).unwrap(),
            n.to_string()
        );
    }

    #[test]
    fn the_copilot_puzzle_is_the_formula_of_the_public_client() {
        // (1000/100 + 250) mod 22 = 260 mod 22 = 18.
        assert_eq!(copilot(10.0), 18);
        assert_eq!(
            solve(Some("copilot"), &serde_json::json!("10")).unwrap(),
            "18"
        );
    }

    #[test]
    fn browser_only_challenges_are_auth_errors_naming_cf_clearance() {
        for method in [None, Some("cloudflare")] {
            let e = solve(method, &serde_json::Value::Null).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Auth);
            assert!(e.message().contains("cf_clearance"), "{}", e.message());
        }
        assert!(solve(Some("hashcash"), &serde_json::json!("s:60")).is_err());
    }
}
