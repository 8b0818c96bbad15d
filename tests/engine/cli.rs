//! The `wgtune` command line, run as a user would.

use std::process::Command;

use crate::common::{fixture, one_run_at_a_time, text, wgtune};

#[test]
fn help_lists_every_subcommand_and_train_documents_defaults() {
    let out = wgtune(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for command in ["train", "generate", "export", "eval", "inspect", "bench", "demo", "gui"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let train = text(&wgtune(&["train", "--help"]).stdout);
    for default in ["[default: 16]", "[default: 2e-4]", "[default: cosine]", "[default: auto]", "[default: 512]"] {
        assert!(train.contains(default), "{default} missing from:\n{train}");
    }
}

#[test]
fn train_generate_export_and_inspect_from_the_command_line() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (model, data) = (fixture("tiny-llama"), fixture("data/chat.jsonl"));
    let (model, data, run_s) = (model.to_str().unwrap(), data.to_str().unwrap(), run.to_str().unwrap());

    let out = wgtune(&[
        "train",
        "--model",
        model,
        "--data",
        data,
        "--max-steps",
        "3",
        "--device",
        "cpu",
        "--output",
        run_s,
        "--rank",
        "4",
        "--plain",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("step 3/3"), "{stdout}");
    assert!(run.join("final/adapter_model.safetensors").exists());
    assert!(run.join("run.toml").exists());

    // The saved settings run again from the file, with flags on top.
    let again = dir.path().join("again");
    let out =
        wgtune(&["train", "--config", run.join("run.toml").to_str().unwrap(), "--output", again.to_str().unwrap(), "--max-steps", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(again.join("final").exists());

    let out = wgtune(&[
        "generate",
        "--model",
        model,
        "--trained",
        run_s,
        "--prompt",
        "What is wgtune?",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let merged = dir.path().join("merged");
    let adapter = dir.path().join("adapter");
    let out = wgtune(&[
        "export",
        "--model",
        model,
        "--trained",
        run_s,
        "--merged",
        merged.to_str().unwrap(),
        "--adapter-out",
        adapter.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(merged.join("model.safetensors").exists() && merged.join("tokenizer.json").exists());
    assert!(adapter.join("adapter_config.json").exists());

    // The run as a recipe for a cluster, the model read from its run.toml; GGUF without --model too.
    let recipe = dir.path().join("recipe");
    let out = wgtune(&["export", "--run", run_s, "--recipe", "trl", recipe.to_str().unwrap(), "--world-size", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 sequences per process x 1 accumulation x 2 processes"), "{}", text(&out.stdout));
    assert!(recipe.join("trl.yaml").exists() && recipe.join("launch.sh").exists() && recipe.join("data/train.jsonl").exists());
    let out = wgtune(&["export", "--run", run_s, "--recipe", "slurm", dir.path().join("r2").to_str().unwrap()]);
    assert!(!out.status.success() && text(&out.stderr).contains("unknown recipe target `slurm` (trl, axolotl)"), "{}", text(&out.stderr));
    let out = wgtune(&["export", "--run", run_s, "--recipe", "trl", dir.path().join("r3").to_str().unwrap(), "--world-size", "3"]);
    assert!(!out.status.success() && text(&out.stderr).contains("does not split over 3 processes"), "{}", text(&out.stderr));
    let gguf = dir.path().join("model.gguf");
    let out = wgtune(&["export", "--run", run_s, "--gguf", gguf.to_str().unwrap()]);
    assert!(out.status.success() && gguf.exists(), "{}", text(&out.stderr));
    // A model as it is (a full fine-tuning's output from a cluster) exports without --trained,
    // and is refused as trained weights with the way to use it.
    let plain = dir.path().join("plain.gguf");
    let out = wgtune(&["export", "--model", model, "--gguf", plain.to_str().unwrap()]);
    assert!(out.status.success() && plain.exists(), "{}", text(&out.stderr));
    let out = wgtune(&["export", "--model", model, "--trained", model, "--gguf", dir.path().join("x.gguf").to_str().unwrap()]);
    assert!(
        text(&out.stderr).contains("is a whole model folder, not trained weights for another model: pass it as --model"),
        "{}",
        text(&out.stderr)
    );

    let json = dir.path().join("eval.json");
    let args = ["eval", "--model", model, "--trained", run_s, "--data", data, "--compare", "--limit", "2", "--max-new-tokens", "4"];
    let out = wgtune(&[&args[..], &["--device", "cpu", "--json", json.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("base  fine-tuned") && table.contains("Token F1") && table.contains("line 1: What is the capital of France?"),
        "{table}"
    );
    let reports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(reports["fine-tuned"]["answers"].as_array().map(Vec::len), Some(2), "{reports}");
    // The report file is there now: it is not replaced unasked, nor is the data file ever.
    let out = wgtune(&[&args[..], &["--device", "cpu", "--json", json.to_str().unwrap()]].concat());
    assert!(
        !out.status.success() && text(&out.stderr).contains("exists; choose another name, or pass --overwrite"),
        "{}",
        text(&out.stderr)
    );
    let out = wgtune(&[&args[..], &["--device", "cpu", "--json", data, "--overwrite"]].concat());
    assert!(!out.status.success() && text(&out.stderr).contains("which this command reads from"), "{}", text(&out.stderr));
    let out = wgtune(&["eval", "--model", model, "--data", data, "--compare"]);
    assert!(!out.status.success() && text(&out.stderr).contains("--compare puts the base model beside trained weights"));

    let out = wgtune(&["inspect", "--model", model, "--rank", "8", "--base-quant", "int4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("llama (2 layers") && report.contains("trainable") && report.contains("int4 base"), "{report}");
    assert!(report.contains("llama-8b") && report.contains("int8"), "{report}");
}

/// The bench with CubeCL's profiler on wgpu: every launch lands in a family, matmul among them.
#[test]
fn bench_profiles_device_time_by_op_family_where_the_backend_can() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let model = fixture("tiny-llama");
    #[rustfmt::skip]
    let out = wgtune(&[
        "bench", "--model", model.to_str().unwrap(), "--device", "wgpu", "--batch-size", "2", "--seq-len", "16",
        "--warmup", "1", "--steps", "2", "--profile-kernels", "--json", json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("device time by op family"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let families = report["kernel_families"].as_array().expect("kernel_families");
    let family = |name: &str| families.iter().find(|f| f["family"] == name).unwrap_or_else(|| panic!("{name} missing: {families:?}"));
    for name in ["matmul", "wgtune WGSL kernels", "element-wise"] {
        assert!(family(name)["ms"].as_f64().unwrap() > 0.0, "{families:?}");
        assert!(family(name)["launches"].as_u64().unwrap() > 0, "{families:?}");
    }
    // Per step: a LoRA step on a 2-layer model launches dozens of matmuls, not twice that.
    let matmuls = family("matmul")["launches"].as_u64().unwrap();
    assert!((20..200).contains(&matmuls), "{matmuls} matmul launches per step");
    assert!(families.iter().all(|f| f["family"] != "other"), "unclassified kernels: {families:?}");
    let log = std::path::PathBuf::from(report["kernel_log"].as_str().expect("kernel_log"));
    // Matmuls are CubeCL's, or on software Vulkan wgtune's own.
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("MatmulEntry") || log_text.contains("WgslMatmul"), "{}", log.display());

    // The CPU backend has no kernel profiler: said, not an error.
    #[rustfmt::skip]
    let out = wgtune(&[
        "bench", "--model", model.to_str().unwrap(), "--device", "cpu", "--batch-size", "2", "--seq-len", "16",
        "--warmup", "0", "--steps", "1", "--profile-kernels",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("only the wgpu backend has a kernel profiler"), "{}", text(&out.stdout));
    let out = wgtune(&["bench", "--model", model.to_str().unwrap(), "--layers", "1", "--device", "cpu"]);
    assert!(!out.status.success() && text(&out.stderr).contains("--layers"), "{}", text(&out.stderr));
}

#[test]
fn errors_name_what_is_wrong_and_exit_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-model");
    let out = wgtune(&["train", "--model", missing.to_str().unwrap(), "--data", "x.jsonl"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no-such-model") && stderr.starts_with("error:"), "{stderr}");

    let out = wgtune(&["train", "--model", fixture("tiny-llama").to_str().unwrap(), "--data", "missing.jsonl", "--device", "cpu"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing.jsonl"), "{}", text(&out.stderr));
}

/// `wgtune demo --task classification` end to end (few steps): zero-shot accuracy, a LoRA
/// classifier, its accuracy, a merged export reloaded with the same classes; then `generate`
/// answers the export with its classes' probabilities and `eval` scores it.
#[test]
fn the_classification_demo_trains_exports_and_answers_with_classes() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("demo");
    let run_s = run.to_str().unwrap();
    // As an installed binary: the demo model and reviews come out of the binary, into the user's
    // data folder (here a fresh one), not from the checkout.
    let data_home = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_wgtune"))
        .args(["demo", "--task", "classification", "--steps", "8", "--device", "cpu", "--output", run_s])
        .env("XDG_DATA_HOME", &data_home)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains("classes: delivery, price, quality, support; held-out accuracy"), "{stdout}");
    assert!(stdout.contains("reloaded from the export: the same 80 classes"), "{stdout}");
    let bundle = std::fs::read_dir(data_home.join("wgtune")).unwrap().next().unwrap().unwrap().path();
    assert!(stdout.contains(&format!("zero-shot: {}", bundle.join("demo-model").display())), "{stdout}");
    assert!(bundle.join("reviews/train.jsonl").is_file());

    let merged = run.join("merged");
    let out = wgtune(&["generate", "--model", merged.to_str().unwrap(), "--prompt", "The parcel came late.", "--device", "cpu"]);
    let answer = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 4, "one line per class: {answer}");
    let total: f64 = lines.iter().map(|l| l.trim().split(' ').next().unwrap().parse::<f64>().unwrap()).sum();
    assert!((total - 100.0).abs() < 0.3, "probabilities sum to 100 %: {answer}");

    let validation = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/reviews/validation.jsonl");
    let out = wgtune(&["eval", "--model", merged.to_str().unwrap(), "--data", validation, "--device", "cpu", "--limit", "8"]);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(report.contains("Macro F1") && report.contains("confusion (base"), "{report}");
}

/// `--preset` sizes the settings to the model and the data; flags given beside it win.
#[test]
fn a_preset_sets_the_starting_point_and_flags_override_it() {
    let _turn = one_run_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let (model, data) = (fixture("tiny-llama"), fixture("data/chat.jsonl"));
    let args = ["train", "--model", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--preset", "quick", "--max-steps", "2"];
    let out = wgtune(&[&args[..], &["--device", "cpu", "--plain", "--output", run.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("preset quick test: rank 8, learning rate 2.0e-3"), "{}", text(&out.stderr));
    let saved = std::fs::read_to_string(run.join("run.toml")).unwrap();
    assert!(saved.contains("rank = 8") && saved.contains("max_steps = 2"), "{saved}");
    let out = wgtune(&["train", "--preset", "balanced", "--data", data.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("--preset sizes its settings to the model and the data"), "{}", text(&out.stderr));
}

/// On a headless shell (no `XDG_RUNTIME_DIR`: SSH, a container, a CI job) a command prints its
/// report and nothing else: not libwayland's complaint from the GPU probe, four times.
#[test]
fn a_headless_shell_sees_no_runtime_folder_noise() {
    let model = fixture("tiny-llama");
    let out = Command::new(env!("CARGO_BIN_EXE_wgtune"))
        .args(["inspect", "--model", model.to_str().unwrap(), "--device", "wgpu"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("architecture"), "{}", text(&out.stdout));
    assert!(!text(&out.stderr).contains("XDG_RUNTIME_DIR"), "{}", text(&out.stderr));
}

/// `inspect --device wgpu` names the adapter's limits that the kernels depend on, checks them
/// against what the kernels need, and says which kernel each operation takes there.
#[test]
fn inspect_shows_the_adapters_limits_and_its_kernels() {
    let model = fixture("tiny-llama");
    let out = wgtune(&["inspect", "--model", model.to_str().unwrap(), "--device", "wgpu"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "invocations per workgroup",
        "storage buffers per stage",
        "kernels need 256 invocations, 16 KiB of workgroup memory, 8 storage buffers: the adapter has them",
        "attention    software shape",
        "f16 matmuls  ",
    ] {
        assert!(stdout.contains(line), "`{line}` is not in:\n{stdout}");
    }
    let out = wgtune(&["inspect", "--model", model.to_str().unwrap(), "--device", "cpu"]);
    assert!(!text(&out.stdout).contains("adapter"), "{}", text(&out.stdout));
}

/// LoRA over a quantized GGUF (Ollama's, LM Studio's) keeps the file's own blocks as its frozen
/// base (Q8_0: int8) and says so; `--base-quant none` still trains over dense weights, and a GGUF
/// of dense weights keeps a dense base.
#[test]
fn a_quantized_gguf_trains_over_its_own_blocks_unless_told_otherwise() {
    let quantized = fixture("gguf/tiny-llama-q8_0.gguf");
    let quantized = quantized.to_str().unwrap();
    let out = wgtune(&["inspect", "--model", quantized, "--device", "cpu"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let note = format!("frozen base: int8, as {quantized} stores it (Q8_0 (GGUF)); --base-quant none trains over dense weights");
    assert!(text(&out.stderr).contains(&note), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("int8 base (estimate)"), "{}", text(&out.stdout));

    let out = wgtune(&["inspect", "--model", quantized, "--device", "cpu", "--base-quant", "none"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("frozen base") && !text(&out.stdout).contains("int8 base"), "{}", text(&out.stdout));

    let dense = fixture("gguf/tiny-llama.gguf");
    let out = wgtune(&["inspect", "--model", dense.to_str().unwrap(), "--device", "cpu"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("frozen base") && !text(&out.stdout).contains(" base (estimate)"), "{}", text(&out.stdout));
}
