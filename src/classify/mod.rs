//! Sequence classification: a `score` head over the decoder's last non-padding position, as
//! transformers' `LlamaForSequenceClassification` (and the Qwen2, Qwen3 and Mistral variants)
//! pool it; the labels a dataset names; accuracy, precision, recall and F1; and, for a base model
//! without a head, zero-shot answers from the label names' likelihood.

mod labels;
mod predict;
mod report;
mod scores;
mod zero_shot;

pub use labels::{LABELS_FILE, LabelSet, label_of};
pub use predict::{Prediction, classify_batch, classify_examples, classify_text, describe_classes};
pub use report::{ClassAnswer, ClassificationReport, ClassifiedBy, evaluate_classifier};
pub use scores::{ClassScores, ClassificationScores};
pub use zero_shot::zero_shot_examples;
