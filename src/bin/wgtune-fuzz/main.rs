//! `wgtune-fuzz`: a mutation fuzzer for the parsers of files that strangers write (GGUF,
//! safetensors and their index, PEFT adapter configs, chat templates, datasets in every format,
//! `run.toml`, Ollama manifests), on stable Rust and with no dependency beyond the library's.
//! Each case is a seed file (the test fixtures) with a few mutations, written into a scratch
//! folder laid out like the real thing and handed to the library; a panic, a case that runs past
//! the time bound, or memory past the bound is a finding, saved with its message under the
//! output folder; a case that aborts the process stays in the output folder's `scratch-PID`.
//! `scripts/fuzz.sh` runs every target for a set time. Built with the `fuzz` feature.
//!
//! Usage: wgtune-fuzz TARGET [--seconds N] [--seed N] [--out DIR] [--hang-seconds N] [--memory-mib N]

mod mutate;
mod targets;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use targets::{NAMES, Target};

struct Options {
    target: String,
    seconds: u64,
    seed: u64,
    out: PathBuf,
    hang_seconds: u64,
    memory_mib: u64,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let target = args.next().ok_or_else(|| format!("name a target: {}", NAMES.join(", ")))?;
    let mut options = Options { target, seconds: 60, seed: 1, out: "target/fuzz".into(), hang_seconds: 10, memory_mib: 4096 };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| format!("{flag}: `{value}` is not a number"));
        match flag.as_str() {
            "--seconds" => options.seconds = number()?,
            "--seed" => options.seed = number()?,
            "--hang-seconds" => options.hang_seconds = number()?,
            "--memory-mib" => options.memory_mib = number()?,
            "--out" => options.out = value.into(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !NAMES.contains(&options.target.as_str()) {
        return Err(format!("no target `{}` ({})", options.target, NAMES.join(", ")));
    }
    Ok(options)
}

/// The case being run, for the watchdog: its bytes, file name and start.
#[derive(Default)]
struct Current {
    bytes: Vec<u8>,
    name: String,
    started: Option<Instant>,
}

/// Saves a finding's input and message as `DIR/KIND-HASH.EXT` and `.txt`; returns the input's path.
fn save(dir: &Path, kind: &str, case_name: &str, bytes: &[u8], message: &str) -> PathBuf {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let extension = Path::new(case_name).extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let path = dir.join(format!("{kind}-{hash:016x}.{extension}"));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, bytes);
    let _ = std::fs::write(path.with_extension("txt"), format!("{case_name}\n{message}\n"));
    path
}

/// The process's resident memory, from `/proc/self/statm` (Linux); 0 elsewhere.
fn resident_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096 / (1 << 20)
}

/// Ends the process when a case runs past `hang` or memory passes `memory_mib`, saving the case.
fn watchdog(current: Arc<Mutex<Current>>, dir: PathBuf, hang: Duration, memory_mib: u64) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let current = current.lock().unwrap_or_else(|e| e.into_inner());
            let Some(started) = current.started else { continue };
            let (kind, message) = if started.elapsed() > hang {
                ("hang", format!("still running after {} s", hang.as_secs()))
            } else if resident_mib() > memory_mib {
                ("memory", format!("{} MiB resident, past {memory_mib}", resident_mib()))
            } else {
                continue;
            };
            let path = save(&dir, kind, &current.name, &current.bytes, &message);
            eprintln!("finding: {kind}: {message}: {}", path.display());
            std::process::exit(3);
        }
    });
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Under the output folder: a case that aborts the process (an allocation that fails aborts
    // rather than panics) stays there for the script to report.
    let scratch = options.out.join(format!("scratch-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&scratch);
    let target = Target::prepare(NAMES.iter().find(|n| **n == options.target).copied().unwrap_or("gguf"), &scratch);
    let findings_dir = options.out.join(target.name);
    let current = Arc::new(Mutex::new(Current::default()));
    watchdog(current.clone(), findings_dir.clone(), Duration::from_secs(options.hang_seconds), options.memory_mib);

    // A panic's message and place, kept for the finding instead of printed.
    let last_panic = Arc::new(Mutex::new(String::new()));
    let hook_panic = last_panic.clone();
    std::panic::set_hook(Box::new(move |info| {
        let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let message =
            info.payload().downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| info.payload().downcast_ref::<String>().cloned());
        *hook_panic.lock().unwrap_or_else(|e| e.into_inner()) = format!("{place}: {}", message.unwrap_or_default());
    }));

    let mut mutator = mutate::Mutator::new(options.seed);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let (mut executions, mut found) = (0u64, BTreeSet::new());
    while Instant::now() < deadline {
        let i = mutator.below(target.seeds.len());
        let other = &target.seeds[mutator.below(target.seeds.len())];
        let bytes = if executions < target.seeds.len() as u64 { target.seeds[i].clone() } else { mutator.mutate(&target.seeds[i], other) };
        let path = target.case_path(i);
        if std::fs::write(&path, &bytes).is_err() {
            continue;
        }
        let name = path.strip_prefix(&scratch).unwrap_or(&path).display().to_string();
        *current.lock().unwrap_or_else(|e| e.into_inner()) =
            Current { bytes: bytes.clone(), name: name.clone(), started: Some(Instant::now()) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target.run(&path)));
        current.lock().unwrap_or_else(|e| e.into_inner()).started = None;
        executions += 1;
        if outcome.is_err() {
            let message = last_panic.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // One input per distinct panic site.
            let site = message.split(": ").next().unwrap_or_default().to_string();
            if found.insert(site) {
                let saved = save(&findings_dir, "panic", &name, &bytes, &message);
                eprintln!("finding: panic: {message}: {}", saved.display());
            }
        }
    }
    let seconds = options.seconds.max(1);
    println!(
        "{}: {executions} executions in {seconds} s ({} a second), {} distinct panic{}",
        target.name,
        executions / seconds,
        found.len(),
        if found.len() == 1 { "" } else { "s" }
    );
    let _ = std::fs::remove_dir_all(&scratch);
    if found.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
