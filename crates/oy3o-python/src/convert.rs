//! Conversions between Python-side JSON and engine types, and engine errors to Python.

use std::path::Path;

use pyo3::prelude::*;
use serde_json::{Value, json};

use crate::queue::Item;

/// The config in force for a call: the layers the Python package sends (the global config
/// first, then each per-call one, in the engine's JSON file form), parsed and merged field by
/// field by the engine ([`oy3o::Config::overlay`]).
pub fn config(layers: &[String]) -> Result<oy3o::Config, oy3o::Error> {
    let mut merged = oy3o::Config::default();
    for (i, text) in layers.iter().enumerate() {
        let name = if i == 0 { "config" } else { "per-call config" };
        let layer = oy3o::Config::parse_file(text, Path::new(&format!("<oy3opy {name}>.json")))?;
        merged = merged.overlay(&layer);
    }
    Ok(merged)
}

/// An engine error as the matching exception of `oy3opy.ai.errors` (a real Python class with a
/// `.code`, subclassing the standard exception it stands for).
pub fn to_py_err(e: oy3o::Error) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("oy3opy.ai.errors")
            .and_then(|m| m.getattr("error_for"))
            .and_then(|f| f.call1((e.code().as_str(), e.message())));
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        }
    })
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
