//! Resumable HTTP download into a `.part` file: an existing part is continued with a `Range`
//! request; a server that ignores the range gets the download restarted.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::io::AsyncWriteExt;

use super::error_chain;

/// Unreachable hosts fail fast: offline, DNS fails at once and a dead route within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A stalled transfer is given up after this long without a byte.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Downloads `url` into `part` (continuing it when it holds a prefix). Returns whether an
/// existing part was continued, so a failed check can retry from the start.
pub(super) async fn fetch(
    url: &str,
    part: &Path,
    expected: u64,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<bool, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(concat!("oy3o-llama/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| error_chain(&e))?;

    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have >= expected {
        // Longer than the file can be: it is not a prefix of it.
        let _ = std::fs::remove_file(part);
        have = 0;
    }
    let mut request = client.get(url);
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let mut response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    let resumed = if status == StatusCode::PARTIAL_CONTENT && have > 0 {
        let starts_at_have = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(&format!("bytes {have}-")));
        if !starts_at_have {
            return Err("the server answered the resume request with the wrong range".into());
        }
        true
    } else if status == StatusCode::RANGE_NOT_SATISFIABLE {
        let _ = std::fs::remove_file(part);
        return Err(
            "the server refused to resume the partial download (deleted it; try again)".into(),
        );
    } else if status.is_success() {
        have = 0;
        false
    } else {
        return Err(format!("HTTP {status}"));
    };

    let total = response.content_length().map(|n| n + have);
    if let Some(total) = total.filter(|&t| t != expected) {
        return Err(format!(
            "the server offers {total} bytes, expected {expected} (wrong file?)"
        ));
    }
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .await
        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    let mut downloaded = have;
    progress(downloaded, total.or(Some(expected)));
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        downloaded += chunk.len() as u64;
        progress(downloaded, total.or(Some(expected)));
        if downloaded > expected {
            return Err(format!(
                "the server sent more than the expected {expected} bytes"
            ));
        }
    }
    file.flush()
        .await
        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    Ok(resumed)
}
