//! The model's tokenizer (`tokenizer.json`), its special tokens and its chat template.

use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::read_text_bounded;

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// Text with the byte ranges the model should learn to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenderedText {
    pub text: String,
    pub trainable: Vec<Range<usize>>,
    /// Whether the text already carries the special tokens (BOS) a chat template writes itself.
    pub has_special_tokens: bool,
}

/// Token ids with, per token, whether it is a training target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenizedText {
    pub ids: Vec<u32>,
    pub trainable: Vec<bool>,
}

/// The most bytes a model's `tokenizer.json` may take: the largest real ones (vocabularies of
/// 262,144 with their merges) are about 35 MB.
const MAX_TOKENIZER_BYTES: u64 = 256 << 20;
/// The most bytes its `tokenizer_config.json`, `generation_config.json` or `chat_template.jinja`
/// may take (the largest real ones are a few megabytes, of added-token tables).
const MAX_CONFIG_BYTES: u64 = 64 << 20;

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    chat_template: Option<String>,
    /// Where the chat template was read, as its errors name it: a file, or a GGUF file's key.
    template_origin: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// Token ids that end generation.
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: u32,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    chat_template: Option<serde_json::Value>,
    bos_token: Option<serde_json::Value>,
    eos_token: Option<serde_json::Value>,
    pad_token: Option<serde_json::Value>,
}

/// The end-of-sequence ids `generation_config.json` declares (a number or a list).
fn generation_eos(folder: &Path) -> Result<Vec<u32>> {
    let path = folder.join("generation_config.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = read_text_bounded(&path, MAX_CONFIG_BYTES)?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;
    Ok(match config.get("eos_token_id") {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_u64().map(|n| n as u32)).collect(),
        _ => Vec::new(),
    })
}

/// Special tokens appear either as strings or as `{"content": ...}` objects.
fn token_text(value: &Option<serde_json::Value>) -> Option<String> {
    match value.as_ref()? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Reads `tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` (which
    /// transformers 5 writes instead of the config's `chat_template`) from a model folder.
    /// `model_eos` are the end-of-sequence ids from `config.json` / `generation_config.json`.
    pub fn from_folder(folder: &Path, model_eos: &[u32]) -> Result<Self> {
        let path = folder.join("tokenizer.json");
        if !path.exists() {
            return Err(Error::invalid_file(folder, "no tokenizer.json in this folder"));
        }
        let text = read_text_bounded(&path, MAX_TOKENIZER_BYTES)?;
        let inner = tokenizers::Tokenizer::from_bytes(text).map_err(|e| Error::invalid_file(&path, e.to_string()))?;

        let config_path = folder.join("tokenizer_config.json");
        let config: TokenizerConfig = if config_path.exists() {
            let text = read_text_bounded(&config_path, MAX_CONFIG_BYTES)?;
            serde_json::from_str(&text).map_err(|e| Error::invalid_file(&config_path, e.to_string()))?
        } else {
            TokenizerConfig::default()
        };

        let jinja = folder.join("chat_template.jinja");
        let template_origin = if jinja.exists() { &jinja } else { &config_path }.display().to_string();
        let chat_template = if jinja.exists() {
            Some(read_text_bounded(&jinja, MAX_CONFIG_BYTES)?)
        } else {
            match &config.chat_template {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                // A list of named templates: take the default one.
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
                _ => None,
            }
        };
        let mut eos: Vec<u32> = model_eos.to_vec();
        eos.extend(generation_eos(folder)?);
        Ok(Self::from_parts(inner, &config, chat_template, template_origin, &eos))
    }

    /// The tokenizer a GGUF file carries (see [`crate::gguf::tokenizer_files`]).
    pub fn from_gguf(file: &crate::gguf::GgufFile, model_eos: &[u32]) -> Result<Self> {
        let (tokenizer, config) = crate::gguf::tokenizer_files(file)?;
        let bad = |e: String| Error::invalid_file(&file.path, format!("its tokenizer: {e}"));
        let inner = tokenizers::Tokenizer::from_bytes(tokenizer.to_string().as_bytes()).map_err(|e| bad(e.to_string()))?;
        let config: TokenizerConfig = serde_json::from_value(config).map_err(|e| bad(e.to_string()))?;
        let chat_template = config.chat_template.as_ref().and_then(|t| t.as_str()).map(str::to_string);
        let template_origin = format!("{} (tokenizer.chat_template)", file.path.display());
        Ok(Self::from_parts(inner, &config, chat_template, template_origin, model_eos))
    }

    /// `eos` are the end-of-sequence ids the model's configuration declares; the tokenizer's
    /// own end-of-sequence token is added to them.
    fn from_parts(
        inner: tokenizers::Tokenizer,
        config: &TokenizerConfig,
        chat_template: Option<String>,
        template_origin: String,
        eos: &[u32],
    ) -> Self {
        let bos_token = token_text(&config.bos_token);
        let eos_token = token_text(&config.eos_token);
        let mut eos_token_ids: Vec<u32> = Vec::new();
        let tokenizer_eos = eos_token.as_deref().and_then(|t| inner.token_to_id(t));
        for id in eos.iter().copied().chain(tokenizer_eos) {
            if !eos_token_ids.contains(&id) {
                eos_token_ids.push(id);
            }
        }
        let pad_token_id =
            token_text(&config.pad_token).and_then(|t| inner.token_to_id(&t)).or_else(|| eos_token_ids.first().copied()).unwrap_or(0);
        Self { inner, chat_template, template_origin, bos_token, eos_token, eos_token_ids, pad_token_id }
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Checks that what the tokenizer can produce has a row in the model's embedding of
    /// `vocab_size` rows: its base vocabulary and the special tokens wgtune inserts (padding and
    /// end of sequence). Added tokens past the embedding are caught where text produces them.
    /// `origin` is the file the tokenizer came from, for the message.
    pub fn check_fits(&self, origin: &Path, vocab_size: usize) -> Result<()> {
        let base = self.inner.get_vocab_size(false);
        if base > vocab_size {
            return Err(Error::invalid_file(
                origin,
                format!(
                    "the tokenizer has {base} tokens but the model's embedding has {vocab_size} rows (`vocab_size`): they do not belong together"
                ),
            ));
        }
        let special = self.eos_token_ids.iter().map(|id| ("end-of-sequence", *id)).chain([("padding", self.pad_token_id)]);
        for (what, id) in special {
            if id as usize >= vocab_size {
                return Err(Error::invalid_file(
                    origin,
                    format!("the {what} token id {id} is outside the model's vocabulary of {vocab_size} (`vocab_size`)"),
                ));
            }
        }
        Ok(())
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The text of one token (special tokens included), e.g. `<|im_end|>`.
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The id appended after a completion so the model learns to stop.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.inner.token_to_id(t)).or_else(|| self.eos_token_ids.first().copied())
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, add_special_tokens).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// A classifier's input: `text`, or the pair `text`, `pair` as the tokenizer's post-processor
    /// joins two sequences, with the special tokens transformers adds by default.
    pub fn encode_classification(&self, text: &str, pair: Option<&str>) -> Result<Vec<u32>> {
        let encoding = match pair {
            Some(pair) => self.inner.encode((text, pair), true),
            None => self.inner.encode(text, true),
        };
        Ok(encoding.map_err(|e| Error::Tokenizer(e.to_string()))?.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Decodes keeping special tokens such as `<|im_start|>` visible.
    pub fn decode_with_special_tokens(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Tokenizes the whole text at once (so merges across span boundaries are those of the
    /// reference tokenizer) and marks the tokens that start inside a trainable span.
    pub fn tokenize(&self, rendered: &RenderedText) -> Result<TokenizedText> {
        let encoding =
            self.inner.encode(rendered.text.as_str(), !rendered.has_special_tokens).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids = encoding.get_ids().to_vec();
        let special = encoding.get_special_tokens_mask();
        let trainable = encoding
            .get_offsets()
            .iter()
            .zip(special)
            .map(|(&(start, end), &inserted)| {
                // Tokens the post-processor inserts (BOS) cover no text and are never targets.
                let covers_text = inserted == 0 || end > start;
                covers_text && rendered.trainable.iter().any(|r| r.contains(&start))
            })
            .collect();
        Ok(TokenizedText { ids, trainable })
    }

    /// Renders a conversation with the model's chat template.
    pub fn apply_chat_template(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or_else(|| Error::Template("this model has no chat_template".into()))?;
        crate::chat_template::render(
            template,
            messages,
            add_generation_prompt,
            self.bos_token.as_deref().unwrap_or(""),
            self.eos_token.as_deref().unwrap_or(""),
        )
        .map_err(|e| match e {
            Error::Template(message) => Error::Template(format!("{}: {message}", self.template_origin)),
            other => other,
        })
    }
}
