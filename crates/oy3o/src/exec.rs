//! One-off prompts: [`exec`] streams, [`exec_once`] waits. No history is kept.

use crate::chat::Chat;
use crate::config::{Config, Options, Target};
use crate::error::{Error, Result};
use crate::listener::Listeners;
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
    exec_on(
        prompt,
        context,
        config.resolve_all(model).as_deref(),
        &config.listeners,
        &Options::default(),
    )
}

/// [`exec`] on models already resolved (or the error resolving them gave): what the task
/// runner calls with its per-model cache, so a stage of 100 tasks on one model resolves it
/// once. `listeners` hear a resolution failure; `options` apply to this turn only.
pub(crate) fn exec_on(
    prompt: &str,
    context: Option<&str>,
    targets: std::result::Result<&[Target], &Error>,
    listeners: &Listeners,
    options: &Options,
) -> Reply {
    let targets = match targets {
        Ok(t) => t,
        Err(e) => return Reply::failed(e.clone(), listeners.clone()),
    };
    let chat = match Chat::open_targets(targets) {
        Ok(c) => c,
        Err(e) => {
            let listeners = targets.first().map_or(listeners, |t| &t.listeners);
            return Reply::failed(e, listeners.clone());
        }
    };
    if let Some(context) = context {
        chat.update(context);
    }
    chat.send_with(prompt, options)
}

/// Like [`exec`], waiting for the whole answer. Providers that can answer in one piece are
/// asked to ([`Options::whole`]); listeners hear the same events as with [`exec`].
pub async fn exec_once(
    prompt: &str,
    context: Option<&str>,
    model: Option<&str>,
    config: &Config,
) -> Result<String> {
    let whole = Options {
        whole: true,
        ..Options::default()
    };
    exec_on(
        prompt,
        context,
        config.resolve_all(model).as_deref(),
        &config.listeners,
        &whole,
    )
    .text()
    .await
}
