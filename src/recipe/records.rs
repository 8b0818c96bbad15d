//! The run's records in the shape the target trainer reads natively, so that it trains on the
//! same tokens: the spans wgtune trains (assistant replies, completions, or everything) are the
//! spans the target's loss covers.

use serde_json::{Value, json};

use super::RecipeTarget;
use crate::data::{Sample, render};
use crate::error::Result;
use crate::tokenizer::{Message, TextTokenizer};

/// The shape of one recipe's records, which sets the target's loss options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `{"messages": [...]}`: Axolotl's `chat_template` type (the assistant turns trained), or
    /// TRL's conversational language modelling (every token trained).
    Messages,
    /// `{"prompt": [...], "completion": [{"role": "assistant", ...}]}`: TRL's conversational
    /// prompt–completion, one record per assistant turn, its loss on the completion alone.
    Conversation,
    /// `{"prompt": "...", "completion": "..."}`: the loss on the completion alone.
    PromptCompletion,
    /// `{"text": "..."}`: every token trained.
    Text,
}

impl Form {
    pub fn name(self) -> &'static str {
        match self {
            Self::Messages => "conversational messages",
            Self::Conversation => "conversational prompt-completion, one record per assistant turn",
            Self::PromptCompletion => "prompt-completion",
            Self::Text => "text",
        }
    }
}

/// How a run's samples are written for `target`.
pub struct Writer<'a> {
    pub target: RecipeTarget,
    pub tokenizer: &'a TextTokenizer,
    /// `--train-on-prompt`: every token is trained.
    pub all_tokens: bool,
}

impl Writer<'_> {
    /// The form `sample` takes: conversations through the model's chat template stay
    /// conversations; anything rendered as plain text (no chat template, prompt–completion,
    /// text) is written as the text wgtune renders.
    pub fn form(&self, sample: &Sample) -> Form {
        let conversation = matches!(sample, Sample::Chat(_) | Sample::Alpaca { .. }) && self.tokenizer.has_chat_template();
        match (conversation, self.target, self.all_tokens) {
            (true, RecipeTarget::Axolotl, _) | (true, RecipeTarget::Trl, true) => Form::Messages,
            (true, RecipeTarget::Trl, false) => Form::Conversation,
            (false, _, true) => Form::Text,
            (false, _, false) => match sample {
                Sample::Text(_) => Form::Text,
                _ => Form::PromptCompletion,
            },
        }
    }

    /// `sample` as the target's records (one, or one per assistant turn).
    pub fn records(&self, sample: &Sample) -> Result<Vec<Value>> {
        Ok(match self.form(sample) {
            Form::Messages => vec![json!({ "messages": messages_json(&conversation(sample)) })],
            Form::Conversation => {
                let messages = conversation(sample);
                messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.role == "assistant")
                    .map(|(i, reply)| json!({ "prompt": messages_json(&messages[..i]), "completion": messages_json(std::slice::from_ref(reply)) }))
                    .collect()
            }
            form @ (Form::PromptCompletion | Form::Text) => {
                // The text wgtune trains on, cut at each trained span; the end-of-sequence token
                // it appends is left for the target to append (both do).
                let rendered = render(sample, self.tokenizer, self.all_tokens)?;
                let eos = self.tokenizer.eos_token().unwrap_or_default();
                let strip = |text: &str| text.strip_suffix(eos).filter(|_| !eos.is_empty()).unwrap_or(text).to_string();
                rendered
                    .trainable
                    .iter()
                    .map(|span| {
                        let (prompt, completion) = (&rendered.text[..span.start], strip(&rendered.text[span.clone()]));
                        if form == Form::Text && prompt.is_empty() {
                            json!({ "text": completion })
                        } else if form == Form::Text {
                            json!({ "text": format!("{prompt}{completion}") })
                        } else {
                            json!({ "prompt": prompt, "completion": completion })
                        }
                    })
                    .collect()
            }
        })
    }
}

/// A conversation as the chat template sees it (an alpaca record: system, user, assistant).
fn conversation(sample: &Sample) -> Vec<Message> {
    match sample {
        Sample::Chat(messages) => messages.clone(),
        Sample::Alpaca { system, instruction, input, output } => {
            let user = if input.is_empty() { instruction.clone() } else { format!("{instruction}\n\n{input}") };
            system
                .iter()
                .map(|s| Message::new("system", s))
                .chain([Message::new("user", &user), Message::new("assistant", output)])
                .collect()
        }
        Sample::PromptCompletion { prompt, completion } => vec![Message::new("user", prompt), Message::new("assistant", completion)],
        Sample::Text(text) => vec![Message::new("assistant", text)],
    }
}

fn messages_json(messages: &[Message]) -> Value {
    Value::Array(messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect())
}
