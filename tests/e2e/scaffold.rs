//! Issue 5 (SDK): a plugin made by `chaos-host new-plugin`, with nothing but
//! the SDK, builds and runs in a campaign against the reference system.
//! Issue 12: it depends on the published SDK by version, and builds against
//! the SDK exactly as `cargo package` ships it.

use crate::util::*;
use std::path::Path;
use std::process::Command;

fn chaos_host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chaos-host"))
}

/// A target dir of its own: the outer `cargo test` may hold the lock of the
/// workspace's. Kept between runs so rebuilds are incremental.
fn target_dir() -> std::path::PathBuf {
    root().join("target/scaffold-test")
}

fn new_plugin(dir: &Path, name: &str, assertion: bool, sdk: Option<&Path>) -> std::path::PathBuf {
    let mut cmd = chaos_host();
    cmd.args(["new-plugin", name, "--dir", dir.to_str().unwrap()]);
    if assertion {
        cmd.arg("--assertion");
    }
    if let Some(sdk) = sdk {
        cmd.arg("--sdk").arg(sdk);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let crate_dir = dir.join(name);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("created {}", crate_dir.display()))
    );
    crate_dir
}

/// The SDK as crates.io would get it: `cargo package`, unpacked from the
/// `.crate` into `dir`. Packaging fails when the crate misses a file it
/// needs (its WIT, its build script), and so does the build against it.
fn packaged_sdk(dir: &Path) -> std::path::PathBuf {
    let out = Command::new("cargo")
        .args([
            "package",
            "-p",
            "chaos-host-sdk",
            "--no-verify",
            "--allow-dirty",
        ])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krate = std::fs::read_dir(target_dir().join("package"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("chaos-host-sdk-")
                && p.extension().is_some_and(|x| x == "crate")
        })
        .expect("cargo package wrote no chaos-host-sdk .crate");
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(&krate)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(untar.status.success(), "{untar:?}");
    let unpacked = dir.join(krate.file_stem().unwrap());
    assert!(
        unpacked.join("wit/types.wit").is_file(),
        "the .crate lacks its WIT"
    );
    unpacked
}

#[test]
fn scaffolded_fault_builds_and_runs_against_the_reference_system() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = new_plugin(dir.path(), "my_fault", false, None);
    // The scaffold asks for the published SDK by version...
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("chaos-host-sdk = \"0.3\""), "{manifest}");
    // ...which this test stands in for with the packaged one.
    let sdk = packaged_sdk(dir.path());
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        format!(
            "{manifest}\n[patch.crates-io]\nchaos-host-sdk = {{ path = {:?} }}\n",
            sdk.to_string_lossy()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let run = Command::new(crate_dir.join("run.sh"))
        .args(["--out", out_dir.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CYCLES", "2")
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let class = &summary["classes"][0];
    assert_eq!(class["fault"], "my_fault");
    assert_eq!(class["passed_cycles"], 2, "{class}");
    assert!(processes_mentioning(dir.path()).is_empty());
}

#[test]
fn scaffolded_assertion_builds_and_judges_cycles() {
    let dir = tempfile::tempdir().unwrap();
    // For SDK development: --sdk depends on a checkout by path.
    let crate_dir = new_plugin(dir.path(), "my_check", true, Some(&root().join("sdk")));
    let build = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target_dir().join("wasm32-wasip2/release/my_check.wasm");
    let c = campaign(dir.path(), false, |t| t);
    let kill = plugin("kill_primary_mid_write");
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            wasm.to_str().unwrap(),
            "--plugin",
            kill.to_str().unwrap(),
            "--cycles",
            "2",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        let by: Vec<&str> = c["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["plugin"].as_str().unwrap())
            .collect();
        assert!(by.contains(&"my_check@0.1.0"), "{by:?}");
    }
}

#[test]
fn scaffolded_client_builds_and_carries_a_campaign() {
    // `new-plugin --client`: a client component and a campaign that uses
    // it; run.sh builds it and runs a built-in fault against it.
    let dir = tempfile::tempdir().unwrap();
    let out = chaos_host()
        .args(["new-plugin", "my_client", "--client", "--sdk"])
        .arg(root().join("sdk"))
        .args(["--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let crate_dir = dir.path().join("my_client");
    assert!(crate_dir.join("campaign.toml").is_file());
    let out_dir = dir.path().join("out");
    let run = Command::new(crate_dir.join("run.sh"))
        .args(["--out", out_dir.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", target_dir())
        .env("CYCLES", "2")
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let class = &summary["classes"][0];
    assert_eq!(class["fault"], "kill_primary_mid_write");
    assert_eq!(class["passed_cycles"], 2, "{class}");
    assert!(class["ok"].as_u64().unwrap() > 0, "{class}");
    assert!(
        summary["system"].as_str().unwrap().contains("my_client"),
        "{summary}"
    );
    // --client and --assertion exclude each other.
    let both = chaos_host()
        .args(["new-plugin", "x", "--client", "--assertion"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn new_plugin_refuses_bad_names_and_existing_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let out = chaos_host()
        .args([
            "new-plugin",
            "My-Fault",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("new-plugin \"My-Fault\": use lowercase letters"),
        "{out:?}"
    );
    new_plugin(dir.path(), "twice", false, None);
    let again = chaos_host()
        .args(["new-plugin", "twice", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // Nothing half-written beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["twice"]);
}
