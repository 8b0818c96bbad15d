//! Reading tensors from the `.safetensors` files of a model folder.
//!
//! Files are memory-mapped and each tensor is converted to f32 on its own, so loading never holds
//! a second full copy of the model in RAM. bf16 and f16 are widened here on the host: bf16 must
//! never reach wgpu, whose shader compiler rejects it without reporting an error.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};

use crate::error::{Error, Result};

/// The float dtypes wgtune reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    F32,
    F16,
    Bf16,
}

impl WeightDtype {
    pub fn from_safetensors(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F32 => Some(Self::F32),
            Dtype::F16 => Some(Self::F16),
            Dtype::BF16 => Some(Self::Bf16),
            _ => None,
        }
    }

    pub fn safetensors_name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Bf16 => "BF16",
        }
    }

    /// The name transformers uses in `config.json` (`torch_dtype`).
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
        }
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }

    /// Encodes f32 values in this dtype, rounding to nearest even.
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Self::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::F16 => values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
            Self::Bf16 => values.iter().flat_map(|v| bf16::from_f32(*v).to_le_bytes()).collect(),
        }
    }

    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Self::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Self::F16 => bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Self::Bf16 => bytes.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        }
    }
}

impl std::str::FromStr for WeightDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            other => Err(format!("unknown dtype `{other}` (f32, f16, bf16)")),
        }
    }
}

/// A host tensor in f32, row-major.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

struct MappedFile {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

impl MappedFile {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only and lives as long as this struct; a file truncated by
        // another process while we read it is outside what any loader can guard against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
            .map_err(|e| Error::invalid_file(path, format!("not a valid safetensors file ({e}); is it truncated?")))?;
        Ok(Self { path: path.to_path_buf(), mmap, header_len, metadata })
    }

    fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.metadata.info(name)
    }

    fn bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = 8 + self.header_len;
        &self.mmap[start + info.data_offsets.0..start + info.data_offsets.1]
    }
}

/// The safetensors files of a model folder (one file, or shards with their index) or of an
/// adapter, opened for reading by tensor name.
pub struct WeightFiles {
    files: Vec<MappedFile>,
    /// Tensor name -> index into `files`.
    index: BTreeMap<String, usize>,
    /// What to call this set in error messages: the folder or the file.
    origin: PathBuf,
}

impl WeightFiles {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open_model_folder(folder: &Path) -> Result<Self> {
        let single = folder.join("model.safetensors");
        let index = folder.join("model.safetensors.index.json");
        if single.exists() {
            Self::open_files(&[single], folder)
        } else if index.exists() {
            Self::open_files(&shard_files(&index)?, folder)
        } else {
            Err(Error::invalid_file(
                folder,
                "no model.safetensors or model.safetensors.index.json in this folder \
                 (wgtune reads safetensors weights; convert .bin checkpoints first)",
            ))
        }
    }

    pub fn open_files(paths: &[PathBuf], origin: &Path) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut index = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = MappedFile::open(path)?;
            for name in file.metadata.tensors().keys() {
                index.insert(name.clone(), i);
            }
            files.push(file);
        }
        Ok(Self { files, index, origin: origin.to_path_buf() })
    }

    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The size of the weight files together.
    pub fn stored_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.mmap.len() as u64).sum()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The file holding each tensor, for writing an export with the same layout.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.index.get(name).map(|&i| self.files[i].path.as_path())
    }

    pub fn file_paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }

    fn locate(&self, name: &str) -> Result<(&MappedFile, &TensorInfo)> {
        let missing = || Error::MissingTensor { path: self.origin.clone(), name: name.to_string() };
        let file = &self.files[*self.index.get(name).ok_or_else(missing)?];
        let info = file.info(name).ok_or_else(missing)?;
        Ok((file, info))
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.locate(name)?.1.shape.clone())
    }

    pub fn dtype(&self, name: &str) -> Result<WeightDtype> {
        let (file, info) = self.locate(name)?;
        WeightDtype::from_safetensors(info.dtype).ok_or_else(|| {
            Error::invalid_file(&file.path, format!("tensor `{name}` has dtype {:?}; wgtune reads F32, F16 and BF16", info.dtype))
        })
    }

    /// The tensor's stored bytes, untouched.
    pub fn raw(&self, name: &str) -> Result<&[u8]> {
        let (file, info) = self.locate(name)?;
        Ok(file.bytes(info))
    }

    /// Reads a tensor as f32, checking its shape.
    pub fn read(&self, name: &str, expected: &[usize]) -> Result<HostTensor> {
        let shape = self.shape(name)?;
        if shape != expected {
            return Err(Error::TensorShape {
                path: self.origin.clone(),
                name: name.to_string(),
                found: shape,
                expected: expected.to_vec(),
            });
        }
        let dtype = self.dtype(name)?;
        Ok(HostTensor { values: dtype.decode(self.raw(name)?), shape })
    }

    /// The dtype most tensors are stored in.
    pub fn dominant_dtype(&self) -> Option<WeightDtype> {
        let mut counts: HashMap<WeightDtype, usize> = HashMap::new();
        for name in self.index.keys() {
            if let Ok(d) = self.dtype(name) {
                *counts.entry(d).or_default() += 1;
            }
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d)
    }
}

fn shard_files(index_path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| Error::io(index_path, e))?;
    let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::invalid_file(index_path, e.to_string()))?;
    let map = index.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::invalid_file(index_path, "missing `weight_map`"))?;
    let folder = index_path.parent().unwrap_or(Path::new("."));
    let names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
    if let Some(outside) = names.iter().find(|f| !crate::fsutil::stays_inside(f)) {
        return Err(Error::invalid_file(index_path, format!("`weight_map` names a shard `{outside}` outside the model's folder")));
    }
    let mut files: Vec<PathBuf> = names.iter().map(|f| folder.join(f)).collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(Error::invalid_file(index_path, "`weight_map` lists no files"));
    }
    Ok(files)
}

/// One tensor of a file to be written.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: WeightDtype,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    pub fn byte_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size_in_bytes()
    }
}

/// Writes a safetensors file atomically (to a temporary name, then renamed). Tensors are produced
/// one at a time by `bytes_of`, so a model is never held in memory whole. `metadata` is the
/// optional string map (`{"format": "pt"}` is what transformers writes).
pub fn write_safetensors(
    path: &Path,
    tensors: &[TensorSpec],
    metadata: Option<&BTreeMap<String, String>>,
    mut bytes_of: impl FnMut(&TensorSpec) -> Result<Vec<u8>>,
) -> Result<()> {
    use std::io::Write;

    let mut header = serde_json::Map::new();
    if let Some(meta) = metadata {
        header.insert("__metadata__".into(), serde_json::json!(meta));
    }
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + t.byte_len();
        header.insert(
            t.name.clone(),
            serde_json::json!({
                "dtype": t.dtype.safetensors_name(),
                "shape": t.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut header_bytes = serde_json::to_vec(&header).map_err(|e| Error::invalid_file(path, e.to_string()))?;
    // Pad the header so tensor data starts 8-byte aligned, as the reference writer does.
    while header_bytes.len() % 8 != 0 {
        header_bytes.push(b' ');
    }

    crate::fsutil::write_file_with(path, |out, tmp| {
        let io = |e| Error::io(tmp, e);
        out.write_all(&(header_bytes.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(&header_bytes).map_err(io)?;
        for t in tensors {
            let bytes = bytes_of(t)?;
            if bytes.len() != t.byte_len() {
                return Err(Error::invalid_file(
                    path,
                    format!("tensor `{}` produced {} bytes, expected {}", t.name, bytes.len(), t.byte_len()),
                ));
            }
            out.write_all(&bytes).map_err(io)?;
        }
        Ok(())
    })
}

/// Writes named f32 tensors, as checkpoints and adapters store them.
pub fn write_f32_tensors(path: &Path, tensors: &[(String, HostTensor)]) -> Result<()> {
    let specs: Vec<TensorSpec> =
        tensors.iter().map(|(name, t)| TensorSpec { name: name.clone(), dtype: WeightDtype::F32, shape: t.shape.clone() }).collect();
    let by_name: HashMap<&str, &HostTensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(path, &specs, Some(&metadata), |spec| Ok(WeightDtype::F32.encode(&by_name[spec.name.as_str()].values)))
}

/// Reads every tensor of one file as f32, by name.
pub fn read_f32_tensors(path: &Path) -> Result<Vec<(String, HostTensor)>> {
    let files = WeightFiles::open_files(&[path.to_path_buf()], path)?;
    files
        .names()
        .map(|name| {
            let shape = files.shape(name)?;
            Ok((name.to_string(), files.read(name, &shape)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let values = [1.0f32, -2.5, 0.15625, 3.0e4];
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
            let path = dir.path().join(format!("{dtype:?}.safetensors"));
            let t = TensorSpec { name: "w".into(), dtype, shape: vec![2, 2] };
            write_safetensors(&path, &[t], None, |t| Ok(t.dtype.encode(&values))).unwrap();
            let files = WeightFiles::open_files(std::slice::from_ref(&path), &path).unwrap();
            let read = files.read("w", &[2, 2]).unwrap();
            let tolerance = if dtype == WeightDtype::F32 { 0.0 } else { 0.01 };
            for (a, b) in read.values.iter().zip(values) {
                assert!((a - b).abs() <= tolerance * b.abs(), "{dtype:?}: {a} vs {b}");
            }
        }
    }

    fn write_vector(path: &Path) {
        let t = TensorSpec { name: "w".into(), dtype: WeightDtype::F32, shape: vec![4] };
        write_safetensors(path, &[t], None, |t| Ok(t.dtype.encode(&[1.0; 4]))).unwrap();
    }

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_vector(&path);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = WeightFiles::open_model_folder(dir.path()).err().unwrap().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn missing_and_misshapen_tensors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_vector(&path);
        let files = WeightFiles::open_model_folder(dir.path()).unwrap();
        let missing = files.read("v", &[4]).err().unwrap().to_string();
        assert!(missing.contains("`v` is missing"), "{missing}");
        let shape = files.read("w", &[2, 2]).err().unwrap().to_string();
        assert!(shape.contains("[4]") && shape.contains("[2, 2]"), "{shape}");
    }
}
