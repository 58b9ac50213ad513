//! The OpenAI Responses API (`api = "responses"`): `POST {base}/responses` with the context as
//! `instructions` and the conversation as `input` (PROVIDERS.md §2.1), tools as flat function
//! tools and their calls as `function_call` items (TOOLS.md §2.1–§2.3). Errors before the
//! stream have the Chat Completions shape (§2.7), so [`super::request::read_error`] reads them.

mod request;
mod stream;

use crate::config::Target;
use crate::error::Result;
use crate::provider::{CompletionRequest, Completions, DeltaStream};
use crate::transport::http::{RequestUrl, Upstream};
use reqwest::header::HeaderMap;

pub(super) use stream::deltas;

/// One configured Responses endpoint.
pub(super) struct Responses {
    upstream: Upstream,
    url: RequestUrl,
    model: String,
    headers: HeaderMap,
    /// The provider's `extra_body` setting, merged into every body.
    extra_body: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Responses {
    pub(super) fn new(target: &Target) -> Result<Self> {
        let base = super::base_url(target);
        Ok(Self {
            upstream: Upstream::for_target(super::INFO.name, target, super::request::read_error)?,
            url: RequestUrl::new(format!("{}/responses", base.trim_end_matches('/'))),
            model: target.model.clone(),
            headers: super::request::headers(target),
            extra_body: target.settings.extra_body.clone(),
        })
    }
}

impl Completions for Responses {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let url = self.url.clone();
        let mut body = request::body(&self.model, &request);
        crate::controls::merge_extra_body(&mut body, self.extra_body.as_ref(), &request.options);
        let headers = self.headers.clone();
        let upstream = self.upstream.clone();
        self.upstream.answer(
            move |client| url.post(client).headers(headers.clone()).json(&body),
            move |response| deltas(upstream.sse(response)),
        )
    }
}
