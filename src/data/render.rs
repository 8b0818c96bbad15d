//! Turning a [`Sample`] into the exact text the model sees, with the spans it learns to write.
//!
//! Conversations and alpaca records go through the model's own chat template. The assistant
//! span of turn `i` is what rendering `messages[..=i]` adds to rendering `messages[..i]` with the
//! generation prompt: the reply and its end-of-turn token, as TRL's assistant-only loss does.
//! Models without a chat template get the classic Alpaca prompt.

use super::format::Sample;
use crate::error::{Error, Result};
use crate::tokenizer::{Message, RenderedText, TextTokenizer};

const ALPACA_WITH_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n";
const ALPACA_NO_INPUT: &str =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n";

pub fn render(sample: &Sample, tokenizer: &TextTokenizer, train_on_prompt: bool) -> Result<RenderedText> {
    let mut rendered = match sample {
        Sample::Alpaca { system, instruction, input, output } => {
            if tokenizer.has_chat_template() {
                let mut messages = Vec::new();
                if let Some(system) = system {
                    messages.push(Message::new("system", system));
                }
                let user = if input.is_empty() { instruction.clone() } else { format!("{instruction}\n\n{input}") };
                messages.push(Message::new("user", &user));
                messages.push(Message::new("assistant", output));
                render_chat(&messages, tokenizer)?
            } else {
                let prompt = alpaca_prompt(instruction, input);
                completion(&prompt, output, tokenizer)
            }
        }
        Sample::Chat(messages) => {
            if tokenizer.has_chat_template() {
                render_chat(messages, tokenizer)?
            } else {
                render_plain_chat(messages, tokenizer)
            }
        }
        Sample::PromptCompletion { prompt, completion: reply } => completion(prompt, reply, tokenizer),
        Sample::Text(text) => completion("", text, tokenizer),
    };
    if train_on_prompt {
        let everything = 0..rendered.text.len();
        rendered.trainable = vec![everything];
    }
    Ok(rendered)
}

/// The prompt a model trained on alpaca records without a chat template expects.
pub fn alpaca_prompt(instruction: &str, input: &str) -> String {
    if input.is_empty() {
        format!("{ALPACA_NO_INPUT}### Instruction:\n{instruction}\n\n### Response:\n")
    } else {
        format!("{ALPACA_WITH_INPUT}### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
    }
}

/// `prompt` followed by `reply` and the end-of-sequence token; the reply and EOS are trained.
fn completion(prompt: &str, reply: &str, tokenizer: &TextTokenizer) -> RenderedText {
    let mut text = format!("{prompt}{reply}");
    if let Some(eos) = tokenizer.eos_token() {
        text.push_str(eos);
    }
    let reply_and_eos = prompt.len()..text.len();
    RenderedText { trainable: vec![reply_and_eos], text, has_special_tokens: false }
}

fn render_chat(messages: &[Message], tokenizer: &TextTokenizer) -> Result<RenderedText> {
    let text = tokenizer.apply_chat_template(messages, false)?;
    let mut trainable = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if message.role != "assistant" {
            continue;
        }
        let before = tokenizer.apply_chat_template(&messages[..i], true)?;
        let through = tokenizer.apply_chat_template(&messages[..=i], false)?;
        if !through.starts_with(&before) || !text.starts_with(&through) {
            return Err(Error::Template(format!(
                "the chat template does not render turn {i} as an extension of the turns before it, \
                 so the assistant reply cannot be located; use --train-on-prompt to train on all tokens"
            )));
        }
        trainable.push(before.len()..through.len());
    }
    Ok(RenderedText { text, trainable, has_special_tokens: true })
}

/// Conversations for models without a chat template, in the Alpaca section style.
fn render_plain_chat(messages: &[Message], tokenizer: &TextTokenizer) -> RenderedText {
    let mut text = String::new();
    let mut trainable = Vec::new();
    for message in messages {
        let heading = match message.role.as_str() {
            "assistant" => "Response",
            "system" => "System",
            _ => "Instruction",
        };
        text.push_str(&format!("### {heading}:\n"));
        if message.role == "assistant" {
            let start = text.len();
            text.push_str(&message.content);
            if let Some(eos) = tokenizer.eos_token() {
                text.push_str(eos);
            }
            trainable.push(start..text.len());
            text.push_str("\n\n");
        } else {
            text.push_str(&message.content);
            text.push_str("\n\n");
        }
    }
    RenderedText { text, trainable, has_special_tokens: false }
}

/// The text a prompt is turned into before generation: the chat template with the generation
/// prompt where the model has one, the prompt as given otherwise.
pub fn generation_prompt(prompt: &str, tokenizer: &TextTokenizer, use_chat_template: bool) -> Result<RenderedText> {
    conversation_prompt(&[Message::new("user", prompt)], tokenizer, use_chat_template)
}

/// The text a conversation (system turn first, if any, and the user's last) is turned into
/// before the model's next reply: the whole history through the chat template with the
/// generation prompt; without one, a lone user turn as it is and a longer history in the
/// section style the model was trained on (see `render_plain_chat`), ending where the reply
/// goes.
pub fn conversation_prompt(messages: &[Message], tokenizer: &TextTokenizer, use_chat_template: bool) -> Result<RenderedText> {
    if use_chat_template && tokenizer.has_chat_template() {
        return Ok(RenderedText { text: tokenizer.apply_chat_template(messages, true)?, trainable: Vec::new(), has_special_tokens: true });
    }
    let text = match messages {
        [only] if only.role == "user" => only.content.clone(),
        _ => {
            let mut text = render_plain_chat(messages, tokenizer).text;
            text.push_str("### Response:\n");
            text
        }
    };
    Ok(RenderedText { text, trainable: Vec::new(), has_special_tokens: false })
}
