//! What wgtune does to files that exist: exports and runs never replace them unasked, never
//! touch the model or run they read, leave nothing behind when the disk fills, and a run killed
//! at any point resumes exactly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::harness::{Sandbox, refused, s, succeeds, text, train_args, wgtune};
use crate::common::one_run_at_a_time;

/// A sandbox with a model, a dataset and a finished two-step LoRA run in `run/`.
fn trained() -> (Sandbox, PathBuf, PathBuf) {
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = sandbox.write("d.jsonl", r#"{"prompt": "Hi ", "completion": "Hello."}"#);
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--max-steps", "2"]);
    succeeds("training the run to export", &args);
    (sandbox, model, run)
}

fn export_args<'a>(model: &'a Path, run: &'a Path, flag: &'a str, out: &'a Path) -> Vec<&'a str> {
    vec!["export", "--model", s(model), "--trained", s(run), flag, s(out)]
}

#[test]
fn exports_never_replace_what_exists_unasked() {
    let _turn = one_run_at_a_time();
    let (sandbox, model, run) = trained();
    let busy = sandbox.path("busy");
    sandbox.write("busy/notes.txt", "mine");
    for flag in ["--merged", "--adapter-out"] {
        refused(flag, &sandbox, &export_args(&model, &run, flag, &busy), &[s(&busy), "exists and is not empty", "--overwrite"]);
    }
    let file = sandbox.write("target.txt", "a file");
    refused("a file as the target", &sandbox, &export_args(&model, &run, "--merged", &file), &[s(&file), "is a file"]);

    // The model and run folders, and their parents, are refused even with --overwrite.
    for target in [model.clone(), run.clone(), run.join("final"), sandbox.root().to_path_buf(), model.join("..")] {
        let mut args = export_args(&model, &run, "--merged", &target);
        args.push("--overwrite");
        refused(&format!("export into {}", target.display()), &sandbox, &args, &[s(&target), "which this command reads from"]);
    }
    let mut args = export_args(&model, &run, "--merged", &busy);
    args.extend(["--adapter-out", s(&busy)]);
    refused("one folder for both exports", &sandbox, &args, &["give each its own"]);

    // Asked for, the folder is replaced; an empty one is used as it is.
    let mut args = export_args(&model, &run, "--merged", &busy);
    args.push("--overwrite");
    succeeds("--overwrite", &args);
    assert!(busy.join("model.safetensors").exists() && !busy.join("notes.txt").exists());
    let empty = sandbox.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    succeeds("an empty folder", &export_args(&model, &run, "--adapter-out", &empty));
    assert!(empty.join("adapter_config.json").exists());
    // Inside the run folder is a new folder, not the run.
    succeeds("into the run folder", &export_args(&model, &run, "--merged", &run.join("merged")));
    let leftovers: Vec<_> =
        std::fs::read_dir(sandbox.root()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().contains('.')).collect();
    assert!(leftovers.iter().all(|e| e.file_name() == "d.jsonl" || e.file_name() == "target.txt"), "{leftovers:?}");
}

#[test]
fn a_new_run_never_mixes_with_an_earlier_one() {
    let _turn = one_run_at_a_time();
    let (sandbox, model, run) = trained();
    let data = sandbox.path("d.jsonl");
    std::fs::write(run.join("notes.txt"), "mine").unwrap();
    refused(
        "a new run over an old one",
        &sandbox,
        &train_args(&model, &data, &run),
        &[s(&run), "already holds files", "--resume", "--overwrite"],
    );
    let file = sandbox.write("run.txt", "a file");
    refused("a file as the run folder", &sandbox, &train_args(&model, &data, &file), &[s(&file)]);
    let mut args = train_args(&model, &data, &file);
    args.push("--overwrite");
    refused("a file as the run folder, with --overwrite", &sandbox, &args, &[s(&file), "is a file"]);
    // (A run directory with settings and no checkpoint starts again: see
    // `a_run_killed_before_its_first_checkpoint_resumes_from_the_start`.)
    let missing = sandbox.path("no-run");
    refused("resume of nothing", &sandbox, &["train", "--resume", s(&missing)], &[&missing.join("run.toml").display().to_string()]);

    // --overwrite replaces the earlier run's files and keeps the user's.
    let mut args = train_args(&model, &data, &run);
    args.extend(["--overwrite", "--max-steps", "1"]);
    succeeds("--overwrite", &args);
    assert_eq!(std::fs::read_to_string(run.join("notes.txt")).unwrap(), "mine");
    let (steps, _) = wgtune::train::read_metrics(&run).unwrap();
    assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), [1], "only the new run's steps");
    assert!(wgtune::train::checkpoint::latest(&run).unwrap().ends_with("checkpoint-000001"));
}

/// One writer per run directory: while a run trains, a second run there (`--resume`, or a new
/// one with `--overwrite`) is refused naming the first's pid, and touches nothing; once the first
/// is killed with SIGKILL, its lock file left behind, `--resume` takes the run over.
#[test]
fn a_run_directory_has_one_writer() {
    let _turn = one_run_at_a_time();
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = sandbox.write("d.jsonl", r#"{"prompt": "Hi ", "completion": "Hello."}"#);
    let run = sandbox.path("run");
    let mut args = train_args(&model, &data, &run);
    args.extend(["--max-steps", "1000000", "--save-every", "1"]);
    let mut first = Command::new(env!("CARGO_BIN_EXE_wgtune")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    while wgtune::train::checkpoint::latest(&run).is_none() {
        assert!(started.elapsed().as_secs() < 300, "the first run wrote no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let holder = format!("another wgtune is training in this run directory (pid {}, for ", first.id());
    let before = wgtune::train::read_metrics(&run).unwrap().0.len();
    let out = wgtune(&["train", "--resume", s(&run), "--plain"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&holder), "{}", text(&out.stderr));
    let mut overwrite = train_args(&model, &data, &run);
    overwrite.push("--overwrite");
    let out = wgtune(&overwrite);
    assert!(out.status.code() == Some(1) && text(&out.stderr).contains(&holder), "{}", text(&out.stderr));
    // The first run went on: its metrics were not cleared.
    assert!(wgtune::train::read_metrics(&run).unwrap().0.len() >= before);

    first.kill().unwrap();
    first.wait().unwrap();
    assert!(run.join(wgtune::train::LOCK_FILE).exists(), "SIGKILL leaves the lock file");
    let last = wgtune::train::checkpoint::latest(&run).unwrap();
    let step: usize = last.file_name().unwrap().to_str().unwrap()["checkpoint-".len()..].parse().unwrap();
    let resumed = (step + 2).to_string();
    succeeds("resume after the kill", &["train", "--resume", s(&run), "--max-steps", &resumed, "--plain"]);
    assert!(!run.join(wgtune::train::LOCK_FILE).exists(), "the lock is gone with the run");
}

#[test]
fn leftovers_of_a_killed_write_are_cleaned_up() {
    let _turn = one_run_at_a_time();
    let (sandbox, model, run) = trained();
    // What a kill mid-checkpoint and mid-publish leave.
    sandbox.write("run/checkpoint-000003.partial/optimizer.safetensors", "half");
    sandbox.write("run/final.old/adapter_model.safetensors", "old");
    let mut args = vec!["train", "--resume", s(&run), "--max-steps", "3"];
    args.push("--plain");
    succeeds("resume", &args);
    let names: Vec<String> = std::fs::read_dir(&run).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial") && !n.ends_with(".old")), "{names:?}");
    let merged = sandbox.path("merged.partial");
    std::fs::create_dir_all(&merged).unwrap();
    succeeds("export over a leftover", &["export", "--model", s(&model), "--trained", s(&run), "--merged", s(&sandbox.path("merged"))]);
    assert!(!merged.exists());
}

/// A small tmpfs, so that writes fail for lack of space. Mounting needs root (CI runs as root);
/// `WGTUNE_TEST_NO_TMPFS=1` leaves these cases out on purpose where it cannot mount.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(bytes: usize) -> Option<Self> {
        if std::env::var_os("WGTUNE_TEST_NO_TMPFS").is_some() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", s(dir.path())]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot mount a tmpfs (needs root); set WGTUNE_TEST_NO_TMPFS=1 to leave the full-disk cases out"
        );
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(self.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_with_the_path_and_leaves_nothing_behind() {
    let _turn = one_run_at_a_time();
    // The tiny model's weights are 380 kB: they do not fit in 256 KiB.
    let Some(disk) = SmallDisk::mount(256 << 10) else { return };
    let (sandbox, model, run) = trained();
    let out = disk.path().join("merged");
    let stderr = refused("export to a full disk", &sandbox, &export_args(&model, &run, "--merged", &out), &["No space left on device"]);
    assert!(stderr.contains(s(disk.path())), "{stderr}");
    assert_eq!(disk.entries(), Vec::<String>::new(), "nothing left on the full disk");

    // A run whose checkpoint does not fit fails naming it, and leaves no half-written checkpoint.
    let data = sandbox.path("d.jsonl");
    let full_run = disk.path().join("run");
    let mut args = train_args(&model, &data, &full_run);
    // Rank 32 on every projection: 256 KiB of adapter and 512 KiB of AdamW moments.
    args.extend(["--rank", "32"]);
    refused("a checkpoint on a full disk", &sandbox, &args, &["No space left on device"]);
    let names: Vec<String> =
        std::fs::read_dir(&full_run).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
}

/// `kill -9` at a random moment, then `--resume`: the weights and losses are those of the run
/// that was never interrupted.
#[test]
fn a_killed_run_resumes_exactly() {
    let _turn = one_run_at_a_time();
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = crate::common::fixture("data/chat.jsonl");
    let args = |run: &Path| -> Vec<String> {
        #[rustfmt::skip]
        let args = [
            "train", "--model", s(&model), "--data", s(&data), "--output", s(run), "--device", "cpu", "--max-steps", "30",
            "--save-every", "3", "--keep-checkpoints", "2", "--rank", "4", "--lora-dropout", "0.1", "--batch-size", "2", "--plain",
        ];
        args.iter().map(|a| a.to_string()).collect()
    };
    let whole = sandbox.path("whole");
    succeeds("the uninterrupted run", &args(&whole).iter().map(String::as_str).collect::<Vec<_>>());

    let killed = sandbox.path("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgtune")).args(args(&killed)).stdout(std::process::Stdio::null()).spawn().unwrap();
    // Kill as soon as the second checkpoint exists: mid-run, often mid-write.
    let started = std::time::Instant::now();
    while !killed.join("checkpoint-000006").exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("final").exists(), "the run was killed before it ended");
    succeeds("resume", &["train", "--resume", s(&killed), "--plain"]);

    let read = |run: &Path| std::fs::read(run.join("final/adapter_model.safetensors")).unwrap();
    assert!(read(&whole) == read(&killed), "the resumed run's weights differ from the uninterrupted run's");
    let losses = |run: &Path| wgtune::train::read_metrics(run).unwrap().0.iter().map(|s| (s.step, s.loss)).collect::<Vec<_>>();
    assert_eq!(losses(&whole), losses(&killed));
}

/// A run killed in its first seconds leaves its settings (`run.toml`), a few metrics lines and
/// perhaps a half-written first checkpoint: `--resume` starts it again from step 0 with those
/// settings, says so, and ends with the weights and losses of a run never interrupted.
#[test]
fn a_run_killed_before_its_first_checkpoint_resumes_from_the_start() {
    let _turn = one_run_at_a_time();
    let sandbox = Sandbox::new();
    let model = sandbox.model();
    let data = crate::common::fixture("data/chat.jsonl");
    let whole = sandbox.path("whole");
    #[rustfmt::skip]
    let args = [
        "train", "--model", s(&model), "--data", s(&data), "--output", s(&whole), "--device", "cpu", "--max-steps", "6",
        "--save-every", "3", "--rank", "4", "--lora-dropout", "0.1", "--batch-size", "2", "--plain",
    ];
    succeeds("the uninterrupted run", &args);

    // What the killed run left: its settings, its first two steps' metrics, a checkpoint cut short.
    let early = sandbox.path("early");
    std::fs::create_dir_all(early.join("checkpoint-000003.partial")).unwrap();
    std::fs::copy(whole.join("run.toml"), early.join("run.toml")).unwrap();
    let metrics = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    let first_steps: String = metrics.lines().take(2).map(|line| format!("{line}\n")).collect();
    std::fs::write(early.join("metrics.jsonl"), first_steps).unwrap();
    std::fs::write(early.join("checkpoint-000003.partial/adapter_model.safetensors"), b"cut short").unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_wgtune")).args(["train", "--resume", s(&early), "--plain"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let said = format!("{} has no checkpoint yet (the run stopped before its first): starting it again from step 0", early.display());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&said) || stderr.contains(&said), "{stdout}\n{stderr}");

    let read = |run: &Path| std::fs::read(run.join("final/adapter_model.safetensors")).unwrap();
    assert!(read(&whole) == read(&early), "the restarted run's weights differ from the uninterrupted run's");
    let losses = |run: &Path| wgtune::train::read_metrics(run).unwrap().0.iter().map(|s| (s.step, s.loss)).collect::<Vec<_>>();
    assert_eq!(losses(&whole), losses(&early));
    let names: Vec<String> = std::fs::read_dir(&early).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
}
