//! `oy3opy._native`: the Rust side of the `oy3opy` Python package.
//!
//! Design rule (see `shared/DEPS.md`, pyo3-async-runtimes#40): **Rust threads never call into
//! Python.** Engine streams run on a private tokio runtime and push plain items into a
//! [`queue::Queue`]; the Python side takes them on its own thread — blocking with the GIL
//! released for `for` loops, or woken through a socket registered with the asyncio loop
//! (`loop.add_reader`) for `async for`. Listeners therefore run in Python, on the consumer's
//! thread, in stream order, and so do the Python functions given as tools ([`tools`]: the
//! engine's tool call waits for the consumer to run them). The Python package (`python/oy3opy`) holds the public names.

mod attach;
mod chat;
mod controls;
mod conversations;
mod convert;
mod mcp;
mod queue;
mod runtime;
mod server;
mod stream;
mod tools;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<stream::Stream>()?;
    m.add_class::<chat::NativeChat>()?;
    m.add_class::<server::ServerHandle>()?;
    m.add_function(wrap_pyfunction!(server::serve, m)?)?;
    m.add_function(wrap_pyfunction!(chat::open_chat, m)?)?;
    m.add_function(wrap_pyfunction!(stream::exec, m)?)?;
    m.add_function(wrap_pyfunction!(stream::exec_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(stream::exec_tasks_chain, m)?)?;
    m.add_function(wrap_pyfunction!(stream::lookup_keys, m)?)?;
    m.add_function(wrap_pyfunction!(events, m)?)?;
    m.add_function(wrap_pyfunction!(event_names, m)?)?;
    m.add_function(wrap_pyfunction!(unload_local_models, m)?)?;
    m.add_function(wrap_pyfunction!(mcp::close_mcp_servers, m)?)?;
    Ok(())
}

/// Unloads the local models, ending the answers they are still generating, and waits up to
/// 5 s for their threads (the GIL released); true when none is left running. The package calls
/// it at interpreter exit (`atexit`): a model thread still decoding while the process tears
/// llama.cpp down crashes the interpreter.
#[pyfunction]
fn unload_local_models(py: Python<'_>) -> bool {
    py.detach(|| oy3o::providers::unload_local_models(std::time::Duration::from_secs(5)))
}

/// The event names a model's provider can emit.
#[pyfunction]
fn events(model: &str) -> PyResult<Vec<&'static str>> {
    oy3o::events(model).map_err(convert::to_py_err)
}

/// Every event name any provider can emit (to tell a misspelled listener name).
#[pyfunction]
fn event_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for provider in oy3o::providers::names() {
        for name in oy3o::events(provider).unwrap_or_default() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}
