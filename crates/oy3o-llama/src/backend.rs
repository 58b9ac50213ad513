//! The process-wide llama.cpp setup: the backend (initialised once per process) and its log.
//!
//! llama.cpp writes a lot to stderr, which would tear a terminal UI. Its log is silenced unless
//! `OY3O_LLAMA_LOG=1` is set; error lines are kept per thread so a failed load can say why.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2::{GGML_LOG_LEVEL_CONT, GGML_LOG_LEVEL_ERROR, ggml_log_level};

use crate::error::LlamaError;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Longest error text kept per thread.
const MAX_ERRORS: usize = 2000;

thread_local! {
    static ERRORS: RefCell<(String, bool)> = const { RefCell::new((String::new(), false)) };
}

/// The llama.cpp backend, initialised on first use.
pub(crate) fn backend() -> Result<&'static LlamaBackend, LlamaError> {
    BACKEND
        .get_or_init(|| {
            let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            let verbose =
                std::env::var_os("OY3O_LLAMA_LOG").is_some_and(|v| !v.is_empty() && v != "0");
            VERBOSE.store(verbose, Ordering::Relaxed);
            // SAFETY: `on_log` is a plain function that never unwinds and ignores `user_data`.
            unsafe { llama_cpp_sys_2::llama_log_set(Some(on_log), std::ptr::null_mut()) };
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| LlamaError::Backend(e.clone()))
}

/// Forgets the error lines llama.cpp logged on this thread so far.
pub(crate) fn clear_errors() {
    let _ = ERRORS.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.0.clear();
            e.1 = false;
        }
    });
}

/// The error lines llama.cpp logged on this thread since [`clear_errors`], joined into one line.
pub(crate) fn take_errors() -> String {
    ERRORS
        .try_with(|e| match e.try_borrow_mut() {
            Ok(mut e) => {
                let text = e.0.split_whitespace().collect::<Vec<_>>().join(" ");
                e.0.clear();
                text
            }
            Err(_) => String::new(),
        })
        .unwrap_or_default()
}

unsafe extern "C" fn on_log(level: ggml_log_level, text: *const c_char, _user_data: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the duration of the call.
    let bytes = unsafe { CStr::from_ptr(text) }.to_bytes();
    if VERBOSE.load(Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(bytes);
    }
    let _ = ERRORS.try_with(|e| {
        let Ok(mut e) = e.try_borrow_mut() else {
            return;
        };
        let is_error = level == GGML_LOG_LEVEL_ERROR || (level == GGML_LOG_LEVEL_CONT && e.1);
        e.1 = is_error;
        if is_error && e.0.len() < MAX_ERRORS {
            e.0.push_str(&String::from_utf8_lossy(bytes));
        }
    });
}
