//! Random initial weights drawn on the host from the run's seed, then uploaded: the same seed
//! gives the same LoRA `A` factors and classifier heads on the CPU, lavapipe, SwiftShader and any
//! GPU. Burn's `Tensor::random` draws on the device from each backend's own generator, so the
//! same seed gave the CPU and wgpu different adapters (up to 0.14 apart on the demo model) and
//! their runs diverged from the first step. Dropout masks draw their seeds from a generator of
//! their own of the same kind (`kernels::dropout`).

use std::cell::Cell;

use burn::tensor::{Shape, TensorData};

/// SplitMix64 (Steele, Lea and Flood): a tiny generator whose stream is fixed by its seed on every
/// platform and version, unlike a library's "standard" generator.
#[derive(Clone, Copy, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal, by Box–Muller (one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: the logarithm stays finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

thread_local! {
    /// This thread's generator of initial weights.
    static INITIAL_WEIGHTS: Cell<u64> = const { Cell::new(0x1A17_5EED_0FC0_FFEE) };
}

/// Seeds this thread's initial weights: those drawn after it are a function of `seed` and the
/// order of the draws alone.
pub fn seed_initial_weights(seed: u64) {
    INITIAL_WEIGHTS.set(seed);
}

/// Draws `shape`'s values from this thread's generator with `draw`, advancing it.
fn draw_values(shape: Shape, mut draw: impl FnMut(&mut SplitMix64) -> f64) -> TensorData {
    let mut rng = SplitMix64::new(INITIAL_WEIGHTS.get());
    let values: Vec<f32> = (0..shape.num_elements()).map(|_| draw(&mut rng) as f32).collect();
    INITIAL_WEIGHTS.set(rng.next_u64());
    TensorData::new(values, shape)
}

/// Initial weights uniform in `[low, high)`.
pub fn uniform(shape: Shape, low: f64, high: f64) -> TensorData {
    draw_values(shape, |rng| low + (high - low) * rng.uniform())
}

/// Initial weights normal with `mean` and `std`.
pub fn normal(shape: Shape, mean: f64, std: f64) -> TensorData {
    draw_values(shape, |rng| mean + std * rng.normal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_fixes_the_draws_and_their_distribution_is_right() {
        seed_initial_weights(7);
        let a = uniform(Shape::new([1000]), -0.5, 0.5).try_to_vec::<f32>().unwrap();
        let b = normal(Shape::new([20_000]), 1.0, 2.0).try_to_vec::<f32>().unwrap();
        seed_initial_weights(7);
        assert_eq!(uniform(Shape::new([1000]), -0.5, 0.5).try_to_vec::<f32>().unwrap(), a);
        assert_ne!(uniform(Shape::new([1000]), -0.5, 0.5).try_to_vec::<f32>().unwrap(), a, "the next draw differs");
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = b.iter().map(|&v| v as f64).sum::<f64>() / b.len() as f64;
        let var = b.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / b.len() as f64;
        assert!((mean - 1.0).abs() < 0.05 && (var.sqrt() - 2.0).abs() < 0.05, "mean {mean}, std {}", var.sqrt());
        // SplitMix64's published first output for seed 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }
}
