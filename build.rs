//! Names the commit a binary was built from (`wgtune --version`): `WGTUNE_COMMIT` where the
//! builder sets it (a source package without `.git`), else git's `HEAD`, else "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=WGTUNE_COMMIT");
    let commit = std::env::var("WGTUNE_COMMIT").ok().filter(|c| !c.trim().is_empty()).or_else(|| {
        // Rebuilt when HEAD moves: a checkout, a commit, a fetch that packs the refs.
        for file in ["HEAD", "packed-refs"] {
            if let Some(path) = git(&["rev-parse", "--git-path", file]) {
                println!("cargo:rerun-if-changed={path}");
            }
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])) {
            println!("cargo:rerun-if-changed={branch}");
        }
        git(&["rev-parse", "--short=10", "HEAD"])
    });
    println!("cargo:rustc-env=WGTUNE_COMMIT={}", commit.as_deref().unwrap_or("unknown").trim());
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
