//! A private runtime folder where the session has none. On Linux, wgpu's probe of the machine
//! looks for a Wayland display, and libwayland prints `error: XDG_RUNTIME_DIR is invalid or not
//! set in the environment.` (once per probe, four times a run) on a headless shell: SSH, a
//! container, a CI job. It reads as a failure and is none. Without a runtime folder there is no
//! Wayland display to find, so a fresh, empty one changes nothing but the noise.

/// Sets `XDG_RUNTIME_DIR` to `wgtune-runtime-UID` in the temporary folder (created, owner only)
/// when it is unset or not a folder. Call it first thing in `main`, before any thread starts.
#[cfg(target_os = "linux")]
pub fn ensure_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};

    let current = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty());
    if current.is_some_and(|dir| std::path::Path::new(&dir).is_dir()) {
        return;
    }
    let Ok(uid) = std::fs::metadata("/proc/self").map(|process| process.uid()) else { return };
    let dir = std::env::temp_dir().join(format!("wgtune-runtime-{uid}"));
    // Made now, or by an earlier run; either way only a folder of this user's own, closed to
    // everyone else, stands in for the session's.
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let ours = std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0);
    if ours {
        // SAFETY: called at the start of `main`, before any thread exists that could read the
        // environment at the same time.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

#[cfg(not(target_os = "linux"))]
pub fn ensure_runtime_dir() {}
