//! Writing the recipes' YAML files: `key: value` lines whose values are JSON, which YAML reads
//! as it is (a YAML 1.2 parser takes any JSON value), with a comment above a key where a setting
//! needs one.

use serde_json::Value;

/// One line of a YAML mapping, and the comment above it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: &'static str,
    pub value: Value,
    pub comment: Option<String>,
}

impl Entry {
    pub fn new(key: &'static str, value: impl Into<Value>) -> Self {
        Self { key, value: value.into(), comment: None }
    }

    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

/// The mapping as a YAML document under a header comment.
pub fn document(header: &str, entries: &[Entry]) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
    }
    for entry in entries {
        if let Some(comment) = &entry.comment {
            for line in comment.lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
        out.push_str(&format!("{}: {}\n", entry.key, entry.value));
    }
    out
}

/// The value of `key` among `entries`.
#[cfg(test)]
pub fn lookup<'a>(entries: &'a [Entry], key: &str) -> Option<&'a Value> {
    entries.iter().find(|e| e.key == key).map(|e| &e.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_and_comments_sit_above_their_key() {
        let entries = [
            Entry::new("learning_rate", 0.0002),
            Entry::new("lora_target_modules", serde_json::json!(["q_proj", "v_proj"])).with_comment("the family's names"),
            Entry::new("output_dir", "out: \"final\""),
        ];
        assert_eq!(
            document("a recipe\n\nfrom wgtune", &entries),
            "# a recipe\n#\n# from wgtune\nlearning_rate: 0.0002\n# the family's names\nlora_target_modules: [\"q_proj\",\"v_proj\"]\noutput_dir: \"out: \\\"final\\\"\"\n"
        );
        assert_eq!(lookup(&entries, "learning_rate"), Some(&serde_json::json!(0.0002)));
    }
}
