//! The OpenAI Responses API (`api = "responses"`): `POST {base}/responses` with the context as
//! `instructions` and the conversation as `input` (PROVIDERS.md §2.1). Errors before the
//! stream have the Chat Completions shape (§2.7), so [`super::request::read_error`] reads them.

mod stream;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::config::Target;
use crate::error::Result;
use crate::message::Role;
use crate::provider::{CompletionRequest, Completions, DeltaStream};
use crate::transport::http::{RequestUrl, Upstream};

pub(super) use stream::deltas;

/// One configured Responses endpoint.
pub(super) struct Responses {
    upstream: Upstream,
    url: RequestUrl,
    model: String,
    headers: HeaderMap,
}

impl Responses {
    pub(super) fn new(target: &Target) -> Result<Self> {
        let base = super::base_url(target);
        Ok(Self {
            upstream: Upstream::for_target(super::INFO.name, target, super::request::read_error)?,
            url: RequestUrl::new(format!("{}/responses", base.trim_end_matches('/'))),
            model: target.model.clone(),
            headers: super::request::headers(target),
        })
    }

    fn body(&self, request: &CompletionRequest) -> Value {
        let mut instructions = Vec::new();
        let mut input = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            match m.role {
                Role::System => instructions.push(m.text()),
                Role::User | Role::Assistant | Role::Tool => {
                    input.push(json!({ "role": m.role.as_str(), "content": m.text() }));
                }
            }
        }
        let mut body = json!({ "model": self.model, "input": input, "stream": true });
        if !instructions.is_empty() {
            body["instructions"] = json!(instructions.join("\n\n"));
        }
        let o = &request.options;
        if let Some(t) = o.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = o.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(m) = o.max_tokens {
            body["max_output_tokens"] = json!(m);
        }
        body
    }
}

impl Completions for Responses {
    fn complete(&self, request: CompletionRequest) -> DeltaStream {
        let url = self.url.clone();
        let body = self.body(&request);
        let headers = self.headers.clone();
        let upstream = self.upstream.clone();
        self.upstream.answer(
            move |client| url.post(client).headers(headers.clone()).json(&body),
            move |response| deltas(upstream.sse(response)),
        )
    }
}
