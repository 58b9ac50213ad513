//! Whether a model file's own chat template shows tools, read from the GGUF's metadata without
//! loading the model (so a chat can refuse tools before anything runs).

use std::path::Path;

use llama_cpp_2::gguf::GgufContext;

use crate::template::{CHATML_TEMPLATE, ChatTemplate};

/// The GGUF metadata key of the chat template
/// (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md#prompting>).
const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// Whether the chat template in the GGUF file at `path` shows tools
/// ([`ChatTemplate::takes_tools`]); `None` when the file cannot be read as GGUF. A file without
/// a template is answered with ChatML, which has none.
pub fn file_takes_tools(path: &Path) -> Option<bool> {
    // ggml prints its own complaint about a missing file; there is nothing to read anyway.
    if !path.is_file() {
        return None;
    }
    let gguf = GgufContext::from_file(path)?;
    let index = gguf.find_key(CHAT_TEMPLATE_KEY);
    let source = if index < 0 {
        CHATML_TEMPLATE
    } else if gguf.kv_type(index) == llama_cpp_sys_2::GGUF_TYPE_STRING {
        // Reading a value of another type as a string would abort inside ggml.
        gguf.val_str(index)?
    } else {
        return None;
    };
    Some(ChatTemplate::new(source).is_ok_and(|t| t.takes_tools()))
}
