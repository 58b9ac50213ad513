//! One-off prompts: [`exec`] streams, [`exec_once`] waits. No history is kept.

use crate::chat::Chat;
use crate::config::Config;
use crate::error::Result;
use crate::reply::Reply;

/// Sends one prompt with an optional context to `model` (or the config's default) and streams
/// the answer. A resolution failure (unknown model, missing key) comes out of the stream as
/// its first item and reaches the `error` listeners. An alias with fallbacks tries its models
/// in order (see [`Chat::open_targets`]).
///
/// ```no_run
/// # async fn demo() -> oy3o::Result<()> {
/// use futures::StreamExt;
/// let mut reply = oy3o::exec("hello", Some("Be brief."), None, &oy3o::Config::default());
/// while let Some(chunk) = reply.next().await {
///     print!("{}", chunk?);
/// }
/// # Ok(()) }
/// ```
pub fn exec(prompt: &str, context: Option<&str>, model: Option<&str>, config: &Config) -> Reply {
    let targets = match config.resolve_all(model) {
        Ok(t) => t,
        Err(e) => return Reply::failed(e, config.listeners.clone()),
    };
    let chat = match Chat::open_targets(&targets) {
        Ok(c) => c,
        Err(e) => {
            let listeners = targets.first().map_or(&config.listeners, |t| &t.listeners);
            return Reply::failed(e, listeners.clone());
        }
    };
    if let Some(context) = context {
        chat.update(context);
    }
    chat.send(prompt)
}

/// Like [`exec`], waiting for the whole answer.
pub async fn exec_once(
    prompt: &str,
    context: Option<&str>,
    model: Option<&str>,
    config: &Config,
) -> Result<String> {
    exec(prompt, context, model, config).text().await
}
