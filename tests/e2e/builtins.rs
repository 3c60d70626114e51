//! Issue 12 (built-ins travel with the binary): the plugins of plugins/ are
//! compiled into chaos-host, named by name, from any directory.

use crate::util::*;
use sha2::{Digest, Sha256};
use std::process::Command;

/// The five built-ins: every crate under plugins/.
fn builtin_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("plugins"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn builtin_by_name_runs_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .current_dir(dir.path())
        .args(["run", "--plugin", "partition_minority", "--cycles", "1"])
        .args(["--writes", "20", "--settle-ms", "300", "--out"])
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_LOG", "warn")
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["classes"][0]["fault"], "partition_minority",
        "{summary}"
    );
    // The embedded campaign keeps its assertion: the built-in convergence.
    let cycles = std::fs::read_to_string(out.join("cycles.jsonl")).unwrap();
    assert!(cycles.contains("\"plugin\":\"convergence@"), "{cycles}");
    // run.json saves the name, so a resume finds the same built-in.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(saved["plugin"][0], "partition_minority");
    assert!(
        !dir.path().join("chaos.lock").exists(),
        "no OCI reference, no lock"
    );
    assert_nothing_left(dir.path(), run_id(&stderr).as_deref());
}

#[test]
fn plugin_list_shows_every_builtin_with_the_sha256_of_host_builtins() {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["plugin", "list"])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let names = builtin_names();
    // Every plugin crate under plugins/ is a built-in.
    let crates = std::fs::read_dir(root().join("plugins"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .count();
    assert_eq!(names.len(), crates, "{names:?}");
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        let file = root()
            .join("crates/builtins/wasm")
            .join(format!("{name}.wasm"));
        let sha: String = Sha256::digest(std::fs::read(&file).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{row}");
        assert!(["fault", "assertion"].contains(&cols[1]), "{row}");
        assert!(cols[3].starts_with("0."), "contract: {row}");
        assert_eq!(
            cols[5], sha,
            "{name}: listed sha256 is not crates/builtins/wasm' file"
        );
    }
}

#[test]
fn an_unknown_plugin_name_is_one_error_listing_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let run = chaos(dir.path(), &["run", "--plugin", "partition_majority"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("chaos-host: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    let e = errors[0];
    assert!(
        e.starts_with(
            "chaos-host: error: --plugin \"partition_majority\": no built-in plugin has that name"
        ),
        "{e}"
    );
    for name in builtin_names() {
        assert!(e.contains(&name), "{e}");
    }
    assert!(e.contains("./partition_majority.wasm"), "{e}");
}
