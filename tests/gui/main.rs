//! The desktop app driven headless by accessibility role and label (egui_kittest): the whole
//! journey on a tiny model, and a snapshot of the main window with a finished run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use wgtune::device::DeviceChoice;
use wgtune::gui::{Evaluation, FilePicker, PickKind, Tab, WgtuneApp};
use wgtune::inspect::{human_count, trainable_count};
use wgtune::method::Method;
use wgtune::model::{BaseQuant, ModelFolder, Precision};
use wgtune::presets::Preset;
use wgtune::train::Task;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Answers every dialog at once with a path chosen by the test.
struct Picker {
    out: PathBuf,
}

impl FilePicker for Picker {
    fn pick(&self, kind: PickKind) -> Option<PathBuf> {
        Some(match kind {
            PickKind::ModelFolder => fixture("tiny-llama"),
            PickKind::ModelFile => fixture("gguf/tiny-llama.gguf"),
            PickKind::DatasetFile => fixture("data/chat.jsonl"),
            PickKind::ValidationFile => fixture("data/text.jsonl"),
            PickKind::MergedExportFolder => self.out.join("merged"),
            PickKind::AdapterExportFolder => self.out.join("adapter"),
            PickKind::GgufExportFile => self.out.join("model.gguf"),
            PickKind::GgufAdapterExportFile => self.out.join("adapter.gguf"),
            PickKind::OllamaExportFolder => self.out.join("ollama"),
            PickKind::RecipeFolder => self.out.join("recipe"),
            PickKind::OutputFolder | PickKind::RunFolder => self.out.join("run"),
            PickKind::SettingsFile | PickKind::SaveSettingsFile => self.out.join("run.toml"),
        })
    }
}

/// Steps the app until `done` holds, failing after `seconds`.
fn wait_until(harness: &mut Harness<'_, WgtuneApp>, seconds: u64, what: &str, done: impl Fn(&WgtuneApp) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(seconds), "timed out waiting for {what}");
        harness.run_steps(1);
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.run_steps(2);
}

/// The text of the one label that contains `part`.
fn text_of(harness: &Harness<'_, WgtuneApp>, part: &str) -> String {
    harness.get_by_label_contains(part).value().unwrap_or_default()
}

#[test]
fn the_whole_journey_in_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    // The tiny model's replies are random bytes, not always valid UTF-8: let them show as tofu.
    let mut harness =
        Harness::builder().with_size([1280.0, 1000.0]).allow_missing_glyphs().build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    harness.run_steps(2);
    // A run goes to the user's workspace by default, never the folder the app was started from.
    assert_eq!(harness.state().settings.config.output_dir, wgtune::gui::workspace().join("runs/latest"));

    // Model: open a folder through the (injected) dialog and see what it is.
    harness.get_by_label("Open model folder…").click();
    wait_until(&mut harness, 30, "the model summary", |app| app.model.summary.is_some());
    harness.get_by_label_contains("llama (2 layers, hidden 64)");
    assert_eq!(harness.state().settings.config.model, fixture("tiny-llama"));
    // The run is named after the model, the method and the time, in the workspace's runs.
    let named = harness.state().settings.config.output_dir.clone();
    assert_eq!(named.parent(), Some(wgtune::gui::workspace().join("runs").as_path()), "{}", named.display());
    let name = named.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("tiny-llama-lora-20") && name.len() == "tiny-llama-lora-20261207-1952".len(), "{name}");

    // Dataset: open a file and see the records and the rendered examples.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Dataset").click();
    harness.run_steps(2);
    harness.get_by_label("Open dataset…").click();
    wait_until(&mut harness, 30, "the dataset preview", |app| app.dataset.preview.is_some());
    assert_eq!(harness.state().dataset.preview.as_ref().unwrap().report.train_examples, 8);
    harness.get_by_label("Example 1");
    harness.get_by_label_contains("The capital of France is Paris.");

    // Hyperparameters: moving the rank slider changes the trainable-parameter count.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Hyperparameters").click();
    harness.run_steps(2);
    let before = text_of(&harness, "Trainable parameters:");
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Slider, "LoRA rank").set_value_accesskit(4.0);
    harness.run_steps(2);
    let after = text_of(&harness, "Trainable parameters:");
    assert_ne!(before, after);
    let config = ModelFolder::open(&fixture("tiny-llama")).unwrap().config;
    let method = harness.state().settings.config.method.clone();
    assert!(matches!(&method, Method::Lora(l) if l.rank == 4), "{method:?}");
    let expected = trainable_count(&config, &method);
    assert!(after.contains(&human_count(expected)), "{after} should show {expected}");

    // f16 (LoRA: frozen weights in f16) lowers the memory estimate; unticked again for the run below.
    let f32_memory = text_of(&harness, "Estimated training memory:");
    harness.get_by_label("Matmuls in f16 (LoRA: frozen weights in half the memory)").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.config.precision, Precision::F16);
    assert_ne!(text_of(&harness, "Estimated training memory:"), f32_memory);
    harness.get_by_label("Matmuls in f16 (LoRA: frozen weights in half the memory)").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.config.precision, Precision::F32);

    // A 4-bit frozen base lowers it too; back to dense for the run below.
    harness.get_by_label("Frozen base (LoRA)").click();
    harness.run_steps(2);
    harness.get_by_label("4-bit blocks (0.29× of f16)").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.config.base_quant, wgtune::model::BaseQuant::Int4);
    assert_ne!(text_of(&harness, "Estimated training memory:"), f32_memory);
    harness.state_mut().settings.config.base_quant = wgtune::model::BaseQuant::None;
    harness.run_steps(2);

    // A short run on the CPU, in the temporary directory.
    {
        let c = &mut harness.state_mut().settings.config;
        c.device = DeviceChoice::Cpu;
        c.max_steps = Some(400);
        c.save_every = 0;
        c.output_dir = dir.path().join("run");
        c.optim.lr = 1e-2;
    }
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Training").click();
    harness.run_steps(2);
    harness.get_by_label("Start training").click();
    wait_until(&mut harness, 120, "three steps", |app| app.training.steps.len() >= 3);
    harness.get_by_label("Loss");
    harness.get_by_label_contains("step ");
    let seen = harness.state().training.steps.len();
    wait_until(&mut harness, 60, "more steps", |app| app.training.steps.len() > seen);

    // Pause, try a prompt with the paused model beside the base model, resume, stop.
    harness.get_by_label("Pause").click();
    wait_until(&mut harness, 60, "the pause", |app| app.training.paused);
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Playground").click();
    harness.run_steps(2);
    // A conversation: each side keeps its own history, which the next turn carries.
    harness.state_mut().playground.system = "You answer in a few words.".into();
    harness.state_mut().playground.input = "What is the capital of France?".into();
    harness.state_mut().settings.generation.max_new_tokens = 8;
    harness.run_steps(1);
    harness.get_by_label("Send").click();
    let replied = |turns: usize| {
        move |app: &WgtuneApp| {
            !app.playground.busy() && app.playground.base.history.len() == turns && app.playground.tuned.history.len() == turns
        }
    };
    wait_until(&mut harness, 120, "both replies", replied(2));
    let first = harness.state().playground.base.context.unwrap();
    assert!(harness.state().playground.tuned.context.is_some() && harness.state().playground.input.is_empty());
    harness.get_by_label_contains("Base model · context");
    harness.state_mut().playground.input = "And of Italy?".into();
    harness.run_steps(1);
    harness.get_by_label("Send").click();
    wait_until(&mut harness, 120, "the second replies", replied(4));
    let second = harness.state().playground.base.context.unwrap();
    assert!(second.0 > first.0 && second.1 == first.1, "{first:?} then {second:?}");
    assert_eq!(harness.state().playground.tuned.history[2].content, "And of Italy?");
    harness.get_by_label("Copy Fine-tuned");
    harness.get_by_label("Clear").click();
    harness.run_steps(2);
    assert!(harness.state().playground.base.history.is_empty() && harness.state().playground.tuned.history.is_empty());

    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Training").click();
    harness.run_steps(2);
    harness.get_by_label("Resume").click();
    wait_until(&mut harness, 60, "the resume", |app| !app.training.paused);
    harness.get_by_label("Stop").click();
    wait_until(&mut harness, 120, "the run to stop", |app| app.training.summary.is_some());
    let summary = harness.state().training.summary.clone().unwrap();
    assert!(summary.stopped_early && summary.steps < 400);
    assert!(harness.get_all_by_label_contains("Stopped after").count() >= 1);

    // Evaluate: both models answer the records, side by side, readable by their labels.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Evaluate").click();
    harness.run_steps(2);
    harness.get_by_label("Evaluate base and fine-tuned").click();
    wait_until(&mut harness, 240, "the evaluation", |app| app.evaluate.result.is_some());
    let (base, tuned) = match &harness.state().evaluate.result {
        Some(Ok(Evaluation::Generation { base, tuned })) => (base.clone(), tuned.clone()),
        other => panic!("the evaluation: {:?}", other.as_ref().map(|r| r.as_ref().err())),
    };
    assert_eq!((base.answers.len(), tuned.answers.len()), (8, 8));
    assert!(harness.get_all_by_value("8 records answered").count() >= 1);
    // A label's text is its accessible value; each cell also carries its row and column as its
    // accessible label, which kittest's label queries do not look at for labels.
    let cell = |label: String| egui_kittest::kittest::By::new().predicate(move |node| node.label().as_deref() == Some(label.as_str()));
    harness.get(cell(format!("Fine-tuned, Token F1: {:.1} %", 100.0 * tuned.summary.token_f1)));
    harness.get(cell(format!("Base model, Exact match: {:.1} %", 100.0 * base.summary.exact_match)));

    // The Runs tab lists the run with its settings and curve; opening it makes its weights the
    // ones the other tabs use.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Runs").click();
    wait_until(&mut harness, 30, "the runs", |app| !app.runs.loading && !app.runs.runs.is_empty());
    let run = harness.state().runs.runs[0].clone();
    assert_eq!((run.dir.clone(), run.steps.len()), (dir.path().join("run"), summary.steps));
    assert!(harness.get_all_by_value(&run.settings()).count() >= 1);
    harness.get_by_label("Open").click();
    harness.run_steps(2);
    assert_eq!(harness.state().opened_run, Some(dir.path().join("run")));
    assert_eq!(harness.state().trained_weights(), run.weights);
    harness.get_by_label("Opened");

    // Export merged weights and the adapter; both load.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Export").click();
    harness.run_steps(2);
    harness.get_by_label("Export merged weights…").click();
    wait_until(&mut harness, 120, "the merged export", |app| app.export.result.is_some());
    assert_eq!(harness.state().export.result, Some(Ok(dir.path().join("merged"))));
    harness.get_by_label_contains("Exported merged weights");
    ModelFolder::open(&dir.path().join("merged")).unwrap().load(&burn::tensor::Device::flex()).unwrap();

    harness.get_by_label("Export adapter…").click();
    wait_until(&mut harness, 60, "the adapter export", |app| matches!(&app.export.result, Some(Ok(p)) if p.ends_with("adapter")));
    let base = ModelFolder::open(&fixture("tiny-llama")).unwrap().load(&burn::tensor::Device::flex()).unwrap();
    wgtune::peft::load_adapter(base, &dir.path().join("adapter")).unwrap();

    // For llama.cpp and Ollama: a GGUF model, a GGUF adapter and an Ollama folder.
    for (button, file) in [("Export GGUF…", "model.gguf"), ("Export adapter GGUF…", "adapter.gguf"), ("Export for Ollama…", "ollama")]
    {
        harness.get_by_label(button).click();
        let out = dir.path().join(file);
        wait_until(&mut harness, 120, button, |app| matches!(&app.export.result, Some(Ok(p)) if *p == out) && !app.export.busy);
    }
    assert!(ModelFolder::open(&dir.path().join("model.gguf")).is_ok());
    assert!(dir.path().join("ollama/Modelfile").exists() && dir.path().join("adapter.gguf").exists());

    // Exporting into a folder that holds files asks first: cancelled, nothing changes; agreed,
    // the folder is replaced.
    let merged = dir.path().join("merged");
    std::fs::write(merged.join("notes.txt"), "mine").unwrap();
    harness.get_by_label("Export merged weights…").click();
    wait_until(&mut harness, 30, "the question", |app| app.export.confirm_replace.is_some());
    harness.get_by_label_contains("already holds files");
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    assert!(harness.state().export.confirm_replace.is_none() && merged.join("notes.txt").exists());
    harness.get_by_label("Export merged weights…").click();
    wait_until(&mut harness, 30, "the question", |app| app.export.confirm_replace.is_some());
    harness.get_by_label("Replace it").click();
    wait_until(&mut harness, 120, "the replacing export", |app| app.export.confirm_replace.is_none() && !app.export.busy);
    assert_eq!(harness.state().export.result, Some(Ok(merged.clone())));
    assert!(!merged.join("notes.txt").exists() && merged.join("model.safetensors").exists());

    // A new run into the folder of the last one asks first too.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Training").click();
    harness.run_steps(2);
    harness.get_by_label("Start training").click();
    wait_until(&mut harness, 30, "the question", |app| app.training.confirm_overwrite);
    harness.get_by_label_contains("already holds a run");
    harness.get_by_label("Cancel").click();
    harness.run_steps(2);
    assert!(!harness.state().training.confirm_overwrite && !harness.state().training.is_running());
    assert!(wgtune::train::checkpoint::latest(&dir.path().join("run")).is_some(), "the earlier run is untouched");

    // The Runs tab renames the run (what pointed at it follows), and deletes it only when asked
    // twice.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Runs").click();
    wait_until(&mut harness, 30, "the runs", |app| !app.runs.loading && !app.runs.runs.is_empty());
    harness.get_by_label("Rename").click();
    harness.run_steps(2);
    harness.get(egui_kittest::kittest::By::new().role(eframe::egui::accesskit::Role::TextInput).value("run")).type_text("-renamed");
    harness.run_steps(1);
    harness.get_by_label("Save name").click();
    let renamed = dir.path().join("run-renamed");
    wait_until(&mut harness, 30, "the renamed run", |app| app.runs.runs.iter().any(|r| r.dir == renamed));
    assert!(!dir.path().join("run").exists() && renamed.join("run.toml").exists());
    assert_eq!(harness.state().opened_run, Some(renamed.clone()));
    harness.get_by_label("Delete…").click();
    harness.run_steps(2);
    harness.get_by_label("Keep it").click();
    harness.run_steps(2);
    assert!(renamed.exists() && harness.state().runs.confirm_delete.is_none());
    harness.get_by_label("Delete…").click();
    harness.run_steps(2);
    harness.get_by_label_contains("are deleted for good");
    harness.get_by_label("Delete the run").click();
    wait_until(&mut harness, 30, "the run gone from the list", |app| !app.runs.loading && app.runs.runs.iter().all(|r| r.dir != renamed));
    assert!(!renamed.exists() && harness.state().opened_run.is_none());
    assert!(dir.path().join("merged").exists(), "only the run went");

    // Run on a cluster: the settings on screen as a TRL recipe for 2 GPUs...
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Export").click();
    harness.run_steps(2);
    harness.state_mut().export.world_size = 2;
    harness.get_by_label("Write recipe…").click();
    let recipe = dir.path().join("recipe");
    wait_until(&mut harness, 60, "the recipe", |app| matches!(&app.export.result, Some(Ok(p)) if *p == recipe) && !app.export.busy);
    harness.get_by_label_contains("Exported the TRL recipe");
    let script = std::fs::read_to_string(recipe.join("launch.sh")).unwrap();
    assert!(script.contains("WORLD_SIZE=2") && recipe.join("trl.yaml").exists() && recipe.join("data/train.jsonl").exists());
    // ...and what the cluster trained, back among the runs with its loss curve.
    let checkpoint = recipe.join("output/checkpoint-2");
    std::fs::create_dir_all(&checkpoint).unwrap();
    let log = r#"{"max_steps": 2, "log_history": [{"loss": 2.0, "learning_rate": 1e-3, "step": 1}, {"loss": 1.5, "learning_rate": 5e-4, "step": 2}]}"#;
    std::fs::write(checkpoint.join("trainer_state.json"), log).unwrap();
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(dir.path().join("adapter").join(file), recipe.join("output").join(file)).unwrap();
    }
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Runs").click();
    wait_until(&mut harness, 30, "the cluster run", |app| !app.runs.loading && app.runs.runs.iter().any(|r| r.dir == recipe));
    let cluster = harness.state().runs.runs.iter().find(|r| r.dir == recipe).unwrap().clone();
    assert_eq!(cluster.steps.iter().map(|s| s.loss).collect::<Vec<_>>(), [2.0, 1.5]);
    assert_eq!(cluster.weights, Some(recipe.join("output")));
    // Opened, it is the run the Playground, Evaluate and Export tabs use.
    harness.get_by_label("Open").click();
    harness.run_steps(2);
    assert_eq!(harness.state().trained_weights(), Some(recipe.join("output")));
}

#[test]
fn a_gguf_model_opens_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    let mut harness = Harness::builder().build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    harness.get_by_label("Open GGUF file…").click();
    wait_until(&mut harness, 30, "the model summary", |app| app.model.summary.is_some() || app.model.error.is_some());
    assert_eq!(harness.state().model.error, None);
    harness.get_by_label_contains("llama (2 layers, hidden 64)");
    harness.get_by_label("F32 (GGUF)");
    assert_eq!(harness.state().settings.config.model, fixture("gguf/tiny-llama.gguf"));
    // Dense weights train over a dense base.
    assert_eq!(harness.state().settings.config.base_quant, BaseQuant::None);

    // A quantized GGUF (Q8_0 blocks) trains LoRA over its own blocks, and the app says so.
    type_into(&mut harness, "Model folder path", fixture("gguf/tiny-llama-q8_0.gguf").to_str().unwrap());
    harness.get_by_label("Open model").click();
    wait_until(&mut harness, 30, "the Q8_0 model", |app| app.settings.config.model == fixture("gguf/tiny-llama-q8_0.gguf"));
    assert_eq!(harness.state().settings.config.base_quant, BaseQuant::Int8);
    harness.get_by_label_contains("int8, as the file stores its weights (Q8_0 (GGUF))");
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Hyperparameters").click();
    harness.run_steps(2);
    harness.get_by_label_contains("Frozen base int8, as the file stores its weights");

    // A model without blocks goes back to the dense base that was chosen for the GGUF.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Model").click();
    harness.run_steps(2);
    harness.get_by_label("Open model folder…").click();
    wait_until(&mut harness, 30, "the folder model", |app| app.settings.config.model == fixture("tiny-llama"));
    assert_eq!(harness.state().settings.config.base_quant, BaseQuant::None);
    assert!(harness.query_by_label_contains("as the file stores its weights").is_none());
}

#[path = "../support/hub_stand_in.rs"]
#[allow(dead_code)] // The engine's tests use the rest.
mod hub_stand_in;

/// A model by Hugging Face id, typed in the Model tab, downloads from the Hub (a stand-in on
/// 127.0.0.1) into the cache with a progress bar, and opens.
#[test]
fn a_model_by_hugging_face_id_downloads_with_a_progress_bar() {
    let hub = hub_stand_in::StandIn::start(hub_stand_in::Behaviour { slow: true, ..Default::default() });
    let cache = tempfile::tempdir().unwrap();
    // SAFETY: set before this test's app reads them. The other tests of this binary read only
    // the cache listing, which an empty cache leaves empty.
    unsafe {
        std::env::set_var("HF_ENDPOINT", &hub.endpoint);
        std::env::set_var("HF_HUB_CACHE", cache.path());
    }
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    let mut harness = Harness::builder().build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    // Found by a search of the Hub, opened by its link.
    type_into(&mut harness, "Search the Hub", "tiny");
    harness.get_by_label("Search").click();
    wait_until(&mut harness, 10, "the search results", |app| app.model.search_results.is_some());
    assert_eq!(harness.state().model.search_results, Some(Ok(vec!["owner/tiny".to_string()])));
    harness.get_by_label("owner/tiny").click();
    let mut saw_progress = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while harness.state().model.summary.is_none() && harness.state().model.error.is_none() && Instant::now() < deadline {
        harness.run_steps(1);
        saw_progress |= harness.query_by_label_contains("Downloading ").is_some();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(harness.state().model.error, None);
    assert!(saw_progress, "a progress bar showed while the weights came");
    harness.get_by_label_contains("llama (2 layers, hidden 64)");
    let opened = &harness.state().model.summary.as_ref().unwrap().path;
    assert!(opened.starts_with(cache.path().join("models--owner--tiny/snapshots")), "{}", opened.display());
    assert!(hub.requests().iter().any(|r| r.starts_with("/owner/tiny/resolve/main/model.safetensors")));

    // A dataset by id is its train split's Parquet file, downloaded; its columns are offered.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Dataset").click();
    harness.run_steps(2);
    type_into(&mut harness, "Dataset file path", "owner/qa");
    harness.get_by_label("Open dataset").click();
    wait_until(&mut harness, 30, "the dataset read", |app| !app.dataset.loading && !app.dataset.file_columns.is_empty());
    assert!(harness.state().settings.config.data.train_file.ends_with(hub_stand_in::TRAIN));
    assert_eq!(harness.state().dataset.file_columns, ["answer", "conversation", "question"]);
}

/// A system where no file dialog can open (no XDG portal, no zenity): rfd answers "nothing".
struct NoDialog;

impl FilePicker for NoDialog {
    fn pick(&self, _: PickKind) -> Option<PathBuf> {
        None
    }
}

fn type_into(harness: &mut Harness<'_, WgtuneApp>, field: &str, text: &str) {
    let role = eframe::egui::accesskit::Role::TextInput;
    harness.get_by_role_and_label(role, field).focus();
    harness.run();
    harness.get_by_role_and_label(role, field).type_text(text);
    harness.run();
}

fn model_error(harness: &mut Harness<'_, WgtuneApp>) -> String {
    wait_until(harness, 30, "the error", |app| app.model.error.is_some());
    harness.state_mut().model.error.take().unwrap_or_default()
}

#[test]
fn without_a_file_dialog_paths_are_typed_and_a_folder_that_is_not_a_model_shows_a_clear_error() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut harness = Harness::builder().build_eframe(|cc| WgtuneApp::new(cc, Box::new(NoDialog)));

    // The dialog that could not open is replaced by a prompt for the same path.
    harness.get_by_label("Open model folder…").click();
    wait_until(&mut harness, 10, "the path prompt", |app| app.path_prompt.is_some());
    type_into(&mut harness, "Path", &first.path().display().to_string());
    harness.get_by_label("OK").click();
    let error = model_error(&mut harness);
    assert!(error.contains("config.json") && error.contains(&first.path().display().to_string()), "{error}");
    assert!(harness.state().path_prompt.is_none());

    // The model panel's own path field.
    type_into(&mut harness, "Model folder path", &second.path().display().to_string());
    harness.get_by_label("Open model").click();
    let error = model_error(&mut harness);
    assert!(error.contains("config.json") && error.contains(&second.path().display().to_string()), "{error}");

    // The dataset panel's fields, once a model is open (its tokenizer reads the data): a
    // training file, then a validation file instead of a held-out fraction.
    let model = fixture("tiny-llama");
    harness.state_mut().model.typed_path.clear();
    type_into(&mut harness, "Model folder path", &model.display().to_string());
    harness.get_by_label("Open model").click();
    wait_until(&mut harness, 30, "the model summary", |app| app.model.summary.is_some());
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Dataset").click();
    harness.run_steps(2);
    let (train, validation) = (fixture("data/chat.jsonl"), fixture("data/alpaca.json"));
    type_into(&mut harness, "Dataset file path", &train.display().to_string());
    harness.get_by_label("Open dataset").click();
    wait_until(&mut harness, 30, "the dataset preview", |app| app.dataset.preview.is_some() && !app.dataset.loading);
    type_into(&mut harness, "Validation file path", &validation.display().to_string());
    harness.get_by_label("Open validation file").click();
    harness.run_steps(1);
    assert_eq!(harness.state().settings.config.data.validation_file.as_deref(), Some(validation.as_path()));
    wait_until(&mut harness, 30, "the dataset preview with the validation file", |app| !app.dataset.loading);
    let state = harness.state();
    assert_eq!(state.dataset.error, None);
    let report = &state.dataset.preview.as_ref().expect("a preview").report;
    assert!(report.validation_examples > 0, "{report:?}");
    assert_eq!(harness.state().settings.config.data.train_file, train);

    // A Parquet file whose columns have names of their own: the panel offers a drop-down per
    // column, and choosing fields there makes it a prompt/completion dataset.
    let parquet = fixture("data/qa.parquet");
    harness.state_mut().settings.config.data.validation_file = None;
    harness.state_mut().dataset.typed_path.clear();
    type_into(&mut harness, "Dataset file path", &parquet.display().to_string());
    harness.get_by_label("Open dataset").click();
    wait_until(&mut harness, 30, "the Parquet dataset read", |app| {
        !app.dataset.loading && app.settings.config.data.train_file.ends_with("qa.parquet")
    });
    assert!(
        harness.state().dataset.error.as_deref().is_some_and(|e| e.contains("cannot tell the dataset format")),
        "{:?}",
        harness.state().dataset.error
    );
    assert_eq!(harness.state().dataset.file_columns, ["answer", "conversation", "question"]);
    for (column, field) in [("question", "prompt"), ("answer", "completion")] {
        harness.get_by_label(&format!("column `{column}` as")).click();
        harness.run_steps(2);
        harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, field).click();
        harness.run_steps(2);
        wait_until(&mut harness, 30, "the dataset read again", |app| !app.dataset.loading);
    }
    assert_eq!(harness.state().dataset.typed_columns, "completion=answer, prompt=question");
    wait_until(&mut harness, 30, "the mapped preview", |app| !app.dataset.loading && app.dataset.preview.is_some());
    let report = &harness.state().dataset.preview.as_ref().unwrap().report;
    assert_eq!((report.train_examples, report.columns.clone()), (3, vec!["answer".to_string(), "conversation".into(), "question".into()]));
    harness.get_by_label_contains("answer, conversation, question");
    harness.get_by_label("completion: answer, prompt: question");

    // The typed field applies a mapping too, and shows what the drop-downs chose.
    harness.state_mut().dataset.typed_columns.clear();
    type_into(&mut harness, "Columns", "messages=conversation");
    harness.get_by_label("Apply mapping").click();
    harness.run_steps(1);
    wait_until(&mut harness, 30, "the chat preview", |app| !app.dataset.loading && app.dataset.preview.is_some());
    let report = &harness.state().dataset.preview.as_ref().unwrap().report;
    assert_eq!(report.format, Some(wgtune::data::DatasetFormat::Chat));
}

/// Before any model is chosen the Model tab says where to start: the ways in, and what the device
/// can train; "Try the demo" opens the bundled model with the bundled questions in one click.
#[test]
fn the_first_screen_shows_the_ways_in_and_what_the_device_can_train() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    let mut harness = Harness::builder().with_size([1100.0, 760.0]).wgpu().build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    wait_until(&mut harness, 60, "the device probe", |app| !app.device_description.starts_with("detecting"));
    harness.get_by_label("Start here");
    harness.get_by_label("Open a model folder…");
    harness.get_by_label("Open a GGUF file…");
    let line = text_of(&harness, "LoRA on a 4-bit base");
    assert!(line.starts_with("Device: ") && line.contains("of memory"), "{line}");
    for size in ["1B ", "3B ", "8B "] {
        assert!(line.contains(size), "{line}");
    }
    assert!(line.contains("fits") || line.contains("too large"), "{line}");

    harness.get_by_label("Try the demo").click();
    wait_until(&mut harness, 60, "the demo model and dataset", |app| {
        app.model.summary.is_some() && app.dataset.preview.is_some() && !app.dataset.loading
    });
    let bundle = wgtune::bundled::bundled().unwrap();
    assert_eq!(harness.state().settings.config.model, bundle.demo_model());
    assert_eq!(harness.state().settings.config.data.train_file, bundle.questions().train);
    assert!(harness.query_by_label("Start here").is_none(), "the first screen gives way once a model is chosen");
}

#[test]
fn main_window_with_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    let mut harness = Harness::builder().with_size([1100.0, 760.0]).wgpu().build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    // Nothing machine-dependent on screen: a fixed device line, a recorded run.
    wait_until(&mut harness, 60, "the device probe", |app| !app.device_description.starts_with("detecting"));
    // The status bar says which kernels the adapter runs: Burn's operations where it is short
    // of what the WGSL kernels need (wgpu's downlevel limits), the kernels where it is not.
    let lavapipe = wgtune::device::AdapterLimits {
        software: true,
        invocations_per_workgroup: 1024,
        workgroup_storage_bytes: 32768,
        storage_buffers_per_stage: 32,
        storage_binding_bytes: 128 << 20,
        buffer_bytes: 4 << 30,
        shader_f16: true,
        subgroups: true,
    };
    harness.state_mut().device_adapter = Some(wgtune::device::AdapterLimits { storage_buffers_per_stage: 4, ..lavapipe.clone() });
    harness.run_steps(2);
    harness.get_by_label("· Burn's operations (adapter short of the kernels' needs)");
    let app = harness.state_mut();
    app.device_description = "llvmpipe (test), Vulkan".into();
    app.device_adapter = Some(lavapipe);
    app.training.show_run(&fixture("run")).unwrap();
    app.tab = Tab::Training;
    harness.run_steps(4);
    harness.get_by_label("· WGSL kernels");
    harness.snapshot("main_window_finished_run");
}

/// A classifier from start to finish: the classification task on the demo reviews, a short
/// run, the Playground answering with class probabilities, and the Evaluate tab's scores and
/// confusion matrix read back by their labels.
#[test]
fn a_text_classifier_in_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    let mut harness = Harness::builder().with_size([1280.0, 1000.0]).build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    harness.run_steps(2);
    harness.get_by_label("Use demo model").click();
    wait_until(&mut harness, 30, "the model summary", |app| app.model.summary.is_some());
    // The demo model that the binary carries, written out into the user's data folder.
    assert_eq!(harness.state().settings.config.model, wgtune::bundled::bundled().unwrap().demo_model());

    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Dataset").click();
    harness.run_steps(2);
    harness.get_by_label("Task").click();
    harness.run_steps(2);
    harness.get_by_label("Classify text (classification head)").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.config.task, Task::Classification);
    harness.get_by_label("Use demo dataset").click();
    wait_until(&mut harness, 60, "the reviews", |app| app.dataset.preview.is_some() && !app.dataset.loading);
    assert_eq!(harness.state().dataset.error, None);
    harness.get_by_label("delivery, price, quality, support");
    harness.get_by_label_contains("Example 1 — ");
    // The demo data brings a starting point that trains it visibly, sized to the model and data.
    let parameters = harness.state().model.summary.as_ref().unwrap().parameters;
    let balanced = Preset::Balanced.settings(parameters, 336, harness.state().settings.config.batch_size);
    assert_eq!((harness.state().settings.config.optim.lr, harness.state().settings.config.epochs), (balanced.lr, balanced.epochs));
    // The Model tab offers the same starting points, sized to the model and the data.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Model").click();
    harness.run_steps(2);
    harness.get_by_label_contains("quick test (rank 8").click();
    harness.run_steps(2);
    assert!(matches!(&harness.state().settings.config.method, Method::Lora(l) if l.rank == 8));
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Hyperparameters").click();
    harness.run_steps(2);
    harness.get_by_label_contains("best quality (rank 32").click();
    harness.run_steps(2);
    assert!(matches!(&harness.state().settings.config.method, Method::Lora(l) if l.rank == 32));

    {
        let c = &mut harness.state_mut().settings.config;
        c.device = DeviceChoice::Cpu;
        c.max_steps = Some(12);
        c.batch_size = 8;
        c.save_every = 0;
        c.output_dir = dir.path().join("run");
        c.optim.lr = 2e-3;
    }
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Training").click();
    harness.run_steps(2);
    harness.get_by_label("Start training").click();
    wait_until(&mut harness, 240, "the run", |app| app.training.summary.is_some());
    harness.get_by_label_contains("macro F1");

    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Playground").click();
    harness.run_steps(2);
    harness.state_mut().playground.input = "The parcel arrived two weeks late.".into();
    harness.run_steps(1);
    harness.get_by_label("Send").click();
    wait_until(&mut harness, 120, "both answers", |app| {
        !app.playground.busy() && app.playground.base.history.len() == 2 && app.playground.tuned.history.len() == 2
    });
    let tuned = harness.state().playground.tuned.history[1].content.clone();
    assert_eq!(tuned.matches(" %").count(), 4, "the four classes with their probabilities: {tuned}");
    assert!(tuned.contains("delivery") && tuned.contains("support"), "{tuned}");

    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Evaluate").click();
    harness.run_steps(2);
    harness.get_by_label("Evaluate base and fine-tuned").click();
    wait_until(&mut harness, 240, "the evaluation", |app| app.evaluate.result.is_some());
    let (base, tuned) = match &harness.state().evaluate.result {
        Some(Ok(Evaluation::Classification { base, tuned, .. })) => (base.clone(), tuned.clone()),
        other => panic!("the evaluation: {:?}", other.as_ref().map(|r| r.as_ref().err())),
    };
    assert_eq!((base.answers.len(), tuned.scores.examples), (80, 80));
    let cell = |label: String| egui_kittest::kittest::By::new().predicate(move |node| node.label().as_deref() == Some(label.as_str()));
    harness.get(cell(format!("Fine-tuned, Accuracy: {:.1} %", 100.0 * tuned.scores.accuracy)));
    harness.get(cell(format!("Base model (zero-shot), Macro F1: {:.1} %", 100.0 * base.scores.macro_f1)));
    harness.get(cell(format!("delivery predicted as delivery: {}", tuned.scores.confusion[0][0])));

    // The Runs tab lists the run with its validation accuracy, and plots it once overlaid.
    harness.get_by_role_and_label(eframe::egui::accesskit::Role::Button, "Runs").click();
    wait_until(&mut harness, 30, "the runs", |app| !app.runs.loading && !app.runs.runs.is_empty());
    let accuracy = harness.state().runs.runs[0].last_eval().and_then(|e| e.headline()).unwrap();
    assert_eq!(accuracy.0, "accuracy");
    harness.get_by_label(&format!("accuracy {:.1} %", 100.0 * accuracy.1));
    let settings = harness.state().runs.runs[0].settings();
    assert!(settings.starts_with("classifier, lora r32"), "{settings}");
    harness.get_by_label(&settings);
}

/// Not a check: renders the README's Playground screenshot (`assets/screenshots/playground.png`)
/// from a real model and a run on it, as a person would see it.
///
///     WGTUNE_SCREENSHOT_MODEL=~/.cache/wgtune-models/smollm2-135m-instruct-f32 \
///     WGTUNE_SCREENSHOT_RUN=/tmp/wgtune-recipe.XXXXXX/recipe \
///     UPDATE_SNAPSHOTS=1 cargo test --test gui -- --ignored readme_playground_screenshot
#[test]
#[ignore]
fn readme_playground_screenshot() {
    let model = PathBuf::from(std::env::var("WGTUNE_SCREENSHOT_MODEL").expect("WGTUNE_SCREENSHOT_MODEL"));
    let run = PathBuf::from(std::env::var("WGTUNE_SCREENSHOT_RUN").expect("WGTUNE_SCREENSHOT_RUN"));
    let dir = tempfile::tempdir().unwrap();
    let picker = Picker { out: dir.path().to_path_buf() };
    let mut harness = Harness::builder().with_size([1100.0, 760.0]).wgpu().build_eframe(|cc| WgtuneApp::new(cc, Box::new(picker)));
    harness.state_mut().settings.config.device = DeviceChoice::Cpu;
    harness.state_mut().select_model(model);
    wait_until(&mut harness, 120, "the model", |app| app.model.summary.is_some());
    wait_until(&mut harness, 60, "the device probe", |app| !app.device_description.starts_with("detecting"));
    let app = harness.state_mut();
    app.opened_run = Some(run);
    app.tab = Tab::Playground;
    app.settings.generation.max_new_tokens = 48;
    app.playground.system = "You are a concise assistant for questions about Zorbia.".into();
    for (i, message) in ["What is the capital of Zorbia?", "And which currency do people pay with there?"].into_iter().enumerate() {
        harness.state_mut().playground.input = message.into();
        harness.run_steps(1);
        harness.get_by_label("Send").click();
        let turns = 2 * (i + 1);
        wait_until(&mut harness, 300, "the replies", |app| {
            !app.playground.busy() && app.playground.base.history.len() == turns && app.playground.tuned.history.len() == turns
        });
    }
    harness.state_mut().device_description = "CPU (2 threads)".into();
    harness.run_steps(4);
    harness.snapshot("readme_playground");
}
