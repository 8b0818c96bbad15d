//! Sequence classification against transformers' `LlamaForSequenceClassification` and PEFT's
//! `SEQ_CLS` task (`tests/fixtures/make_golden.py`, `make_classifier`): pooled logits of a
//! right-padded batch, the plain and class-weighted loss, LoRA and head gradients, the adapter
//! PEFT writes loaded as is, and our merged and adapter exports reloaded.

use std::collections::HashMap;
use std::sync::mpsc::channel;

use burn::tensor::Device;
use wgtune::classify::{LabelSet, classify_batch};
use wgtune::data::DataConfig;
use wgtune::data::{Batch, IGNORE, LabelTarget, pooled_position};
use wgtune::device::DeviceChoice;
use wgtune::method::{LoraSettings, Method};
use wgtune::model::{CausalLm, ForwardOptions, HostTensor, ModelFolder, transpose};
use wgtune::params::{gradients_by_path, set_parameters};
use wgtune::peft;
use wgtune::session::LoadedModel;
use wgtune::train::{
    ClassWeights, EventSink, OptimizerConfig, RunStart, ScheduleKind, StepInputs, Task, TrainConfig, batch_gradients,
    classification_loss_sum, read_metrics, train,
};

use crate::common::{Golden, assert_close, devices, fixture, one_run_at_a_time, values};

const TOL: f64 = 1e-4;
const PAD: u32 = 0;

fn golden() -> Golden {
    Golden::open(&fixture("tiny-llama/classifier/golden.safetensors"))
}

fn labels() -> LabelSet {
    LabelSet { names: vec!["negative".into(), "neutral".into(), "positive".into()] }
}

/// The golden rows (right-padded with id 0) as the trainer batches them: each labelled at its
/// last non-padding position.
fn golden_batch(golden: &Golden) -> Batch {
    let rows = golden.rows("input_ids");
    let targets: Vec<u32> = golden.get("labels").1.iter().map(|v| *v as u32).collect();
    let len = rows[0].len();
    let labels = rows
        .iter()
        .zip(&targets)
        .enumerate()
        .map(|(r, (row, &label))| LabelTarget { position: r * len + pooled_position(row, PAD as i64), label })
        .collect();
    Batch { input_ids: rows.concat(), targets: vec![IGNORE; rows.len() * len], batch_size: rows.len(), len, labels }
}

/// The tiny model as a classifier with transformers' initial head.
fn classifier(device: &Device) -> CausalLm {
    let golden = golden();
    let model = ModelFolder::open(&fixture("tiny-llama")).unwrap().load(device).unwrap().into_classifier(labels(), PAD);
    let (shape, score) = golden.get("score");
    let score = transpose(&HostTensor { shape: shape.clone(), values: score.iter().map(|v| *v as f32).collect() });
    set_parameters(model, &HashMap::from([("score.weight".to_string(), score)])).0
}

#[test]
fn classifier_logits_and_losses_match_transformers() {
    let golden = golden();
    let batch = golden_batch(&golden);
    // Right padding changes nothing: transformers' padded logits are those of each row alone.
    let (shape, padded) = golden.get("logits");
    let padded: Vec<f32> = padded.iter().map(|v| *v as f32).collect();
    assert_close("transformers' padded against unpadded logits", &padded, shape, golden.get("logits_unpadded"), 1e-5);
    let weights = [0.5f32, 1.0, 2.0];
    for dev in devices() {
        let model = classifier(&dev.device);
        let logits = classify_batch(&model, &batch, PAD, &dev.device, ForwardOptions::default());
        let (v, shape) = values(logits.clone());
        assert_close(&format!("classifier logits on {}", dev.choice), &v, &shape, golden.get("logits"), TOL);

        let sum = classification_loss_sum(logits.clone(), &batch.labels, None);
        let loss = values(sum).0[0] as f64 / batch.labels.len() as f64;
        assert!((loss - golden.scalar("loss")).abs() < TOL, "loss on {}: {loss} vs {}", dev.choice, golden.scalar("loss"));
        let weighted =
            values(classification_loss_sum(logits, &batch.labels, Some(&weights))).0[0] as f64 / batch.loss_weight(Some(&weights));
        let want = golden.scalar("loss_weighted");
        assert!((weighted - want).abs() < TOL, "weighted loss on {}: {weighted} vs {want}", dev.choice);
    }
}

/// Left padding: with each row's padding hidden from attention and its positions counted from its
/// first token, the class logits are transformers' (given the attention mask and those
/// positions), and the rule reads the last column.
#[test]
fn left_padded_rows_give_transformers_logits() {
    let golden = golden();
    let rows = golden.rows("input_ids_left");
    let padding: Vec<usize> = rows.iter().map(|r| r.iter().take_while(|&&id| id == PAD as i64).count()).collect();
    assert_eq!(padding, [0, 4, 2]);
    let len = rows[0].len();
    for dev in devices() {
        let model = classifier(&dev.device);
        let ids = golden.ids("input_ids_left", &dev.device);
        let hidden = model.hidden_states_padded(ids, &padding, None, ForwardOptions::default());
        let positions: Vec<i64> = rows.iter().enumerate().map(|(r, row)| (r * len + pooled_position(row, PAD as i64)) as i64).collect();
        let positions = burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(positions, [rows.len()]), &dev.device);
        let (v, shape) = values(model.class_logits(hidden, positions));
        assert_close(&format!("left-padded classifier logits on {}", dev.choice), &v, &shape, golden.get("logits_left"), TOL);
    }
}

#[test]
fn lora_and_head_gradients_match_peft_seq_cls() {
    let _turn = one_run_at_a_time();
    let golden = golden();
    let batch = golden_batch(&golden);
    for dev in devices() {
        let device = dev.autodiff();
        let (model, _) = peft::load_adapter(classifier(&device), &fixture("tiny-llama/classifier/adapter")).unwrap();
        let (v, shape) = values(classify_batch(&model, &batch, PAD, &device, ForwardOptions::default()));
        assert_close(&format!("LoRA classifier logits on {}", dev.choice), &v, &shape, golden.get("lora_logits"), TOL);

        let inputs = StepInputs {
            batches: std::slice::from_ref(&batch),
            lr: 0.0,
            max_grad_norm: 0.0,
            options: ForwardOptions::default(),
            chunk: 7,
            gradient_checkpointing: false,
            seed: 0,
            loss_scale: 1.0,
            skip_overflow: false,
            class_weights: None,
        };
        let (loss, grads) = batch_gradients(&model, &batch, batch.loss_weight(None), 0, &inputs, &device, None).unwrap();
        assert!((loss - golden.scalar("lora_loss")).abs() < TOL, "LoRA classifier loss {loss}");
        let by_path = gradients_by_path(&model, &grads);
        let expected = golden.names().filter(|n| n.starts_with("lora_grad.")).count();
        assert_eq!(by_path.len(), expected, "only the adapters and the head get gradients: {:?}", by_path.keys());
        assert!(by_path.contains_key("score.weight"), "the head trains");
        for (path, grad) in &by_path {
            let name = peft::peft_name(path).unwrap();
            let (shape, vals) = golden.get(&format!("lora_grad.{name}")).clone();
            let want = transpose(&HostTensor { shape, values: vals.iter().map(|v| *v as f32).collect() });
            let want = (want.shape, want.values.iter().map(|v| *v as f64).collect());
            assert_close(&format!("grad {name} on {}", dev.choice), &grad.values, &grad.shape, &want, TOL);
        }
    }
}

/// The adapter PEFT wrote (no labels.json: transformers' LABEL_0… names), loaded as trained
/// weights; then our merged export reloaded as a Hugging Face classifier, and our adapter export.
#[test]
fn peft_seq_cls_adapters_and_our_exports_load_as_the_same_classifier() {
    let golden = golden();
    let batch = golden_batch(&golden);
    let out = tempfile::tempdir().unwrap();
    let tuned = LoadedModel::load(&fixture("tiny-llama"), wgtune::device::DeviceChoice::Cpu)
        .unwrap()
        .with_trained(&fixture("tiny-llama/classifier/adapter"))
        .unwrap();
    assert_eq!(tuned.model.config.labels.as_ref().unwrap().names, ["LABEL_0", "LABEL_1", "LABEL_2"]);
    let device = tuned.device.device.clone();
    let check = |model: &CausalLm, what: &str| {
        let (v, shape) = values(classify_batch(model, &batch, PAD, &device, ForwardOptions::default()));
        assert_close(what, &v, &shape, golden.get("lora_logits"), TOL);
    };
    check(&tuned.model, "PEFT adapter");

    let merged = out.path().join("merged");
    tuned.export_merged(&merged, None, false, |_, _| {}).unwrap();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(merged.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["id2label"]["2"], "LABEL_2");
    assert_eq!(config["label2id"]["LABEL_1"], 1);
    assert_eq!(config["pad_token_id"], 0);
    let reloaded = LoadedModel::load(&merged, wgtune::device::DeviceChoice::Cpu).unwrap();
    assert_eq!(reloaded.model.num_labels(), Some(3));
    check(&reloaded.model, "merged export reloaded");

    let adapter = out.path().join("adapter");
    tuned.export_adapter(&adapter, false).unwrap();
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(adapter.join(peft::CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!((written["task_type"].as_str(), written["modules_to_save"][0].as_str()), (Some("SEQ_CLS"), Some("score")));
    assert!(adapter.join(wgtune::classify::LABELS_FILE).exists());
    let again = LoadedModel::load(&fixture("tiny-llama"), wgtune::device::DeviceChoice::Cpu).unwrap().with_trained(&adapter).unwrap();
    check(&again.model, "our adapter export reloaded");

    let refused = tuned.export_gguf(&out.path().join("m.gguf"), wgtune::gguf::GgmlType::F16, false, |_, _| {}).unwrap_err();
    assert!(refused.to_string().contains("this is a classifier"), "{refused}");
}

/// A whole classification run on the bundled demo model and reviews: the validation accuracy
/// climbs well past the base model's zero-shot accuracy, every evaluation's scores land in
/// `metrics.jsonl`, and a run resumed from its middle checkpoint repeats the loss curve.
#[test]
fn a_classifier_learns_the_demo_reviews_and_resumes_exactly() {
    let _turn = one_run_at_a_time();
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let config = TrainConfig {
        model: assets.join("demo-model"),
        output_dir: whole.clone(),
        device: DeviceChoice::Cpu,
        task: Task::Classification,
        class_weights: ClassWeights::Balanced,
        batch_size: 8,
        max_steps: Some(STEPS),
        eval_every: STEPS / 2,
        save_every: STEPS / 2,
        keep_checkpoints: 5,
        data: DataConfig {
            train_file: assets.join("reviews/train.jsonl"),
            validation_file: Some(assets.join("reviews/validation.jsonl")),
            max_seq_len: 128,
            ..Default::default()
        },
        method: Method::Lora(LoraSettings { rank: 32, alpha: 64.0, dropout: 0.0, ..Default::default() }),
        optim: OptimizerConfig { lr: 2e-3, warmup_steps: 5, schedule: ScheduleKind::Cosine, ..Default::default() },
        ..Default::default()
    };
    let (_tx, rx) = channel();
    let summary = train(&config, RunStart::New, &EventSink::none(), &rx).unwrap();
    assert!(summary.final_checkpoint.join(wgtune::classify::LABELS_FILE).exists());

    let base = LoadedModel::load(&config.model, DeviceChoice::Cpu).unwrap();
    let (examples, labels, _) =
        wgtune::data::read_labelled_file(config.data.validation_file.as_ref().unwrap(), &config.data, &base.tokenizer, None).unwrap();
    let zero_shot = wgtune::classify::evaluate_classifier(&base.model, &base.tokenizer, &examples, &labels).unwrap();
    let (_, evals) = read_metrics(&whole).unwrap();
    assert_eq!(evals.iter().map(|e| e.step).collect::<Vec<_>>(), [0, STEPS / 2, STEPS]);
    let last = evals.last().unwrap().classification.clone().expect("classification scores at each evaluation");
    assert_eq!(last.confusion.iter().flatten().sum::<usize>(), 80);
    assert_eq!(last.per_class.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), ["delivery", "price", "quality", "support"]);
    assert!(
        last.accuracy >= zero_shot.scores.accuracy + 0.2,
        "validation accuracy {} is not 20 points above zero-shot {}",
        last.accuracy,
        zero_shot.scores.accuracy
    );

    let crashed = dir.path().join("crashed");
    std::fs::create_dir_all(&crashed).unwrap();
    let middle = format!("checkpoint-{:06}", STEPS / 2);
    let from = whole.join(&middle);
    std::fs::create_dir_all(crashed.join(&middle)).unwrap();
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), crashed.join(&middle).join(entry.file_name())).unwrap();
    }
    std::fs::copy(whole.join("run.toml"), crashed.join("run.toml")).unwrap();
    std::fs::copy(whole.join("metrics.jsonl"), crashed.join("metrics.jsonl")).unwrap();
    train(&wgtune::train::resume_config(&crashed).unwrap(), RunStart::Resume, &EventSink::none(), &rx).unwrap();
    let (a, _) = read_metrics(&whole).unwrap();
    let (b, evals_b) = read_metrics(&crashed).unwrap();
    assert_eq!(b.len(), STEPS);
    for (x, y) in a.iter().zip(&b) {
        assert!((x.loss - y.loss).abs() < 1e-4, "step {}: {} vs {}", x.step, x.loss, y.loss);
    }
    assert!((evals_b.last().unwrap().accuracy - last.accuracy).abs() < 1e-9);
}

const STEPS: usize = 100;
