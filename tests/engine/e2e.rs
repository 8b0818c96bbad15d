//! Whole runs on the tiny models: fine-tune, export, reload, resume.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;

use wgtune::data::DataConfig;
use wgtune::device::DeviceChoice;
use wgtune::method::{LoraSettings, Method};
use wgtune::model::{ForwardOptions, ModelFolder, Precision};
use wgtune::session::LoadedModel;
use wgtune::train::{EventSink, OptimizerConfig, RunStart, ScheduleKind, TrainConfig, TrainEvent, read_metrics, train, train_with_model};

use crate::common::{Golden, assert_close, fixture, one_run_at_a_time, values};

pub fn tiny_config(run_dir: &Path, device: DeviceChoice) -> TrainConfig {
    TrainConfig {
        model: fixture("tiny-llama"),
        output_dir: run_dir.to_path_buf(),
        device,
        batch_size: 4,
        max_steps: Some(40),
        save_every: 0,
        data: DataConfig { train_file: fixture("data/chat.jsonl"), max_seq_len: 128, ..Default::default() },
        method: Method::Lora(LoraSettings { rank: 8, alpha: 16.0, dropout: 0.0, ..Default::default() }),
        optim: OptimizerConfig { lr: 1e-2, warmup_steps: 2, schedule: ScheduleKind::Constant, ..Default::default() },
        ..Default::default()
    }
}

fn first_and_last_loss(run_dir: &Path) -> (f64, f64) {
    let (steps, _) = read_metrics(run_dir).unwrap();
    let first = steps.first().unwrap().loss;
    let last = steps.iter().rev().take(3).map(|s| s.loss).sum::<f64>() / 3.0;
    (first, last)
}

/// Fine-tunes until the loss halves, exports merged weights and the adapter, reloads both and
/// gets the in-memory model's logits back.
fn lora_round_trip(device: DeviceChoice) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let config = tiny_config(&run, device);
    let (_tx, rx) = channel();
    let (summary, trained) = train_with_model(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
    assert_eq!(summary.steps, 40);
    let (first, last) = first_and_last_loss(&run);
    assert!(last <= first / 2.0, "{device}: training loss went from {first} to {last}, not below half");

    let golden = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
    let in_memory = {
        let device = trained.device();
        let hidden = trained.hidden_states(golden.ids("input_ids", &device), None, ForwardOptions::default());
        values(trained.logits(hidden))
    };
    let reference = (in_memory.1.clone(), in_memory.0.iter().map(|v| *v as f64).collect::<Vec<_>>());

    // The adapter the run wrote, through PEFT's format.
    let with_adapter = LoadedModel::load(&fixture("tiny-llama"), device).unwrap().with_trained(&summary.final_checkpoint).unwrap();
    let merged_dir = dir.path().join("merged");
    with_adapter.export_merged(&merged_dir, None, false, |_, _| {}).unwrap();
    let adapter_dir = dir.path().join("adapter");
    with_adapter.export_adapter(&adapter_dir, false).unwrap();

    for (what, model) in [
        ("adapter from the run", with_adapter),
        ("exported adapter", LoadedModel::load(&fixture("tiny-llama"), device).unwrap().with_trained(&adapter_dir).unwrap()),
        ("merged export", LoadedModel::load(&merged_dir, device).unwrap()),
    ] {
        let d = model.device.device.clone();
        let hidden = model.model.hidden_states(golden.ids("input_ids", &d), None, ForwardOptions::default());
        let (logits, shape) = values(model.model.logits(hidden));
        assert_close(&format!("{what} on {device}"), &logits, &shape, &reference, 1e-4);
    }
    let merged = ModelFolder::open(&merged_dir).unwrap();
    assert_eq!(merged.dtype(), wgtune::model::WeightDtype::F32);
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"] {
        assert!(merged_dir.join(file).exists(), "{file} copied");
    }
}

#[test]
fn lora_run_halves_the_loss_and_exports_reload_identically_on_cpu() {
    let _turn = one_run_at_a_time();
    lora_round_trip(DeviceChoice::Cpu);
}

#[test]
fn lora_run_halves_the_loss_and_exports_reload_identically_on_wgpu() {
    let _turn = one_run_at_a_time();
    if crate::common::devices().iter().any(|d| d.choice == DeviceChoice::Wgpu) {
        lora_round_trip(DeviceChoice::Wgpu);
    }
}

/// LoRA over f16 frozen weights trains like f32, and the merged export of the model as it is in
/// memory is the source's f32 weights plus the adapter's update, not the f16 copy plus it.
#[test]
fn lora_over_f16_weights_halves_the_loss_and_exports_the_f32_base_plus_the_update() {
    let _turn = one_run_at_a_time();
    // Where the adapter computes in f16 (not SwiftShader; the engine refuses f16 there).
    for device in crate::common::devices().iter().filter(|d| d.supports_f16).map(|d| d.choice) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_config(&dir.path().join("run"), device);
        config.precision = Precision::F16;
        let (_tx, rx) = channel();
        let (summary, trained) = train_with_model(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
        let (first, last) = first_and_last_loss(&config.output_dir);
        assert!(last <= first / 2.0, "{device}: training loss went from {first} to {last}, not below half");

        let source = ModelFolder::open(&config.model).unwrap();
        let in_memory = dir.path().join("in-memory");
        wgtune::export::export_merged(&trained, &source, &in_memory, None, |_, _| {}).unwrap();
        let reloaded = dir.path().join("reloaded");
        let f32_model = LoadedModel::load(&config.model, device).unwrap().with_trained(&summary.final_checkpoint).unwrap();
        f32_model.export_merged(&reloaded, None, false, |_, _| {}).unwrap();
        let (a, b) = (ModelFolder::open(&in_memory).unwrap(), ModelFolder::open(&reloaded).unwrap());
        let name = "model.layers.0.self_attn.q_proj.weight";
        let shape = source.weights.shape(name).unwrap();
        let (x, y) = (a.weights.read(name, &shape).unwrap(), b.weights.read(name, &shape).unwrap());
        let worst = x.values.iter().zip(&y.values).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{device}: {name} differs by {worst} between the in-memory and the reloaded export");

        // The f16 model's logits (its head stays f16) against the same weights in f32.
        let golden = Golden::open(&fixture("tiny-llama").join("golden.safetensors"));
        let logits = |model: &wgtune::model::CausalLm| {
            let d = model.device();
            values(model.logits(model.hidden_states(golden.ids("input_ids", &d), None, ForwardOptions::default())))
        };
        let (half, shape) = logits(&trained);
        let (full, _) = logits(&f32_model.model);
        assert_close(&format!("{device}: f16 logits"), &half, &shape, &(shape.clone(), full.iter().map(|v| *v as f64).collect()), 5e-2);
    }
}

/// LoRA over a base packed in int8 and in int4 blocks follows the run over the f32 base: the same
/// data and seed give the same loss curve within what the quantization moves it (stated per
/// format below), the layers stay packed throughout, and the merged export is the source's f32
/// weights plus the adapter's update.
#[test]
fn lora_over_a_packed_base_follows_the_f32_run() {
    use wgtune::model::BaseQuant;
    let _turn = one_run_at_a_time();
    for device in crate::common::devices().iter().map(|d| d.choice) {
        let run = |base_quant: BaseQuant| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = tiny_config(&dir.path().join("run"), device);
            config.base_quant = base_quant;
            config.max_steps = Some(20);
            let (_tx, rx) = channel();
            let (summary, trained) = train_with_model(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
            let (steps, _) = read_metrics(&config.output_dir).unwrap();
            let losses: Vec<f64> = steps.iter().map(|s| s.loss).collect();
            (losses, summary, trained, dir)
        };
        let (f32_losses, ..) = run(BaseQuant::None);
        // Relative to the f32 run's loss: the first step's difference (the quantization's own
        // error: nothing has trained yet), then the largest over the curve (20 steps at a high
        // learning rate, where small differences grow). Measured: int8 0.02 % and at most 2.2 %,
        // int4 0.6 % and at most 5.4 % (BENCHMARKS.md).
        for (base_quant, first_step, curve) in [(BaseQuant::Int8, 1e-3, 0.04), (BaseQuant::Int4, 1e-2, 0.08)] {
            let (losses, summary, trained, dir) = run(base_quant);
            let what = format!("{device}, {base_quant} base");
            let worst = f32_losses.iter().zip(&losses).map(|(a, b)| (a - b).abs() / a).fold(0.0, f64::max);
            eprintln!("{what}: the loss curve is within {:.2} % of the f32 base's", worst * 100.0);
            let attention = &trained.layers[1].self_attn;
            let layer = attention.k_proj.as_ref().expect("tiny-llama has a k_proj");
            // q, k and v share one packed base; o_proj and down_proj, with nothing to share, keep their own.
            let shared_packed = attention.qkv_base.as_ref().is_some_and(|base| base.packed.is_some()) && layer.shares_base;
            assert!(shared_packed && trained.layers[0].mlp.down_proj.packed.is_some(), "{what}: the layers stay packed");
            assert!(layer.weight.adapter().is_some(), "{what}: the adapter sits on the packed layer");
            let on_gpu = wgtune::kernels::is_wgpu(&trained.device());
            assert_eq!(trained.embed_tokens.packed.is_some(), on_gpu, "{what}: the tied embedding is the packed head on a GPU only");
            assert_eq!(losses.len(), f32_losses.len());
            let (a, b) = (f32_losses[0], losses[0]);
            assert!((a - b).abs() <= first_step * a, "{what}: the first loss {b} against {a} over the f32 base");
            for (step, (a, b)) in f32_losses.iter().zip(&losses).enumerate() {
                assert!((a - b).abs() <= curve * a, "{what}, step {step}: loss {b} against {a} over the f32 base");
            }
            assert!(losses.last().unwrap() < &(losses[0] * 0.8), "{what}: the loss went from {} to {:?}", losses[0], losses.last());

            let source = ModelFolder::open(&fixture("tiny-llama")).unwrap();
            let merged = dir.path().join("merged");
            wgtune::export::export_merged(&trained, &source, &merged, None, |_, _| {}).unwrap();
            let reloaded = LoadedModel::load(&fixture("tiny-llama"), device).unwrap().with_trained(&summary.final_checkpoint).unwrap();
            let reference = dir.path().join("reference");
            reloaded.export_merged(&reference, None, false, |_, _| {}).unwrap();
            let (a, b) = (ModelFolder::open(&merged).unwrap(), ModelFolder::open(&reference).unwrap());
            let name = "model.layers.1.self_attn.k_proj.weight";
            let shape = source.weights.shape(name).unwrap();
            assert_eq!(a.weights.read(name, &shape).unwrap().values, b.weights.read(name, &shape).unwrap().values, "{what}: {name}");
        }
    }
}

#[test]
fn bf16_model_exports_bf16_merged_weights() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(&dir.path().join("run"), DeviceChoice::Cpu);
    config.model = fixture("tiny-llama-bf16");
    config.max_steps = Some(3);
    let (_tx, rx) = channel();
    let summary = train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
    let model = LoadedModel::load(&config.model, DeviceChoice::Cpu).unwrap().with_trained(&summary.run_dir).unwrap();
    let out = dir.path().join("merged");
    model.export_merged(&out, None, false, |_, _| {}).unwrap();
    let merged = ModelFolder::open(&out).unwrap();
    assert_eq!(merged.dtype(), wgtune::model::WeightDtype::Bf16);
    // Untouched tensors are copied byte for byte.
    let source = ModelFolder::open(&config.model).unwrap();
    let norm = "model.norm.weight";
    let raw = |folder: &ModelFolder| folder.weights.safetensors().unwrap().raw(norm).unwrap().to_vec();
    assert_eq!(raw(&merged), raw(&source));
    let f32_out = dir.path().join("merged-f32");
    model.export_merged(&f32_out, Some(wgtune::model::WeightDtype::F32), false, |_, _| {}).unwrap();
    let text = std::fs::read_to_string(f32_out.join("config.json")).unwrap();
    assert!(text.contains("\"float32\""), "{text}");
}

#[test]
fn full_and_partial_fine_tuning_lower_the_loss() {
    let _turn = one_run_at_a_time();
    for method in [Method::Full, Method::TopLayers { layers: 1 }, Method::Modules { names: vec!["mlp".into(), "norm".into()] }] {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let mut config = tiny_config(&run, DeviceChoice::Cpu);
        config.method = method.clone();
        config.optim.lr = 3e-3;
        config.max_steps = Some(20);
        let (_tx, rx) = channel();
        let summary = train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
        let (first, last) = first_and_last_loss(&run);
        assert!(last < first * 0.8, "{method:?}: loss went from {first} to {last}");
        // The trained tensors export into a full model folder.
        let model = LoadedModel::load(&config.model, DeviceChoice::Cpu).unwrap().with_trained(&summary.final_checkpoint).unwrap();
        model.export_merged(&dir.path().join("merged"), None, false, |_, _| {}).unwrap();
        assert!(ModelFolder::open(&dir.path().join("merged")).is_ok());
    }
}

/// Full fine-tuning with f16 matmuls: the f32 master weights train as in f32 (the same loss curve
/// within half precision) and stay f32.
#[test]
fn full_fine_tuning_with_f16_matmuls_follows_the_f32_run() {
    let _turn = one_run_at_a_time();
    // Where the adapter computes in f16 (not SwiftShader; the engine refuses f16 there).
    for device in crate::common::devices().iter().filter(|d| d.supports_f16).map(|d| d.choice) {
        let run = |precision: Precision| {
            let dir = tempfile::tempdir().unwrap();
            let mut config = tiny_config(&dir.path().join("run"), device);
            config.method = Method::Full;
            config.optim.lr = 3e-3;
            config.max_steps = Some(20);
            config.precision = precision;
            let (_tx, rx) = channel();
            let (_, trained) = train_with_model(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
            let (steps, _) = read_metrics(&config.output_dir).unwrap();
            let losses: Vec<f64> = steps.iter().map(|s| s.loss).collect();
            (losses, first_and_last_loss(&config.output_dir), trained)
        };
        let (f32_losses, _, _) = run(Precision::F32);
        let (f16_losses, (first, last), trained) = run(Precision::F16);
        assert_eq!(trained.layers[0].mlp.down_proj.weight.val().dtype(), burn::tensor::DType::F32, "{device}: f32 masters");
        assert!(last < first * 0.8, "{device}: loss went from {first} to {last}");
        for (step, (a, b)) in f32_losses.iter().zip(&f16_losses).enumerate() {
            assert!((a - b).abs() < 2e-2 * a.max(1.0), "{device} step {step}: f16 loss {b} against f32 {a}");
        }
    }
}

#[test]
fn every_dataset_shape_trains() {
    let _turn = one_run_at_a_time();
    for file in ["data/alpaca.json", "data/prompt_completion.csv", "data/text.jsonl"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = tiny_config(&dir.path().join("run"), DeviceChoice::Cpu);
        config.data.train_file = fixture(file);
        config.max_steps = Some(2);
        let (_tx, rx) = channel();
        let summary = train(&config, RunStart::New, &EventSink::none(), &rx).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(summary.steps, 2, "{file}");
    }
}

#[test]
fn a_resumed_run_continues_the_same_loss_curve() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let mut config = tiny_config(&whole, DeviceChoice::Cpu);
    config.max_steps = Some(8);
    config.save_every = 4;
    config.keep_checkpoints = 5;
    config.grad_accumulation = 2;
    config.batch_size = 3;
    config.data.validation_fraction = 0.25;
    config.eval_every = 4;
    config.method = Method::Lora(LoraSettings { rank: 4, alpha: 8.0, dropout: 0.1, ..Default::default() });
    let (_tx, rx) = channel();
    train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
    let (_, evals) = read_metrics(&whole).unwrap();
    assert_eq!(evals.iter().map(|e| e.step).collect::<Vec<_>>(), [0, 4, 8], "the untrained model first");
    assert!(evals[2].loss < evals[0].loss, "validation loss falls: {evals:?}");

    // A run that "crashed" after its step-4 checkpoint.
    let crashed = dir.path().join("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    copy_dir(&whole.join("checkpoint-000004"), &crashed.join("checkpoint-000004"));
    std::fs::copy(whole.join("run.toml"), crashed.join("run.toml")).unwrap();
    let metrics = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    std::fs::write(crashed.join("metrics.jsonl"), metrics).unwrap();

    let resumed = wgtune::train::resume_config(&crashed).unwrap();
    assert_eq!(resumed.output_dir, crashed);
    let (events_tx, events_rx) = channel();
    let summary = train(&resumed, RunStart::Resume, &EventSink::new(events_tx), &rx).unwrap();
    assert_eq!(summary.steps, 8);
    let started = events_rx.try_iter().find_map(|e| match e {
        TrainEvent::Started(info) => Some(info),
        _ => None,
    });
    assert_eq!(started.unwrap().start_step, 4);

    let (a, _) = read_metrics(&whole).unwrap();
    let (b, _) = read_metrics(&crashed).unwrap();
    assert_eq!(b.iter().map(|s| s.step).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>(), "no duplicated steps");
    let (_, resumed_evals) = read_metrics(&crashed).unwrap();
    assert_eq!(resumed_evals.iter().map(|e| e.step).collect::<Vec<_>>(), [0, 4, 8], "no duplicated evaluations");
    for (x, y) in a.iter().zip(&b) {
        assert!((x.loss - y.loss).abs() < 1e-4, "step {}: {} vs {}", x.step, x.loss, y.loss);
        assert!((x.lr - y.lr).abs() < 1e-12);
    }
}

/// Also: gradient checkpointing recomputes the same values, so it changes nothing in the curve.
#[test]
fn same_seed_same_curve() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let curves: Vec<Vec<f64>> = [("a", false), ("b", true)]
        .iter()
        .map(|(name, gradient_checkpointing)| {
            let mut config = tiny_config(&dir.path().join(name), DeviceChoice::Cpu);
            config.max_steps = Some(5);
            config.gradient_checkpointing = *gradient_checkpointing;
            config.method = Method::Lora(LoraSettings { rank: 4, alpha: 8.0, dropout: 0.1, ..Default::default() });
            let (_tx, rx) = channel();
            train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
            read_metrics(&config.output_dir).unwrap().0.iter().map(|s| s.loss).collect()
        })
        .collect();
    assert_eq!(curves[0].len(), 5);
    for (a, b) in curves[0].iter().zip(&curves[1]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

/// A seed means the same run on every device: LoRA's initial factors bit for bit (drawn on the
/// host from the seed), and the first three steps' losses and gradient norms within float
/// rounding, with dropout on (its masks a hash of the seed on every backend). The CPU against
/// the wgpu adapter at hand (lavapipe, or SwiftShader in CI's second pass).
#[test]
fn a_seed_gives_the_same_run_on_every_device() {
    use wgtune::device::ComputeDevice;
    use wgtune::params::named_parameters;
    let _turn = one_run_at_a_time();
    let lora = Method::Lora(LoraSettings { rank: 4, alpha: 8.0, dropout: 0.1, ..Default::default() });
    let initial: Vec<Vec<Vec<f32>>> = [DeviceChoice::Cpu, DeviceChoice::Wgpu]
        .iter()
        .map(|&choice| {
            let device = ComputeDevice::open(choice).unwrap().autodiff();
            wgtune::seed::seed_initial_weights(7);
            let model = lora.apply(ModelFolder::open(&fixture("tiny-llama")).unwrap().load(&device).unwrap()).unwrap();
            named_parameters(&model).into_iter().filter(|p| p.is_adapter_factor()).map(|p| p.to_host().values).collect()
        })
        .collect();
    assert!(initial[0].len() >= 14 && initial[0].iter().any(|f| f.iter().any(|&v| v != 0.0)), "{} factors", initial[0].len());
    assert!(initial[0] == initial[1], "the initial factors differ between the CPU and wgpu");

    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<Vec<(f64, f64)>> = [DeviceChoice::Cpu, DeviceChoice::Wgpu]
        .iter()
        .map(|&device| {
            let mut config = tiny_config(&dir.path().join(device.to_string()), device);
            config.max_steps = Some(3);
            config.seed = 7;
            config.method = lora.clone();
            let (_tx, rx) = channel();
            train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
            read_metrics(&config.output_dir).unwrap().0.iter().map(|s| (s.loss, s.grad_norm)).collect()
        })
        .collect();
    assert_eq!(runs[0].len(), 3);
    for (step, ((cpu_loss, cpu_norm), (wgpu_loss, wgpu_norm))) in runs[0].iter().zip(&runs[1]).enumerate() {
        assert!((cpu_loss - wgpu_loss).abs() < 1e-4 * cpu_loss, "step {}: loss {cpu_loss} on the CPU, {wgpu_loss} on wgpu", step + 1);
        assert!(
            (cpu_norm - wgpu_norm).abs() < 1e-3 * cpu_norm,
            "step {}: gradient norm {cpu_norm} on the CPU, {wgpu_norm} on wgpu",
            step + 1
        );
    }
}

fn copy_dir(from: &Path, to: &PathBuf) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
