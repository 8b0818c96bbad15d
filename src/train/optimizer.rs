//! AdamW with global-norm gradient clipping, as `torch.optim.AdamW` computes it.
//!
//! Moments are kept per parameter *path* rather than per Burn `ParamId`, so that a checkpoint
//! written by one process resumes in another.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::config::OptimizerConfig;
use crate::kernels::{AdamWStep, adamw, squared_norm};
use crate::model::HostTensor;
use crate::params::PathStack;

#[derive(Clone, Debug)]
pub struct Moments {
    pub m: Tensor<1>,
    pub v: Tensor<1>,
}

pub struct AdamW {
    config: OptimizerConfig,
    /// The fused operations: the WGSL update kernel on wgpu devices, and the gradients' global
    /// norm in one pass per tensor on every backend.
    fused: bool,
    /// Optimizer steps taken (bias correction uses it).
    pub steps: usize,
    pub moments: HashMap<String, Moments>,
}

impl AdamW {
    pub fn new(config: &OptimizerConfig, fused: bool) -> Self {
        Self { config: config.clone(), fused, steps: 0, moments: HashMap::new() }
    }

    /// Global L2 norm of the gradients of every trainable parameter, in one fused operation
    /// where the optimizer is fused.
    pub fn grad_norm<M: Module>(&self, model: &M, grads: &GradientsParams) -> f64 {
        struct Gradients<'a> {
            grads: &'a GradientsParams,
            flat: Vec<Tensor<1>>,
        }
        impl ModuleVisitor for Gradients<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.grads.get::<D>(param.id) {
                    let n = g.shape().num_elements();
                    self.flat.push(g.reshape([n]));
                }
            }
        }
        let mut visitor = Gradients { grads, flat: Vec::new() };
        model.visit(&mut visitor);
        squared_norm(visitor.flat, self.fused).map(|t| (t.into_scalar::<f32>() as f64).sqrt()).unwrap_or(0.0)
    }

    /// One AdamW step at learning rate `lr`, with gradients scaled by `grad_scale` (clipping).
    pub fn step<M: Module>(&mut self, model: M, mut grads: GradientsParams, lr: f64, grad_scale: f64) -> M {
        self.steps += 1;
        let c = &self.config;
        let t = self.steps as i32;
        let step = AdamWStep {
            lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            decay: 1.0 - lr * c.weight_decay,
            bias1: 1.0 - c.beta1.powi(t),
            bias2: 1.0 - c.beta2.powi(t),
            grad_scale,
        };
        let mut mapper = Update { stack: PathStack::default(), grads: &mut grads, moments: &mut self.moments, step, fused: self.fused };
        model.map(&mut mapper)
    }

    /// The moments on the host, for checkpoints: `m.<path>` and `v.<path>`.
    pub fn state_tensors(&self) -> Vec<(String, HostTensor)> {
        let mut out = Vec::new();
        let mut paths: Vec<&String> = self.moments.keys().collect();
        paths.sort();
        for path in paths {
            let moments = &self.moments[path];
            for (prefix, t) in [("m", &moments.m), ("v", &moments.v)] {
                out.push((
                    format!("{prefix}.{path}"),
                    HostTensor { shape: t.dims().to_vec(), values: t.to_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default() },
                ));
            }
        }
        out
    }

    /// Restores moments written by [`state_tensors`](Self::state_tensors).
    pub fn load_state(&mut self, steps: usize, tensors: &HashMap<String, HostTensor>, device: &Device) {
        self.steps = steps;
        self.moments.clear();
        for (name, m) in tensors {
            let Some(path) = name.strip_prefix("m.") else { continue };
            let Some(v) = tensors.get(&format!("v.{path}")) else { continue };
            let upload = |t: &HostTensor| Tensor::<1>::from_data(TensorData::new(t.values.clone(), [t.values.len()]), device);
            self.moments.insert(path.to_string(), Moments { m: upload(m), v: upload(v) });
        }
    }
}

struct Update<'a> {
    stack: PathStack,
    grads: &'a mut GradientsParams,
    moments: &'a mut HashMap<String, Moments>,
    step: AdamWStep,
    fused: bool,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.stack.enter(name);
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.stack.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return param;
        };
        let path = self.stack.path();
        let (id, value, mapper) = param.consume();
        let shape = value.shape();
        let n = shape.num_elements();

        let p = value.inner().reshape([n]);
        let g = grad.reshape([n]);
        let moments = self.moments.remove(&path).map(|Moments { m, v }| (m, v));
        let (p, m, v) = adamw(p, g, moments, &self.step, self.fused);
        self.moments.insert(path, Moments { m, v });

        let p = Tensor::from_inner(p.reshape(shape));
        Param::from_mapped_value(id, p.require_grad(), mapper)
    }
}
