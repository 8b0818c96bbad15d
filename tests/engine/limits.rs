//! Runs on wgpu devices opened with less than the adapter offers (`WGTUNE_WGPU_LIMITS`): WebGPU's
//! default limits, wgpu's downlevel ones (four storage buffers per stage: the WGSL kernels give
//! way to Burn's operations), and a storage binding lowered below the tiny model's vocabulary
//! table (split to fit) and below what full fine-tuning or a wide batch would bind (refused
//! before training, naming the limit and what fits). Each run is its own process: wgpu opens
//! once per process.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{fixture, text};

/// `wgtune train` of the tiny Llama on the chat data, on wgpu with `limits` (none: the
/// adapter's), into `run`.
fn train(limits: Option<&str>, run: &Path, extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wgtune"));
    command.args(["train", "--model", fixture("tiny-llama").to_str().unwrap(), "--data", fixture("data/chat.jsonl").to_str().unwrap()]);
    command.args(["--device", "wgpu", "--max-steps", "3", "--rank", "4", "--max-seq-len", "64", "--plain"]);
    command.arg("--output").arg(run).args(extra);
    if !extra.contains(&"--batch-size") {
        command.args(["--batch-size", "1"]);
    }
    command.env_remove("WGTUNE_WGPU_LIMITS");
    if let Some(limits) = limits {
        command.env("WGTUNE_WGPU_LIMITS", limits);
    }
    command.output().expect("run wgtune")
}

/// The training losses of a run, step by step, from its `metrics.jsonl`.
fn losses(run: &Path) -> Vec<f64> {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    metrics
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|record| record.get("loss")?.as_f64())
        .collect()
}

fn assert_same_losses(what: &str, got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), 3, "{what}: {got:?}");
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() <= 1e-4 * e.abs().max(1.0), "{what}: losses {got:?}, expected {expected:?}");
    }
}

/// The device is opened with the limits asked for, and says so.
#[test]
fn the_device_has_the_limits_asked_for() {
    let model = fixture("tiny-llama");
    let out = Command::new(env!("CARGO_BIN_EXE_wgtune"))
        .args(["inspect", "--model", model.to_str().unwrap(), "--device", "wgpu"])
        .env("WGTUNE_WGPU_LIMITS", "webgpu")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in [
        "WebGPU's default limits",
        "256 invocations per workgroup, 16 KiB of workgroup memory, 8 storage buffers per stage, bindings up to 128.0 MiB, buffers up to 256.0 MiB",
        "the adapter has them",
    ] {
        assert!(stdout.contains(line), "`{line}` is not in:\n{stdout}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_wgtune"))
        .args(["inspect", "--model", model.to_str().unwrap(), "--device", "wgpu"])
        .env("WGTUNE_WGPU_LIMITS", "webgl")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("WGTUNE_WGPU_LIMITS=webgl: `webgl`: expected adapter, webgpu or downlevel"),
        "{}",
        text(&out.stderr)
    );
}

/// A binding of 64 KiB is smaller than the tied vocabulary table (320 × 64 × 4 bytes = 80 KiB):
/// the embedding is looked up on the host and the head multiplies in two blocks, and LoRA trains
/// to the same losses as on the full adapter; generation from the run gives the same text.
#[test]
fn a_table_past_the_binding_is_split_and_trains_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (full, lowered) = (dir.path().join("full"), dir.path().join("lowered"));
    let out = train(None, &full, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = train(Some("webgpu,storage-binding=64KiB"), &lowered, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_same_losses("64 KiB bindings", &losses(&lowered), &losses(&full));

    let generate = |limits: Option<&str>, run: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wgtune"));
        command.args(["generate", "--model", fixture("tiny-llama").to_str().unwrap(), "--device", "wgpu"]);
        command.args(["--prompt", "What is wgtune?", "--max-new-tokens", "6", "--temperature", "0"]).arg("--trained").arg(run);
        command.env_remove("WGTUNE_WGPU_LIMITS");
        if let Some(limits) = limits {
            command.env("WGTUNE_WGPU_LIMITS", limits);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(generate(Some("webgpu,storage-binding=64KiB"), &lowered), generate(None, &full));
}

/// What cannot be split is refused before training, naming the tensor, the limit and the
/// setting that fits: full fine-tuning trains the table whole, and a wide batch's activations
/// are one tensor each.
#[test]
fn what_cannot_be_split_is_refused_with_the_setting_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(Some("webgpu,storage-binding=64KiB"), &dir.path().join("full"), &["--method", "full"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("`model.embed_tokens.weight` [320, 64] takes 80.0 KiB as one tensor, more than the 64.0 KiB one storage binding holds on llvmpipe")
            || stderr.contains("`model.embed_tokens.weight` [320, 64] takes 80.0 KiB as one tensor, more than the 64.0 KiB one storage binding holds on SwiftShader"),
        "{stderr}"
    );
    assert!(stderr.contains("(its max_storage_buffer_binding_size): with --method lora every tensor fits"), "{stderr}");
    assert!(!dir.path().join("full/metrics.jsonl").exists(), "refused before training");

    // Four sequences of up to 64 tokens: the gate and up product is [256, 256] f32, 256 KiB.
    let out = train(Some("webgpu,storage-binding=64KiB"), &dir.path().join("wide"), &["--batch-size", "4"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("`the gate and up projections' product` [256, 256] takes 256.0 KiB as one tensor"), "{stderr}");
    assert!(stderr.contains("with --batch-size 1 every tensor fits"), "{stderr}");
}

/// wgpu's downlevel limits (four storage buffers per stage) are short of what the WGSL kernels
/// need: every operation takes Burn's, which CubeCL sizes to the adapter, and LoRA trains to the
/// fused kernels' losses (without dropout, whose masks the two draw from different generators).
#[test]
fn downlevel_limits_train_with_burns_operations() {
    let dir = tempfile::tempdir().unwrap();
    let (full, downlevel) = (dir.path().join("full"), dir.path().join("downlevel"));
    let out = train(None, &full, &["--lora-dropout", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = train(Some("downlevel"), &downlevel, &["--lora-dropout", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_same_losses("downlevel limits", &losses(&downlevel), &losses(&full));

    let out = train(Some("downlevel"), &dir.path().join("packed"), &["--base-quant", "int4"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("a packed base runs only in the WGSL kernels"), "{stderr}");
    assert!(stderr.contains("4 storage buffers per stage (the kernels need 8): use --base-quant none"), "{stderr}");
}
