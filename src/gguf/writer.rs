//! Writing GGUF v3 files: typed metadata, then tensors produced one at a time (so a model is never
//! held in memory whole), written to a temporary name and renamed into place.

use std::io::Write;
use std::path::Path;

use super::GgmlType;
use crate::error::{Error, Result};

/// A metadata value with the exact type llama.cpp expects for its key.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
}

impl MetaValue {
    fn write(&self, out: &mut Vec<u8>) {
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        match self {
            Self::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Self::I32(v) => {
                out.extend(5u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Self::F32(v) => {
                out.extend(6u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Self::Bool(v) => {
                out.extend(7u32.to_le_bytes());
                out.push(*v as u8);
            }
            Self::Str(s) => {
                out.extend(8u32.to_le_bytes());
                string(out, s);
            }
            Self::StrArray(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                items.iter().for_each(|s| string(out, s));
            }
            Self::I32Array(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                items.iter().for_each(|v| out.extend(v.to_le_bytes()));
            }
        }
    }
}

/// One tensor to write: its llama.cpp name, shape in PyTorch order, and type.
#[derive(Clone, Debug)]
pub struct TensorPlan {
    pub name: String,
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
}

impl TensorPlan {
    fn byte_len(&self) -> usize {
        self.ggml_type.byte_len(self.shape.iter().product()).unwrap_or(0)
    }
}

const ALIGNMENT: usize = 32;

/// Writes `path`: `metadata`, then each of `tensors` with the bytes `bytes_of` encodes for it
/// (in `plan.ggml_type`). A failure leaves nothing behind.
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, MetaValue)],
    tensors: &[TensorPlan],
    mut bytes_of: impl FnMut(&TensorPlan) -> Result<Vec<u8>>,
) -> Result<()> {
    let mut header = Vec::new();
    header.extend(b"GGUF");
    header.extend(3u32.to_le_bytes());
    header.extend((tensors.len() as u64).to_le_bytes());
    header.extend((metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        header.extend((key.len() as u64).to_le_bytes());
        header.extend(key.as_bytes());
        value.write(&mut header);
    }
    let mut offset = 0usize;
    for t in tensors {
        if t.ggml_type.byte_len(t.shape.iter().product()).is_none() {
            return Err(Error::invalid_file(
                path,
                format!("tensor `{}` of shape {:?} is not a whole number of {} blocks", t.name, t.shape, t.ggml_type.name()),
            ));
        }
        header.extend((t.name.len() as u64).to_le_bytes());
        header.extend(t.name.as_bytes());
        header.extend((t.shape.len() as u32).to_le_bytes());
        // ggml orders dimensions fastest-varying first.
        t.shape.iter().rev().for_each(|d| header.extend((*d as u64).to_le_bytes()));
        header.extend(t.ggml_type.id().to_le_bytes());
        header.extend((offset as u64).to_le_bytes());
        offset = (offset + t.byte_len()).next_multiple_of(ALIGNMENT);
    }
    header.resize(header.len().next_multiple_of(ALIGNMENT), 0);

    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::create_dir(parent)?;
    }
    crate::fsutil::write_file_with(path, |out, tmp| {
        let io = |e| Error::io(tmp, e);
        out.write_all(&header).map_err(io)?;
        for t in tensors {
            let bytes = bytes_of(t)?;
            if bytes.len() != t.byte_len() {
                return Err(Error::invalid_file(
                    path,
                    format!("tensor `{}` produced {} bytes, expected {}", t.name, bytes.len(), t.byte_len()),
                ));
            }
            out.write_all(&bytes).map_err(io)?;
            out.write_all(&vec![0u8; bytes.len().next_multiple_of(ALIGNMENT) - bytes.len()]).map_err(io)?;
        }
        Ok(())
    })
}
