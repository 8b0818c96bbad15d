//! A classifier's answers to a labelled file, scored: what `wgtune eval` and the Evaluate tab
//! show for a classification dataset.

use serde::{Deserialize, Serialize};

use super::{ClassificationScores, LabelSet, Prediction, classify_examples, zero_shot_examples};
use crate::data::Example;
use crate::error::Result;
use crate::model::CausalLm;
use crate::tokenizer::TextTokenizer;

/// How a model's classes were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassifiedBy {
    /// The model's trained `score` head.
    Head,
    /// A language model without a head, by the likelihood of each label's name.
    ZeroShot,
}

/// One record's class, as the model gives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassAnswer {
    pub line: usize,
    pub text: String,
    pub reference: String,
    pub predicted: String,
    /// The probability of the predicted class.
    pub confidence: f32,
}

impl ClassAnswer {
    pub fn correct(&self) -> bool {
        self.reference == self.predicted
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    pub by: ClassifiedBy,
    pub scores: ClassificationScores,
    pub answers: Vec<ClassAnswer>,
}

/// Classifies every example (with the head, or zero-shot from the labels' names when the model
/// has none) and scores the classes against the examples' labels.
pub fn evaluate_classifier(
    model: &CausalLm,
    tokenizer: &TextTokenizer,
    examples: &[Example],
    labels: &LabelSet,
) -> Result<ClassificationReport> {
    let (by, predictions): (ClassifiedBy, Vec<Prediction>) = match model.num_labels() {
        Some(_) => {
            let pad = model.config.pad_token_id.unwrap_or(tokenizer.pad_token_id);
            (ClassifiedBy::Head, classify_examples(model, examples, pad, 8, Default::default())?)
        }
        None => (ClassifiedBy::ZeroShot, zero_shot_examples(model, tokenizer, examples, labels)?),
    };
    let mut answers = Vec::with_capacity(examples.len());
    for (example, prediction) in examples.iter().zip(&predictions) {
        let predicted = prediction.label();
        answers.push(ClassAnswer {
            line: example.origin.line,
            text: tokenizer.decode(&example.ids)?,
            reference: labels.name(example.label.unwrap_or(0) as usize).to_string(),
            predicted: labels.name(predicted as usize).to_string(),
            confidence: prediction.probabilities[predicted as usize],
        });
    }
    let pairs = examples.iter().zip(&predictions).map(|(e, p)| (e.label.unwrap_or(0), p.label()));
    Ok(ClassificationReport { by, scores: ClassificationScores::from_pairs(labels, pairs), answers })
}
