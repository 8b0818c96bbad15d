//! Every kind of bad input gives a clear error naming the file, line or field, none panics, and
//! nothing the user had is changed. The library-level cases are here; the command-line corpus
//! (datasets, model folders, settings, files and disk faults) is in the submodules, run against
//! the built `wgtune` binary through [`harness`].

mod data;
mod files;
pub mod harness;
mod hostile;
mod models;
mod settings;

use std::path::Path;
use std::sync::mpsc::channel;

use wgtune::data::{BadRecords, DataConfig, Dataset, DatasetFormat, LongRecords};
use wgtune::device::DeviceChoice;
use wgtune::model::ModelFolder;
use wgtune::tokenizer::TextTokenizer;
use wgtune::train::{EventSink, RunStart, TrainEvent, checkpoint, train};

use crate::common::{fixture, one_run_at_a_time};
use crate::e2e::tiny_config;

fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_folder(&fixture("tiny-llama"), &[2]).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"{"prompt": "What is two and three? ", "completion": "Five."}"#;

#[test]
fn malformed_jsonl_line_is_skipped_and_reported_or_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.jsonl", &format!("{GOOD}\n{{\"prompt\": \"unterminated\n{GOOD}\n"));
    let mut config = DataConfig { train_file: path.clone(), ..Default::default() };
    let data = Dataset::load(&config, &tokenizer(), 0).unwrap();
    assert_eq!(data.train.len(), 2);
    assert_eq!(data.report.skipped.len(), 1);
    assert_eq!(data.report.skipped[0].origin.line, 2);
    assert!(data.report.skipped[0].reason.contains("invalid JSON"));

    config.bad_records = BadRecords::Stop;
    let err = Dataset::load(&config, &tokenizer(), 0).err().unwrap().to_string();
    assert!(err.starts_with(&format!("{}:2: invalid JSON", path.display())), "{err}");
}

#[test]
fn a_validation_file_in_another_shape_is_detected_on_its_own() {
    let (train, validation) = (fixture("data/chat.jsonl"), fixture("data/alpaca.json"));
    let config = DataConfig { train_file: train, validation_file: Some(validation.clone()), ..Default::default() };
    let data = Dataset::load(&config, &tokenizer(), 0).unwrap();
    assert_eq!(data.report.format, Some(DatasetFormat::Chat));
    assert_eq!((data.train.len(), data.validation.len()), (8, 4));
    assert!(data.report.skipped.is_empty(), "{:?}", data.report.skipped);

    // A shape chosen on purpose holds for both files; the validation records that do not fit it
    // are reported with their file and line.
    let config = DataConfig { format: Some(DatasetFormat::Chat), ..config };
    let data = Dataset::load(&config, &tokenizer(), 0).unwrap();
    assert!(data.validation.is_empty());
    let first = &data.report.skipped[0];
    assert_eq!((&*first.origin.file, first.origin.line), (validation.as_path(), 2));
    assert!(first.reason.contains("missing field `messages`"), "{}", first.reason);
}

#[test]
fn a_record_missing_its_fields_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d.jsonl", &format!("{GOOD}\n{{\"prompt\": \"no completion\"}}\n"));
    let config = DataConfig { train_file: path.clone(), bad_records: BadRecords::Stop, ..Default::default() };
    let err = Dataset::load(&config, &tokenizer(), 0).err().unwrap().to_string();
    assert_eq!(err, format!("{}:2: missing field `completion`", path.display()));
}

#[test]
fn an_empty_dataset_is_an_error_before_any_gpu_work() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "empty.jsonl", "\n{oops}\n");
    let mut config = tiny_config(&dir.path().join("run"), DeviceChoice::Wgpu);
    config.data.train_file = data.clone();
    let (events_tx, events_rx) = channel();
    let (_tx, rx) = channel();
    let err = train(&config, RunStart::New, &EventSink::new(events_tx), &rx).err().unwrap().to_string();
    assert!(err.contains(&data.display().to_string()) && err.contains("nothing to train on"), "{err}");
    assert!(err.contains(":2: invalid JSON"), "the skipped line is named: {err}");
    let events: Vec<TrainEvent> = events_rx.try_iter().collect();
    assert!(
        !events.iter().any(|e| matches!(e, TrainEvent::Preparing(p) if p.starts_with("Loading weights"))),
        "no device work: {events:?}"
    );
    assert!(matches!(events.last(), Some(TrainEvent::Failed { .. })));
}

#[test]
fn a_record_longer_than_max_seq_len_is_truncated_or_named() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!(r#"{{"prompt": "Hi. ", "completion": "{}"}}"#, "fox jumps over the lazy dog. ".repeat(20));
    let path = write(dir.path(), "d.jsonl", &format!("{GOOD}\n{long}\n"));
    let mut config = DataConfig { train_file: path.clone(), max_seq_len: 32, ..Default::default() };
    let data = Dataset::load(&config, &tokenizer(), 0).unwrap();
    assert_eq!(data.report.truncated, 1);
    assert!(data.train.iter().all(|e| e.ids.len() <= 32));

    config.long_records = LongRecords::Error;
    let err = Dataset::load(&config, &tokenizer(), 0).err().unwrap().to_string();
    assert!(err.starts_with(&format!("{}:2:", path.display())) && err.contains("longer than max_seq_len 32"), "{err}");

    config.long_records = LongRecords::Skip;
    let data = Dataset::load(&config, &tokenizer(), 0).unwrap();
    assert_eq!((data.train.len(), data.report.skipped.len()), (1, 1));
}

fn copy_model(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn truncated_safetensors_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model(&model);
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = ModelFolder::open(&model).err().unwrap().to_string();
    assert!(err.contains(&weights.display().to_string()) && err.contains("truncated"), "{err}");
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model(&model);
    let source = ModelFolder::open(&fixture("tiny-llama")).unwrap();
    let keep: Vec<(String, wgtune::model::HostTensor)> = source
        .weights
        .names()
        .into_iter()
        .filter(|n| n != "model.layers.1.mlp.up_proj.weight")
        .map(|n| {
            let tensor = source.weights.read(&n, &source.weights.shape(&n).unwrap()).unwrap();
            (n, tensor)
        })
        .collect();
    wgtune::model::weights::write_f32_tensors(&model.join("model.safetensors"), &keep).unwrap();
    let folder = ModelFolder::open(&model).unwrap();
    let err = folder.load(&burn::tensor::Device::flex()).err().unwrap().to_string();
    assert!(err.contains("`model.layers.1.mlp.up_proj.weight` is missing") && err.contains(&model.display().to_string()), "{err}");
}

#[test]
fn unknown_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    copy_model(&model);
    let config = std::fs::read_to_string(model.join("config.json")).unwrap().replace("\"llama\"", "\"gpt_neox\"");
    std::fs::write(model.join("config.json"), config).unwrap();
    let err = ModelFolder::open(&model).err().unwrap().to_string();
    assert!(err.contains("unsupported model_type `gpt_neox`") && err.contains("llama, mistral, qwen2"), "{err}");
}

#[test]
fn non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut config = tiny_config(&run, DeviceChoice::Cpu);
    config.method = wgtune::method::Method::Full;
    config.optim.lr = 1e30;
    config.optim.warmup_steps = 0;
    config.optim.warmup_ratio = 0.0;
    config.optim.max_grad_norm = 0.0;
    config.save_every = 1;
    config.max_steps = Some(20);
    let (events_tx, events_rx) = channel();
    let (_tx, rx) = channel();
    let err = train(&config, RunStart::New, &EventSink::new(events_tx), &rx).err().unwrap().to_string();
    assert!(err.contains("training stopped at step") && err.contains("became"), "{err}");
    let last_good = checkpoint::latest(&run).expect("a checkpoint from before the failure");
    assert!(err.contains(&last_good.display().to_string()), "{err}");
    let failed = events_rx.try_iter().find_map(|e| match e {
        TrainEvent::Failed { last_checkpoint, .. } => Some(last_checkpoint),
        _ => None,
    });
    assert_eq!(failed, Some(Some(last_good.clone())));
    // That checkpoint still loads and resumes.
    let model = wgtune::session::LoadedModel::load(&config.model, DeviceChoice::Cpu).unwrap();
    assert!(model.with_trained(&last_good).is_ok());
}
