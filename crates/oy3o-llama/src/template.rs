//! Renders a conversation into a prompt with the model's own Jinja chat template.
//!
//! The template is the GGUF's `tokenizer.chat_template` string, rendered with minijinja configured
//! like Hugging Face's renderer (`trim_blocks`, `lstrip_blocks`, loop controls, Python string
//! methods, `raise_exception`). llama.cpp's built-in `apply_chat_template` is not used: it matches
//! templates by pattern instead of rendering them and drops parts such as SmolLM2's default
//! system prompt.

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value};

use crate::chat::ChatMessage;
use crate::error::LlamaError;

/// ChatML, used when a model file carries no chat template (llama.cpp does the same).
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const NAME: &str = "chat_template";

/// A compiled chat template.
///
/// ```
/// use oy3o_llama::{ChatMessage, ChatTemplate, CHATML_TEMPLATE};
/// let template = ChatTemplate::new(CHATML_TEMPLATE).unwrap();
/// let prompt = template.render(&[ChatMessage::user("Hi")], "", "").unwrap();
/// assert_eq!(prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
/// ```
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template.
    ///
    /// # Errors
    /// [`LlamaError::Template`] when the template does not parse.
    pub fn new(source: &str) -> Result<Self, LlamaError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(template_error)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(template_error)?;
        Ok(Self { env })
    }

    /// Renders `messages` followed by the opening of the assistant's turn.
    ///
    /// # Errors
    /// [`LlamaError::Template`] when rendering fails (for example the template raises on an
    /// unsupported role order).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, LlamaError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| minijinja::context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => bos_token,
            eos_token => eos_token,
        };
        self.env
            .get_template(NAME)
            .and_then(|t| t.render(ctx))
            .map_err(template_error)
    }
}

/// `raise_exception(message)`, which Hugging Face templates call to reject a conversation.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn template_error(e: Error) -> LlamaError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    LlamaError::Template(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template, as stored in its GGUF.
    pub(crate) const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_adds_its_default_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2).unwrap();
        let out = t.render(
            &[ChatMessage::user("What is 1+1?")],
            "<|im_start|>",
            "<|im_end|>",
        );
        assert_eq!(
            out.unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_given_system_message_replaces_the_default_one() {
        let t = ChatTemplate::new(SMOLLM2).unwrap();
        let out = t
            .render(
                &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
                "",
                "",
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn templates_can_use_python_methods_loop_controls_and_whitespace_control() {
        let source = "{% for m in messages %}\n  {% if m.role == 'system' %}{% continue %}{% endif %}\n{{ m.content.strip().upper() }}|{% endfor %}{{ bos_token }}";
        let t = ChatTemplate::new(source).unwrap();
        let out = t
            .render(
                &[ChatMessage::system("x"), ChatMessage::user("  hi  ")],
                "<s>",
                "</s>",
            )
            .unwrap();
        assert_eq!(out, "HI|<s>");
    }

    #[test]
    fn raise_exception_becomes_a_template_error_with_its_message() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}").unwrap();
        let err = t.render(&[], "", "").unwrap_err();
        assert!(
            matches!(&err, LlamaError::Template(m) if m.contains("roles must alternate")),
            "{err}"
        );
    }

    #[test]
    fn a_broken_template_is_an_error_not_a_panic() {
        let err = ChatTemplate::new("{% for %}").unwrap_err();
        assert!(matches!(err, LlamaError::Template(_)));
    }
}
