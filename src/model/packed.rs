//! Frozen weight matrices held in blocks of 32 quantized numbers (`--base-quant int8|int4`), so
//! that LoRA trains over a base that takes about a half (int8) or a third (int4) of its f16
//! memory. The device never holds such a matrix dense: the kernels in `kernels::packed`
//! dequantize the blocks as they read them.
//!
//! A matrix keeps the checkpoint's `[out, in]` orientation; each row is cut into blocks of 32
//! along `in` (the last one padded with zeros). Two flat arrays of 32-bit words hold it:
//! - `values`: the quantized numbers, packed little end first: four int8 (two's complement) or
//!   eight unsigned 4-bit numbers per word; row `r`'s block `b` starts at word `(r·blocks + b)`
//!   times 8 (int8) or 4 (int4).
//! - `params`: one word per block, two f16 halves, the scale in the low one and the minimum in
//!   the high one. int8 is `w = scale·q` (GGUF's Q8_0, minimum zero); int4 is
//!   `w = scale·q + min` (GGUF's Q4_1; Q4_0's `d·(q − 8)` is scale `d`, minimum `−8d`).

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use half::f16;

/// How the frozen base of a LoRA run is stored on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseQuant {
    /// Dense, in the run's precision (f32 or f16).
    #[default]
    None,
    /// int8 with one f16 scale per block of 32: 8.5 bits a weight.
    Int8,
    /// 4-bit with an f16 scale and minimum per block of 32: 5 bits a weight.
    Int4,
}

impl std::str::FromStr for BaseQuant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Self::None),
            "int8" | "q8" | "8" => Ok(Self::Int8),
            "int4" | "q4" | "4" => Ok(Self::Int4),
            other => Err(format!("unknown base quantization `{other}` (none, int8, int4)")),
        }
    }
}

impl std::fmt::Display for BaseQuant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Int8 => "int8",
            Self::Int4 => "int4",
        })
    }
}

/// Numbers per block.
pub const BLOCK: usize = 32;

impl BaseQuant {
    pub const ALL: [BaseQuant; 3] = [Self::None, Self::Int8, Self::Int4];

    /// Bits of one quantized number; `None` for a dense base.
    pub fn bits(self) -> Option<usize> {
        match self {
            Self::None => None,
            Self::Int8 => Some(8),
            Self::Int4 => Some(4),
        }
    }

    /// Device bytes of a `[rows, cols]` matrix stored this way (`None`: not packed).
    pub fn packed_bytes(self, rows: usize, cols: usize) -> Option<usize> {
        let bits = self.bits()?;
        let blocks = cols.div_ceil(BLOCK);
        Some(rows * blocks * (BLOCK * bits / 8 + 4))
    }

    /// Whether a `[rows, cols]` matrix can be packed: the kernels read rows and columns four at a
    /// time. Every model we know meets this; a matrix that does not stays dense.
    pub fn can_pack(rows: usize, cols: usize) -> bool {
        rows.is_multiple_of(4) && cols.is_multiple_of(4) && rows > 0 && cols > 0
    }
}

/// The shape and number format of a packed matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedLayout {
    /// `out`: the matrix's rows in the checkpoint's orientation.
    pub rows: usize,
    /// `in`: the numbers in a row, before padding.
    pub cols: usize,
    /// 8 or 4.
    pub bits: usize,
}

impl PackedLayout {
    pub fn blocks_per_row(&self) -> usize {
        self.cols.div_ceil(BLOCK)
    }

    fn words_per_block(&self) -> usize {
        BLOCK * self.bits / 32
    }
}

/// A frozen matrix in blocks, on the device (see the module's documentation for the layout).
#[derive(Module, Debug)]
pub struct PackedWeight {
    pub values: Tensor<1, Int>,
    pub params: Tensor<1, Int>,
    #[module(skip)]
    pub layout: PackedLayout,
}

/// What stands for a packed matrix of `shape` among the model's parameters: a frozen zero-strided
/// view of one zero, which takes no memory. It gives LoRA its shape to attach to, and exports
/// and checkpoints their name, while the values live in blocks.
pub fn placeholder(shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::<2>::zeros([1, 1], device).expand(shape)).set_require_grad(false)
}

/// A packed matrix on the host: the words [`PackedWeight`] holds on the device.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPacked {
    pub layout: PackedLayout,
    pub values: Vec<u32>,
    pub params: Vec<u32>,
}

impl PackedWeight {
    pub fn to_device(host: &HostPacked, device: &Device) -> Self {
        let words = |w: &[u32]| {
            let data = TensorData::new(w.iter().map(|&v| v as i32).collect::<Vec<i32>>(), [w.len()]);
            Tensor::<1, Int>::from_data(data, (device, DType::I32))
        };
        Self { values: words(&host.values), params: words(&host.params), layout: host.layout }
    }

    /// The words back on the host (for the CPU kernels and for tests).
    pub fn to_host(&self) -> HostPacked {
        let words = |t: &Tensor<1, Int>| {
            t.to_data().convert::<i32>().try_into_vec::<i32>().unwrap_or_default().into_iter().map(|v| v as u32).collect()
        };
        HostPacked { layout: self.layout, values: words(&self.values), params: words(&self.params) }
    }
}

fn half_pair(scale: f32, min: f32) -> u32 {
    f16::from_f32(scale).to_bits() as u32 | (f16::from_f32(min).to_bits() as u32) << 16
}

fn halves(word: u32) -> (f32, f32) {
    (f16::from_bits(word as u16).to_f32(), f16::from_bits((word >> 16) as u16).to_f32())
}

impl HostPacked {
    /// Quantizes a row-major `[rows, cols]` matrix to `bits` (8 or 4). int8 rounds `w / scale`
    /// to the nearest with `scale = max|w| / 127`; int4 spreads each block's `[min, max]` over
    /// 0..=15. Both use the f16-rounded scale and minimum, the ones the kernels read.
    pub fn quantize(values: &[f32], rows: usize, cols: usize, bits: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "a [rows, cols] matrix");
        let layout = PackedLayout { rows, cols, bits };
        let blocks = layout.blocks_per_row();
        let mut packed = Self { layout, values: Vec::with_capacity(rows * blocks * layout.words_per_block()), params: Vec::new() };
        for row in values.chunks(cols) {
            for block in row.chunks(BLOCK) {
                let (params, quants) = if bits == 8 { quantize_int8(block) } else { quantize_int4(block) };
                packed.push_block(params, &quants);
            }
        }
        packed
    }

    /// Appends one block: its params word and up to 32 quantized numbers (8-bit two's complement
    /// or 4-bit unsigned, in the low bits of each `u8`), padded with zeros.
    pub fn push_block(&mut self, params: u32, quants: &[u8]) {
        self.params.push(params);
        let per_word = 32 / self.layout.bits;
        let mask = if self.layout.bits == 8 { 0xff } else { 0xf };
        let mut padded = [0u8; BLOCK];
        padded[..quants.len()].copy_from_slice(quants);
        for word in padded.chunks(per_word) {
            self.values.push(word.iter().enumerate().fold(0u32, |w, (i, &q)| w | ((q as u32 & mask) << (i * self.layout.bits))));
        }
    }

    /// The matrix back as row-major `[rows, cols]` f32: exactly what the kernels compute with.
    pub fn dequantize(&self) -> Vec<f32> {
        self.dequantize_rows(0..self.layout.rows)
    }

    /// The given rows (any order, repeats allowed) as row-major f32, as [`Self::dequantize`]
    /// gives them: an embedding lookup that never forms the whole table.
    pub fn dequantize_rows(&self, rows: impl IntoIterator<Item = usize>) -> Vec<f32> {
        let PackedLayout { cols, bits, .. } = self.layout;
        let blocks = self.layout.blocks_per_row();
        let per_word = 32 / bits;
        let mut out = Vec::new();
        for r in rows {
            for c in 0..cols {
                let block = r * blocks + c / BLOCK;
                let word = self.values[(block * BLOCK + c % BLOCK) / per_word];
                let shift = (c % per_word) * bits;
                let (scale, min) = halves(self.params[block]);
                out.push(if bits == 8 {
                    ((word >> shift) as u8 as i8) as f32 * scale
                } else {
                    ((word >> shift) & 0xf) as f32 * scale + min
                });
            }
        }
        out
    }
}

fn quantize_int8(block: &[f32]) -> (u32, Vec<u8>) {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = f16::from_f32(amax / 127.0).to_f32();
    let quants = block.iter().map(|&v| if scale > 0.0 { (v / scale).round().clamp(-127.0, 127.0) as i8 as u8 } else { 0 }).collect();
    (half_pair(scale, 0.0), quants)
}

fn quantize_int4(block: &[f32]) -> (u32, Vec<u8>) {
    let (lo, hi) = block.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let min = f16::from_f32(lo).to_f32();
    let scale = f16::from_f32((hi - min) / 15.0).to_f32();
    let quants = block.iter().map(|&v| if scale > 0.0 { ((v - min) / scale).round().clamp(0.0, 15.0) as u8 } else { 0 }).collect();
    (half_pair(scale, min), quants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32)).collect()
    }

    /// The worst error is half a quantization step of its block.
    #[test]
    fn quantizing_stays_within_half_a_step() {
        let (rows, cols) = (5, 70);
        let w = matrix(rows, cols);
        for bits in [8, 4] {
            let packed = HostPacked::quantize(&w, rows, cols, bits);
            assert_eq!(packed.params.len(), rows * 3);
            assert_eq!(packed.values.len(), rows * 3 * BLOCK * bits / 32);
            let back = packed.dequantize();
            for r in 0..rows {
                for (b, block) in w[r * cols..(r + 1) * cols].chunks(BLOCK).enumerate() {
                    let (scale, _) = halves(packed.params[r * 3 + b]);
                    for (i, v) in block.iter().enumerate() {
                        let got = back[r * cols + b * BLOCK + i];
                        // f16 rounding of the minimum adds a little on top of half a step.
                        assert!((got - v).abs() <= scale * 0.5 + v.abs() * 2e-3, "{bits} bits: {v} came back as {got}");
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_pack_little_end_first() {
        let layout = PackedLayout { rows: 1, cols: 32, bits: 4 };
        let mut packed = HostPacked { layout, values: vec![], params: vec![] };
        let quants: Vec<u8> = (0..32).map(|i| (i % 16) as u8).collect();
        packed.push_block(half_pair(1.0, -8.0), &quants);
        assert_eq!(packed.values[0], 0x7654_3210);
        assert_eq!(packed.dequantize()[..3], [-8.0, -7.0, -6.0]);

        let layout = PackedLayout { rows: 1, cols: 4, bits: 8 };
        let mut packed = HostPacked { layout, values: vec![], params: vec![] };
        packed.push_block(half_pair(0.5, 0.0), &[1, 0xff, 2, 0x80]);
        assert_eq!(packed.values[0], 0x80_02_ff_01);
        assert_eq!(packed.values.len(), 8, "a block is padded to 32 numbers");
        assert_eq!(packed.dequantize(), [0.5, -0.5, 1.0, -64.0]);
    }

    #[test]
    fn constant_and_zero_blocks_come_back_exactly() {
        assert_eq!(HostPacked::quantize(&[0.25; 32], 1, 32, 4).dequantize(), [0.25; 32]);
        assert_eq!(HostPacked::quantize(&[0.0; 32], 1, 32, 8).dequantize(), [0.0; 32]);
    }

    #[test]
    fn base_quant_reads_and_sizes() {
        assert_eq!("INT4".parse::<BaseQuant>(), Ok(BaseQuant::Int4));
        assert!("int3".parse::<BaseQuant>().unwrap_err().contains("none, int8, int4"));
        // 576 × 576 in SmolLM2: f16 is 663,552 bytes.
        assert_eq!(BaseQuant::Int4.packed_bytes(576, 576), Some(576 * 18 * 20));
        assert_eq!(BaseQuant::Int8.packed_bytes(576, 576), Some(576 * 18 * 36));
        assert_eq!(BaseQuant::None.packed_bytes(576, 576), None);
    }
}
