//! Helpers shared by the engine tests: fixtures, golden files, devices and comparisons.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use wgtune::device::{ComputeDevice, DeviceChoice};
use wgtune::kernels::{ForcedShape, KernelShape, force_kernel_shape, kernel_shape};

/// Backends draw random numbers (LoRA initialisation, dropout) from one process-wide generator,
/// so runs that must be reproducible take turns.
pub fn one_run_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Every backend the parity tests run on. wgpu is required: CI installs lavapipe for it, and a
/// missing GPU must fail the tests rather than skip them silently. `WGTUNE_TEST_DEVICES=cpu`
/// narrows the set on purpose.
pub fn devices() -> Vec<ComputeDevice> {
    let wanted = std::env::var("WGTUNE_TEST_DEVICES").unwrap_or_else(|_| "wgpu,cpu".into());
    wanted
        .split(',')
        .map(|name| {
            let choice: DeviceChoice = name.trim().parse().expect("WGTUNE_TEST_DEVICES");
            ComputeDevice::open(choice).unwrap_or_else(|e| panic!("{choice}: {e}"))
        })
        .collect()
}

/// One run of a test: a device, and on wgpu the kernel shape forced while the run lasts.
pub struct DeviceRun {
    pub dev: ComputeDevice,
    /// The device, and the kernel shape when one is forced, for messages.
    pub label: String,
    _forced: Option<ForcedShape>,
}

/// [`devices`], with wgpu taken twice: in its adapter's kernel shape, then in the other one, so
/// that lavapipe runs the kernels a hardware GPU would (and a GPU lavapipe's). Each run forces its
/// shape on this thread while it is in use: iterate, do not collect.
pub fn device_runs() -> impl Iterator<Item = DeviceRun> {
    devices().into_iter().flat_map(|dev| {
        let forced: Vec<Option<KernelShape>> = if dev.choice == DeviceChoice::Wgpu {
            let other = match kernel_shape() {
                KernelShape::Software => KernelShape::Hardware,
                KernelShape::Hardware => KernelShape::Software,
            };
            vec![None, Some(other)]
        } else {
            vec![None]
        };
        forced.into_iter().map(move |shape| {
            let label = match shape {
                Some(shape) => format!("{} ({shape}-shaped kernels)", dev.choice),
                None => dev.choice.to_string(),
            };
            DeviceRun { dev: dev.clone(), label, _forced: shape.map(force_kernel_shape) }
        })
    })
}

/// A golden file's tensors, by name.
pub struct Golden {
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Golden {
    pub fn open(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .iter()
            .map(|(name, view)| {
                let data = view.data();
                let values: Vec<f64> = match view.dtype() {
                    Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
                    Dtype::I64 => data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f64).collect(),
                    other => panic!("{name}: unexpected dtype {other:?}"),
                };
                (name.to_string(), (view.shape().to_vec(), values))
            })
            .collect();
        Self { tensors }
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors.get(name).unwrap_or_else(|| panic!("golden tensor `{name}` is missing"))
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    pub fn scalar(&self, name: &str) -> f64 {
        self.get(name).1[0]
    }

    pub fn ids(&self, name: &str, device: &Device) -> Tensor<2, Int> {
        let (shape, values) = self.get(name);
        let values: Vec<i64> = values.iter().map(|v| *v as i64).collect();
        Tensor::from_data(TensorData::new(values, [shape[0], shape[1]]), device)
    }

    pub fn rows(&self, name: &str) -> Vec<Vec<i64>> {
        let (shape, values) = self.get(name);
        values.chunks(shape[1]).map(|r| r.iter().map(|v| *v as i64).collect()).collect()
    }
}

/// Asserts that `actual` matches the golden tensor `name` within `tol` (absolute).
pub fn assert_close(what: &str, actual: &[f32], actual_shape: &[usize], golden: &(Vec<usize>, Vec<f64>), tol: f64) {
    assert_eq!(actual_shape, golden.0.as_slice(), "{what}: shape");
    let mut worst = (0.0f64, 0usize);
    for (i, (a, g)) in actual.iter().zip(&golden.1).enumerate() {
        let d = (*a as f64 - g).abs();
        assert!(d.is_finite(), "{what}: non-finite value at {i}: {a}");
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: max |difference| {:.3e} at index {} (ours {}, reference {}) exceeds {tol:e}",
        worst.0,
        worst.1,
        actual[worst.1],
        golden.1[worst.1]
    );
}

pub fn values<const D: usize>(t: Tensor<D>) -> (Vec<f32>, Vec<usize>) {
    let shape = t.dims().to_vec();
    (t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap(), shape)
}

/// `wgtune` with `args`, run to the end.
pub fn wgtune(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_wgtune")).args(args).output().expect("run wgtune")
}

/// A command's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
