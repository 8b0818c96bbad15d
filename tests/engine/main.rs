//! Engine tests: parity with transformers + PEFT, end-to-end runs, and bad input.

mod bad_input;
mod browser_shaders;
mod classification;
mod cli;
mod common;
mod download;
mod e2e;
mod eval;
mod gguf;
mod kernels;
mod limits;
mod packaging;
mod parity;
mod shaders;
