//! GGUF files (llama.cpp, LM Studio, Ollama's blob store): the header, the typed metadata and
//! the tensors, read from a memory map. Tensors are decoded to f32 one at a time, so reading
//! never holds a second copy of the model.

mod export;
mod model;
mod quants;
mod tokenizer;
mod writer;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use export::{EXPORT_TYPES, export_gguf, export_gguf_adapter, gguf_architecture, modelfile};
pub use model::{GgufModel, gguf_name};
pub use quants::{GgmlType, repack};
pub use tokenizer::tokenizer_files;
pub use writer::{MetaValue, TensorPlan, write_gguf};

use crate::error::{Error, Result};

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    /// u64 values past `i64::MAX` are rare enough (none in llama.cpp's keys) to keep apart.
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Int(v) => u64::try_from(*v).ok(),
            Self::UInt(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(v) => Some(*v),
            Self::Int(v) => Some(*v as f64),
            Self::UInt(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Where one tensor is and what it holds.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// Dimensions as PyTorch orders them (slowest-varying first): ggml's reversed.
    pub shape: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte range in the file.
    pub start: usize,
    pub len: usize,
}

/// An opened GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    tensors: BTreeMap<String, TensorInfo>,
    mmap: Mmap,
}

/// The default alignment of the tensor data, when `general.alignment` does not say.
const DEFAULT_ALIGNMENT: u64 = 32;
/// The most items a header count may have, whatever the file's size: 16 times the largest real
/// vocabulary, and a bound on the memory a metadata array takes once read (32 bytes an item).
const MAX_COUNT: u64 = 1 << 24;
/// The fewest bytes one metadata entry takes (a key's length, its type, a one-byte value) and one
/// tensor's entry (a name's length, a dimension count, one dimension, a type and an offset).
const MIN_METADATA_BYTES: u64 = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;
/// The largest `general.alignment` taken (llama.cpp writes 32; it must be a power of two).
const MAX_ALIGNMENT: u64 = 1 << 16;

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map, kept as long as this struct; a file truncated by another
        // process while we read it is outside what any loader can guard against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bad = |message: String| Error::invalid_file(path, message);
        let mut r = Cursor { bytes: &mmap, at: 0, path };
        if r.take(4)? != b"GGUF" {
            return Err(bad("not a GGUF file (no `GGUF` magic at its start)".into()));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(bad(format!("GGUF version {version} is not supported (2 or 3)")));
        }
        let tensor_count = r.count("tensor count", MIN_TENSOR_INFO_BYTES)?;
        let metadata_count = r.count("metadata count", MIN_METADATA_BYTES)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = r.string()?;
            let kind = r.u32()?;
            let value = r.value(kind).map_err(|e| bad(format!("metadata `{key}`: {}", message_of(e))))?;
            metadata.insert(key, value);
        }
        let mut infos = Vec::new();
        for _ in 0..tensor_count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims == 0 || n_dims > 4 {
                return Err(bad(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let mut dims = (0..n_dims).map(|_| r.u64().map(|d| d as usize)).collect::<Result<Vec<_>>>()?;
            dims.reverse();
            let type_id = r.u32()?;
            let offset = r.u64()?;
            infos.push((name, dims, type_id, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(value) => value.as_u64().filter(|a| a.is_power_of_two() && *a <= MAX_ALIGNMENT).ok_or_else(|| {
                let shown = value.as_u64().map_or_else(|| format!("{value:?}"), |a| a.to_string());
                bad(format!("metadata `general.alignment` is {shown}: it must be a power of two up to {MAX_ALIGNMENT}"))
            })?,
        };
        let data_start = (r.at as u64).next_multiple_of(alignment) as usize;
        let mut tensors = BTreeMap::new();
        for (name, shape, type_id, offset) in infos {
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
                bad(format!("tensor `{name}` is {}, which wgtune does not read ({})", GgmlType::name_of(type_id), GgmlType::SUPPORTED))
            })?;
            let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let len = count
                .and_then(|c| ggml_type.byte_len(c))
                .ok_or_else(|| bad(format!("tensor `{name}` of shape {shape:?} is not a whole number of {} blocks", ggml_type.name())))?;
            let start = data_start.checked_add(offset as usize).filter(|s| s.checked_add(len).is_some_and(|end| end <= mmap.len()));
            let start = start.ok_or_else(|| bad(format!("tensor `{name}` lies past the end of the file: is it truncated?")))?;
            tensors.insert(name, TensorInfo { shape, ggml_type, start, len });
        }
        Ok(Self { path: path.to_path_buf(), version, metadata, tensors, mmap })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The file's size.
    pub fn stored_bytes(&self) -> u64 {
        self.mmap.len() as u64
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The tensor's stored bytes.
    pub fn raw(&self, name: &str) -> Result<&[u8]> {
        let info = self.tensor(name)?;
        Ok(&self.mmap[info.start..info.start + info.len])
    }

    /// The tensor decoded to f32, row-major in its PyTorch shape.
    pub fn read(&self, name: &str) -> Result<Vec<f32>> {
        let info = self.tensor(name)?;
        Ok(info.ggml_type.dequantize(&self.mmap[info.start..info.start + info.len]))
    }

    fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.get(name).ok_or_else(|| Error::MissingTensor { path: self.path.clone(), name: name.to_string() })
    }

    /// A metadata value, or an error naming the key.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.metadata.get(key).ok_or_else(|| Error::invalid_file(&self.path, format!("metadata `{key}` is missing")))
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get(key)?.as_u64().ok_or_else(|| Error::invalid_file(&self.path, format!("metadata `{key}` is not an integer")))
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.get(key)?.as_str().ok_or_else(|| Error::invalid_file(&self.path, format!("metadata `{key}` is not a string")))
    }
}

/// Reads little-endian values from the header, failing with the file's name at its end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| Error::invalid_file(self.path, "the GGUF header ends early: the file is truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A count of items that take at least `item_bytes` each in the file, refused before anything
    /// is allocated for them where the rest of the file cannot hold them or past [`MAX_COUNT`].
    fn count(&mut self, what: &str, item_bytes: u64) -> Result<u64> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n > MAX_COUNT {
            let message = format!("GGUF {what} of {n} is past the bound of {MAX_COUNT}: the header is damaged");
            return Err(Error::invalid_file(self.path, message));
        }
        if n * item_bytes > left {
            let message = format!(
                "GGUF {what} of {n} does not fit in the file (at least {} bytes, and {left} are left): it is truncated or its header is damaged",
                n * item_bytes
            );
            return Err(Error::invalid_file(self.path, message));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u64()?;
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::invalid_file(self.path, "a GGUF string is not UTF-8"))
    }

    fn value(&mut self, kind: u32) -> Result<Value> {
        Ok(match kind {
            0 => Value::Int(self.array::<1>()?[0] as i64),
            1 => Value::Int(self.array::<1>()?[0] as i8 as i64),
            2 => Value::Int(u16::from_le_bytes(self.array()?) as i64),
            3 => Value::Int(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::Int(self.u32()? as i64),
            5 => Value::Int(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let item_kind = self.u32()?;
                // As in llama.cpp, whose readers take no arrays of arrays.
                let item_bytes = match item_kind {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => return Err(Error::invalid_file(self.path, "an array of arrays, which GGUF readers do not take")),
                    other => return Err(Error::invalid_file(self.path, format!("unknown metadata type {other}"))),
                };
                let n = self.count("array length", item_bytes)?;
                Value::Array((0..n).map(|_| self.value(item_kind)).collect::<Result<_>>()?)
            }
            10 => Value::UInt(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(Error::invalid_file(self.path, format!("unknown metadata type {other}"))),
        })
    }
}

/// An error's message without the path it already names.
fn message_of(e: Error) -> String {
    match e {
        Error::InvalidFile { message, .. } => message,
        other => other.to_string(),
    }
}
