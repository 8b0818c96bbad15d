//! The fuzz targets: each hands a mutated file to the library the way a user's file reaches it,
//! from a scratch folder laid out like the real thing (a model folder, an adapter folder, an
//! Ollama store). An `Err` is the right answer to a bad file; only a panic, a hang or runaway
//! memory is a finding.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use wgtune::data::{DataConfig, Dataset};
use wgtune::model::ModelFolder;
use wgtune::tokenizer::{Message, TextTokenizer};
use wgtune::train::TrainConfig;

pub const NAMES: [&str; 8] =
    ["gguf", "safetensors", "safetensors-index", "peft-config", "chat-template", "dataset", "run-toml", "ollama-manifest"];

/// A target ready to run: its seed inputs and where each case is written.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Each seed's file name in the scratch folder (the dataset target keeps each seed's extension).
    case_names: Vec<String>,
    scratch: PathBuf,
    context: Context,
}

/// What a target reads besides the mutated file, prepared once.
enum Context {
    None,
    Tokenizer(Box<TextTokenizer>),
    Model(Box<wgtune::model::CausalLm>),
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()))
}

/// Copies a fixture folder's files into `to`.
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("scratch folder");
    for entry in std::fs::read_dir(from).expect("fixture folder").flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a fixture");
        }
    }
}

impl Target {
    pub fn prepare(name: &'static str, scratch: &Path) -> Target {
        let f = fixtures();
        let scratch = scratch.join(name);
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("scratch folder");
        let one =
            |file: &str, seeds: Vec<PathBuf>| (seeds.iter().map(|p| read(p)).collect::<Vec<_>>(), vec![file.to_string(); seeds.len()]);
        let ((seeds, case_names), context) = match name {
            "gguf" => {
                let seeds =
                    ["quants.gguf", "tiny-llama.gguf", "tiny-llama-q8_0.gguf", "spm-tokenizer.gguf"].map(|n| f.join("gguf").join(n));
                (one("model.gguf", seeds.to_vec()), Context::None)
            }
            "safetensors" => {
                copy_files(&f.join("tiny-llama"), &scratch);
                (one("model.safetensors", vec![f.join("tiny-llama/model.safetensors")]), Context::None)
            }
            "safetensors-index" => {
                copy_files(&f.join("tiny-qwen2"), &scratch);
                (one("model.safetensors.index.json", vec![f.join("tiny-qwen2/model.safetensors.index.json")]), Context::None)
            }
            "peft-config" => {
                copy_files(&f.join("tiny-llama/adapter"), &scratch);
                let model = ModelFolder::open(&f.join("tiny-llama")).and_then(|m| m.load(&Device::flex())).expect("the tiny model");
                (one("adapter_config.json", vec![f.join("tiny-llama/adapter/adapter_config.json")]), Context::Model(Box::new(model)))
            }
            "chat-template" => {
                let seeds: Vec<PathBuf> = ["tiny-llama", "tiny-qwen2", "tiny-gemma2", "tiny-phi3", "tiny-smollm3"]
                    .iter()
                    .map(|m| f.join(m).join("chat_template.jinja"))
                    .filter(|p| p.exists())
                    .collect();
                (one("chat_template.jinja", seeds), Context::None)
            }
            "dataset" => {
                let seeds: Vec<PathBuf> = std::fs::read_dir(f.join("data")).expect("data fixtures").flatten().map(|e| e.path()).collect();
                let names = seeds.iter().map(|p| format!("data.{}", p.extension().and_then(|e| e.to_str()).unwrap_or("jsonl"))).collect();
                let tokenizer = TextTokenizer::from_folder(&f.join("tiny-llama"), &[2]).expect("the tiny tokenizer");
                ((seeds.iter().map(|p| read(p)).collect(), names), Context::Tokenizer(Box::new(tokenizer)))
            }
            "run-toml" => {
                let config = TrainConfig { model: f.join("tiny-llama"), ..Default::default() };
                let seed = scratch.join("seed.toml");
                config.save_toml(&seed).expect("a run.toml");
                (one("run.toml", vec![seed]), Context::None)
            }
            "ollama-manifest" => {
                let blob = format!("sha256-{}", "ab".repeat(32));
                std::fs::create_dir_all(scratch.join("blobs")).expect("store");
                std::fs::write(scratch.join("blobs").join(&blob), b"GGUF").expect("blob");
                let manifest = serde_json::json!({"schemaVersion": 2, "layers": [
                    {"mediaType": "application/vnd.ollama.image.model", "digest": blob.replace('-', ":"), "size": 4},
                    {"mediaType": "application/vnd.ollama.image.template", "digest": format!("sha256:{}", "cd".repeat(32)), "size": 1}]});
                let folder = scratch.join("manifests/registry.ollama.ai/library/tiny");
                std::fs::create_dir_all(&folder).expect("store");
                ((vec![manifest.to_string().into_bytes()], vec!["manifests/registry.ollama.ai/library/tiny/latest".into()]), Context::None)
            }
            other => panic!("no target `{other}` ({})", NAMES.join(", ")),
        };
        assert!(!seeds.is_empty(), "{name}: no seeds");
        Target { name, seeds, case_names, scratch, context }
    }

    /// Where a case made from seed `i` is written; its extension, for saving findings.
    pub fn case_path(&self, i: usize) -> PathBuf {
        self.scratch.join(&self.case_names[i])
    }

    /// Hands the case at `path` to the library.
    pub fn run(&self, path: &Path) {
        match (self.name, &self.context) {
            ("gguf", _) => {
                if let Ok(folder) = ModelFolder::open(path) {
                    let _ = folder.tokenizer();
                    let _ = folder.load(&Device::flex());
                }
            }
            ("safetensors" | "safetensors-index", _) => {
                if let Ok(folder) = ModelFolder::open(&self.scratch) {
                    let _ = folder.load(&Device::flex());
                }
            }
            ("peft-config", Context::Model(model)) => {
                let _ = wgtune::peft::read_adapter_config(&self.scratch);
                let _ = wgtune::peft::load_adapter((**model).clone(), &self.scratch);
            }
            ("chat-template", _) => {
                let Ok(template) = std::fs::read_to_string(path) else { return };
                let conversation = [Message::new("system", "Be brief."), Message::new("user", "Hi"), Message::new("assistant", "Hello.")];
                let _ = wgtune::chat_template::render(&template, &conversation, true, "<s>", "</s>");
                let _ = wgtune::chat_template::default_system_prompt(&template);
            }
            ("dataset", Context::Tokenizer(tokenizer)) => {
                let config = DataConfig { train_file: path.to_path_buf(), ..Default::default() };
                let _ = Dataset::load(&config, tokenizer, 0);
            }
            ("run-toml", _) => {
                if let Ok(config) = TrainConfig::from_toml_file(path) {
                    let _ = config.validate();
                }
            }
            ("ollama-manifest", _) => {
                let _ = wgtune::hub::ollama_model("tiny", &self.scratch);
            }
            _ => unreachable!("prepared targets only"),
        }
    }
}
