//! Forward pass, loss, LoRA gradients, optimizer step and merge against transformers + PEFT, on
//! every backend, on wgpu in both kernel shapes (`tests/fixtures/make_golden.py` wrote the
//! reference values).

use std::collections::HashMap;

use burn::optim::GradientsParams;
use burn::tensor::{DType, Device};
use wgtune::data::{Batch, IGNORE};
use wgtune::generate::{GenerationSettings, generate_ids};
use wgtune::method::Method;
use wgtune::model::{BaseQuant, CausalLm, ForwardOptions, HostTensor, ModelFolder, Precision, hf_name, is_transposed, transpose};
use wgtune::params::{gradients_by_path, named_parameters};
use wgtune::peft;
use wgtune::train::{AdamW, OptimizerConfig, StepInputs, Targets, batch_gradients, cross_entropy_sum, optimizer_step};

use crate::common::{Golden, assert_close, device_runs, devices, fixture, one_run_at_a_time, values};

const TOL: f64 = 1e-4;
const MODELS: [&str; 7] = ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-smollm3", "tiny-gemma2", "tiny-gemma3", "tiny-phi3"];

/// The golden batch: `input_ids` with targets from `labels` (shifted), as the trainer builds them.
fn golden_batch(golden: &Golden, labels: &str) -> Batch {
    let ids = golden.rows("input_ids");
    let labels = golden.rows(labels);
    let (rows, len) = (ids.len(), ids[0].len());
    let mut targets = vec![IGNORE; rows * len];
    for r in 0..rows {
        for t in 0..len - 1 {
            targets[r * len + t] = labels[r][t + 1];
        }
    }
    Batch { input_ids: ids.concat(), targets, batch_size: rows, len, labels: Vec::new() }
}

/// The mean cross-entropy over the batch's targets, as transformers computes `loss`.
fn mean_loss(model: &CausalLm, batch: &Batch, device: &Device) -> burn::tensor::Tensor<1> {
    let targets = Targets::from_batch(batch, device).expect("targets");
    let ids =
        burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(batch.input_ids.clone(), [batch.batch_size, batch.len]), device);
    let hidden = model.hidden_states(ids, None, ForwardOptions::default());
    cross_entropy_sum(hidden, model.head(), &targets, 7, false, true).sum.div_scalar(targets.len() as f64)
}

/// The loss scale of the f16 parity tests; their gradients come back scaled by it.
const F16_LOSS_SCALE: f64 = 1024.0;

/// The mean loss and its gradients, as a training step computes them, with or without gradient
/// checkpointing, its matmuls in `compute` (in f16 the gradients are scaled by `F16_LOSS_SCALE`).
fn loss_and_gradients(
    model: &CausalLm,
    batch: &Batch,
    device: &Device,
    gradient_checkpointing: bool,
    compute: Precision,
) -> (f64, GradientsParams) {
    let loss_scale = match compute {
        Precision::F32 => 1.0,
        Precision::F16 => F16_LOSS_SCALE,
    };
    let inputs = StepInputs {
        batches: std::slice::from_ref(batch),
        lr: 0.0,
        max_grad_norm: 0.0,
        options: ForwardOptions { compute, ..ForwardOptions::default() },
        chunk: 7,
        gradient_checkpointing,
        seed: 0,
        loss_scale,
        skip_overflow: false,
        class_weights: None,
    };
    batch_gradients(model, batch, batch.target_count() as f64, 0, &inputs, device, None).expect("targets")
}

fn logits(model: &CausalLm, golden: &Golden, device: &Device) -> (Vec<f32>, Vec<usize>) {
    let hidden = model.hidden_states(golden.ids("input_ids", device), None, ForwardOptions::default());
    values(model.logits(hidden))
}

/// The golden value of a parameter, in our layout.
fn golden_param(golden: &Golden, name: &str, path: &str) -> (Vec<usize>, Vec<f64>) {
    let (shape, vals) = golden.get(name).clone();
    if shape.len() == 2 && (is_transposed(path) || path.contains(".lora.")) {
        let t = transpose(&HostTensor { shape, values: vals.iter().map(|v| *v as f32).collect() });
        (t.shape, t.values.iter().map(|v| *v as f64).collect())
    } else {
        (shape, vals)
    }
}

fn adamw() -> OptimizerConfig {
    OptimizerConfig { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-4, weight_decay: 0.01, max_grad_norm: 0.0, ..Default::default() }
}

#[test]
fn base_logits_match_transformers() {
    for name in MODELS.iter().copied().chain(["tiny-llama-bf16"]) {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let inputs = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
        for run in device_runs() {
            let dev = &run.dev;
            let model = folder.load(&dev.device).unwrap();
            let (logits, shape) = logits(&model, &inputs, &dev.device);
            assert_close(&format!("{name} logits on {}", run.label), &logits, &shape, golden.get("logits"), TOL);
        }
    }
}

/// Past its pretrained context (16 tokens in the fixture) Phi-3 rotates by LongRoPE's long
/// factors, chosen for the whole forward pass.
#[test]
fn phi3_past_its_pretrained_context_matches_transformers() {
    let folder = ModelFolder::open(&fixture("tiny-phi3")).unwrap();
    let golden = Golden::open(&fixture("tiny-phi3").join("golden.safetensors"));
    for run in device_runs() {
        let dev = &run.dev;
        let model = folder.load(&dev.device).unwrap();
        let hidden = model.hidden_states(golden.ids("long_input_ids", &dev.device), None, ForwardOptions::default());
        let (logits, shape) = values(model.logits(hidden));
        assert_close(&format!("tiny-phi3 logits of 18 tokens on {}", run.label), &logits, &shape, golden.get("long_logits"), TOL);
    }
}

#[test]
fn losses_with_and_without_mask_match_transformers() {
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        for run in device_runs() {
            let dev = &run.dev;
            let model = folder.load(&dev.device).unwrap();
            for (labels, expected) in [("input_ids", "loss_all"), ("labels", "loss_masked")] {
                let loss = mean_loss(&model, &golden_batch(&golden, labels), &dev.device);
                let (v, _) = values(loss);
                let want = golden.scalar(expected);
                assert!((v[0] as f64 - want).abs() < TOL, "{name} {expected} on {}: {} vs {want}", run.label, v[0]);
            }
        }
    }
}

#[test]
fn lora_logits_and_rslora_match_peft() {
    let _turn = one_run_at_a_time();
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let rslora_dir = tempfile::tempdir().unwrap();
        for file in [peft::CONFIG_FILE, peft::WEIGHTS_FILE] {
            std::fs::copy(fixture(name).join("adapter").join(file), rslora_dir.path().join(file)).unwrap();
        }
        let config_path = rslora_dir.path().join(peft::CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).unwrap().replace("\"use_rslora\": false", "\"use_rslora\": true");
        std::fs::write(&config_path, text).unwrap();

        for run in device_runs() {
            let dev = &run.dev;
            let (model, _) = peft::load_adapter(folder.load(&dev.device).unwrap(), &fixture(name).join("adapter")).unwrap();
            let (l, shape) = logits(&model, &golden, &dev.device);
            assert_close(&format!("{name} LoRA logits on {}", run.label), &l, &shape, golden.get("lora_logits"), TOL);

            let (model, settings) = peft::load_adapter(folder.load(&dev.device).unwrap(), rslora_dir.path()).unwrap();
            assert!(settings.rslora);
            let (l, shape) = logits(&model, &golden, &dev.device);
            assert_close(&format!("{name} rsLoRA logits on {}", run.label), &l, &shape, golden.get("rslora_logits"), TOL);
        }
    }
}

#[test]
fn lora_gradients_and_adamw_step_match_peft_and_torch() {
    let _turn = one_run_at_a_time();
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let batch = golden_batch(&golden, "labels");
        for run in device_runs() {
            let dev = &run.dev;
            for checkpointing in [false, true] {
                let device = dev.autodiff();
                let (model, _) = peft::load_adapter(folder.load(&device).unwrap(), &fixture(name).join("adapter")).unwrap();
                let (loss, grads) = loss_and_gradients(&model, &batch, &device, checkpointing, Precision::F32);
                assert!(
                    (loss - golden.scalar("lora_loss_masked")).abs() < TOL,
                    "{name} loss {loss} (gradient checkpointing: {checkpointing})"
                );

                let by_path = gradients_by_path(&model, &grads);
                let lora_grads: HashMap<&String, &HostTensor> = by_path.iter().filter(|(p, _)| p.contains(".lora.")).collect();
                assert_eq!(
                    lora_grads.len(),
                    golden.names().filter(|n| n.starts_with("lora_grad.")).count(),
                    "{name}: only adapter factors get gradients"
                );
                for (path, grad) in &lora_grads {
                    let peft_name = peft::peft_name(path).unwrap();
                    let want = golden_param(&golden, &format!("lora_grad.{peft_name}"), path);
                    assert_close(
                        &format!("{name} grad {peft_name} on {} (gradient checkpointing: {checkpointing})", run.label),
                        &grad.values,
                        &grad.shape,
                        &want,
                        TOL,
                    );
                }

                let mut optimizer = AdamW::new(&adamw(), true);
                let model = optimizer.step(model, grads, 1e-2, 1.0);
                for p in named_parameters(&model).into_iter().filter(|p| p.is_adapter_factor()) {
                    let peft_name = peft::peft_name(&p.path).unwrap();
                    let want = golden_param(&golden, &format!("lora_step.{peft_name}"), &p.path);
                    let host = p.to_host();
                    assert_close(
                        &format!("{name} AdamW step {peft_name} on {} (gradient checkpointing: {checkpointing})", run.label),
                        &host.values,
                        &host.shape,
                        &want,
                        TOL,
                    );
                }
            }
        }
    }
}

/// LoRA and partial fine-tuning let the frozen query/key/value and gate/up projections of each
/// layer share one matmul (`SharedBase`) and leave the ones that train apart; either way the
/// logits stay transformers' (Qwen2's projections have biases).
#[test]
fn frozen_projections_share_one_matmul_and_change_no_logit() {
    let _turn = one_run_at_a_time();
    for name in ["tiny-llama", "tiny-qwen2"] {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        // The golden logits are of tiny-llama's inputs (see `base_logits_match_transformers`).
        let inputs = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
        for run in device_runs() {
            let device = &run.dev.device;
            let (model, _) = peft::load_adapter(folder.load(device).unwrap(), &fixture(name).join("adapter")).unwrap();
            for (i, layer) in model.layers.iter().enumerate() {
                let (attn, mlp) = (&layer.self_attn, &layer.mlp);
                assert!(attn.qkv_base.is_some() && mlp.gate_up_base.is_some(), "{name} LoRA layer {i}: shared bases");
                let projections = [&attn.q_proj, &attn.k_proj, &attn.v_proj, &mlp.gate_proj, &mlp.up_proj];
                assert!(projections.iter().all(|p| p.as_ref().is_some_and(|p| p.shares_base)), "{name} LoRA layer {i}");
                assert!(!attn.o_proj.shares_base && !mlp.down_proj.shares_base, "{name} LoRA layer {i}: nothing to share with");
            }

            // Only on an autodiff device does a layer train (elsewhere every weight is frozen).
            let device = &run.dev.autodiff();
            let model = Method::TopLayers { layers: 1 }.apply(folder.load(device).unwrap()).unwrap();
            let last = model.num_layers() - 1;
            for (i, layer) in model.layers.iter().enumerate() {
                let shared = (layer.self_attn.qkv_base.is_some(), layer.mlp.gate_up_base.is_some());
                assert_eq!(shared, (i != last, i != last), "{name} top layer trains, layer {i}: only frozen layers share");
            }
            let (l, shape) = logits(&model, &inputs, device);
            assert_close(&format!("{name} logits, frozen layers sharing, on {}", run.label), &l, &shape, golden.get("logits"), TOL);
        }
    }
}

/// Frozen weights in f16 (and their matmuls, and the gradients flowing back through them): the
/// loss and the LoRA gradients stay within half precision of PEFT's f32 values, and the loss scale
/// leaves no trace in them.
#[test]
fn lora_with_f16_weights_stays_within_half_precision_of_peft() {
    let _turn = one_run_at_a_time();
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let batch = golden_batch(&golden, "labels");
        // Where the adapter computes in f16 (not SwiftShader; the engine refuses f16 there).
        for run in device_runs().filter(|run| run.dev.supports_f16) {
            let dev = &run.dev;
            for checkpointing in [false, true] {
                let device = dev.autodiff();
                let model = folder.load_in(&device, Precision::F16, BaseQuant::None).unwrap();
                let (model, _) = peft::load_adapter(model, &fixture(name).join("adapter")).unwrap();
                assert_eq!(model.layers[0].mlp.down_proj.weight.base().dtype(), DType::F16);
                assert_eq!(model.layers[0].mlp.down_proj.weight.adapter().unwrap().a.val().dtype(), DType::F32);
                let what = format!("{name} on {} in f16 (gradient checkpointing: {checkpointing})", run.label);
                let (loss, grads) = loss_and_gradients(&model, &batch, &device, checkpointing, Precision::F16);
                let want = golden.scalar("lora_loss_masked");
                assert!((loss - want).abs() < 1e-2, "{what}: loss {loss} against {want}");
                let by_path = gradients_by_path(&model, &grads);
                let mut compared = 0;
                for (path, grad) in by_path.iter().filter(|(p, _)| p.contains(".lora.")) {
                    let peft_name = peft::peft_name(path).unwrap();
                    let want = golden_param(&golden, &format!("lora_grad.{peft_name}"), path);
                    let unscaled: Vec<f32> = grad.values.iter().map(|g| (*g as f64 / F16_LOSS_SCALE) as f32).collect();
                    // f16 keeps 11 significant bits: 1 % of the tensor's largest gradient.
                    let largest = want.1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert_close(&format!("{what}: grad {peft_name}"), &unscaled, &grad.shape, &want, 1e-2 * largest);
                    compared += 1;
                }
                assert_eq!(compared, golden.names().filter(|n| n.starts_with("lora_grad.")).count(), "{what}");
            }
        }
    }
}

/// A step whose scaled gradients overflow f16 updates nothing when the run may skip it, and is an
/// error when it may not.
#[test]
fn an_overflowing_f16_step_is_skipped_and_leaves_the_model_as_it_was() {
    let _turn = one_run_at_a_time();
    let folder = ModelFolder::open(&fixture("tiny-llama")).unwrap();
    let golden = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
    let batch = golden_batch(&golden, "labels");
    let factors = |m: &CausalLm| -> Vec<Vec<f32>> {
        named_parameters(m).into_iter().filter(|p| p.is_adapter_factor()).map(|p| p.to_host().values).collect()
    };
    for dev in devices().into_iter().filter(|dev| dev.supports_f16) {
        let device = dev.autodiff();
        let model = folder.load_in(&device, Precision::F16, BaseQuant::None).unwrap();
        let (model, _) = peft::load_adapter(model, &fixture("tiny-llama").join("adapter")).unwrap();
        let before = factors(&model);
        let mut inputs = StepInputs {
            batches: std::slice::from_ref(&batch),
            lr: 1e-2,
            max_grad_norm: 1.0,
            options: ForwardOptions::default(),
            chunk: 7,
            gradient_checkpointing: false,
            seed: 0,
            loss_scale: 1e30,
            skip_overflow: true,
            class_weights: None,
        };
        let mut optimizer = AdamW::new(&adamw(), true);
        let outcome = optimizer_step(model, &mut optimizer, &inputs, &device, None).unwrap();
        assert!(outcome.overflowed, "on {}: grad norm {}", dev.choice, outcome.grad_norm);
        assert!((outcome.loss - golden.scalar("lora_loss_masked")).abs() < 1e-2, "the loss is reported unscaled: {}", outcome.loss);
        assert_eq!(factors(&outcome.model), before, "on {}: a skipped step changes nothing", dev.choice);

        inputs.skip_overflow = false;
        let err = optimizer_step(outcome.model, &mut optimizer, &inputs, &device, None).err().unwrap();
        assert!(!err.grad_norm.is_finite());

        inputs.loss_scale = 1024.0;
        let outcome = optimizer_step(*err.model, &mut optimizer, &inputs, &device, None).unwrap();
        assert!(!outcome.overflowed && outcome.grad_norm.is_finite());
        assert_ne!(factors(&outcome.model), before, "on {}: at a sane scale the step updates", dev.choice);
    }
}

#[test]
fn full_fine_tuning_gradients_and_adamw_step_match_torch() {
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let batch = golden_batch(&golden, "labels");
        for run in device_runs() {
            let dev = &run.dev;
            for checkpointing in [false, true] {
                let device = dev.autodiff();
                let model = Method::Full.apply(folder.load(&device).unwrap()).unwrap();
                let (_, grads) = loss_and_gradients(&model, &batch, &device, checkpointing, Precision::F32);
                let by_path = gradients_by_path(&model, &grads);
                assert_eq!(by_path.len(), golden.names().filter(|n| n.starts_with("full_grad.")).count());
                for (path, grad) in &by_path {
                    let want = golden_param(&golden, &format!("full_grad.{}", hf_name(path)), path);
                    let what = format!("{name} grad {path} on {} (gradient checkpointing: {checkpointing})", run.label);
                    assert_close(&what, &grad.values, &grad.shape, &want, TOL);
                }
                let mut optimizer = AdamW::new(&adamw(), true);
                let model = optimizer.step(model, grads, 1e-2, 1.0);
                for p in named_parameters(&model) {
                    let want = golden_param(&golden, &format!("full_step.{}", hf_name(&p.path)), &p.path);
                    let host = p.to_host();
                    assert_close(&format!("{name} AdamW step {} on {}", p.path, run.label), &host.values, &host.shape, &want, TOL);
                }
            }
        }
    }
}

/// Full fine-tuning with f16 matmuls over f32 master weights: the weights stay f32, every
/// gradient reaches them, and the loss and gradients stay within half precision of torch's f32.
#[test]
fn full_fine_tuning_with_f16_matmuls_stays_within_half_precision_of_torch() {
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let batch = golden_batch(&golden, "labels");
        // Where the adapter computes in f16 (not SwiftShader; the engine refuses f16 there).
        for run in device_runs().filter(|run| run.dev.supports_f16) {
            let dev = &run.dev;
            for checkpointing in [false, true] {
                let device = dev.autodiff();
                let method = Method::Full;
                let model = folder.load_in(&device, method.storage_precision(Precision::F16), BaseQuant::None).unwrap();
                let model = method.apply(model).unwrap();
                assert_eq!(model.layers[0].mlp.down_proj.weight.val().dtype(), DType::F32, "f32 masters");
                let what = format!("{name} on {} with f16 matmuls (gradient checkpointing: {checkpointing})", run.label);
                let (loss, grads) = loss_and_gradients(&model, &batch, &device, checkpointing, Precision::F16);
                let want = golden.scalar("loss_masked");
                assert!((loss - want).abs() < 1e-2, "{what}: loss {loss} against {want}");
                let by_path = gradients_by_path(&model, &grads);
                assert_eq!(by_path.len(), golden.names().filter(|n| n.starts_with("full_grad.")).count(), "{what}");
                for (path, grad) in &by_path {
                    let want = golden_param(&golden, &format!("full_grad.{}", hf_name(path)), path);
                    let unscaled: Vec<f32> = grad.values.iter().map(|g| (*g as f64 / F16_LOSS_SCALE) as f32).collect();
                    let largest = want.1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert_close(&format!("{what}: grad {path}"), &unscaled, &grad.shape, &want, 1e-2 * largest);
                }
            }
        }
    }
}

#[test]
fn merged_export_matches_peft_merge_and_unload() {
    let _turn = one_run_at_a_time();
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        for dev in devices() {
            let (model, _) = peft::load_adapter(folder.load(&dev.device).unwrap(), &fixture(name).join("adapter")).unwrap();
            let out = tempfile::tempdir().unwrap();
            let merged_dir = out.path().join("merged");
            wgtune::export::export_merged(&model, &folder, &merged_dir, None, |_, _| {}).unwrap();

            let merged = ModelFolder::open(&merged_dir).unwrap();
            let mut source_names = folder.weights.names();
            let mut merged_names = merged.weights.names();
            source_names.sort();
            merged_names.sort();
            assert_eq!(source_names, merged_names, "{name}: the same tensor names");
            for n in golden.names().filter_map(|n| n.strip_prefix("merged.")) {
                let shape = merged.weights.shape(n).unwrap();
                let read = merged.weights.read(n, &shape).unwrap();
                assert_close(
                    &format!("{name} merged {n} on {}", dev.choice),
                    &read.values,
                    &read.shape,
                    golden.get(&format!("merged.{n}")),
                    TOL,
                );
            }
            let reloaded = merged.load(&dev.device).unwrap();
            let (l, shape) = logits(&reloaded, &golden, &dev.device);
            assert_close(&format!("{name} merged logits on {}", dev.choice), &l, &shape, golden.get("merged_logits"), TOL);
        }
    }
}

#[test]
fn greedy_generation_with_kv_cache_matches_transformers() {
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let prompt: Vec<u32> = golden.rows("greedy_prompt")[0].iter().map(|&i| i as u32).collect();
        let want: Vec<u32> = golden.rows("greedy_ids")[0].iter().map(|&i| i as u32).collect();
        for run in device_runs() {
            let dev = &run.dev;
            let model = folder.load(&dev.device).unwrap();
            let settings = GenerationSettings { max_new_tokens: want.len(), ..Default::default() };
            let got = generate_ids(&model, &prompt, &settings, &[], |_| true);
            assert_eq!(got, want, "{name} greedy continuation on {}", run.label);
        }
    }
}

/// Prompts of different lengths decoded together (left-padded, one KV cache) continue exactly as
/// each does alone, and the golden prompt as transformers' greedy decoding does.
#[test]
fn batched_greedy_decoding_matches_one_prompt_at_a_time() {
    for name in MODELS {
        let folder = ModelFolder::open(&fixture(name)).unwrap();
        let golden = Golden::open(&fixture(name).join("golden.safetensors"));
        let ids: Vec<Vec<u32>> = golden.rows("input_ids").iter().map(|r| r.iter().map(|&t| t as u32).collect()).collect();
        let prompts = vec![ids[0][..5].to_vec(), ids[1][..3].to_vec(), ids[1].clone(), ids[0][..8].to_vec()];
        let want: Vec<f32> = golden.get("greedy_ids").1.iter().map(|&t| t as f32).collect();
        for dev in devices() {
            let model = folder.load(&dev.device).unwrap();
            let batched = wgtune::generate::generate_batch(&model, &prompts, 8, &[]);
            for (prompt, out) in prompts.iter().zip(&batched) {
                let settings = GenerationSettings { max_new_tokens: 8, ..Default::default() };
                let alone = generate_ids(&model, prompt, &settings, &[], |_| true);
                assert_eq!(out, &alone, "{name} on {}: prompt of {} tokens", dev.choice, prompt.len());
            }
            let first: Vec<f32> = batched[0].iter().map(|&t| t as f32).collect();
            assert_close(&format!("{name} batched greedy ids on {}", dev.choice), &first, &[1, 8], golden.get("greedy_ids"), 0.0);
            assert_eq!(first.len(), want.len());
        }
    }
}
