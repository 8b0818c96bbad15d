//! Dataset shapes (alpaca, chat, ShareGPT, prompt/completion, raw text): detecting them from
//! the records and reading each record into a [`Sample`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::records::kind;
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

    /// Reads one record in this format. A record is refused, with the field at fault, when text
    /// is missing, not a string, or a reply is empty, or a role or speaker is unknown: it would
    /// otherwise train on something its author did not write.
    pub fn sample(self, fields: &Map<String, Value>) -> Result<Sample, String> {
        match self {
            Self::Alpaca => Ok(Sample::Alpaca {
                system: optional_string(fields, "system")?,
                instruction: string(fields, "instruction")?,
                input: optional_string(fields, "input")?.unwrap_or_default(),
                output: reply(fields, "output")?,
            }),
            Self::Chat => Ok(Sample::Chat(messages(fields, "messages", "role", "content", chat_role)?)),
            Self::ShareGpt => Ok(Sample::Chat(messages(fields, "conversations", "from", "value", sharegpt_role)?)),
            Self::PromptCompletion => {
                Ok(Sample::PromptCompletion { prompt: string(fields, "prompt")?, completion: reply(fields, "completion")? })
            }
            Self::Text => Ok(Sample::Text(reply(fields, "text")?)),
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

/// Text the model learns to write: present and not blank.
fn reply(fields: &Map<String, Value>, key: &str) -> Result<String, String> {
    let text = string(fields, key)?;
    if text.trim().is_empty() {
        return Err(format!("field `{key}` is empty"));
    }
    Ok(text)
}

fn optional_string(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("field `{key}` is {}, expected text", kind(other))),
    }
}

fn messages(
    fields: &Map<String, Value>,
    key: &str,
    role_key: &str,
    content_key: &str,
    role_of: fn(&str) -> Option<&'static str>,
) -> Result<Vec<Message>, String> {
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
            let speaker = string(obj, role_key).map_err(|e| format!("{key}[{i}]: {e}"))?;
            let role = role_of(&speaker).ok_or_else(|| format!("{key}[{i}]: unknown {role_key} `{speaker}` ({})", known_roles(role_of)))?;
            let content = string(obj, content_key).map_err(|e| format!("{key}[{i}]: {e}"))?;
            if role == "assistant" && content.trim().is_empty() {
                return Err(format!("{key}[{i}]: empty assistant reply"));
            }
            Ok(Message { role: role.to_string(), content })
        })
        .collect()
}

/// The roles chat templates render.
const CHAT_ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];
/// ShareGPT's speaker names, and the chat role each one is.
const SHAREGPT_SPEAKERS: [(&str, &str); 9] = [
    ("system", "system"),
    ("human", "user"),
    ("user", "user"),
    ("gpt", "assistant"),
    ("assistant", "assistant"),
    ("model", "assistant"),
    ("bot", "assistant"),
    ("tool", "tool"),
    ("function_response", "tool"),
];

fn chat_role(role: &str) -> Option<&'static str> {
    CHAT_ROLES.into_iter().find(|r| *r == role)
}

fn sharegpt_role(speaker: &str) -> Option<&'static str> {
    SHAREGPT_SPEAKERS.iter().find(|(name, _)| *name == speaker).map(|(_, role)| *role)
}

fn known_roles(role_of: fn(&str) -> Option<&'static str>) -> String {
    let names: Vec<&str> =
        if role_of("human").is_some() { SHAREGPT_SPEAKERS.iter().map(|(name, _)| *name).collect() } else { CHAT_ROLES.to_vec() };
    names.join(", ")
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
        assert_eq!(err, "field `instruction` is an array, expected text");
        let err = DatasetFormat::Alpaca.sample(&fields(r#"{"instruction": "x", "output": 5}"#)).unwrap_err();
        assert_eq!(err, "field `output` is a number, expected text");
        let err = DatasetFormat::Alpaca.sample(&fields(r#"{"instruction": "x", "output": "  "}"#)).unwrap_err();
        assert_eq!(err, "field `output` is empty");
    }

    #[test]
    fn unknown_roles_and_empty_replies_are_refused() {
        let err = DatasetFormat::Chat
            .sample(&fields(r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "narrator", "content": "x"}]}"#))
            .unwrap_err();
        assert_eq!(err, "messages[1]: unknown role `narrator` (system, user, assistant, tool)");
        let err = DatasetFormat::Chat
            .sample(&fields(r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}"#))
            .unwrap_err();
        assert_eq!(err, "messages[1]: empty assistant reply");
        let err = DatasetFormat::ShareGpt.sample(&fields(r#"{"conversations": [{"from": "alien", "value": "hi"}]}"#)).unwrap_err();
        assert!(err.starts_with("conversations[0]: unknown from `alien` (system, human, user, gpt"), "{err}");
    }
}
