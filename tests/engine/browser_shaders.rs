//! Every kernel variant through Chrome's WebGPU compiler (Dawn's Tint), in headless Chromium on
//! SwiftShader's WebGPU adapter: `createShaderModule`, `getCompilationInfo` and
//! `createComputePipelineAsync` for each, on a device with WebGPU's default limits, as a page gets
//! one. Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`), so
//! nothing listens on a port.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wgtune::kernels::every_kernel_variant;

use crate::shaders::tools_required;

/// Headless Chromium, spoken to over the DevTools protocol.
struct Chromium {
    child: Child,
    commands: std::io::PipeWriter,
    replies: BufReader<std::io::PipeReader>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts `chromium` (or `$WGTUNE_CHROMIUM`) with WebGPU on SwiftShader; `None` where it is not
    /// installed.
    fn start() -> Option<Self> {
        let binary = std::env::var("WGTUNE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        Command::new(&binary).arg("--version").output().ok().filter(|o| o.status.success())?;
        let profile = tempfile::tempdir().unwrap();
        let (ours_read, theirs_write) = std::io::pipe().unwrap();
        let (theirs_read, ours_write) = std::io::pipe().unwrap();
        let mut command = Command::new(&binary);
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--enable-unsafe-webgpu",
                "--use-webgpu-adapter=swiftshader",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // The protocol's pipe: Chromium reads commands from fd 3 and writes replies to fd 4.
        let (read_fd, write_fd) = (std::os::fd::AsRawFd::as_raw_fd(&theirs_read), std::os::fd::AsRawFd::as_raw_fd(&theirs_write));
        // SAFETY: dup2 is async-signal-safe, and only it runs between fork and exec. The pipe's
        // ends go through fds out of the way first, so that neither lands on the other's target.
        unsafe {
            command.pre_exec(move || {
                for (from, to) in [(read_fd, 100), (write_fd, 101), (100, 3), (101, 4)] {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop((theirs_read, theirs_write));
        Some(Self { child, commands: ours_write, replies: BufReader::new(ours_read), next_id: 1, _profile: profile })
    }

    /// Sends `method` (to the page's `session` when given) and returns its result, skipping the
    /// events that arrive before it.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.commands.write_all(message.to_string().as_bytes()).unwrap();
        self.commands.write_all(b"\0").unwrap();
        loop {
            let mut bytes = Vec::new();
            let read = self.replies.read_until(b'\0', &mut bytes).unwrap();
            assert!(read > 0, "Chromium closed the DevTools pipe during {method}");
            bytes.pop();
            let reply: Value = serde_json::from_slice(&bytes).unwrap();
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page: compiles each of `variants` (label, WGSL, needs f16) on a device with the default
/// limits and resolves `window.report` to every message, per variant.
fn page(variants: &Value) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><script>
const VARIANTS = {variants};
window.report = (async () => {{
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return {{error: "no WebGPU adapter"}};
  const f16 = adapter.features.has("shader-f16");
  const device = await adapter.requestDevice({{requiredFeatures: f16 ? ["shader-f16"] : []}});
  const results = [];
  for (const v of VARIANTS) {{
    if (v.f16 && !f16) {{ results.push({{label: v.label, skipped: "no shader-f16 on this adapter"}}); continue; }}
    const messages = [];
    device.pushErrorScope("validation");
    const module = device.createShaderModule({{code: v.wgsl}});
    for (const m of (await module.getCompilationInfo()).messages) messages.push(`${{m.type}} at ${{m.lineNum}}:${{m.linePos}}: ${{m.message}}`);
    try {{ await device.createComputePipelineAsync({{layout: "auto", compute: {{module}}}}); }}
    catch (e) {{ messages.push(`error: createComputePipeline: ${{e.message}}`); }}
    const scope = await device.popErrorScope();
    if (scope) messages.push(`error: ${{scope.message}}`);
    results.push({{label: v.label, messages}});
  }}
  const info = adapter.info || {{}};
  return {{adapter: `${{info.vendor}} ${{info.architecture}}`, results}};
}})().then(r => JSON.stringify(r), e => JSON.stringify({{error: String(e)}}));
</script>"#
    )
}

#[test]
fn every_kernel_variant_compiles_in_chromes_webgpu_and_a_planted_error_is_caught() {
    let Some(mut chromium) = Chromium::start() else {
        assert!(!tools_required(), "Chromium is not installed (apt-get install chromium)");
        eprintln!("Chromium is not installed (apt-get install chromium): Chrome's WebGPU compiler was not tried");
        return;
    };
    // A watchdog: a compiler that hangs fails the test instead of holding CI.
    let pid = chromium.child.id();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(900));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });

    // The attention kernels at the head dimensions of the fixtures and of the families' real
    // models, the extremes included: SwiftShader compiles a pipeline in about a second, too slow
    // for all 64. What the head dimension changes (array and tile sizes) is checked for every one
    // against WebGPU's limits in shaders.rs.
    let tried = |label: &str| match label.split_once(" head_dim=") {
        Some((_, dim)) => ["4", "8", "16", "32", "64", "80", "92", "96", "128", "256"].contains(&dim),
        None => true,
    };
    let mut variants: Vec<Value> = every_kernel_variant()
        .iter()
        .filter(|v| tried(&v.label))
        .map(|v| json!({"label": v.label, "wgsl": v.wgsl, "f16": v.needs_f16}))
        .collect();
    let planted = variants.iter().find(|v| v["label"] == "swiglu_forward").unwrap()["wgsl"].as_str().unwrap().to_string();
    let planted = planted.replacen("let ", "let planted_error: u32 = 1.5; let ", 1);
    variants.push(json!({"label": "planted error", "wgsl": planted, "f16": false}));

    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("shaders.html");
    std::fs::write(&html, page(&Value::Array(variants.clone()))).unwrap();
    let target = chromium.call(None, "Target.createTarget", json!({"url": format!("file://{}", html.display())}));
    let attached = chromium.call(None, "Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}));
    let session = attached["sessionId"].as_str().unwrap().to_string();
    // The page's script runs once it has loaded: wait for `window.report` to exist, then for it.
    let mut report = Value::Null;
    for _ in 0..600 {
        let evaluated = chromium.call(
            Some(&session),
            "Runtime.evaluate",
            json!({"expression": "window.report", "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(text) = evaluated["result"]["value"].as_str() {
            report = serde_json::from_str(text).unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(report.get("error").is_none() && !report.is_null(), "{report}");
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), variants.len());

    let errors = |r: &Value| -> Vec<String> {
        r["messages"]
            .as_array()
            .map_or(Vec::new(), |m| m.iter().filter_map(|m| m.as_str()).filter(|m| m.starts_with("error")).map(String::from).collect())
    };
    let (planted, kernels) = results.split_last().unwrap();
    assert!(!errors(planted).is_empty(), "Chrome took the planted error: {planted}");
    let failures: Vec<String> =
        kernels.iter().filter(|r| !errors(r).is_empty()).map(|r| format!("{}: {}", r["label"], errors(r).join("; "))).collect();
    let compiled = kernels.iter().filter(|r| r.get("skipped").is_none()).count();
    eprintln!(
        "Chrome's WebGPU ({}): {compiled} of {} kernel variants compiled, the rest skipped (no shader-f16)",
        report["adapter"],
        kernels.len()
    );
    assert!(failures.is_empty(), "{} variants fail in Chrome's WebGPU:\n{}", failures.len(), failures.join("\n"));
    assert!(compiled + 4 >= kernels.len(), "only {compiled} of {} compiled", kernels.len());
}
