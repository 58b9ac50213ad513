//! Conversions between Python-side JSON and engine types, and engine errors to Python.

use std::path::Path;

use pyo3::PyErr;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use serde_json::{Value, json};

use crate::queue::Item;

/// The config the Python package sends: the engine's JSON file form.
pub fn config(json_text: &str) -> Result<oy3o::Config, oy3o::Error> {
    oy3o::Config::parse_file(json_text, Path::new("<oy3opy config>.json"))
}

/// An engine error for Python: the package raises the matching exception class from the
/// `("error", code, message)` item; this is for errors raised directly.
pub fn to_py_err(e: oy3o::Error) -> PyErr {
    match e.code() {
        oy3o::ErrorCode::Config | oy3o::ErrorCode::NotFound => {
            PyValueError::new_err(format!("[{}] {}", e.code(), e.message()))
        }
        _ => PyRuntimeError::new_err(format!("[{}] {}", e.code(), e.message())),
    }
}

/// An engine error as a queue item.
pub fn error_item(e: &oy3o::Error) -> Item {
    (
        "error",
        e.code().as_str().to_owned(),
        e.message().to_owned(),
    )
}

/// An engine event as a queue item.
pub fn event_item(e: &oy3o::Event) -> Item {
    ("event", e.name().to_owned(), e.message().to_string())
}

/// One task result as JSON.
pub fn task_result(r: &oy3o::TaskResult) -> Value {
    json!({
        "index": r.index,
        "response": r.response,
        "error": r.error.as_ref().map(|e| json!({"code": e.code(), "message": e.message()})),
        "usage": r.usage,
        "elapsed_ms": r.elapsed.as_millis() as u64,
    })
}
