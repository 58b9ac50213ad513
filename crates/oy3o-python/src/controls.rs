//! The request controls of a Python call (`reasoning=`, `schema=`, `search=`, `stop=`,
//! `extra_body=`), given by the package as one JSON object, turned into the engine's
//! [`oy3o::Options`]. Bad values are `BadRequestError`s naming the keyword.

use std::sync::Arc;

use oy3o::structured::OutputSchema;
use oy3o::{Error, ErrorCode, Options};
use serde_json::Value;

/// `{"reasoning": "low", "schema": {"name": ..., "schema": {...}}, "search": true,
/// "stop": [...], "extra_body": {...}}`, every key optional.
pub fn options(json: Option<&str>) -> Result<Options, Error> {
    let Some(json) = json else {
        return Ok(Options::default());
    };
    let bad = |message: String| Error::new(ErrorCode::BadRequest, message);
    let value: Value =
        serde_json::from_str(json).map_err(|e| bad(format!("invalid controls: {e}")))?;
    let reasoning = match value.get("reasoning").filter(|v| !v.is_null()) {
        Some(Value::String(level)) => Some(
            level
                .parse()
                .map_err(|e: Error| bad(format!("reasoning={level:?}: {}", e.message())))?,
        ),
        Some(other) => {
            return Err(bad(format!(
                "reasoning must be 'low', 'medium' or 'high', not {other}"
            )));
        }
        None => None,
    };
    let schema = match value.get("schema").filter(|v| !v.is_null()) {
        Some(s) => {
            let name = s["name"].as_str().unwrap_or_default();
            let schema = OutputSchema::new(name, s["schema"].clone())
                .map_err(|e| bad(format!("schema=: {}", e.message())))?;
            Some(Arc::new(schema))
        }
        None => None,
    };
    let search = match value.get("search").filter(|v| !v.is_null()) {
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(bad(format!("search must be True or False, not {other}"))),
        None => None,
    };
    let stop = match value.get("stop").filter(|v| !v.is_null()) {
        Some(Value::Array(list)) => Some(
            list.iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| bad("stop must be a string or a list of strings".into()))?,
        ),
        Some(other) => {
            return Err(bad(format!(
                "stop must be a string or a list of strings, not {other}"
            )));
        }
        None => None,
    };
    let extra_body = match value.get("extra_body").filter(|v| !v.is_null()) {
        Some(Value::Object(map)) => Some(map.clone()),
        Some(other) => return Err(bad(format!("extra_body must be a dict, not {other}"))),
        None => None,
    };
    Ok(Options {
        reasoning,
        schema,
        search,
        stop,
        extra_body,
        ..Options::default()
    })
}
