//! Parameters by module path: listing them, and replacing their values.
//!
//! A path is the dotted chain of field names, e.g. `layers.3.self_attn.q_proj.weight`; a LoRA
//! factor attached to that weight is `layers.3.self_attn.q_proj.weight.lora.a` (or `.b`).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::model::{CausalLm, HostTensor, ParamRef};

/// A float parameter seen from outside the module tree. Values are read from the device only
/// when asked for, so listing parameters (e.g. to save the adapter factors) computes nothing.
#[derive(Clone, Debug)]
pub struct NamedParam {
    pub path: String,
    pub shape: Vec<usize>,
    pub trainable: bool,
    /// The value as stored (for an adapted weight, the frozen base). Kept in its own shape: a
    /// packed layer's placeholder is a zero-strided view that flattening would make dense.
    stored: Stored,
    /// `(a, b, scale)` of the adapter attached to this weight.
    adapter: Option<(Tensor<2>, Tensor<2>, f64)>,
}

impl NamedParam {
    pub fn is_adapter_factor(&self) -> bool {
        self.path.ends_with(".lora.a") || self.path.ends_with(".lora.b")
    }

    pub fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    /// The effective value: the stored one plus the adapter's update, in f32.
    pub fn to_host(&self) -> HostTensor {
        let mut value = match &self.stored {
            Stored::Vector(t) => host(&self.shape, t),
            Stored::Matrix(t) => host(&self.shape, t),
        };
        if let Some(delta) = self.adapter_delta_to_host() {
            value.values.iter_mut().zip(delta.values).for_each(|(v, d)| *v += d);
        }
        value
    }

    /// The adapter's update `scale·a·b`, for a weight with an adapter attached.
    pub fn adapter_delta_to_host(&self) -> Option<HostTensor> {
        self.adapter.as_ref().map(|(a, b, scale)| {
            let numel = self.shape.iter().product::<usize>();
            host(&self.shape, &a.clone().matmul(b.clone()).mul_scalar(*scale).reshape([numel]))
        })
    }
}

#[derive(Clone, Debug)]
enum Stored {
    Vector(Tensor<1>),
    Matrix(Tensor<2>),
}

fn host<const D: usize>(shape: &[usize], values: &Tensor<D>) -> HostTensor {
    HostTensor { shape: shape.to_vec(), values: values.to_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default() }
}

/// The stack of module names during a traversal.
#[derive(Default)]
pub(crate) struct PathStack(Vec<String>);

impl PathStack {
    pub(crate) fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }

    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }

    pub(crate) fn path(&self) -> String {
        self.0.join(".")
    }
}

/// Every parameter of the model, then every LoRA factor; an adapted weight's effective value has
/// its adapter merged in (see [`NamedParam::to_host`]).
pub fn named_parameters(model: &CausalLm) -> Vec<NamedParam> {
    fn named<const D: usize>(path: String, param: &Param<Tensor<D>>, stored: impl Fn(Tensor<D>) -> Stored) -> NamedParam {
        let adapter = param.adapter().map(|a| (a.a.val(), a.b.val(), a.scale));
        let value = if adapter.is_some() { param.base() } else { param.val() };
        let shape = value.dims().to_vec();
        NamedParam { path, shape, trainable: param.is_require_grad(), stored: stored(value), adapter }
    }
    let mut out = Vec::new();
    let mut factors = Vec::new();
    for (path, param) in model.parameters() {
        match param {
            ParamRef::Vector(p) => out.push(named(path, p, Stored::Vector)),
            ParamRef::Matrix(p) => {
                if let Some(adapter) = p.adapter() {
                    factors.push(named(format!("{path}.lora.a"), &adapter.a, Stored::Matrix));
                    factors.push(named(format!("{path}.lora.b"), &adapter.b, Stored::Matrix));
                }
                out.push(named(path, p, Stored::Matrix));
            }
        }
    }
    out.extend(factors);
    out
}

/// Replaces the values of the parameters named in `values` (shapes must match), keeping their
/// ids and whether they train. Returns the module and the paths that were replaced.
pub fn set_parameters<M: Module>(module: M, values: &HashMap<String, HostTensor>) -> (M, Vec<String>) {
    struct Replace<'a> {
        stack: PathStack,
        values: &'a HashMap<String, HostTensor>,
        replaced: Vec<String>,
    }
    impl ModuleMapper for Replace<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.exit();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let path = self.stack.path();
            let Some(host) = self.values.get(&path) else {
                return param;
            };
            let trainable = param.is_require_grad();
            let mut dims = [0usize; D];
            if host.shape.len() != D {
                return param;
            }
            dims.copy_from_slice(&host.shape);
            self.replaced.push(path);
            param.map(|old| {
                let device = old.device();
                let new = Tensor::<D>::from_data(TensorData::new(host.values.clone(), dims), &device);
                if trainable { new.require_grad() } else { new }
            })
        }
    }
    let mut replace = Replace { stack: PathStack::default(), values, replaced: Vec::new() };
    let module = module.map(&mut replace);
    (module, replace.replaced)
}

/// The gradient of every parameter that has one, by path, on the host.
pub fn gradients_by_path<M: Module>(module: &M, grads: &burn::optim::GradientsParams) -> HashMap<String, HostTensor> {
    struct Collect<'a> {
        stack: PathStack,
        grads: &'a burn::optim::GradientsParams,
        out: HashMap<String, HostTensor>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let host = HostTensor {
                    shape: g.dims().to_vec(),
                    values: g.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default(),
                };
                self.out.insert(self.stack.path(), host);
            }
        }
    }
    let mut collect = Collect { stack: PathStack::default(), grads, out: HashMap::new() };
    module.visit(&mut collect);
    collect.out
}
