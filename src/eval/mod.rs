//! Whether fine-tuning worked, by what the model writes: each held-out record's prompt goes to
//! the model (greedy, KV-cached), and its answer is scored against the record's reply.
//!
//! A record's prompt is rendered exactly as training renders it, up to its last reply: the chat
//! template with the generation prompt for conversations and alpaca records, the raw prompt for
//! prompt/completion pairs. The reference is that reply's text.

mod metrics;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use metrics::{AnswerScores, Summary, normalize};

use crate::data::{DataConfig, Example, Origin, Sample, Skipped, columns, for_each_record, nothing_to_evaluate, record_format, render};
use crate::error::Result;
use crate::generate::{GenerationSettings, generate_batch};
use crate::model::CausalLm;
use crate::tokenizer::{RenderedText, TextTokenizer};

/// One record to answer.
#[derive(Clone, Debug)]
pub struct EvalCase {
    pub origin: Origin,
    /// The question as a person reads it (its last user turn, instruction or prompt).
    pub question: String,
    /// The prompt's tokens, rendered as training renders them, up to where the reply starts.
    pub prompt_ids: Vec<u32>,
    /// What the model asked this is expected to write.
    pub reference: String,
}

/// The cases of already tokenized examples (a run's validation set): each prompt up to its last
/// trained span, which decoded is the reference. Examples without a trained span are left out.
pub fn cases_from_examples(examples: &[Example], tokenizer: &TextTokenizer) -> Result<Vec<EvalCase>> {
    let mut cases = Vec::new();
    for example in examples {
        let Some(end) = example.trainable.iter().rposition(|t| *t) else { continue };
        let start = example.trainable[..end].iter().rposition(|t| !*t).map_or(0, |i| i + 1);
        if start == 0 {
            continue;
        }
        let reference = tokenizer.decode(&example.ids[start..=end])?.trim().to_string();
        let question = last_question_line(&tokenizer.decode(&example.ids[..start])?);
        cases.push(EvalCase { origin: example.origin.clone(), question, prompt_ids: example.ids[..start].to_vec(), reference });
    }
    Ok(cases)
}

/// The question in a rendered prompt, as a person reads it: its last line that is not the
/// template's opening of the reply (`assistant`, `model`, `### Response:`).
fn last_question_line(prompt: &str) -> String {
    let opening = |line: &str| matches!(line, "" | "assistant" | "Assistant" | "model" | "### Response:");
    prompt.lines().map(str::trim).rev().find(|line| !opening(line)).unwrap_or_default().to_string()
}

/// One answered record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub line: usize,
    /// The record's question (its last user turn, instruction or prompt).
    pub question: String,
    pub reference: String,
    pub answer: String,
    pub scores: AnswerScores,
}

/// A model's answers to a dataset, with their means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub summary: Summary,
    pub answers: Vec<Answer>,
    /// Records that could not be asked, with their reason.
    pub skipped: Vec<(usize, String)>,
}

/// The records of `path` as questions with references (at most `limit`), and those that could
/// not be made into one: unreadable, without a reply (plain text), or not renderable.
pub fn load_cases(
    path: &Path,
    data: &DataConfig,
    tokenizer: &TextTokenizer,
    limit: Option<usize>,
) -> Result<(Vec<EvalCase>, Vec<Skipped>)> {
    columns::check(&data.columns)?;
    let file: Arc<Path> = Arc::from(path);
    let mut format = data.format;
    let (mut cases, mut skipped) = (Vec::new(), Vec::new());
    for_each_record(path, data.max_record_bytes(), |item| {
        if limit.is_some_and(|limit| cases.len() >= limit) {
            return Ok(());
        }
        let mut record = match item {
            Ok(record) => record,
            Err(problem) => {
                skipped.push(Skipped { origin: Origin { file: file.clone(), line: problem.line }, reason: problem.message });
                return Ok(());
            }
        };
        record.fields = columns::apply(&data.columns, record.fields);
        let origin = Origin { file: file.clone(), line: record.line };
        let format = record_format(&mut format, &record, path)?;
        match format
            .sample(&record.fields)
            .map_err(|e| columns::explain(&data.columns, e))
            .and_then(|s| case(&s, tokenizer, origin.clone()))
        {
            Ok(case) => cases.push(case),
            Err(reason) => skipped.push(Skipped { origin, reason }),
        }
        Ok(())
    })?;
    if cases.is_empty() {
        return Err(nothing_to_evaluate(path, &skipped));
    }
    Ok((cases, skipped))
}

/// The case of one sample.
fn case(sample: &Sample, tokenizer: &TextTokenizer, origin: Origin) -> std::result::Result<EvalCase, String> {
    let (question, reference) = match sample {
        Sample::Alpaca { instruction, input, output, .. } => {
            (if input.is_empty() { instruction.clone() } else { format!("{instruction}\n\n{input}") }, output.clone())
        }
        Sample::Chat(messages) => {
            let last =
                messages.iter().rposition(|m| m.role == "assistant").ok_or("the conversation has no assistant reply to compare with")?;
            let question = messages[..last].iter().rev().find(|m| m.role == "user").map(|m| m.content.clone()).unwrap_or_default();
            (question, messages[last].content.clone())
        }
        Sample::PromptCompletion { prompt, completion } => (prompt.clone(), completion.clone()),
        Sample::Text(_) => {
            return Err("a plain-text record has no reply to compare with: evaluate on prompt/completion, chat or alpaca records".into());
        }
    };
    let rendered = render(sample, tokenizer, false).map_err(|e| e.to_string())?;
    let start = rendered.trainable.last().map(|span| span.start).ok_or("the record renders without a reply")?;
    let prompt =
        RenderedText { text: rendered.text[..start].to_string(), trainable: Vec::new(), has_special_tokens: rendered.has_special_tokens };
    let prompt_ids = tokenizer.tokenize(&prompt).map_err(|e| e.to_string())?.ids;
    Ok(EvalCase { origin, question, prompt_ids, reference })
}

/// Prompts answered together: one batch of greedy decoding with a shared KV cache.
const ANSWER_BATCH: usize = 8;

/// Answers every case greedily, up to `max_new_tokens` each, in batches of prompts of similar
/// length, and scores the answers, in the cases' order. `progress` sees (done, total) after each
/// batch.
pub fn evaluate(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    cases: &[EvalCase],
    max_new_tokens: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<EvalReport> {
    GenerationSettings { max_new_tokens, ..Default::default() }.validate()?;
    let context = model.config.max_position_embeddings;
    let mut report = EvalReport::default();
    let (fits, too_long): (Vec<&EvalCase>, Vec<&EvalCase>) = cases.iter().partition(|c| c.prompt_ids.len() < context);
    for case in too_long {
        let message = format!("its prompt of {} tokens fills the model's context of {context}", case.prompt_ids.len());
        report.skipped.push((case.origin.line, message));
    }
    // Similar lengths together waste the least padding; answers go back in the cases' order.
    let mut order: Vec<usize> = (0..fits.len()).collect();
    order.sort_by_key(|&i| fits[i].prompt_ids.len());
    let mut answers: Vec<Option<Answer>> = vec![None; fits.len()];
    let mut done = 0;
    for batch in order.chunks(ANSWER_BATCH) {
        let prompts: Vec<Vec<u32>> = batch.iter().map(|&i| fits[i].prompt_ids.clone()).collect();
        let outputs = generate_batch(model, &prompts, max_new_tokens, &tokenizer.eos_token_ids);
        for (&i, output) in batch.iter().zip(outputs) {
            let case = fits[i];
            let answer = tokenizer.decode(&output)?.trim().to_string();
            let scores = AnswerScores::of(&answer, &case.reference);
            let (line, question, reference) = (case.origin.line, case.question.clone(), case.reference.clone());
            answers[i] = Some(Answer { line, question, reference, answer, scores });
        }
        done += batch.len();
        progress(done, fits.len());
    }
    report.answers = answers.into_iter().flatten().collect();
    report.summary = Summary::of(report.answers.iter().map(|a| &a.scores));
    Ok(report)
}
