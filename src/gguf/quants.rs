//! ggml's tensor types and their dequantization to f32, ported from the format's definition
//! (`ggml-quants.c`) and checked bit for bit against llama.cpp's own `gguf` Python package: every
//! product is taken in f32, in the same order.

use half::f16;

use crate::model::packed::{HostPacked, Int4Rows, SUPER, SuperBlock};

/// The ggml tensor types wgtune reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4K,
    Q5K,
    Q6K,
}

/// Values per `K` super-block.
const QK_K: usize = 256;

impl GgmlType {
    pub const SUPPORTED: &'static str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K";

    /// The type with ggml's number `id`.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::Bf16,
            _ => return None,
        })
    }

    /// ggml's number for the type.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q8_0 => 8,
            Self::Q4K => 12,
            Self::Q5K => 13,
            Self::Q6K => 14,
            Self::Bf16 => 30,
        }
    }

    /// ggml's name for a type number, for messages about types wgtune does not read.
    pub fn name_of(id: u32) -> String {
        const NAMES: [&str; 31] = [
            "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
            "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
            "BF16",
        ];
        NAMES.get(id as usize).map_or_else(|| format!("type {id}"), |n| n.to_string())
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Bf16 => "BF16",
            Self::Q8_0 => "Q8_0",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
        }
    }

    /// (values per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::Bf16 => (1, 2),
            Self::Q8_0 => (32, 34),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q4K => (QK_K, 144),
            Self::Q5K => (QK_K, 176),
            Self::Q6K => (QK_K, 210),
        }
    }

    /// Bytes of `count` values, or `None` when `count` is not a whole number of blocks.
    pub fn byte_len(self, count: usize) -> Option<usize> {
        let (values, bytes) = self.block();
        count.is_multiple_of(values).then(|| count / values * bytes)
    }

    /// Decodes `bytes` (a whole number of blocks) to f32 values.
    pub fn dequantize(self, bytes: &[u8]) -> Vec<f32> {
        let (values, size) = self.block();
        let mut out = Vec::with_capacity(bytes.len() / size * values);
        for block in bytes.chunks_exact(size) {
            match self {
                Self::F32 => out.push(f32::from_le_bytes([block[0], block[1], block[2], block[3]])),
                Self::F16 => out.push(half_at(block, 0)),
                Self::Bf16 => out.push(f32::from_bits((u16::from_le_bytes([block[0], block[1]]) as u32) << 16)),
                Self::Q8_0 => q8_0(block, &mut out),
                Self::Q4_0 => q4_0(block, &mut out),
                Self::Q4_1 => q4_1(block, &mut out),
                Self::Q4K => q4_k(block, &mut out),
                Self::Q5K => q5_k(block, &mut out),
                Self::Q6K => q6_k(block, &mut out),
            }
        }
        out
    }
}

/// The types wgtune writes, and how: `None` for the ones it only reads.
impl GgmlType {
    /// Encodes `values` (a whole number of blocks) as llama.cpp's reference quantizers do
    /// (`quantize_row_*_ref`), bit for bit with the `gguf` package.
    pub fn quantize(self, values: &[f32]) -> Option<Vec<u8>> {
        Some(match self {
            Self::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Self::F16 => values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
            Self::Q8_0 => values.chunks_exact(32).flat_map(quantize_q8_0).collect(),
            Self::Q4_0 => values.chunks_exact(32).flat_map(quantize_q4_0).collect(),
            _ => return None,
        })
    }
}

/// `d = max|x| / 127`, `q = round(x / d)` (half away from zero).
fn quantize_q8_0(block: &[f32]) -> Vec<u8> {
    let d = block.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut out = f16::from_f32(d).to_le_bytes().to_vec();
    out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    out
}

/// `d = x_max / −8` for the value of largest magnitude, `q = min(15, trunc(x / d + 8.5))`.
fn quantize_q4_0(block: &[f32]) -> Vec<u8> {
    let max = block.iter().copied().fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    let d = max / -8.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let q = |v: f32| ((v * id + 8.5).trunc() as u8).min(15);
    let mut out = f16::from_f32(d).to_le_bytes().to_vec();
    out.extend((0..16).map(|j| q(block[j]) | (q(block[j + 16]) << 4)));
    out
}

/// A `[rows, cols]` matrix of GGUF blocks as a LoRA base of `bits`-bit numbers, keeping the
/// file's numbers: Q8_0 is int8 as it is; Q4_K is int4 as it is (its 6-bit sub-scales fit the
/// 8-bit ones, its minimum negated); Q4_0 and Q4_1 are int4 with each block's f16 scale and
/// minimum rounded to the sub-scales of its super-block. `None` for other types, or when the
/// bytes are not whole rows of blocks.
pub fn repack(ggml_type: GgmlType, bytes: &[u8], rows: usize, cols: usize, bits: usize) -> Option<HostPacked> {
    let (per_block, size) = ggml_type.block();
    let fits = matches!((ggml_type, bits), (GgmlType::Q8_0, 8) | (GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K, 4));
    if !fits || !cols.is_multiple_of(per_block) || bytes.len() != rows * cols / per_block * size {
        return None;
    }
    let row_bytes = cols / per_block * size;
    if ggml_type == GgmlType::Q8_0 {
        let mut packed = HostPacked::empty(rows, cols, 8);
        for block in bytes.chunks_exact(size) {
            packed.push_int8_block(f16::from_le_bytes([block[0], block[1]]), &block[2..34]);
        }
        return Some(packed);
    }
    let mut packed = Int4Rows::new(rows, cols);
    for row in bytes.chunks_exact(row_bytes) {
        let supers: Vec<SuperBlock> = match ggml_type {
            GgmlType::Q4K => row.chunks_exact(size).map(q4_k_super_block).collect(),
            _ => row
                .chunks(size * SUPER)
                .map(|blocks| SuperBlock::from_scales(blocks.chunks_exact(size).map(|b| q4_scale_min(ggml_type, b)).collect()))
                .collect(),
        };
        packed.push_row(&supers);
    }
    Some(packed.finish())
}

/// A Q4_0 or Q4_1 block as `(scale, min, numbers)` with `w = scale·q + min`. Q4_0's `d·(q − 8)`
/// is scale `d`, minimum `−8d`; a negative `d` flips the numbers, `|d|·(15 − q) − 7|d|`, so that
/// the scale is never negative.
fn q4_scale_min(ggml_type: GgmlType, block: &[u8]) -> (f32, f32, Vec<u8>) {
    let d = half_at(block, 0);
    match ggml_type {
        GgmlType::Q4_0 if d < 0.0 => (-d, 7.0 * d, nibbles(&block[2..18]).into_iter().map(|q| 15 - q).collect()),
        GgmlType::Q4_0 => (d, -8.0 * d, nibbles(&block[2..18])),
        _ => (d, half_at(block, 2), nibbles(&block[4..20])),
    }
}

/// A Q4_K super-block as it is: `d·sc · q − dmin·m` is `d·sc · q + (−dmin)·m`.
fn q4_k_super_block(block: &[u8]) -> SuperBlock {
    let (d, dmin) = (f16::from_le_bytes([block[0], block[1]]), f16::from_le_bytes([block[2], block[3]]));
    let (scales, qs) = (&block[4..16], &block[16..144]);
    let mut blocks = Vec::with_capacity(SUPER);
    for (pair, q) in qs.chunks_exact(32).enumerate() {
        for (half, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = scale_min_k4(2 * pair + half, scales);
            blocks.push((sc, m as i8, q.iter().map(|&q| (q >> shift) & 0x0F).collect()));
        }
    }
    SuperBlock { d, dmin: -dmin, blocks }
}

/// A 32-value block's 16 bytes of nibbles in value order: low nibbles are values 0–15, high
/// ones 16–31.
fn nibbles(qs: &[u8]) -> Vec<u8> {
    qs.iter().map(|q| q & 0x0F).chain(qs.iter().map(|q| q >> 4)).collect()
}

fn half_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// f16 scale, then 32 signed bytes: `q · d`.
fn q8_0(block: &[u8], out: &mut Vec<f32>) {
    let d = half_at(block, 0);
    out.extend(block[2..34].iter().map(|&q| q as i8 as f32 * d));
}

/// f16 scale, then 16 bytes of nibbles (low nibbles are values 0–15, high ones 16–31): `(q − 8) · d`.
fn q4_0(block: &[u8], out: &mut Vec<f32>) {
    let d = half_at(block, 0);
    let qs = &block[2..18];
    out.extend(qs.iter().map(|&q| d * ((q & 0x0F) as i32 - 8) as f32));
    out.extend(qs.iter().map(|&q| d * ((q >> 4) as i32 - 8) as f32));
}

/// f16 scale and minimum, then 16 bytes of nibbles: `q · d + m`.
fn q4_1(block: &[u8], out: &mut Vec<f32>) {
    let (d, m) = (half_at(block, 0), half_at(block, 2));
    let qs = &block[4..20];
    out.extend(qs.iter().map(|&q| d * (q & 0x0F) as f32 + m));
    out.extend(qs.iter().map(|&q| d * (q >> 4) as f32 + m));
}

/// The 6-bit scale and minimum of sub-block `j` of a `K` super-block's 12 scale bytes.
fn scale_min_k4(j: usize, scales: &[u8]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        ((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))
    }
}

/// 256 values in 8 sub-blocks of 32: f16 `d` and `dmin`, 12 bytes of 6-bit scales and minimums,
/// 128 bytes of nibbles: `d·sc · q − dmin·m`.
fn q4_k(block: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (half_at(block, 0), half_at(block, 2));
    let (scales, qs) = (&block[4..16], &block[16..144]);
    for (pair, q) in qs.chunks_exact(32).enumerate() {
        for (half, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = scale_min_k4(2 * pair + half, scales);
            let (scale, min) = (d * sc as f32, dmin * m as f32);
            out.extend(q.iter().map(|&q| scale * ((q >> shift) & 0x0F) as f32 - min));
        }
    }
}

/// As Q4_K, with a fifth bit per value in 32 bytes of `qh` (bit `j` for sub-block `j`).
fn q5_k(block: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (half_at(block, 0), half_at(block, 2));
    let (scales, qh, qs) = (&block[4..16], &block[16..48], &block[48..176]);
    for (pair, q) in qs.chunks_exact(32).enumerate() {
        for (half, shift) in [(0, 0), (1, 4)] {
            let sub = 2 * pair + half;
            let (sc, m) = scale_min_k4(sub, scales);
            let (scale, min) = (d * sc as f32, dmin * m as f32);
            out.extend(q.iter().zip(qh).map(|(&q, &h)| scale * (((q >> shift) & 0x0F) | (((h >> sub) & 1) << 4)) as f32 - min));
        }
    }
}

/// 256 values in 16 sub-blocks of 16: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16
/// signed scales, f16 `d`: `d·sc · (q − 32)`.
fn q6_k(block: &[u8], out: &mut Vec<f32>) {
    let (ql, qh, scales) = (&block[0..128], &block[128..192], &block[192..208]);
    let d = half_at(block, 208);
    let start = out.len();
    out.resize(start + QK_K, 0.0);
    let y = &mut out[start..];
    for n in 0..2 {
        let (ql, qh, sc, y) = (&ql[64 * n..], &qh[32 * n..], &scales[8 * n..], &mut y[128 * n..]);
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0x0F) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, q) in q.into_iter().enumerate() {
                y[l + 32 * k] = d * sc[is + 2 * k] as i8 as f32 * (q as i32 - 32) as f32;
            }
        }
    }
}
