//! [`Chat`]: a conversation with one model (or an alias's fallbacks), with context and history.

use futures::StreamExt;

use crate::attachment::{self, Capabilities, Limits};
use crate::config::{Config, Options, Target};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::fallback::FallbackSession;
use crate::listener::Listeners;
use crate::message::{Message, Part, Source};
use crate::provider::Session;
use crate::reply::Reply;

/// A conversation with one model: `update` the context, `send` prompts, `close` it.
///
/// ```no_run
/// # async fn demo() -> oy3o::Result<()> {
/// use futures::StreamExt;
/// let chat = oy3o::Chat::open(Some("openai:gpt-4o-mini"), &oy3o::Config::default())?;
/// chat.update("current time: 2024-05-20 00:00:00");
/// let mut reply = chat.send("what is the time on page?");
/// while let Some(chunk) = reply.next().await {
///     print!("{}", chunk?);
/// }
/// println!("{}", chat.send_once("and tomorrow?").await?);
/// chat.close();
/// # Ok(()) }
/// ```
pub struct Chat {
    model: String,
    /// What each model of the chat can take, in order, named by its reference; tools only
    /// when every model takes them (a turn may land on any).
    can: Vec<(String, Capabilities)>,
    /// The request controls each model of the chat takes, named by its reference.
    controls: Vec<(String, crate::controls::Controls)>,
    /// Attachment size limits, and how to fetch a URL a model cannot fetch itself.
    attachments: Limits,
    proxy: Option<String>,
    connect_timeout: std::time::Duration,
    session: std::sync::Arc<dyn Session>,
    listeners: Listeners,
    options: Options,
}

impl Chat {
    /// Opens a chat with `model` (or the config's default), using the config's context,
    /// credential, proxy and listeners for that model. Fires `create`. An alias that lists
    /// fallbacks gives a chat that moves a turn to the next model when one fails before
    /// answering ([`Chat::open_targets`]).
    pub fn open(model: Option<&str>, config: &Config) -> Result<Chat> {
        let targets = config.resolve_all(model)?;
        Self::open_targets(&targets)
    }

    /// Opens a chat for an already resolved target.
    pub fn open_target(target: &Target) -> Result<Chat> {
        Self::open_targets(std::slice::from_ref(target))
    }

    /// Opens a chat over models tried in order on every turn (as [`Config::resolve_all`]
    /// gives them): a model that fails before its answer starts with a rate limit, a server
    /// error, a network error or a timeout (after its own retries) hands the turn, with the
    /// conversation so far, to the next, and a `retry` event names both. A failure after the
    /// answer started is the turn's error. The first target's listeners and options apply.
    pub fn open_targets(targets: &[Target]) -> Result<Chat> {
        // With fallbacks, every model must take tools: a turn may land on any of them.
        let tools = targets.iter().all(|t| t.provider.takes_tools(t));
        let can: Vec<Capabilities> = targets
            .iter()
            .map(|t| Capabilities {
                tools,
                ..t.provider.capabilities(t)
            })
            .collect();
        let (target, session): (&Target, Box<dyn Session>) = match targets {
            [] => return Err(Error::config("no model to open a chat with")),
            [only] => (only, only.provider.open(only)?),
            [first, ..] => (
                first,
                Box::new(FallbackSession::open(targets.to_vec(), can.clone())?),
            ),
        };
        let chat = Chat {
            model: target.reference.to_string(),
            can: targets
                .iter()
                .map(|t| t.reference.to_string())
                .zip(can)
                .collect(),
            controls: targets
                .iter()
                .map(|t| (t.reference.to_string(), t.provider.controls(t)))
                .collect(),
            attachments: target.attachments,
            proxy: target.proxy.clone(),
            connect_timeout: target.settings.timeouts().connect,
            session: session.into(),
            listeners: target.listeners.clone(),
            options: target.options.clone(),
        };
        if chat.listeners.wants("create") {
            chat.listeners.emit(&Event::Create {
                model: chat.model.clone(),
            });
        }
        Ok(chat)
    }

    /// The model reference this chat talks to (`openai:gpt-4o-mini`); with fallbacks, the
    /// first one.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Sets the context (system prompt) for the next turns; an empty one clears it. Fires
    /// `update`.
    pub fn update(&self, context: impl Into<String>) {
        let context = context.into();
        if self.listeners.wants("update") {
            self.listeners.emit(&Event::Update {
                context: context.clone(),
            });
        }
        self.session.update(Some(context));
    }

    /// Sends a prompt and streams the answer. The turn joins the history once it completes.
    pub fn send(&self, prompt: impl Into<String>) -> Reply {
        self.send_with(prompt, &Options::default())
    }

    /// Like [`Chat::send`], with options for this turn only.
    pub fn send_with(&self, prompt: impl Into<String>, options: &Options) -> Reply {
        self.send_message(Message::user(prompt), options)
    }

    /// Sends a user message made of parts, with options for this turn only. A part this chat's
    /// model cannot take is an error before anything is sent.
    pub fn send_message(&self, prompt: Message, options: &Options) -> Reply {
        let text = prompt.text().into_owned();
        self.reply(self.deltas(prompt, options), text)
    }

    /// The provider's answer stream for `prompt`, with this chat's options under `options`.
    pub(crate) fn deltas(
        &self,
        prompt: Message,
        options: &Options,
    ) -> crate::provider::DeltaStream {
        let options = self.options.overlay(options);
        let checked = self
            .check_tools(&options)
            .and_then(|()| self.check_controls(&options))
            .and_then(|()| attachment::check_parts(&prompt.parts, &self.attachments));
        if let Err(e) = checked {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        let to_fetch = |part: &Part| self.must_fetch(part);
        if !prompt.parts.iter().any(to_fetch) {
            if let Err(e) = self.fits(std::slice::from_ref(&prompt)) {
                return Box::pin(futures::stream::once(async move { Err(e) }));
            }
            return send(self.session.clone(), prompt, options);
        }
        // Attachment URLs no model of the chat fetches itself are fetched first (and
        // checked like any attachment), then the prompt is checked as always.
        let can = self.can.clone();
        let limits = self.attachments;
        let client = crate::transport::client::shared(self.proxy.as_deref(), self.connect_timeout);
        let session = self.session.clone();
        Box::pin(async_stream::try_stream! {
            let client = client?;
            let fetch_it = |part: &Part| must_fetch(&can, part);
            let prompt = attachment::inline_urls(prompt, fetch_it, &client, &limits).await?;
            fits(&can, std::slice::from_ref(&prompt))?;
            let mut answer = send(session, prompt, options);
            while let Some(delta) = answer.next().await {
                yield delta?;
            }
        })
    }

    /// Whether the chat fetches this attachment URL before sending ([`must_fetch`]).
    fn must_fetch(&self, part: &Part) -> bool {
        must_fetch(&self.can, part)
    }

    /// Whether every model of the chat takes tools.
    fn takes_tools(&self) -> bool {
        self.can.iter().all(|(_, can)| can.tools)
    }

    /// Whether this chat's models can take `options` (tools): refused before anything is
    /// sent, never silently dropped.
    fn check_tools(&self, options: &Options) -> Result<()> {
        if options.toolbox.is_some() && !self.takes_tools() {
            return Err(crate::tool_loop::no_tools(&self.model));
        }
        if let Some(tools) = options.tools.as_deref().filter(|t| !t.specs.is_empty()) {
            if !self.takes_tools() {
                return Err(crate::tool_loop::no_tools(&self.model));
            }
            tools.check()?;
        }
        Ok(())
    }

    /// Whether every model of the chat takes the request controls in `options` (a turn may
    /// land on any): refused before anything is sent, naming the control and the model.
    fn check_controls(&self, options: &Options) -> Result<()> {
        for (reference, can) in &self.controls {
            crate::controls::require(options, reference, can)?;
        }
        Ok(())
    }

    /// Whether one of this chat's models can take `messages` ([`fits`]).
    fn fits(&self, messages: &[Message]) -> Result<()> {
        fits(&self.can, messages)
    }

    /// A reply over `upstream` that reports `send` with `prompt` first.
    pub(crate) fn reply(&self, upstream: crate::provider::DeltaStream, prompt: String) -> Reply {
        Reply::new(
            upstream,
            self.listeners.clone(),
            vec![Event::Send { prompt }],
        )
    }

    /// What the service keeps of this conversation ([`Session::handle`]).
    pub fn handle(&self) -> Option<serde_json::Value> {
        self.session.handle()
    }

    /// Continues a conversation held elsewhere: its provider handle (see [`Chat::handle`]) and
    /// its messages so far ([`Session::resume`]).
    pub fn resume(&self, handle: Option<&serde_json::Value>, history: Vec<Message>) -> Result<()> {
        check_history(&history)?;
        self.fits(&history)?;
        self.session.resume(handle, history)
    }

    /// Sends a prompt and waits for the whole answer. Providers that can answer in one piece
    /// are asked to ([`Options::whole`]); listeners hear the same events as with [`Chat::send`].
    pub async fn send_once(&self, prompt: impl Into<String>) -> Result<String> {
        let whole = Options {
            whole: true,
            ..Options::default()
        };
        self.send_with(prompt, &whole).text().await
    }

    /// The conversation so far.
    pub fn history(&self) -> Vec<Message> {
        self.session.history()
    }

    /// Continues a conversation kept elsewhere (a saved session): `history` replaces the
    /// messages so far, and the next prompt is sent after them. The context stays as set with
    /// [`Chat::update`]; system messages do not belong in `history`. Models that keep their own
    /// conversation on the service's side accept only an empty history.
    ///
    /// ```no_run
    /// # async fn demo() -> oy3o::Result<()> {
    /// use oy3o::Message;
    /// let chat = oy3o::Chat::open(Some("openai:gpt-4o-mini"), &oy3o::Config::default())?;
    /// chat.restore(vec![Message::user("My name is Ada."), Message::assistant("Hello, Ada!")])?;
    /// // The request carries both earlier messages before this prompt.
    /// println!("{}", chat.send_once("What is my name?").await?);
    /// # Ok(()) }
    /// ```
    pub fn restore(&self, history: Vec<Message>) -> Result<()> {
        check_history(&history)?;
        self.fits(&history)?;
        self.session.restore(history)
    }

    /// Ends the chat; later sends fail with a clear error.
    pub fn close(&self) {
        self.session.close();
    }
}

/// The answer stream of a checked prompt: the tool loop when the options carry a toolbox;
/// with a schema, the answer validated at the end of the turn and asked for once more if it
/// does not follow it ([`crate::structured::turn`]). Every face's turn goes through here.
fn send(
    session: std::sync::Arc<dyn Session>,
    prompt: Message,
    options: Options,
) -> crate::provider::DeltaStream {
    match options.schema.clone() {
        Some(schema) => crate::structured::turn(session, prompt, options, schema, answer),
        None => answer(session, prompt, options),
    }
}

/// One answer to a checked prompt: the tool loop when the options carry a toolbox.
fn answer(
    session: std::sync::Arc<dyn Session>,
    prompt: Message,
    options: Options,
) -> crate::provider::DeltaStream {
    match options.toolbox.clone() {
        Some(toolbox) => crate::tool_loop::run(session, prompt, options, toolbox),
        None => session.send(prompt, options),
    }
}

/// Whether an attachment URL is fetched by the engine: some model of the chat takes its kind
/// but does not fetch that URL itself (Ollama fetches none, TOOLS.md §5.4). URLs of a kind no
/// model takes are left for [`fits`] to refuse, so nothing is fetched in vain.
fn must_fetch(can: &[(String, Capabilities)], part: &Part) -> bool {
    let mime = match part {
        Part::Image {
            mime,
            source: Source::Url(_),
        }
        | Part::Document {
            mime,
            source: Source::Url(_),
            ..
        }
        | Part::Audio {
            mime,
            source: Source::Url(_),
        } => mime,
        _ => return false,
    };
    let takes_kind = can.iter().any(|(_, c)| c.takes_kind(mime));
    takes_kind && can.iter().any(|(_, c)| c.takes(part).is_err())
}

/// Checks `messages` against the chat's models ([`crate::message::require_supported`]): one
/// that can take them is enough, since a fallback skips the others for the turn. When none
/// can, the error names the first model's reason, and with fallbacks says that none could.
fn fits(can: &[(String, Capabilities)], messages: &[Message]) -> Result<()> {
    let mut first = None;
    for (reference, c) in can {
        match crate::message::require_supported(messages, reference, c) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        Some(e) if can.len() > 1 => Err(Error::new(
            e.code(),
            format!(
                "none of the models ({}) can take this: {}",
                can.iter()
                    .map(|(r, _)| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                e.message()
            ),
        )),
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A history to restore holds no system message: the context is set with `update`.
fn check_history(history: &[Message]) -> Result<()> {
    if history
        .iter()
        .any(|m| m.role == crate::message::Role::System)
    {
        return Err(Error::config(
            "a restored history holds user and assistant messages only; \
             set the context with update()",
        ));
    }
    Ok(())
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").field("model", &self.model).finish()
    }
}
