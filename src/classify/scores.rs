//! Classification metrics from predicted and true labels: accuracy, per-class and macro
//! precision, recall and F1 (scikit-learn's definitions, 0 where a ratio has no denominator), and
//! the confusion matrix.

use serde::{Deserialize, Serialize};

use super::LabelSet;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// How many examples truly are of this class.
    pub support: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationScores {
    pub examples: usize,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassScores>,
    /// `confusion[true][predicted]`: how many examples of the row's class were given the
    /// column's.
    pub confusion: Vec<Vec<usize>>,
}

impl ClassificationScores {
    /// Scores `(true, predicted)` label ids.
    pub fn from_pairs(labels: &LabelSet, pairs: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let n = labels.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for (truth, predicted) in pairs {
            if let Some(row) = confusion.get_mut(truth as usize)
                && let Some(cell) = row.get_mut(predicted as usize)
            {
                *cell += 1;
            }
        }
        let examples: usize = confusion.iter().flatten().sum();
        let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassScores> = (0..n)
            .map(|c| {
                let hits = confusion[c][c];
                let support: usize = confusion[c].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                let (precision, recall) = (ratio(hits, predicted), ratio(hits, support));
                let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
                ClassScores { label: labels.name(c).to_string(), precision, recall, f1, support }
            })
            .collect();
        let mean = |f: fn(&ClassScores) -> f64| if n == 0 { 0.0 } else { per_class.iter().map(f).sum::<f64>() / n as f64 };
        Self {
            examples,
            accuracy: ratio(correct, examples),
            macro_precision: mean(|c| c.precision),
            macro_recall: mean(|c| c.recall),
            macro_f1: mean(|c| c.f1),
            per_class,
            confusion,
        }
    }

    /// The headline figures by name, for tables: accuracy and the macro averages.
    pub fn measures(&self) -> [(&'static str, f64); 4] {
        [
            ("Accuracy", self.accuracy),
            ("Macro precision", self.macro_precision),
            ("Macro recall", self.macro_recall),
            ("Macro F1", self.macro_f1),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_scikit_learn() {
        // sklearn.metrics.classification_report(y_true=[0,0,0,1,1,2], y_pred=[0,0,1,1,2,2]):
        // precision 1.0, 0.5, 0.5; recall 0.667, 0.5, 1.0; f1 0.8, 0.5, 0.667; accuracy 0.667.
        let labels = LabelSet::collect(["0", "1", "2"]);
        let s = ClassificationScores::from_pairs(&labels, [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]);
        assert_eq!(s.confusion, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert!((s.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let p: Vec<f64> = s.per_class.iter().map(|c| c.precision).collect();
        assert_eq!(p, [1.0, 0.5, 0.5]);
        assert!((s.per_class[0].f1 - 0.8).abs() < 1e-12);
        assert!((s.macro_recall - (2.0 / 3.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((s.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(s.per_class[2].support, 1);
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let labels = LabelSet::collect(["a", "b"]);
        let s = ClassificationScores::from_pairs(&labels, [(0, 0), (1, 0)]);
        assert_eq!((s.per_class[1].precision, s.per_class[1].recall, s.per_class[1].f1), (0.0, 0.0, 0.0));
        assert_eq!(s.per_class[0].precision, 0.5);
    }
}
