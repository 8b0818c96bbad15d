//! How close a generated answer is to the reference: the measures SQuAD made common for short
//! answers, computed on normalised text.

use serde::{Deserialize, Serialize};

/// One answer against its reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerScores {
    /// The answer is the reference, character for character (surrounding whitespace aside).
    pub exact: bool,
    /// The same after normalising both: lower case, punctuation removed, whitespace collapsed.
    pub normalized: bool,
    /// The normalised reference appears in the normalised answer (a longer sentence that gives
    /// the answer counts).
    pub contains: bool,
    /// F1 of the words the two share (normalised, as a bag of words).
    pub token_f1: f64,
}

impl AnswerScores {
    pub fn of(answer: &str, reference: &str) -> Self {
        let (a, r) = (normalize(answer), normalize(reference));
        Self {
            exact: answer.trim() == reference.trim(),
            normalized: a == r,
            contains: !r.is_empty() && a.contains(&r),
            token_f1: token_f1(&a, &r),
        }
    }
}

/// Means over a set of answers, as fractions in [0, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub examples: usize,
    pub exact_match: f64,
    pub normalized_match: f64,
    pub contains_reference: f64,
    pub token_f1: f64,
}

impl Summary {
    /// Each measure with its name, in the order reports show them.
    pub fn measures(&self) -> [(&'static str, f64); 4] {
        [
            ("Exact match", self.exact_match),
            ("Normalized match", self.normalized_match),
            ("Contains the reference", self.contains_reference),
            ("Token F1", self.token_f1),
        ]
    }

    pub fn of<'a>(scores: impl IntoIterator<Item = &'a AnswerScores>) -> Self {
        let mut s = Self::default();
        for score in scores {
            s.examples += 1;
            s.exact_match += score.exact as u8 as f64;
            s.normalized_match += score.normalized as u8 as f64;
            s.contains_reference += score.contains as u8 as f64;
            s.token_f1 += score.token_f1;
        }
        if s.examples > 0 {
            let n = s.examples as f64;
            s.exact_match /= n;
            s.normalized_match /= n;
            s.contains_reference /= n;
            s.token_f1 /= n;
        }
        s
    }
}

/// Lower case, punctuation turned into spaces, whitespace collapsed to single spaces. (SQuAD also
/// drops English articles; answers here may be in any language, so words stay.)
pub fn normalize(text: &str) -> String {
    let spaced: String = text.chars().map(|c| if c.is_alphanumeric() { c.to_lowercase().next().unwrap_or(c) } else { ' ' }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// F1 over the words of two normalised texts, each word counted as often as it occurs.
fn token_f1(answer: &str, reference: &str) -> f64 {
    let (a, r): (Vec<&str>, Vec<&str>) =
        (answer.split(' ').filter(|w| !w.is_empty()).collect(), reference.split(' ').filter(|w| !w.is_empty()).collect());
    if a.is_empty() || r.is_empty() {
        return (a.is_empty() && r.is_empty()) as u8 as f64;
    }
    let mut remaining = r.clone();
    let mut common = 0usize;
    for word in &a {
        if let Some(i) = remaining.iter().position(|w| w == word) {
            remaining.swap_remove(i);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let (precision, recall) = (common as f64 / a.len() as f64, common as f64 / r.len() as f64);
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_score_as_squad_scores_them() {
        let same = AnswerScores::of(" The capital is Quellton.", "The capital is Quellton.");
        assert_eq!(same, AnswerScores { exact: true, normalized: true, contains: true, token_f1: 1.0 });

        let cased = AnswerScores::of("the capital is QUELLTON", "The capital is Quellton.");
        assert_eq!((cased.exact, cased.normalized, cased.token_f1), (false, true, 1.0));

        let longer = AnswerScores::of("The capital of Zorbia is Quellton, on the coast.", "Quellton");
        assert_eq!((longer.normalized, longer.contains), (false, true));
        // One shared word of nine in the answer, of one in the reference: 2·(1/9)·1 / (1/9 + 1).
        assert!((longer.token_f1 - 0.2).abs() < 1e-12, "{}", longer.token_f1);

        let wrong = AnswerScores::of("Nova Haven", "Quellton");
        assert_eq!(wrong, AnswerScores { exact: false, normalized: false, contains: false, token_f1: 0.0 });
        // Repeated words count once each against the reference's.
        assert!((AnswerScores::of("crown crown", "zorbian crown").token_f1 - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_summary_averages_each_measure() {
        let scores = [AnswerScores::of("Quellton", "Quellton"), AnswerScores::of("Nova Haven", "Quellton")];
        let s = Summary::of(&scores);
        assert_eq!((s.examples, s.exact_match, s.contains_reference, s.token_f1), (2, 0.5, 0.5, 0.5));
        assert_eq!(Summary::of(&[]), Summary::default());
        assert_eq!(normalize("Mount  Kárrow!\n"), "mount kárrow");
    }
}
