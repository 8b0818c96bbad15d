//! Frozen weight matrices held in blocks of 32 quantized numbers (`--base-quant int8|int4`), so
//! that LoRA trains over a base that takes about a half (int8) or 0.29× (int4) of its f16
//! memory. The device never holds such a matrix dense: the kernels in `kernels::packed`
//! dequantize the blocks as they read them.
//!
//! A matrix keeps the checkpoint's `[out, in]` orientation; each row is cut into blocks of 32
//! along `in` (the last one padded with zeros). Two flat arrays of 32-bit words hold it:
//! - `values`: the quantized numbers, packed little end first: four int8 (two's complement) or
//!   eight unsigned 4-bit numbers per word; row `r`'s block `b` starts at word `(r·blocks + b)`
//!   times 8 (int8) or 4 (int4).
//! - `params`, int8: one word per block, its f16 scale in the low half: `w = scale·q` (GGUF's
//!   Q8_0).
//! - `params`, int4: GGUF's Q4_K scheme with 8-bit sub-scales. Eight blocks make a super-block
//!   with an f16 `d` and `dmin`; each block has an unsigned 8-bit `sc` and a signed 8-bit `mi`:
//!   `w = d·sc · q + dmin·mi`. Each row's words are its blocks' `(sc, mi)` byte pairs, two blocks
//!   a word (low half first), then its super-blocks' `(d, dmin)` words: 4.625 bits a weight.
//!   Q4_K (`d·sc·q − dmin·m`, 6-bit `sc` and `m`) fits exactly; Q4_0 and Q4_1 keep their
//!   numbers and round their per-block f16 scales to the 8-bit sub-scales.

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
    /// 4-bit with an 8-bit scale and minimum per block of 32 under f16 ones per 256 (Q4_K's
    /// scheme): 4.625 bits a weight.
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

/// Blocks per int4 super-block (256 numbers, as in Q4_K).
pub const SUPER: usize = 8;

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
        let layout = PackedLayout { rows, cols, bits };
        Some(rows * (layout.blocks_per_row() * BLOCK * bits / 8 + layout.params_per_row() * 4))
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

    /// int4: the words of a row's `(sc, mi)` pairs, before its super-blocks' words.
    pub fn pair_words_per_row(&self) -> usize {
        self.blocks_per_row().div_ceil(2)
    }

    /// The `params` words of one row.
    pub fn params_per_row(&self) -> usize {
        match self.bits {
            8 => self.blocks_per_row(),
            _ => self.pair_words_per_row() + self.blocks_per_row().div_ceil(SUPER),
        }
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

fn halves(word: u32) -> (f32, f32) {
    (f16::from_bits(word as u16).to_f32(), f16::from_bits((word >> 16) as u16).to_f32())
}

/// An int4 block's scale and minimum: `d·sc` and `dmin·mi` of its super-block's `d`, `dmin`.
fn int4_scale_min(params: &[u32], layout: &PackedLayout, row: usize, block: usize) -> (f32, f32) {
    let base = row * layout.params_per_row();
    let pair = params[base + block / 2] >> ((block % 2) * 16);
    let (sc, mi) = ((pair & 0xff) as f32, ((pair >> 8) as u8 as i8) as f32);
    let (d, dmin) = halves(params[base + layout.pair_words_per_row() + block / SUPER]);
    (d * sc, dmin * mi)
}

impl HostPacked {
    pub fn empty(rows: usize, cols: usize, bits: usize) -> Self {
        Self { layout: PackedLayout { rows, cols, bits }, values: Vec::new(), params: Vec::new() }
    }

    /// Quantizes a row-major `[rows, cols]` matrix to `bits` (8 or 4). int8 rounds `w / scale`
    /// to the nearest with `scale = max|w| / 127`; int4 spreads each block's `[min, max]` over
    /// 0..=15 with the scale and minimum its super-block's 8-bit sub-scales give it. Both round
    /// with the scales the kernels read.
    pub fn quantize(values: &[f32], rows: usize, cols: usize, bits: usize) -> Self {
        assert_eq!(values.len(), rows * cols, "a [rows, cols] matrix");
        if bits == 4 {
            let mut packed = Int4Rows::new(rows, cols);
            for row in values.chunks(cols) {
                packed.push_row(&row.chunks(BLOCK * SUPER).map(SuperBlock::quantize).collect::<Vec<_>>());
            }
            return packed.finish();
        }
        let mut packed = Self::empty(rows, cols, bits);
        for row in values.chunks(cols) {
            for block in row.chunks(BLOCK) {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = f16::from_f32(amax / 127.0);
                let s = scale.to_f32();
                let quants: Vec<u8> =
                    block.iter().map(|&v| if s > 0.0 { (v / s).round().clamp(-127.0, 127.0) as i8 as u8 } else { 0 }).collect();
                packed.push_int8_block(scale, &quants);
            }
        }
        packed
    }

    /// int8: appends one block, its f16 scale and up to 32 numbers (two's complement in a `u8`),
    /// padded with zeros.
    pub fn push_int8_block(&mut self, scale: f16, quants: &[u8]) {
        self.params.push(scale.to_bits() as u32);
        self.push_numbers(quants);
    }

    /// Appends up to 32 numbers (8-bit, or 4-bit in the low bits of each `u8`), padded with zeros.
    fn push_numbers(&mut self, quants: &[u8]) {
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
            for b in 0..blocks {
                let (scale, min) = match bits {
                    8 => (halves(self.params[r * blocks + b]).0, 0.0),
                    _ => int4_scale_min(&self.params, &self.layout, r, b),
                };
                for c in b * BLOCK..cols.min((b + 1) * BLOCK) {
                    let word = self.values[((r * blocks + b) * BLOCK + c % BLOCK) / per_word];
                    let shift = (c % per_word) * bits;
                    out.push(match bits {
                        8 => ((word >> shift) as u8 as i8) as f32 * scale,
                        _ => ((word >> shift) & 0xf) as f32 * scale + min,
                    });
                }
            }
        }
        out
    }
}

/// Up to eight int4 blocks that share an f16 `d` and `dmin`: each block's 8-bit `sc` and `mi`
/// and its 4-bit numbers (`w = d·sc · q + dmin·mi`).
#[derive(Clone, Debug)]
pub struct SuperBlock {
    pub d: f16,
    pub dmin: f16,
    pub blocks: Vec<(u8, i8, Vec<u8>)>,
}

impl SuperBlock {
    /// Blocks whose numbers are set, with their own scale and minimum (`w = scale·q + min`, as
    /// Q4_0 and Q4_1 store them): the scales rounded to the sub-scales of a shared `d`, `dmin`.
    pub fn from_scales(blocks: Vec<(f32, f32, Vec<u8>)>) -> Self {
        let (d, dmin) = Self::shared(blocks.iter().map(|(s, m, _)| (*s, *m)));
        let blocks = blocks.into_iter().map(|(scale, min, quants)| (Self::sc(scale, d), Self::mi(min, dmin), quants));
        Self { d, dmin, blocks: blocks.collect() }
    }

    /// Up to 256 values: each block's `[min, max]` spread over 0..=15, with the scale and minimum
    /// its sub-scales give it.
    fn quantize(values: &[f32]) -> Self {
        let ranges: Vec<(f32, f32)> = values
            .chunks(BLOCK)
            .map(|block| {
                let (lo, hi) = block.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                ((hi - lo) / 15.0, lo)
            })
            .collect();
        let (d, dmin) = Self::shared(ranges.iter().copied());
        let blocks = values.chunks(BLOCK).zip(ranges).map(|(block, (scale, min))| {
            let (sc, mi) = (Self::sc(scale, d), Self::mi(min, dmin));
            let (scale, min) = (d.to_f32() * sc as f32, dmin.to_f32() * mi as f32);
            let quants = block.iter().map(|&v| if scale > 0.0 { ((v - min) / scale).round().clamp(0.0, 15.0) as u8 } else { 0 });
            (sc, mi, quants.collect())
        });
        Self { d, dmin, blocks: blocks.collect() }
    }

    /// `d` and `dmin` that map the largest scale to 255 and the largest |minimum| to 127.
    fn shared(scales: impl Iterator<Item = (f32, f32)>) -> (f16, f16) {
        let (scale, min) = scales.fold((0f32, 0f32), |(s, m), (scale, min)| (s.max(scale.abs()), m.max(min.abs())));
        (f16::from_f32(scale / 255.0), f16::from_f32(min / 127.0))
    }

    /// A scale (never negative) in units of `d`.
    fn sc(scale: f32, d: f16) -> u8 {
        Self::units(scale, d).clamp(0.0, 255.0) as u8
    }

    /// A minimum in units of `dmin`.
    fn mi(min: f32, dmin: f16) -> i8 {
        Self::units(min, dmin).clamp(-127.0, 127.0) as i8
    }

    fn units(value: f32, unit: f16) -> f32 {
        let unit = unit.to_f32();
        if unit == 0.0 { 0.0 } else { (value / unit).round() }
    }
}

/// Builds an int4 matrix a row at a time.
pub struct Int4Rows(HostPacked);

impl Int4Rows {
    pub fn new(rows: usize, cols: usize) -> Self {
        Self(HostPacked::empty(rows, cols, 4))
    }

    /// Appends the next row, as its super-blocks in order (their blocks cover the row).
    pub fn push_row(&mut self, supers: &[SuperBlock]) {
        let packed = &mut self.0;
        let blocks: Vec<(u8, i8)> = supers.iter().flat_map(|s| s.blocks.iter().map(|(sc, mi, _)| (*sc, *mi))).collect();
        debug_assert_eq!(blocks.len(), packed.layout.blocks_per_row());
        for pair in blocks.chunks(2) {
            let half = |&(sc, mi): &(u8, i8)| sc as u32 | (mi as u8 as u32) << 8;
            packed.params.push(half(&pair[0]) | pair.get(1).map_or(0, half) << 16);
        }
        packed.params.extend(supers.iter().map(|s| s.d.to_bits() as u32 | (s.dmin.to_bits() as u32) << 16));
        for (_, _, quants) in supers.iter().flat_map(|s| &s.blocks) {
            packed.push_numbers(quants);
        }
    }

    pub fn finish(self) -> HostPacked {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i % 13) as f32)).collect()
    }

    /// The worst error is half a quantization step of its block, plus (int4) what rounding the
    /// block's scale and minimum to sub-scales moves the range's ends.
    #[test]
    fn quantizing_stays_within_half_a_step() {
        let (rows, cols) = (5, 300);
        let w = matrix(rows, cols);
        for bits in [8, 4] {
            let packed = HostPacked::quantize(&w, rows, cols, bits);
            let layout = packed.layout;
            assert_eq!(layout.blocks_per_row(), 10);
            assert_eq!(packed.params.len(), rows * if bits == 8 { 10 } else { 5 + 2 });
            assert_eq!(packed.values.len(), rows * 10 * BLOCK * bits / 32);
            let back = packed.dequantize();
            for r in 0..rows {
                for (b, block) in w[r * cols..(r + 1) * cols].chunks(BLOCK).enumerate() {
                    let (scale, slack) = match bits {
                        8 => (halves(packed.params[r * 10 + b]).0, 0.0),
                        _ => {
                            let (d, dmin) = halves(packed.params[r * 7 + 5 + b / SUPER]);
                            (int4_scale_min(&packed.params, &layout, r, b).0, 7.5 * d + 0.5 * dmin.abs())
                        }
                    };
                    for (i, v) in block.iter().enumerate() {
                        let got = back[r * cols + b * BLOCK + i];
                        // f16 rounding of the scales adds a little on top.
                        assert!((got - v).abs() <= scale * 0.5 + slack + v.abs() * 2e-3, "{bits} bits: {v} came back as {got}");
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_pack_little_end_first() {
        let mut rows = Int4Rows::new(1, 32);
        let quants: Vec<u8> = (0..32).map(|i| (i % 16) as u8).collect();
        let one = f16::from_f32(1.0);
        rows.push_row(&[SuperBlock { d: one, dmin: one, blocks: vec![(1, -8, quants)] }]);
        let packed = rows.finish();
        assert_eq!(packed.values[0], 0x7654_3210);
        assert_eq!(packed.params, [0xf801, 0x3c00_3c00], "(sc, mi) pairs, then (d, dmin)");
        assert_eq!(packed.dequantize()[..3], [-8.0, -7.0, -6.0]);

        let mut packed = HostPacked::empty(1, 4, 8);
        packed.push_int8_block(f16::from_f32(0.5), &[1, 0xff, 2, 0x80]);
        assert_eq!(packed.values[0], 0x80_02_ff_01);
        assert_eq!(packed.values.len(), 8, "a block is padded to 32 numbers");
        assert_eq!(packed.dequantize(), [0.5, -0.5, 1.0, -64.0]);
    }

    #[test]
    fn blocks_with_their_own_scales_keep_their_numbers() {
        // Q4_1-style blocks: each scale and minimum within half a sub-scale step (and f16).
        let blocks = vec![(0.5, -4.0, vec![0; 32]), (0.25, 2.0, vec![15; 32]), (0.0, -1.0, vec![3; 32])];
        let mut rows = Int4Rows::new(1, 96);
        rows.push_row(&[SuperBlock::from_scales(blocks)]);
        let back = rows.finish().dequantize();
        let expected = [-4.0, 0.25 * 15.0 + 2.0, -1.0];
        let (d, dmin) = (0.5 / 255.0, 4.0 / 127.0);
        for (got, want) in [back[0], back[32], back[64]].into_iter().zip(expected) {
            assert!((got - want).abs() <= 15.0 * d / 2.0 + dmin / 2.0 + 1e-3, "{got} for {want}");
        }
        assert!(back[..32].iter().all(|v| *v == back[0]), "a block's equal numbers stay equal");
    }

    #[test]
    fn zero_blocks_come_back_exactly_and_constant_ones_within_f16() {
        for bits in [8, 4] {
            assert_eq!(HostPacked::quantize(&[0.0; 64], 1, 64, bits).dequantize(), [0.0; 64]);
            let back = HostPacked::quantize(&[0.25; 32], 1, 32, bits).dequantize();
            assert!(back.iter().all(|v| (v - 0.25).abs() < 0.25 * 1e-3), "{bits} bits: {back:?}");
        }
    }

    #[test]
    fn base_quant_reads_and_sizes() {
        assert_eq!("INT4".parse::<BaseQuant>(), Ok(BaseQuant::Int4));
        assert!("int3".parse::<BaseQuant>().unwrap_err().contains("none, int8, int4"));
        // 576 × 576 in SmolLM2: f16 is 663,552 bytes.
        // int4: 18 blocks of 16 bytes, 9 words of sub-scales and 3 of super-blocks a row.
        assert_eq!(BaseQuant::Int4.packed_bytes(576, 576), Some(576 * (18 * 16 + 12 * 4)));
        assert!(BaseQuant::Int4.packed_bytes(576, 576).unwrap() as f64 <= 0.3 * (576 * 576 * 2) as f64);
        assert_eq!(BaseQuant::Int8.packed_bytes(576, 576), Some(576 * 18 * 36));
        assert_eq!(BaseQuant::None.packed_bytes(576, 576), None);
    }
}
