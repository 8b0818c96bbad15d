//! Activation checkpointing per decoder layer.
//!
//! The forward pass runs through the decoder layers without autodiff and keeps only each layer's
//! input. The backward pass walks the layers from the last: it recomputes one layer with autodiff
//! from its saved input and backpropagates the gradient arriving at that layer's output through
//! it. At any moment the step holds one layer's activations and a `[batch, len, hidden]` input
//! per layer, instead of every layer's activations, for the price of a second forward pass through
//! the layers (measured in BENCHMARKS.md).

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Gradients, Int, Tensor};

use crate::model::{CausalLm, ForwardOptions, LayerContext};

/// What the forward pass kept for the backward pass.
pub struct LayerCheckpoints {
    ids: Tensor<2, Int>,
    context: LayerContext,
    /// The input of every decoder layer, without autodiff.
    inputs: Vec<Tensor<3>>,
    /// The last layer's output, a leaf of the graph the head and loss build on.
    output: Tensor<3>,
    options: ForwardOptions,
}

impl LayerCheckpoints {
    /// Runs the embedding and the decoder layers without recording a graph. `ids` are on the
    /// training (autodiff) device.
    pub fn forward(model: &CausalLm, ids: Tensor<2, Int>, options: ForwardOptions) -> Self {
        let [_, len] = ids.dims();
        let frozen = model.valid();
        let context = frozen.layer_context(0, len, &ids.device().inner());
        let mut h = frozen.embed(ids.clone().inner());
        let mut inputs = Vec::with_capacity(frozen.num_layers());
        for i in 0..frozen.num_layers() {
            inputs.push(h.clone());
            h = frozen.forward_layer(i, h, &context, None, options);
        }
        Self { ids, context, inputs, output: h.autodiff().require_grad(), options }
    }

    /// The last decoder layer's output, `[batch, len, hidden]`, for the final norm and the loss.
    pub fn output(&self) -> Tensor<3> {
        self.output.clone()
    }

    /// Gradients of every trainable parameter, from `grads`, the backward pass of a loss computed
    /// from [`Self::output`].
    pub fn backward(mut self, model: &CausalLm, grads: Gradients) -> GradientsParams {
        let mut accumulator = GradientsAccumulator::<CausalLm>::new();
        let mut upstream = self.output.grad(&grads);
        accumulator.accumulate(model, GradientsParams::from_grads(grads, model));
        for i in (0..model.num_layers()).rev() {
            let (Some(gradient), Some(input)) = (upstream.take(), self.inputs.pop()) else { break };
            let input = input.autodiff().require_grad();
            let output = model.forward_layer(i, input.clone(), &self.context, None, self.options);
            // The gradient of `sum(output · g)` with respect to anything is `g` backpropagated
            // through the layer; `g` is a constant here.
            let grads = (output * gradient).sum().backward();
            upstream = input.grad(&grads);
            accumulator.accumulate(model, GradientsParams::from_grads(grads, &model.layers[i]));
        }
        if let Some(gradient) = upstream.filter(|_| model.embed_tokens.weight.is_require_grad()) {
            let grads = (model.embed(self.ids) * gradient).sum().backward();
            accumulator.accumulate(model, GradientsParams::from_grads(grads, &model.embed_tokens));
        }
        accumulator.grads()
    }
}
