//! wgtune: fine-tune Llama-family language models with LoRA or full fine-tuning on any GPU
//! through WebGPU (or on the CPU), matching Hugging Face transformers + PEFT numerically.
//!
//! This library is the engine; the command-line tool and the desktop app are thin fronts on it.

pub mod bench;
pub mod bundled;
pub mod chat_template;
pub mod classify;
pub mod data;
pub mod device;
pub mod download;
pub mod error;
pub mod eval;
pub mod export;
pub mod fsutil;
pub mod generate;
pub mod gguf;
#[cfg(feature = "gui")]
pub mod gui;
pub mod hub;
pub mod inspect;
pub mod kernels;
pub mod method;
pub mod model;
pub mod params;
pub mod peft;
pub mod presets;
pub mod recipe;
pub mod seed;
pub mod session;
pub mod third_party;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};

/// The version and the commit it was built from, as `wgtune --version` and the app show them.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("WGTUNE_COMMIT"), ")");
