//! Rotary position embeddings, in the "rotate half" layout Hugging Face Llama checkpoints use.
//!
//! Tables are computed on the host for the positions a forward pass needs: they are tiny, and
//! building them in f64 keeps them as exact as the reference's.

use burn::tensor::{Device, Tensor, TensorData};

use super::config::{ModelConfig, RopeScaling};

#[derive(Clone, Debug)]
pub struct Rope {
    /// One frequency per pair of rotated dimensions, after any scaling.
    inv_freq: Vec<f64>,
    position_scale: f64,
    /// LongRoPE: the frequencies of a forward pass that reaches past `original` positions.
    long: Option<(Vec<f64>, usize)>,
    /// What cos and sin are multiplied by (LongRoPE's attention factor; 1 elsewhere).
    attention_factor: f64,
}

impl Rope {
    /// The rotation of the global layers (every layer but Gemma 3's sliding-window ones).
    pub fn new(config: &ModelConfig) -> Self {
        Self::with_base(config.rotary_dim, config.rope_theta, &config.rope_scaling)
    }

    /// The rotation of Gemma 3's sliding-window layers: a base of their own, never scaled.
    pub fn local(config: &ModelConfig) -> Option<Self> {
        config.local_rope_theta.map(|theta| Self::with_base(config.rotary_dim, theta, &RopeScaling::None))
    }

    fn with_base(dim: usize, theta: f64, scaling: &RopeScaling) -> Self {
        let base: Vec<f64> = (0..dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64)).collect();
        let plain = |inv_freq: Vec<f64>| Self { inv_freq, position_scale: 1.0, long: None, attention_factor: 1.0 };
        let divided = |factors: &[f64]| base.iter().zip(factors).map(|(f, d)| f / d).collect::<Vec<f64>>();
        match scaling {
            RopeScaling::None => plain(base),
            RopeScaling::Linear { factor } => Self { position_scale: 1.0 / factor, ..plain(base) },
            RopeScaling::Factors(factors) => plain(divided(factors)),
            RopeScaling::LongRope { short_factor, long_factor, original_max_position_embeddings, attention_factor } => Self {
                long: Some((divided(long_factor), *original_max_position_embeddings)),
                attention_factor: *attention_factor,
                ..plain(divided(short_factor))
            },
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: original } => {
                let low_freq_wavelen = original / low_freq_factor;
                let high_freq_wavelen = original / high_freq_factor;
                let inv_freq = base
                    .into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_freq_wavelen {
                            f
                        } else if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            let smooth = (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect();
                plain(inv_freq)
            }
        }
    }

    /// `(cos, sin)`, each `[1, len, head_dim]`, for positions `start..start + len`.
    pub fn tables(&self, start: usize, len: usize, device: &Device) -> (Tensor<3>, Tensor<3>) {
        self.shifted_tables(start, len, &[0], device)
    }

    /// `(cos, sin)`, each `[sequences, len, head_dim]`: sequence `b` is left-padded by
    /// `padding[b]` columns, so column `start + t` is its position `start + t - padding[b]`
    /// (padding columns take position 0; nothing attends to them).
    pub fn shifted_tables(&self, start: usize, len: usize, padding: &[usize], device: &Device) -> (Tensor<3>, Tensor<3>) {
        // LongRoPE picks one set of frequencies per forward pass, by its farthest position.
        let farthest = start + len - padding.iter().copied().min().unwrap_or(0);
        let inv_freq = match &self.long {
            Some((long, original)) if farthest > *original => long,
            _ => &self.inv_freq,
        };
        let half = inv_freq.len();
        let rows = padding.len() * len;
        let mut cos = Vec::with_capacity(rows * half * 2);
        let mut sin = Vec::with_capacity(rows * half * 2);
        for pos in padding.iter().flat_map(|&pad| (start..start + len).map(move |column| column.saturating_sub(pad))) {
            let p = pos as f64 * self.position_scale;
            // The two halves of a head share frequencies: [f0..f_{h-1}, f0..f_{h-1}].
            for _ in 0..2 {
                for f in inv_freq {
                    // The reference rounds the frequency to f32 before multiplying.
                    let angle = p * (*f as f32) as f64;
                    cos.push((angle.cos() * self.attention_factor) as f32);
                    sin.push((angle.sin() * self.attention_factor) as f32);
                }
            }
        }
        let shape = [padding.len(), len, half * 2];
        (Tensor::from_data(TensorData::new(cos, shape), device), Tensor::from_data(TensorData::new(sin, shape), device))
    }
}
