//! One writer per run directory. A training run (from the CLI or the app) holds an operating
//! system lock on `RUN_DIR/.wgtune-lock` while it runs, and a second run there (a new one, an
//! `--overwrite`, a `--resume`) is refused with the holder's pid instead of interleaving its
//! checkpoints. The lock is the OS's (`flock`, `LockFileEx`): it goes with the process however it
//! ends, so a run killed with `kill -9` leaves no lock that blocks its `--resume`; the file's
//! text (pid, start time) only names the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file in a run directory.
pub const LOCK_FILE: &str = ".wgtune-lock";

/// A held lock on a run directory; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Locks `run_dir` (which must exist) for this process, or names the process that holds it.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(LOCK_FILE);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::invalid_file(
                    run_dir,
                    format!(
                        "another wgtune is training in this run directory ({}); wait for it to end or stop it, or choose another --output",
                        describe_holder(&holder)
                    ),
                ));
            }
            // Where the platform has no file locks (a browser's storage), one writer is the page.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let text = format!("pid {}\nstarted {}\n", std::process::id(), unix_seconds());
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(text.as_bytes())).map_err(|e| Error::io(&path, e))?;
        Ok(Self { file, path })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // The file first, while the lock still keeps a second run from opening it as its own.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// "pid 1234, for 5 minutes" from the lock file's text.
fn describe_holder(text: &str) -> String {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let pid = field("pid ").unwrap_or("unknown");
    match field("started ").and_then(|s| s.parse::<u64>().ok()) {
        Some(since) => {
            let seconds = unix_seconds().saturating_sub(since);
            let how_long = match seconds {
                0..120 => format!("{seconds} s"),
                120..7200 => format!("{} min", seconds / 60),
                _ => format!("{} h", seconds / 3600),
            };
            format!("pid {pid}, for {how_long}")
        }
        None => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("another wgtune is training in this run directory (pid {}, for ", std::process::id())), "{err}");
        drop(held);
        assert!(!dir.path().join(LOCK_FILE).exists());
        // A lock file left by a process that died (its OS lock went with it) does not block.
        std::fs::write(dir.path().join(LOCK_FILE), "pid 999999\nstarted 0\n").unwrap();
        let again = RunLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.lines().next(), Some(format!("pid {}", std::process::id()).as_str()));
        drop(again);
    }
}
