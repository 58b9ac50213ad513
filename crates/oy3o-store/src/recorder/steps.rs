//! The tool steps of a turn as it streams: which text and calls make each assistant step, and
//! which results answer them, so the stored turn resumes with the same messages a live chat
//! keeps (`oy3o::StoredTurn::steps`).

use oy3o::tool_loop::ToolResult;
use oy3o::{Message, Part, ToolCall};
use serde_json::Value;

/// The tool steps seen so far in one turn.
#[derive(Default)]
pub(super) struct ToolSteps {
    /// Where the current step's text starts in the turn's answer text.
    text_start: usize,
    /// The calls the model made in the current step, not yet answered.
    calls: Vec<ToolCall>,
    /// The finished steps: assistant messages with calls, each followed by its results.
    steps: Vec<Message>,
    /// The bytes the steps hold (arguments and results), for the recorder's byte budget.
    pub(super) bytes: usize,
}

impl ToolSteps {
    /// The model asked for a tool.
    pub(super) fn call(&mut self, call: &ToolCall) {
        self.bytes += call.name.len() + call.id.len() + call.arguments.to_string().len();
        self.calls.push(call.clone());
    }

    /// A tool answered; `answer` is the turn's answer text so far. The first result after a
    /// step's calls closes that step: its text and calls become an assistant message.
    pub(super) fn result(&mut self, answer: &str, result: &ToolResult) {
        if !self.calls.is_empty() {
            let text = answer.get(self.text_start..).unwrap_or_default().to_owned();
            self.steps
                .push(Message::answer(text, std::mem::take(&mut self.calls)));
            self.steps.push(Message::tool_results([]));
            self.text_start = answer.len();
        }
        self.bytes += result.content.len() + result.call_id.len();
        let part = Part::ToolResult {
            call_id: result.call_id.clone(),
            content: result.content.clone(),
            is_error: result.is_error,
        };
        match self.steps.last_mut() {
            Some(tool) if tool.role == oy3o::Role::Tool => tool.parts.push(part),
            // A result without a call before it: kept in a message of its own.
            _ => self.steps.push(Message::tool_results([part])),
        }
    }

    /// Whether the turn holds anything beyond its answer text.
    pub(super) fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.calls.is_empty()
    }

    /// Writes the steps and the last answer's parts into the turn's `parts` column: `steps`,
    /// and `answer` = the text after the last step with the calls not answered here (those a
    /// client runs itself). Nothing for a turn without tools.
    pub(super) fn write(&mut self, answer: &str, parts: &mut Option<Value>) {
        if self.is_empty() {
            return;
        }
        let text = answer.get(self.text_start..).unwrap_or_default().to_owned();
        let last = Message::answer(text, std::mem::take(&mut self.calls));
        let object = parts.get_or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(map) = object {
            map.insert("answer".into(), serde_json::json!(last.parts));
            map.insert(
                "steps".into(),
                serde_json::json!(std::mem::take(&mut self.steps)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Paris"}),
            signature: None,
        }
    }

    fn result(id: &str, content: &str) -> ToolResult {
        ToolResult {
            call_id: id.into(),
            name: "get_weather".into(),
            content: content.into(),
            is_error: false,
            elapsed_ms: 3,
        }
    }

    #[test]
    fn two_steps_then_an_answer_become_the_messages_a_live_chat_keeps() {
        let mut steps = ToolSteps::default();
        let mut answer = String::from("Let me look. ");
        steps.call(&call("a"));
        steps.call(&call("b"));
        steps.result(&answer, &result("a", "18C"));
        steps.result(&answer, &result("b", "19C"));
        steps.call(&call("c"));
        steps.result(&answer, &result("c", "20C"));
        answer.push_str("It is 18C.");
        let mut parts = Some(json!({"prompt": [{"type": "text", "text": "hi"}]}));
        steps.write(&answer, &mut parts);
        let parts = parts.unwrap();
        let stored: Vec<Message> = serde_json::from_value(parts["steps"].clone()).unwrap();
        assert_eq!(stored.len(), 4);
        assert_eq!(
            stored[0],
            Message::answer("Let me look. ".into(), vec![call("a"), call("b")])
        );
        assert_eq!(stored[1].role, oy3o::Role::Tool);
        assert_eq!(stored[1].parts.len(), 2);
        assert_eq!(stored[2], Message::answer(String::new(), vec![call("c")]));
        assert_eq!(
            parts["answer"],
            json!([{"type": "text", "text": "It is 18C."}])
        );
        assert_eq!(parts["prompt"][0]["text"], "hi");
    }

    #[test]
    fn calls_a_client_runs_stay_in_the_answer_and_a_turn_without_tools_writes_nothing() {
        let mut none = ToolSteps::default();
        let mut parts = None;
        none.write("plain", &mut parts);
        assert_eq!(parts, None);

        let mut steps = ToolSteps::default();
        steps.call(&call("a"));
        steps.write("", &mut parts);
        let parts = parts.unwrap();
        assert_eq!(parts["steps"], json!([]));
        assert_eq!(parts["answer"][0]["type"], "tool_call");
        assert_eq!(parts["answer"][0]["id"], "a");
    }
}
