//! A classifier's answers: class probabilities for each text, batched.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use std::path::Path;

use crate::data::{Batch, Example, Origin, pooled_position};
use crate::error::{Error, Result};
use crate::model::{CausalLm, ForwardOptions};
use crate::tokenizer::TextTokenizer;

/// One text's class probabilities, by class id.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub probabilities: Vec<f32>,
}

impl Prediction {
    /// The most probable class (the first of equals).
    pub fn label(&self) -> u32 {
        let mut best = 0;
        for (i, p) in self.probabilities.iter().enumerate() {
            if *p > self.probabilities[best] {
                best = i;
            }
        }
        best as u32
    }
}

/// Class logits `[batch, num_labels]` of a batch, each sequence read at its last non-padding
/// position.
pub fn classify_batch(model: &CausalLm, batch: &Batch, pad_id: u32, device: &Device, options: ForwardOptions) -> Tensor<2> {
    let positions: Vec<i64> = (0..batch.batch_size)
        .map(|row| {
            let start = row * batch.len;
            (start + pooled_position(&batch.input_ids[start..start + batch.len], pad_id as i64)) as i64
        })
        .collect();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [batch.batch_size]), device);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(batch.input_ids.clone(), [batch.batch_size, batch.len]), device);
    let hidden = model.hidden_states(ids, None, options);
    model.class_logits(hidden, positions)
}

/// Probabilities for each example, `batch_size` at a time, without gradients.
pub fn classify_examples(
    model: &CausalLm,
    examples: &[Example],
    pad_id: u32,
    batch_size: usize,
    options: ForwardOptions,
) -> Result<Vec<Prediction>> {
    let Some(classes) = model.num_labels() else {
        return Err(Error::setting("model", "this model has no classification head (train one with --task classification)"));
    };
    let model = model.valid();
    let device = model.device();
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = Batch::new(&refs, pad_id);
        let probabilities = softmax(classify_batch(&model, &batch, pad_id, &device, options), 1);
        let values = probabilities.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))?;
        out.extend(values.chunks(classes).map(|p| Prediction { probabilities: p.to_vec() }));
    }
    Ok(out)
}

/// A classifier's classes for `text` (tokenized as in training: with the tokenizer's special
/// tokens), most probable first.
pub fn classify_text(model: &CausalLm, tokenizer: &TextTokenizer, text: &str) -> Result<Vec<(String, f32)>> {
    let labels = model.config.labels.clone().ok_or_else(|| Error::setting("model", "this model has no classification head"))?;
    let ids = tokenizer.encode_classification(text, None)?;
    if ids.is_empty() {
        return Err(Error::setting("prompt", "the text makes no tokens"));
    }
    let example =
        Example { trainable: vec![false; ids.len()], ids, label: None, origin: Origin { file: Path::new("prompt").into(), line: 1 } };
    let pad = model.config.pad_token_id.unwrap_or(tokenizer.pad_token_id);
    let prediction = classify_examples(model, &[example], pad, 1, Default::default())?.remove(0);
    let mut classes: Vec<(String, f32)> =
        prediction.probabilities.iter().enumerate().map(|(i, p)| (labels.name(i).to_string(), *p)).collect();
    classes.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(classes)
}

/// [`classify_text`] as one line: `positive 91.2 % · negative 6.1 % · …`.
pub fn describe_classes(model: &CausalLm, tokenizer: &TextTokenizer, text: &str) -> Result<String> {
    let classes = classify_text(model, tokenizer, text)?;
    Ok(classes.iter().map(|(name, p)| format!("{name} {:.1} %", 100.0 * p)).collect::<Vec<_>>().join(" · "))
}
