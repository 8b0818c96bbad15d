//! Mutations of a seed file: the byte-level ones that find length and count fields and broken
//! structure in binary formats, and text ones that find broken syntax and extreme numbers in
//! JSON, CSV, TOML and Jinja.

use wgtune::seed::SplitMix64;

/// Values a length, count or index field is worth trying.
const INTERESTING_U64: [u64; 9] = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 40, u64::MAX];

/// Text that breaks or stretches a text format.
const TOKENS: [&str; 24] = [
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "\n",
    "\\",
    "\0",
    "{{",
    "}}",
    "{%",
    "%}",
    "-1",
    "0",
    "1e400",
    "NaN",
    "99999999999999999999999",
    "\u{FEFF}",
    "\u{10FFFF}",
    "null",
    "true",
    "'",
];

pub struct Mutator {
    rng: SplitMix64,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Self { rng: SplitMix64::new(seed) }
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.rng.next_u64() % n as u64) as usize }
    }

    /// One to four mutations of `input`; `other` is another seed to splice from.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut bytes = input.to_vec();
        for _ in 0..1 + self.below(4) {
            self.mutate_once(&mut bytes, other);
        }
        bytes
    }

    fn mutate_once(&mut self, bytes: &mut Vec<u8>, other: &[u8]) {
        let len = bytes.len();
        match self.below(9) {
            // A flipped bit.
            0 if len > 0 => {
                let at = self.below(len);
                bytes[at] ^= 1 << self.below(8);
            }
            // A byte set to an edge value.
            1 if len > 0 => {
                let at = self.below(len);
                bytes[at] = [0, 0xFF, 0x7F, 0x80][self.below(4)];
            }
            // A little-endian field of 4 or 8 bytes set to an interesting value: GGUF's and
            // safetensors' lengths and counts.
            2 if len >= 8 => {
                let value = INTERESTING_U64[self.below(INTERESTING_U64.len())];
                let width = if self.below(2) == 0 { 4 } else { 8 };
                let at = self.below(len - width + 1);
                bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            // Cut short.
            3 if len > 0 => bytes.truncate(self.below(len)),
            // A span repeated.
            4 if len > 0 => {
                let start = self.below(len);
                let end = (start + 1 + self.below(64)).min(len);
                let span = bytes[start..end].to_vec();
                let at = self.below(len);
                bytes.splice(at..at, span);
            }
            // A span removed.
            5 if len > 0 => {
                let start = self.below(len);
                let end = (start + 1 + self.below(64)).min(len);
                bytes.drain(start..end);
            }
            // Text inserted where a format's syntax lives.
            6 => {
                let token = TOKENS[self.below(TOKENS.len())];
                let at = self.below(len + 1);
                bytes.splice(at..at, token.bytes());
            }
            // A number replaced by an extreme one.
            7 => {
                if let Some(at) = (0..len).map(|_| self.below(len)).take(8).find(|&i| bytes[i].is_ascii_digit()) {
                    let end = (at..len).find(|&i| !bytes[i].is_ascii_digit()).unwrap_or(len);
                    let number = ["0", "-1", "4294967296", "18446744073709551616", "1e308", "65536"][self.below(6)];
                    bytes.splice(at..end, number.bytes());
                }
            }
            // Spliced with another seed.
            _ if !other.is_empty() => {
                let cut = self.below(len + 1);
                let from = self.below(other.len());
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
}
