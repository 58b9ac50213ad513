//! Checks a model file against its catalog size and SHA-256. A file that passed gets a small
//! `<file>.verified` marker holding its size, modification time and hash, so later starts skip
//! hashing it again until the file changes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::catalog::CatalogModel;

/// Checks the file in place, using (and refreshing) its marker.
pub(super) async fn check(path: &Path, model: &CatalogModel) -> Result<(), String> {
    if marker_matches(path, model) {
        return Ok(());
    }
    check_part(path, model).await?;
    mark(path, model);
    Ok(())
}

/// Checks size, then SHA-256 (hashed on a blocking thread).
pub(super) async fn check_part(path: &Path, model: &CatalogModel) -> Result<(), String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size != model.size {
        return Err(format!(
            "got {size} bytes, expected {} (incomplete or wrong file)",
            model.size
        ));
    }
    let owned = path.to_path_buf();
    let hash = tokio::task::spawn_blocking(move || sha256_file(&owned))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if hash != model.sha256 {
        return Err(format!(
            "SHA-256 is {hash}, expected {} (corrupt or wrong file)",
            model.sha256
        ));
    }
    Ok(())
}

/// Records that `path` passed the check.
pub(super) fn mark(path: &Path, model: &CatalogModel) {
    if let Some(stamp) = stamp(path, model) {
        // Only an optimisation: without the marker the file is hashed again next time.
        let _ = std::fs::write(marker_path(path), stamp);
    }
}

/// Deletes a file and its marker, ignoring files that are not there.
pub(super) fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(marker_path(path));
}

fn marker_matches(path: &Path, model: &CatalogModel) -> bool {
    match (
        stamp(path, model),
        std::fs::read_to_string(marker_path(path)),
    ) {
        (Some(expected), Ok(found)) => expected == found,
        _ => false,
    }
}

/// `size mtime sha256`: any change to the file changes its size or modification time.
fn stamp(path: &Path, model: &CatalogModel) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format!(
        "{} {}.{:09} {}\n",
        meta.len(),
        mtime.as_secs(),
        mtime.subsec_nanos(),
        model.sha256
    ))
}

fn marker_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".verified");
    path.with_file_name(name)
}

/// The SHA-256 of a file, lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_known_input() {
        let dir = std::env::temp_dir().join(format!("oy3o-llama-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_marker_sits_beside_the_file() {
        assert_eq!(
            marker_path(Path::new("/x/m.gguf")),
            PathBuf::from("/x/m.gguf.verified")
        );
    }
}
