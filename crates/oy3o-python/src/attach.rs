//! Attachments from Python: the package normalizes `attachments=[...]` (paths, URLs, bytes,
//! `(bytes, mime)`, dicts) into `(kind, value, mime, name)` tuples, and this turns them into
//! parts through the engine's loader ([`oy3o::attachment::load_all`]), so Python checks and
//! names attachments as every other face does.

use oy3o::attachment::{Input, Origin};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert;

/// One attachment as the package sends it: `("path" | "url" | "bytes", value, mime, name)`.
pub type Raw<'py> = (String, Bound<'py, PyAny>, Option<String>, Option<String>);

/// The prompt as a user message: its text, then the attachments loaded under `limits` (the
/// config's `[attachments]`). An error (the engine's exception class) names the attachment by its
/// index (`attachments[1]`); nothing is sent.
pub fn message(
    prompt: String,
    raw: Vec<Raw<'_>>,
    limits: &oy3o::attachment::Limits,
) -> PyResult<oy3o::Message> {
    let mut message = oy3o::Message::user(prompt);
    if raw.is_empty() {
        return Ok(message);
    }
    let inputs = raw
        .into_iter()
        .enumerate()
        .map(|(i, (kind, value, mime, name))| {
            let origin = match kind.as_str() {
                "path" => Origin::Path(value.extract::<std::path::PathBuf>()?),
                "url" => Origin::Url(value.extract::<String>()?),
                "bytes" => Origin::Bytes(value.cast::<PyBytes>()?.as_bytes().to_vec()),
                other => {
                    return Err(convert::to_py_err(oy3o::Error::new(
                        oy3o::ErrorCode::BadRequest,
                        format!("attachments[{i}]: unknown kind {other:?}"),
                    )));
                }
            };
            Ok(Input { origin, mime, name })
        })
        .collect::<PyResult<Vec<Input>>>()?;
    let parts = oy3o::attachment::load_all(&inputs, limits, |i| format!("attachments[{i}]"))
        .map_err(convert::to_py_err)?;
    message.parts.extend(parts);
    Ok(message)
}
