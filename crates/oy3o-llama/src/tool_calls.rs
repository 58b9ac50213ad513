//! Finds tool calls in a model's streamed answer, in the Hermes/Qwen form the templates ask
//! for: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, any number of them, text
//! between them staying text. The markup never reaches the text: a piece that might be the
//! start of `<tool_call>` is held back until it is known not to be.
//! (Format: the Qwen2.5 chat template's tool prompt, and NousResearch's Hermes function
//! calling, <https://github.com/NousResearch/Hermes-Function-Calling>.)

use serde_json::Value;

use crate::chat::ToolCall;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

/// What the parser found in a piece of answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Answer text.
    Text(String),
    /// A whole call.
    Call(ToolCall),
}

/// A streaming parser of tool calls.
#[derive(Debug, Default)]
pub(crate) struct ToolCallParser {
    /// Text not handed out yet: a possible start of [`OPEN`], or the inside of a call.
    pending: String,
    inside: bool,
    calls: usize,
}

impl ToolCallParser {
    /// Feeds more answer text; returns what is certain now.
    pub(crate) fn push(&mut self, text: &str) -> Vec<Found> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        loop {
            if self.inside {
                let Some(end) = self.pending.find(CLOSE) else {
                    return out;
                };
                let body: String = self.pending[..end].to_owned();
                self.pending.drain(..end + CLOSE.len());
                self.inside = false;
                out.push(self.call_or_text(&body, true));
            } else if let Some(start) = self.pending.find(OPEN) {
                let before: String = self.pending[..start].to_owned();
                push_text(&mut out, before);
                self.pending.drain(..start + OPEN.len());
                self.inside = true;
            } else {
                // Hand out all but a tail that could still grow into `<tool_call>`.
                let keep = partial_suffix(&self.pending, OPEN);
                let cut = self.pending.len() - keep;
                let text: String = self.pending.drain(..cut).collect();
                push_text(&mut out, text);
                return out;
            }
        }
    }

    /// The answer ended: a call left open is read as far as it goes (small models often end
    /// without closing it); anything else held back is text.
    pub(crate) fn finish(&mut self) -> Vec<Found> {
        let rest = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        if self.inside {
            self.inside = false;
            out.push(self.call_or_text(&rest, false));
        } else {
            push_text(&mut out, rest);
        }
        out
    }

    /// How many calls were found.
    pub(crate) fn calls(&self) -> usize {
        self.calls
    }

    /// A call from the JSON between the tags; text as written (tags included) when it is not
    /// one, so nothing the model wrote is lost.
    fn call_or_text(&mut self, body: &str, closed: bool) -> Found {
        match parse_call(body) {
            Some((name, arguments)) => {
                let call = ToolCall {
                    id: format!("call_{}", self.calls),
                    name,
                    arguments,
                };
                self.calls += 1;
                Found::Call(call)
            }
            None => Found::Text(format!("{OPEN}{body}{}", if closed { CLOSE } else { "" })),
        }
    }
}

fn push_text(out: &mut Vec<Found>, text: String) {
    if !text.is_empty() {
        out.push(Found::Text(text));
    }
}

/// `{"name": "...", "arguments": {...}}` (arguments may also come as a JSON string, or under
/// `parameters`).
fn parse_call(body: &str) -> Option<(String, Value)> {
    let value: Value = serde_json::from_str(body.trim()).ok()?;
    let name = value.get("name")?.as_str()?.to_owned();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(text)) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
        }
        Some(other) => other.clone(),
    };
    Some((name, arguments))
}

/// The length of the longest end of `text` that is a proper start of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(pieces: &[&str]) -> Vec<Found> {
        let mut p = ToolCallParser::default();
        let mut out: Vec<Found> = pieces.iter().flat_map(|t| p.push(t)).collect();
        out.extend(p.finish());
        // Join neighbouring text for easy comparison.
        let mut joined: Vec<Found> = Vec::new();
        for f in out {
            match (joined.last_mut(), f) {
                (Some(Found::Text(a)), Found::Text(b)) => a.push_str(&b),
                (_, f) => joined.push(f),
            }
        }
        joined
    }

    fn call(id: usize, name: &str, arguments: Value) -> Found {
        Found::Call(ToolCall {
            id: format!("call_{id}"),
            name: name.into(),
            arguments,
        })
    }

    #[test]
    fn calls_split_across_pieces_come_out_whole_and_the_markup_never_shows() {
        let pieces = [
            "Let me check.\n<tool",
            "_call>\n{\"name\": \"get_weather\", \"argu",
            "ments\": {\"city\": \"Paris\"}}\n</tool_",
            "call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>",
        ];
        assert_eq!(
            run(&pieces),
            vec![
                Found::Text("Let me check.\n".into()),
                call(0, "get_weather", json!({"city": "Paris"})),
                Found::Text("\n".into()),
                call(1, "time", json!({})),
            ]
        );
    }

    #[test]
    fn text_that_only_looks_like_the_start_of_a_tag_is_handed_out_once_it_is_not() {
        let mut p = ToolCallParser::default();
        assert_eq!(p.push("a <tool"), vec![Found::Text("a ".into())]);
        assert_eq!(p.push("box> b"), vec![Found::Text("<toolbox> b".into())]);
        assert_eq!(p.finish(), vec![]);
        assert_eq!(p.calls(), 0);
    }

    #[test]
    fn an_unclosed_call_at_the_end_is_read_and_a_broken_one_stays_text() {
        assert_eq!(
            run(&["<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}"]),
            vec![call(0, "f", json!({"x": 1}))]
        );
        assert_eq!(
            run(&["<tool_call>{\"nam", "e\": oops</tool_call> done"]),
            vec![Found::Text(
                "<tool_call>{\"name\": oops</tool_call> done".into()
            )]
        );
    }
}
