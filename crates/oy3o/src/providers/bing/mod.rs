//! `bing:` (alias `copilot:`) — Microsoft Copilot's web chat, the service Bing Chat became,
//! authenticated by the browser's cookies. It follows the unofficial web protocol described in
//! `shared/wire/COPILOT.md` Part A, as public clients speak it; it may need updating when the
//! service changes.
//!
//! A conversation lives on the server: the first turn starts one (`POST /c/api/start`), every
//! turn opens the chat socket (`/c/api/chat?api-version=2`), sends `setOptions`,
//! `reportLocalConsents` and `send` with the conversation id, and reads the answer's events.
//! The model name is the mode (`chat`, `reasoning`, `smart`, `study`, `search`).
//!
//! Split by job: [`auth`] (cookies and token), [`frames`] (what is sent), [`answer`] (events
//! read into deltas), [`challenge`] (proof-of-work answers), [`turn`] (one turn on the socket).

mod answer;
mod auth;
mod challenge;
mod frames;
mod turn;
mod upload;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

use crate::config::{Options, Target, Timeouts};
use crate::error::{Error, ErrorCode, Result};
use crate::message::Message;
use crate::provider::{Delta, DeltaStream, KeyPolicy, Provider, ProviderInfo, Session};
use crate::transport::http::{ErrorDetail, Opened, Upstream};
use auth::Identity;

/// The Copilot web chat provider.
pub struct Bing;

static INFO: ProviderInfo = ProviderInfo {
    name: "bing",
    default_model: "chat",
    default_base_url: Some("https://copilot.microsoft.com"),
    base_url_env: &["BING_BASE_URL", "COPILOT_BASE_URL"],
    key_env: &["BING_COOKIE", "COPILOT_COOKIE"],
    key_policy: KeyPolicy::Required,
    events: &[
        "reasoning",
        "search_result",
        "citation",
        "reply_suggestion",
        "title",
        "replace_text",
        "generating_image",
        "image",
        "retry",
    ],
};

/// A browser's user agent: the service expects one, and `cf_clearance` is bound to the user
/// agent that earned it (COPILOT.md §A.2), so users may set their own in the config headers.
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36 Edg/140.0.0.0";

impl Provider for Bing {
    fn info(&self) -> &'static ProviderInfo {
        &INFO
    }

    /// Images, PDFs and text documents, as bytes: each is uploaded (`POST /c/api/attachments`,
    /// COPILOT.md §A.2); a URL is fetched by the chat first.
    fn capabilities(&self, _target: &Target) -> crate::attachment::Capabilities {
        capabilities()
    }

    fn open(&self, target: &Target) -> Result<Box<dyn Session>> {
        let identity = Identity::from_credential(target.credential.as_ref());
        if identity.is_empty() {
            return Err(Error::new(
                ErrorCode::Auth,
                "bing needs the browser's cookies: export them from copilot.microsoft.com \
                 (see the README) and pass --cookie FILE, or set cookies.bing in the config",
            ));
        }
        let client = Arc::new(Client::new(target)?);
        Ok(Box::new(BingSession {
            client,
            state: Arc::new(Mutex::new(State {
                given: identity.clone(),
                identity,
                conversation: None,
                context: target.context.clone().filter(|c| !c.is_empty()),
                delivered: false,
                history: Vec::new(),
                closed: false,
            })),
            turn: Arc::new(tokio::sync::Mutex::new(())),
        }))
    }

    /// Copilot searches the web on its own when it sees fit, so `search = true` asks for
    /// nothing more; its chat protocol has no reasoning level, schema mode, stop sequences
    /// or JSON body to extend (COPILOT.md).
    fn controls(&self, _target: &Target) -> crate::controls::Controls {
        crate::controls::Controls {
            search: true,
            ..crate::controls::Controls::NONE
        }
    }
}

/// What Copilot takes: text, and images, PDFs and text documents as bytes (uploaded).
fn capabilities() -> crate::attachment::Capabilities {
    crate::attachment::Capabilities {
        images: true,
        pdfs: true,
        text_documents: true,
        ..crate::attachment::Capabilities::TEXT
    }
}

/// How the service is reached; the same for every turn of a session.
struct Client {
    base: String,
    mode: String,
    proxy: Option<String>,
    timeouts: Timeouts,
    upstream: Upstream,
    /// Headers of the config section, which win over the browser-like defaults.
    extra_headers: Vec<(String, String)>,
}

impl Client {
    fn new(target: &Target) -> Result<Self> {
        let base = target
            .base_url
            .clone()
            .or_else(|| INFO.default_base_url.map(str::to_owned))
            .unwrap_or_default();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            mode: target.model.clone(),
            proxy: target.proxy.clone(),
            timeouts: target.settings.timeouts(),
            upstream: Upstream::for_target(INFO.name, target, read_error)?,
            extra_headers: target
                .settings
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect(),
        })
    }

    /// The headers the web app sends (COPILOT.md §A.2), then the configured ones.
    fn headers(&self) -> Vec<(String, String)> {
        let origin = reqwest::Url::parse(&self.base)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| self.base.clone());
        let mut headers = vec![
            ("origin".to_owned(), origin.clone()),
            ("referer".to_owned(), format!("{origin}/")),
            ("user-agent".to_owned(), USER_AGENT.to_owned()),
            ("accept-language".to_owned(), "en-US,en;q=0.9".to_owned()),
        ];
        for (name, value) in &self.extra_headers {
            headers.retain(|(n, _)| n != name);
            headers.push((name.clone(), value.clone()));
        }
        headers
    }
}

/// Reads an error body of `/c/api/start`: 401 means the cookies are no good (§A.11).
fn read_error(status: StatusCode, _body: &str) -> ErrorDetail {
    match status.as_u16() {
        401 | 403 => ErrorDetail {
            code: Some(ErrorCode::Auth),
            retryable: Some(false),
            advice: Some(
                "the cookies are missing or expired: export them again from a browser where \
                 copilot.microsoft.com works (see the README) and pass them with --cookie"
                    .to_owned(),
            ),
            ..ErrorDetail::default()
        },
        _ => ErrorDetail::default(),
    }
}

struct State {
    identity: Identity,
    /// The identity as the credential gave it, before the service set cookies of its own.
    given: Identity,
    /// The server's conversation, once started.
    conversation: Option<String>,
    /// The context, sent with the next turn unless already delivered.
    context: Option<String>,
    delivered: bool,
    history: Vec<Message>,
    closed: bool,
}

/// A conversation with Copilot: the server keeps it; this keeps its id, the cookies and a copy
/// of the turns for `history()`.
struct BingSession {
    client: Arc<Client>,
    state: Arc<Mutex<State>>,
    /// Held for a whole turn: turns of one conversation go one at a time.
    turn: Arc<tokio::sync::Mutex<()>>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session for BingSession {
    fn update(&self, context: Option<String>) {
        let mut s = lock(&self.state);
        s.context = context.filter(|c| !c.is_empty());
        s.delivered = false;
    }

    fn send(&self, prompt: Message, _options: Options) -> DeltaStream {
        // Copilot's web chat has no sampling options: they are ignored.
        // Images and documents go by upload (§A.2); other parts (audio) are refused before
        // anything is sent.
        let checked = crate::message::require_supported(
            std::slice::from_ref(&prompt),
            INFO.name,
            &capabilities(),
        );
        let client = self.client.clone();
        let state = self.state.clone();
        let turn = self.turn.clone();
        Box::pin(async_stream::try_stream! {
            checked?;
            let _turn = turn.lock_owned().await;
            let (closed, identity, conversation, context) = {
                let s = lock(&state);
                let context = (!s.delivered).then(|| s.context.clone()).flatten();
                (s.closed, s.identity.clone(), s.conversation.clone(), context)
            };
            if closed {
                Err(Error::config("this chat is closed; open a new one"))?;
            }
            let (identity, conversation) = match conversation {
                Some(id) => (identity, id),
                None => {
                    let mut opening = start(&client, &identity);
                    let mut started = None;
                    while let Some(step) = opening.next().await {
                        match step? {
                            Opened::Retry(event) => yield Delta::Event(event),
                            Opened::Response(response) => started = Some(response),
                        }
                    }
                    let response = started.ok_or_else(|| Error::provider("Copilot did not answer the start of the conversation"))?;
                    let (identity, id) = started_conversation(&client, identity, response).await?;
                    {
                        let mut s = lock(&state);
                        s.identity = identity.clone();
                        s.conversation = Some(id.clone());
                    }
                    (identity, id)
                }
            };
            let attachments = upload::attachments(&client, &identity, &prompt).await?;
            let request = turn::TurnRequest {
                identity,
                conversation,
                prompt: prompt.text().into_owned(),
                attachments,
                context: context.clone(),
            };
            let mut deltas = turn::run(client, request);
            let mut answer = String::new();
            while let Some(delta) = deltas.next().await {
                let delta = delta?;
                match &delta {
                    Delta::Text(t) => answer.push_str(t),
                    Delta::Done { .. } => {
                        let mut s = lock(&state);
                        // Released before the yield below: the block ends first.
                        s.history.push(prompt.clone());
                        s.history.push(Message::assistant(std::mem::take(&mut answer)));
                        if context.is_some() && s.context == context {
                            s.delivered = true;
                        }
                    }
                    Delta::Event(_) => {}
                }
                yield delta;
            }
        })
    }

    fn history(&self) -> Vec<Message> {
        lock(&self.state).history.clone()
    }

    /// `{"conversation": id, "cookies": [[name, value], ...], "context": delivered}`: the
    /// conversation the service keeps, the cookies it set for it (`__Host-copilot-anon` must
    /// ride on every socket of that conversation), and the context it was last given.
    fn handle(&self) -> Option<serde_json::Value> {
        let s = lock(&self.state);
        let conversation = s.conversation.as_ref()?;
        let context = if s.delivered { s.context.clone() } else { None };
        Some(serde_json::json!({
            "conversation": conversation,
            "cookies": s.identity.set_since(&s.given),
            "context": context,
        }))
    }

    /// Continues the stored conversation: the next turn sends only its prompt on the stored
    /// conversation id (with the cookies the service set for it). The context is sent again
    /// only if it differs from the one the service was last given.
    fn resume(&self, handle: Option<&serde_json::Value>, history: Vec<Message>) -> Result<()> {
        let Some(handle) = handle else {
            return if history.is_empty() {
                Ok(())
            } else {
                Err(Error::config(
                    "this Copilot chat was stored without its conversation id, so it cannot be \
                     continued; start a new chat",
                ))
            };
        };
        let conversation = handle["conversation"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::config("the stored Copilot conversation has no id"))?;
        let mut s = lock(&self.state);
        if s.closed {
            return Err(Error::config("this chat is closed; open a new one"));
        }
        for pair in handle["cookies"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (pair[0].as_str(), pair[1].as_str()) {
                s.identity.set_cookie(name, value);
            }
        }
        s.conversation = Some(conversation.to_owned());
        s.delivered = s.context.is_some() && handle["context"].as_str() == s.context.as_deref();
        s.history = history;
        Ok(())
    }

    fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        s.conversation = None;
        s.history.clear();
    }
}

/// `POST /c/api/start` with the cookies, retried per the transport's rules.
fn start(
    client: &Arc<Client>,
    identity: &Identity,
) -> futures::stream::BoxStream<'static, Result<Opened>> {
    let url = frames::http_url(&client.base, "/c/api/start");
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in client.headers() {
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    }
    if let Some(cookie) = identity.cookie_header()
        && let Ok(mut value) = reqwest::header::HeaderValue::from_str(&cookie)
    {
        value.set_sensitive(true);
        headers.insert(reqwest::header::COOKIE, value);
    }
    let body = frames::start_body();
    client
        .upstream
        .open(move |http| http.post(&url).headers(headers.clone()).json(&body))
}

/// The conversation id of a start response, and the cookies it set (`__Host-copilot-anon`).
async fn started_conversation(
    client: &Client,
    mut identity: Identity,
    response: reqwest::Response,
) -> Result<(Identity, String)> {
    identity.absorb(
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let body = tokio::time::timeout(client.timeouts.idle, response.bytes())
        .await
        .map_err(|_| {
            Error::new(
                ErrorCode::Timeout,
                "Copilot did not finish answering the start of the conversation; try again",
            )
        })?
        .map_err(|e| {
            Error::network(format!(
                "the start of the conversation broke off ({e}); try again"
            ))
        })?;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // `/c/api/start` answers `currentConversationId`; the older `/c/api/conversations`, `id`.
    let id = value["currentConversationId"]
        .as_str()
        .or_else(|| value["id"].as_str())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Error::provider(format!(
                "Copilot started no conversation (no currentConversationId in {}); the web \
                 protocol may have changed: update oy3o",
                identity.redact(&String::from_utf8_lossy(&body[..body.len().min(200)]))
            ))
        })?;
    Ok((identity, id.to_owned()))
}
