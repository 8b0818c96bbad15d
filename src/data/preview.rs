//! Examples shown as the model sees them: text split into the parts it learns to write and the
//! parts it only reads.

use super::dataset::Example;
use crate::error::Result;
use crate::tokenizer::TextTokenizer;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub text: String,
    /// The loss is computed on these tokens.
    pub trainable: bool,
}

/// Decodes `example` into runs of trained and untrained tokens, special tokens included.
///
/// The text is decoded whole and cut where the runs meet, so a character whose bytes span two
/// tokens is never split into replacement characters.
pub fn segments(tokenizer: &TextTokenizer, example: &Example) -> Result<Vec<Segment>> {
    let text = tokenizer.decode_with_special_tokens(&example.ids)?;
    let mut out: Vec<Segment> = Vec::new();
    let (mut start, mut offset) = (0, 0);
    while start < example.ids.len() {
        let trainable = example.trainable[start];
        let end = (start..example.ids.len()).find(|&i| example.trainable[i] != trainable).unwrap_or(example.ids.len());
        let prefix = tokenizer.decode_with_special_tokens(&example.ids[..end])?;
        let prefix = prefix.trim_end_matches('\u{FFFD}');
        let cut = if text.starts_with(prefix) { prefix.len().max(offset) } else { text.len() };
        out.push(Segment { text: text[offset..cut].to_string(), trainable });
        offset = cut;
        start = end;
    }
    Ok(out)
}
