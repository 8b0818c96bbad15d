//! What the packages carry (packaging/, pyproject.toml, Cargo.toml's package metadata) agrees with
//! the binary: one version everywhere, one app id, an icon of every size it claims, a manual page
//! that names every command. `scripts/smoke_packages.sh` installs the packages themselves.

use std::path::{Path, PathBuf};
use std::process::Command;

const APP_ID: &str = "io.github.wgtune.wgtune";
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of `key=` in a desktop entry.
fn desktop_key<'a>(entry: &'a str, key: &str) -> &'a str {
    entry.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('=')).unwrap_or_else(|| panic!("no {key} in the desktop entry"))
}

#[test]
fn every_package_file_names_this_version() {
    let metainfo = read(&format!("packaging/{APP_ID}.metainfo.xml"));
    let newest_release = metainfo.split("<release ").nth(1).expect("a <release> in the metainfo");
    assert!(newest_release.starts_with(&format!("version=\"{VERSION}\"")), "metainfo's newest release: {newest_release}");
    let changelog = read("packaging/changelog");
    assert!(changelog.starts_with(&format!("wgtune ({VERSION}-1) ")), "packaging/changelog: {}", changelog.lines().next().unwrap());
    assert!(read("packaging/wgtune.1").contains(&format!("\"wgtune {VERSION}\"")), "packaging/wgtune.1's header");
    for config in ["packaging/packager.json", "packaging/packager-windows.json"] {
        let json: serde_json::Value = serde_json::from_str(&read(config)).unwrap();
        assert_eq!(json["version"], VERSION, "{config}");
        assert_eq!(json["identifier"], APP_ID, "{config}");
    }
    // The wheel takes Cargo's version (maturin), so pyproject.toml must not name one.
    let pyproject = read("pyproject.toml");
    assert!(pyproject.contains("dynamic = [\"version\"]") && !pyproject.contains("\nversion ="), "pyproject.toml");
}

#[test]
fn the_desktop_entry_opens_the_app_under_the_app_id() {
    let entry = read(&format!("packaging/{APP_ID}.desktop"));
    assert_eq!(desktop_key(&entry, "Exec"), "wgtune gui");
    assert_eq!(desktop_key(&entry, "Icon"), APP_ID);
    assert_eq!(desktop_key(&entry, "Type"), "Application");
    assert_eq!(desktop_key(&entry, "Terminal"), "false");
    let metainfo = read(&format!("packaging/{APP_ID}.metainfo.xml"));
    assert!(metainfo.contains(&format!("<id>{APP_ID}</id>")));
    assert!(metainfo.contains(&format!("<launchable type=\"desktop-id\">{APP_ID}.desktop</launchable>")));
    assert!(read("src/gui/mod.rs").contains(&format!("APP_ID: &str = \"{APP_ID}\"")), "the window's app id");
    // The screenshots the metainfo shows are the README's.
    for shot in metainfo.split("<image>").skip(1) {
        let name = shot.split("</image>").next().unwrap().rsplit('/').next().unwrap();
        assert!(repo("assets/screenshots").join(name).is_file(), "{name}");
    }
}

#[test]
fn every_icon_is_the_size_its_folder_names() {
    let sizes = [16, 24, 32, 48, 64, 128, 256, 512];
    for size in sizes {
        let path = repo(&format!("packaging/icons/hicolor/{size}x{size}/apps/{APP_ID}.png"));
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (size, size), "{}", path.display());
    }
    let svg = read(&format!("packaging/icons/{APP_ID}.svg"));
    assert!(svg.contains("viewBox=\"0 0 256 256\""));
}

#[test]
fn the_manual_page_names_every_command() {
    let manual = read("packaging/wgtune.1");
    let help = Command::new(env!("CARGO_BIN_EXE_wgtune")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1) // the rest of the "Commands:" line
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .collect();
    assert!(commands.len() >= 8, "{help}");
    for command in commands {
        assert!(manual.contains(&format!(".B {command}\n")), "packaging/wgtune.1 does not document `{command}`");
    }
}

#[test]
fn version_names_the_version_and_the_commit() {
    let out = Command::new(env!("CARGO_BIN_EXE_wgtune")).arg("--version").output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success());
    let commit = printed.strip_prefix(&format!("wgtune {VERSION} (commit ")).and_then(|rest| rest.strip_suffix(')'));
    let commit = commit.unwrap_or_else(|| panic!("--version printed {printed:?}"));
    // A checkout names its commit; a source tree without git says so.
    let head = Command::new("git").args(["rev-parse", "--short=10", "HEAD"]).current_dir(repo(".")).output();
    match head {
        Ok(head) if head.status.success() && std::env::var_os("WGTUNE_COMMIT").is_none() => {
            assert_eq!(commit, String::from_utf8_lossy(&head.stdout).trim())
        }
        _ => assert!(!commit.is_empty()),
    }
}
