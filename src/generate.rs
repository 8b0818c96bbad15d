//! Text generation with a KV cache: greedy, or sampled with temperature and top-p.

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::conversation_prompt;
use crate::error::{Error, Result};
use crate::model::{CausalLm, ForwardOptions, KvCache};
use crate::tokenizer::{Message, TextTokenizer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationSettings {
    pub max_new_tokens: usize,
    /// 0 is greedy decoding.
    pub temperature: f64,
    /// Sample from the smallest set of tokens whose probabilities add up to this.
    pub top_p: f64,
    pub seed: u64,
    /// Wrap the prompt in the model's chat template as a user turn (when it has one).
    pub chat_template: bool,
}

impl GenerationSettings {
    /// Checks the sampling settings, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::setting("temperature", format!("must be 0 (greedy) or more, not {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::setting("top_p", format!("must be in (0, 1], not {}", self.top_p)));
        }
        if self.max_new_tokens == 0 {
            return Err(Error::setting("max_new_tokens", "must be at least 1"));
        }
        Ok(())
    }
}

impl Default for GenerationSettings {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_p: 1.0, seed: 0, chat_template: true }
    }
}

/// Generates up to `settings.max_new_tokens` ids after `prompt`, stopping at any id in `stop`.
/// `on_token` sees each new id and can end generation early by returning `false`.
pub fn generate_ids(
    model: &CausalLm,
    prompt: &[u32],
    settings: &GenerationSettings,
    stop: &[u32],
    mut on_token: impl FnMut(u32) -> bool,
) -> Vec<u32> {
    let device = model.device();
    let model = model.valid();
    let mut cache = KvCache::new(model.num_layers());
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let mut output = Vec::new();
    let mut next_input: Vec<u32> = prompt.to_vec();
    let device = device.without_autodiff();
    let budget = settings.max_new_tokens.min(model.config.max_position_embeddings.saturating_sub(prompt.len()));
    for _ in 0..budget {
        if next_input.is_empty() {
            break;
        }
        let len = next_input.len();
        let ids: Vec<i64> = next_input.iter().map(|&i| i as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
        let hidden = model.hidden_states(ids, Some(&mut cache), ForwardOptions::default());
        let dim = hidden.dims()[2];
        let last = hidden.narrow(1, len - 1, 1).reshape([1, dim]);
        let logits: Vec<f32> = model.head().logits(last, true).into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let token = choose(&logits, settings, &mut rng);
        if stop.contains(&token) {
            break;
        }
        output.push(token);
        if !on_token(token) {
            break;
        }
        next_input = vec![token];
    }
    output
}

/// Greedy continuations of several prompts at once: left-padded to one length, decoded together
/// with one KV cache, each up to `max_new_tokens` ids (and the model's context) and stopping at
/// any id in `stop`. Each continuation is what [`generate_ids`] gives its prompt alone, greedily.
pub fn generate_batch(model: &CausalLm, prompts: &[Vec<u32>], max_new_tokens: usize, stop: &[u32]) -> Vec<Vec<u32>> {
    let mut outputs = vec![Vec::new(); prompts.len()];
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest == 0 {
        return outputs;
    }
    let model = model.valid();
    let device = model.device().without_autodiff();
    let padding: Vec<usize> = prompts.iter().map(|p| longest - p.len()).collect();
    let mut cache = KvCache::new(model.num_layers());
    let mut done = vec![false; prompts.len()];
    // The padding columns hold any id: nothing attends to them.
    let mut next: Vec<i64> =
        prompts.iter().flat_map(|p| std::iter::repeat_n(0, longest - p.len()).chain(p.iter().map(|&t| t as i64))).collect();
    let mut len = longest;
    let budget = max_new_tokens.min(model.config.max_position_embeddings.saturating_sub(longest));
    for _ in 0..budget {
        let ids = Tensor::<2, Int>::from_data(TensorData::new(next, [prompts.len(), len]), &device);
        let hidden = model.hidden_states_padded(ids, &padding, Some(&mut cache), ForwardOptions::default());
        let dim = hidden.dims()[2];
        let last = hidden.narrow(1, len - 1, 1).reshape([prompts.len(), dim]);
        let tokens: Vec<i64> = model.head().logits(last, true).argmax(1).into_data().convert::<i64>().try_into_vec().unwrap_or_default();
        for ((token, output), done) in tokens.iter().zip(&mut outputs).zip(&mut done) {
            if *done {
                continue;
            }
            if stop.contains(&(*token as u32)) {
                *done = true;
            } else {
                output.push(*token as u32);
            }
        }
        if done.iter().all(|d| *d) {
            break;
        }
        next = tokens;
        len = 1;
    }
    outputs
}

/// Renders `prompt` (through the chat template if asked), generates, and decodes the reply.
/// Refuses bad settings, a prompt that fills the model's context, and token ids the model has
/// no embedding for, before any tensor work.
pub fn generate_text(model: &CausalLm, tokenizer: &TextTokenizer, prompt: &str, settings: &GenerationSettings) -> Result<String> {
    Ok(chat(model, tokenizer, &[Message::new("user", prompt)], settings, |_| true)?.text)
}

/// A model's next turn in a conversation, and how much of its context the conversation uses.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatReply {
    pub text: String,
    /// Tokens of the conversation with this reply, and the model's context.
    pub tokens: usize,
    pub context: usize,
}

/// What a model says next in `messages` (a system turn first, if any; the user's turn last):
/// generated text, or for a classifier its classes for the last user turn. `on_text` sees the
/// reply so far after each token and stops it by returning `false` (the reply then ends there).
/// A conversation that leaves no room in the model's context is refused, saying so.
pub fn reply(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    messages: &[Message],
    settings: &GenerationSettings,
    on_text: impl FnMut(&str) -> bool,
) -> Result<ChatReply> {
    if model.num_labels().is_none() {
        return chat(model, tokenizer, messages, settings, on_text);
    }
    let last = messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
    let text = crate::classify::describe_classes(model, tokenizer, last)?;
    Ok(ChatReply { text, tokens: 0, context: model.config.max_position_embeddings })
}

/// [`reply`] for a language model.
pub fn chat(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    messages: &[Message],
    settings: &GenerationSettings,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<ChatReply> {
    settings.validate()?;
    let rendered = conversation_prompt(messages, tokenizer, settings.chat_template)?;
    let ids = tokenizer.encode(&rendered.text, !rendered.has_special_tokens)?;
    let context = model.config.max_position_embeddings;
    if ids.len() >= context {
        let what = if messages.len() > 1 { "the conversation" } else { "the prompt" };
        return Err(Error::setting(
            "prompt",
            format!(
                "{what} is {} tokens, which leaves no room in the model's context of {context} (max_position_embeddings); {}",
                ids.len(),
                if messages.len() > 1 { "clear it, or shorten the system prompt" } else { "shorten it" }
            ),
        ));
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= model.config.vocab_size) {
        return Err(Error::Tokenizer(format!(
            "the prompt has token id {id}, outside the model's vocabulary of {} (vocab_size): the tokenizer and the model do not match",
            model.config.vocab_size
        )));
    }
    let mut reply_ids = Vec::new();
    let out = generate_ids(model, &ids, settings, &tokenizer.eos_token_ids, |token| {
        reply_ids.push(token);
        // A token that ends inside a character decodes to a replacement mark until the next.
        tokenizer.decode(&reply_ids).map_or(true, |text| on_text(&text))
    });
    Ok(ChatReply { text: tokenizer.decode(&out)?, tokens: ids.len() + out.len(), context })
}

fn choose(logits: &[f32], settings: &GenerationSettings, rng: &mut impl Rng) -> u32 {
    let argmax =
        || logits.iter().enumerate().fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32;
    if settings.temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i, ((l as f64 - max) / settings.temperature).exp())).collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1;
        if kept >= settings.top_p {
            cut = i + 1;
            break;
        }
    }
    probs.truncate(cut);
    let mut r = rng.random::<f64>() * kept.min(probs.iter().map(|p| p.1).sum());
    for (i, p) in &probs {
        if r < *p {
            return *i as u32;
        }
        r -= p;
    }
    probs.last().map(|p| p.0 as u32).unwrap_or_else(argmax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        let s = GenerationSettings::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        assert_eq!(choose(&[0.1, 3.0, -1.0], &s, &mut rng), 1);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let s = GenerationSettings { temperature: 1.0, top_p: 0.5, ..Default::default() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        // Token 2 holds almost all the mass; with top_p 0.5 nothing else is ever drawn.
        for _ in 0..100 {
            assert_eq!(choose(&[0.0, 0.0, 10.0, 0.0], &s, &mut rng), 2);
        }
        let s = GenerationSettings { temperature: 1.0, top_p: 1.0, ..Default::default() };
        let drawn: std::collections::HashSet<u32> = (0..200).map(|_| choose(&[0.0, 0.0, 0.0], &s, &mut rng)).collect();
        assert_eq!(drawn.len(), 3);
    }

    fn tiny() -> (CausalLm, TextTokenizer) {
        let folder =
            crate::model::ModelFolder::open(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama")).unwrap();
        (folder.load(&burn::tensor::Device::flex()).unwrap(), folder.tokenizer().unwrap())
    }

    #[test]
    fn a_conversation_streams_its_reply_stops_when_asked_and_keeps_within_the_context() {
        let (model, tokenizer) = tiny();
        let settings = GenerationSettings { max_new_tokens: 6, ..Default::default() };
        let conversation = [
            Message::new("system", "Be brief."),
            Message::new("user", "What is the capital of France?"),
            Message::new("assistant", "Paris."),
            Message::new("user", "And of Italy?"),
        ];
        let mut streamed = Vec::new();
        let reply = chat(&model, &tokenizer, &conversation, &settings, |text| {
            streamed.push(text.to_string());
            true
        })
        .unwrap();
        // The reply grows token by token and ends as the last text streamed.
        assert_eq!(streamed.len(), 6, "{streamed:?}");
        assert_eq!(streamed.last().unwrap(), &reply.text);
        let rendered = crate::data::conversation_prompt(&conversation, &tokenizer, true).unwrap();
        let prompt_tokens = tokenizer.encode(&rendered.text, false).unwrap().len();
        assert_eq!((reply.tokens, reply.context), (prompt_tokens + 6, model.config.max_position_embeddings));

        let mut calls = 0;
        let stopped = chat(&model, &tokenizer, &conversation, &settings, |_| {
            calls += 1;
            calls < 2
        })
        .unwrap();
        assert_eq!(stopped.tokens, prompt_tokens + 2, "stopped after its second token");

        let long = [
            Message::new("user", &"word ".repeat(model.config.max_position_embeddings)),
            Message::new("assistant", "ok"),
            Message::new("user", "and?"),
        ];
        let err = chat(&model, &tokenizer, &long, &settings, |_| true).unwrap_err().to_string();
        assert!(err.contains("the conversation is") && err.contains("clear it, or shorten the system prompt"), "{err}");
    }
}
