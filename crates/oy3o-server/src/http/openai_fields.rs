//! What `POST /v1/chat/completions` accepts before it is read for real: a JSON body (else 415),
//! only fields the server carries out (anything else set is a 400 naming it, rather than an
//! answer that silently ignores it), numbers in range (`temperature: 1e39` would go upstream as
//! `null`), and a model this server lets clients use (`models_allowed`, `model_dirs`).
//! One pass over the body that builds no JSON tree.

use std::fmt;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::openai::api_error;
use crate::state::AppState;

/// Fields read and carried out (or checked) by the completions route.
const CARRIED_OUT: &[&str] = &[
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "n",
    // Metadata about the caller: it changes nothing in the answer.
    "user",
];

/// The fields of a request body this check looks at.
#[derive(Default)]
struct Fields {
    model: Option<String>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// The first field set that the server does not carry out.
    unsupported: Option<String>,
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "model" => fields.model = map.next_value::<Option<String>>()?,
                "temperature" => fields.temperature = map.next_value()?,
                "top_p" => fields.top_p = map.next_value()?,
                k if CARRIED_OUT.contains(&k) => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    // Unset in all but name (`null`, `false`, `[]`, `{}`) asks for nothing.
                    let value: Value = map.next_value()?;
                    let unset = match &value {
                        Value::Null | Value::Bool(false) => true,
                        Value::Array(a) => a.is_empty(),
                        Value::Object(o) => o.is_empty(),
                        _ => false,
                    };
                    if !unset && fields.unsupported.is_none() {
                        fields.unsupported = Some(key);
                    }
                }
            }
        }
        Ok(fields)
    }
}

fn refuse(state: &AppState, status: StatusCode, code: &str, message: &str) -> Response {
    state.metrics.error(code);
    api_error(status, code, message)
}

/// Checks a completions request; `Err` is the response to send. A body that is not even
/// JSON passes, for the route's own parse to explain.
#[allow(clippy::result_large_err)]
pub(crate) fn check(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|t| {
            t.eq_ignore_ascii_case("application/json") || t.to_ascii_lowercase().ends_with("+json")
        });
    if !json {
        return Err(refuse(
            state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the request as JSON with the header Content-Type: application/json",
        ));
    }
    let Ok(fields) = serde_json::from_slice::<Fields>(body) else {
        return Ok(());
    };
    if let Some(name) = fields.unsupported {
        let m = format!(
            "field `{name}` is not supported by this server: it would be ignored, so the answer \
             would not follow it; send the request without it"
        );
        return Err(refuse(state, StatusCode::BAD_REQUEST, "bad_request", &m));
    }
    for (name, value, max) in [
        ("temperature", fields.temperature, 2.0),
        ("top_p", fields.top_p, 1.0),
    ] {
        if value.is_some_and(|v| !(v.is_finite() && (0.0..=max).contains(&v))) {
            let m = format!("field `{name}`: must be a number from 0 to {max}");
            return Err(refuse(state, StatusCode::BAD_REQUEST, "bad_request", &m));
        }
    }
    let model = fields.model.filter(|m| !m.starts_with("chain:"));
    crate::policy::check_model(state, model.as_deref())
        .map_err(|r| refuse(state, StatusCode::FORBIDDEN, r.code, &r.message))
}
