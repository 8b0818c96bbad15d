//! Dataset shapes (alpaca, chat, ShareGPT, prompt/completion, raw text): detecting them from
//! the records and reading each record into a [`Sample`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tokenizer::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetFormat {
    /// `instruction`, optional `input`, `output` (and optional `system`).
    Alpaca,
    /// `messages`: `[{"role", "content"}]`.
    Chat,
    /// `conversations`: `[{"from", "value"}]`.
    ShareGpt,
    /// `prompt` and `completion`.
    PromptCompletion,
    /// `text`.
    Text,
}

impl DatasetFormat {
    pub const ALL: [DatasetFormat; 5] = [Self::Alpaca, Self::Chat, Self::ShareGpt, Self::PromptCompletion, Self::Text];

    pub fn name(self) -> &'static str {
        match self {
            Self::Alpaca => "alpaca",
            Self::Chat => "chat",
            Self::ShareGpt => "sharegpt",
            Self::PromptCompletion => "prompt_completion",
            Self::Text => "text",
        }
    }

    /// Recognises the format from one record's field names.
    pub fn detect(fields: &Map<String, Value>) -> Option<Self> {
        let has = |k: &str| fields.contains_key(k);
        if has("messages") {
            Some(Self::Chat)
        } else if has("conversations") {
            Some(Self::ShareGpt)
        } else if has("instruction") && has("output") {
            Some(Self::Alpaca)
        } else if has("prompt") && has("completion") {
            Some(Self::PromptCompletion)
        } else if has("text") {
            Some(Self::Text)
        } else {
            None
        }
    }

    /// Reads one record in this format.
    pub fn sample(self, fields: &Map<String, Value>) -> Result<Sample, String> {
        match self {
            Self::Alpaca => Ok(Sample::Alpaca {
                system: optional_string(fields, "system")?,
                instruction: string(fields, "instruction")?,
                input: optional_string(fields, "input")?.unwrap_or_default(),
                output: string(fields, "output")?,
            }),
            Self::Chat => Ok(Sample::Chat(messages(fields, "messages", "role", "content")?)),
            Self::ShareGpt => Ok(Sample::Chat(messages(fields, "conversations", "from", "value")?)),
            Self::PromptCompletion => {
                Ok(Sample::PromptCompletion { prompt: string(fields, "prompt")?, completion: string(fields, "completion")? })
            }
            Self::Text => Ok(Sample::Text(string(fields, "text")?)),
        }
    }
}

impl std::fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DatasetFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|f| f.name() == s || (s == "prompt-completion" && *f == Self::PromptCompletion)).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|f| f.name()).collect();
            format!("unknown dataset format `{s}` ({})", names.join(", "))
        })
    }
}

/// One training example before rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sample {
    Alpaca { system: Option<String>, instruction: String, input: String, output: String },
    Chat(Vec<Message>),
    PromptCompletion { prompt: String, completion: String },
    Text(String),
}

fn string(fields: &Map<String, Value>, key: &str) -> Result<String, String> {
    optional_string(fields, key)?.ok_or_else(|| format!("missing field `{key}`"))
}

fn optional_string(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // CSV and hand-written JSON often hold numbers where text is meant.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(format!("field `{key}` must be a string")),
    }
}

fn messages(fields: &Map<String, Value>, key: &str, role_key: &str, content_key: &str) -> Result<Vec<Message>, String> {
    let items = fields
        .get(key)
        .ok_or_else(|| format!("missing field `{key}`"))?
        .as_array()
        .ok_or_else(|| format!("field `{key}` must be an array of messages"))?;
    if items.is_empty() {
        return Err(format!("field `{key}` is empty"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let obj = item.as_object().ok_or_else(|| format!("{key}[{i}] must be an object"))?;
            let role = string(obj, role_key).map_err(|e| format!("{key}[{i}]: {e}"))?;
            let content = string(obj, content_key).map_err(|e| format!("{key}[{i}]: {e}"))?;
            Ok(Message { role: normalize_role(&role).to_string(), content })
        })
        .collect()
}

/// ShareGPT's speaker names mapped to chat roles.
fn normalize_role(role: &str) -> &str {
    match role {
        "human" | "user" => "user",
        "gpt" | "assistant" | "model" | "bot" => "assistant",
        "system" => "system",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn detects_each_shape() {
        let cases = [
            (r#"{"instruction": "a", "input": "", "output": "b"}"#, DatasetFormat::Alpaca),
            (r#"{"messages": []}"#, DatasetFormat::Chat),
            (r#"{"conversations": []}"#, DatasetFormat::ShareGpt),
            (r#"{"prompt": "a", "completion": "b"}"#, DatasetFormat::PromptCompletion),
            (r#"{"text": "a"}"#, DatasetFormat::Text),
        ];
        for (json, expected) in cases {
            assert_eq!(DatasetFormat::detect(&fields(json)), Some(expected), "{json}");
        }
        assert_eq!(DatasetFormat::detect(&fields(r#"{"question": "a"}"#)), None);
    }

    #[test]
    fn sharegpt_speakers_become_roles() {
        let s = DatasetFormat::ShareGpt
            .sample(&fields(r#"{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}"#))
            .unwrap();
        assert_eq!(s, Sample::Chat(vec![Message::new("user", "hi"), Message::new("assistant", "yo")]));
    }

    #[test]
    fn bad_records_say_which_field() {
        let err = DatasetFormat::Chat.sample(&fields(r#"{"messages": [{"role": "user"}]}"#)).unwrap_err();
        assert_eq!(err, "messages[0]: missing field `content`");
        let err = DatasetFormat::Alpaca.sample(&fields(r#"{"instruction": ["x"], "output": "y"}"#)).unwrap_err();
        assert_eq!(err, "field `instruction` must be a string");
    }
}
