//! An MCP `tools/call` result as the text a model reads: text items joined, `structuredContent`
//! as JSON text when there is no text item, other items as a short note, and
//! `isError: true` as an error result. Works on the result's JSON (the MCP specification,
//! 2025-11-25, server/tools "Tool Result"), so it does not follow the SDK's types.

use serde_json::Value;

/// The text of `result` (a `CallToolResult` as JSON): `Ok` for a result, `Err` for one the tool
/// marked `isError`.
pub(crate) fn result_text(result: &Value) -> Result<String, String> {
    let items = result["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut parts: Vec<String> = items.iter().map(item_text).collect();
    // Text items are what a server means a reader to see (the specification asks servers to
    // put structured content there as JSON text too; the Python SDK puts a plain value there
    // and `{"result": value}` in `structuredContent`): the structured part stands in only when
    // there is no text.
    let has_text = items.iter().any(|item| item["type"] == "text");
    if let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null())
        && !has_text
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if result["isError"] == true {
        return Err(if text.is_empty() {
            "the tool reported an error and said nothing more".into()
        } else {
            text
        });
    }
    Ok(text)
}

/// One content item as text; what a model cannot read yet is a short note.
fn item_text(item: &Value) -> String {
    let kind = item["type"].as_str().unwrap_or("unknown");
    let mime = item["mimeType"].as_str().unwrap_or("unknown type");
    match kind {
        "text" => item["text"].as_str().unwrap_or_default().to_owned(),
        "image" | "audio" => {
            let bytes = item["data"].as_str().map_or(0, |d| d.len() / 4 * 3);
            format!("[{kind} ({mime}, about {bytes} bytes) not shown]")
        }
        "resource" => {
            let resource = &item["resource"];
            match resource["text"].as_str() {
                Some(text) => text.to_owned(),
                None => format!(
                    "[resource {} ({}) not shown: binary]",
                    resource["uri"].as_str().unwrap_or("?"),
                    resource["mimeType"].as_str().unwrap_or("unknown type")
                ),
            }
        }
        "resource_link" => {
            let mut note = format!(
                "[resource link: {} <{}>",
                item["name"].as_str().unwrap_or("?"),
                item["uri"].as_str().unwrap_or("?")
            );
            if let Some(d) = item["description"].as_str() {
                note.push_str(": ");
                note.push_str(d);
            }
            note.push(']');
            note
        }
        other => format!("[{other} content not shown]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_items_are_joined_and_other_items_are_short_notes() {
        let r = json!({"content": [
            {"type": "text", "text": "18°C"},
            {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "hello"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAAA"}},
            {"type": "resource_link", "uri": "file:///c", "name": "c", "description": "a file"}
        ], "isError": false});
        assert_eq!(
            result_text(&r).unwrap(),
            "18°C\n[image (image/png, about 9 bytes) not shown]\nhello\n\
             [resource file:///b.bin (unknown type) not shown: binary]\n[resource link: c <file:///c>: a file]"
        );
    }

    #[test]
    fn structured_content_is_json_text_when_no_text_item_says_it() {
        let alone = json!({"content": [], "structuredContent": {"temp_c": 18}});
        assert_eq!(result_text(&alone).unwrap(), r#"{"temp_c":18}"#);
        let beside_an_image = json!({"content": [{"type": "image", "data": "", "mimeType": "image/png"}],
            "structuredContent": {"temp_c": 18}});
        assert!(
            result_text(&beside_an_image)
                .unwrap()
                .ends_with("\n{\"temp_c\":18}")
        );
        // The Python SDK's shape for a tool that returns a string.
        let wrapped = json!({"content": [{"type": "text", "text": "4242"}],
            "structuredContent": {"result": "4242"}});
        assert_eq!(result_text(&wrapped).unwrap(), "4242");
    }

    #[test]
    fn is_error_makes_an_error_result() {
        let r = json!({"content": [{"type": "text", "text": "upstream timeout"}], "isError": true});
        assert_eq!(result_text(&r).unwrap_err(), "upstream timeout");
        let silent = json!({"content": [], "isError": true});
        assert!(result_text(&silent).unwrap_err().contains("said nothing"));
        assert_eq!(result_text(&json!({"content": []})).unwrap(), "");
    }
}
