//! A language model as a classifier without training: each label is scored by the likelihood
//! the model gives its name as the answer to "which of these fits the text?", and the most
//! likely label is its answer. This is the base model's accuracy a fine-tuned head is measured
//! against.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use super::{LabelSet, Prediction};
use crate::data::{Example, generation_prompt};
use crate::error::{Error, Result};
use crate::model::{CausalLm, ForwardOptions};
use crate::tokenizer::TextTokenizer;

/// The question after the text, in the chat template where the tokenizer has one.
fn question(text: &str, labels: &LabelSet) -> String {
    format!("{text}\n\nWhich of these categories fits the text above: {}? Answer with the category only.", labels.names.join(", "))
}

/// Zero-shot probabilities (a softmax over the labels' summed log-likelihoods) for each example.
pub fn zero_shot_examples(model: &CausalLm, tokenizer: &TextTokenizer, examples: &[Example], labels: &LabelSet) -> Result<Vec<Prediction>> {
    if model.num_labels().is_some() {
        return Err(Error::setting("model", "zero-shot answers come from a language model; this one has a classification head"));
    }
    let model = model.valid();
    let device = model.device();
    let chat = tokenizer.has_chat_template();
    let answers = labels
        .names
        .iter()
        .map(|name| tokenizer.encode(&if chat { name.clone() } else { format!(" {name}") }, false))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(examples.len());
    for example in examples {
        let text = tokenizer.decode(&example.ids)?;
        let prompt = generation_prompt(&question(&text, labels), tokenizer, true)?;
        let prompt_ids = tokenizer.encode(&prompt.text, !prompt.has_special_tokens)?;
        let rows: Vec<Vec<u32>> = answers.iter().map(|a| [prompt_ids.as_slice(), a].concat()).collect();
        let len = rows.iter().map(Vec::len).max().unwrap_or(1);
        let pad = tokenizer.pad_token_id as i64;
        let ids: Vec<i64> = rows.iter().flat_map(|r| r.iter().map(|&t| t as i64).chain(std::iter::repeat(pad)).take(len)).collect();
        // The position before each answer token predicts it.
        let (positions, targets): (Vec<i64>, Vec<i64>) = rows
            .iter()
            .enumerate()
            .flat_map(|(r, row)| (prompt_ids.len()..row.len()).map(move |t| ((r * len + t - 1) as i64, row[t] as i64)))
            .unzip();
        let n = positions.len();
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [rows.len(), len]), &device);
        let hidden = model.hidden_states(input, None, ForwardOptions::default());
        let dim = hidden.dims()[2];
        let selected = hidden.reshape([rows.len() * len, dim]).select(0, Tensor::from_data(TensorData::new(positions, [n]), &device));
        let logits = model.head().logits(selected, true);
        let target = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
        let log_p = log_softmax(logits, 1).gather(1, target).into_data().convert::<f32>().try_into_vec::<f32>();
        let log_p = log_p.map_err(|e| Error::Internal(format!("{e:?}")))?;
        let mut scores = Vec::with_capacity(answers.len());
        let mut next = 0;
        for answer in &answers {
            scores.push(log_p[next..next + answer.len()].iter().sum::<f32>());
            next += answer.len();
        }
        let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
        let total: f32 = exp.iter().sum();
        out.push(Prediction { probabilities: exp.iter().map(|e| e / total).collect() });
    }
    Ok(out)
}
