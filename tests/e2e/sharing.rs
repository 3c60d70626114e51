//! Issue 5 (sharing): plugins pinned by sha256, and loaded from a shared
//! directory.

use crate::util::*;

fn sha256_of(wasm: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("inspect")
        .arg(wasm)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["sha256"].as_str().unwrap().to_string()
}

#[test]
fn pinned_plugin_runs_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kill = plugin("kill_primary_mid_write");
    let sha = sha256_of(&kill);
    assert_eq!(sha.len(), 64);
    let pinned = |pin: &str| {
        let pin = pin.to_string();
        campaign(dir.path(), false, move |t| {
            format!("{t}\n[pins]\nkill_primary_mid_write = \"{pin}\"\n")
        })
    };
    let c = pinned(&sha);
    let ok = run_campaign(
        dir.path(),
        &c,
        &["--plugin", kill.to_str().unwrap(), "--cycles", "1"],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    std::fs::remove_dir_all(&ok.out).unwrap();
    let wrong = "0".repeat(64);
    let c = pinned(&wrong);
    let refused = run_campaign(
        dir.path(),
        &c,
        &["--plugin", kill.to_str().unwrap(), "--cycles", "1"],
    );
    assert_eq!(refused.code, 2);
    let expected = format!(
        "chaos-host: error: plugin {}: sha256 {sha} does not match the pin {wrong} in campaign {} [pins].kill_primary_mid_write; the file changed: review it, then update the pin",
        kill.display(),
        c.display()
    );
    assert!(
        refused.stderr.lines().any(|l| l == expected),
        "expected line:\n{expected}\nstderr:\n{}",
        refused.stderr
    );
    assert!(
        !refused.out.join("cycles.jsonl").exists(),
        "refused before any cycle"
    );
}

#[test]
fn plugins_load_from_a_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared-plugins");
    std::fs::create_dir(&shared).unwrap();
    for name in ["drop_random_acks", "kill_primary_mid_write", "convergence"] {
        std::fs::copy(plugin(name), shared.join(format!("{name}.wasm"))).unwrap();
    }
    std::fs::write(shared.join("README.txt"), "not a plugin").unwrap();
    // The assertion comes from the shared directory alone: a second
    // convergence beside the campaign's own would claim its name twice.
    let c = campaign(dir.path(), false, |t| {
        t.lines()
            .map(|l| {
                if l.starts_with("assertions =") {
                    "assertions = []"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let run = run_campaign(
        dir.path(),
        &c,
        &["--plugin-dir", shared.to_str().unwrap(), "--cycles", "2"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = run.summary();
    let faults: Vec<&str> = s["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fault"].as_str().unwrap())
        .collect();
    assert_eq!(faults, ["drop_random_acks", "kill_primary_mid_write"]);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let none = run_campaign(dir.path(), &c, &["--plugin-dir", empty.to_str().unwrap()]);
    assert_eq!(none.code, 2);
    assert!(
        none.stderr.contains("no .wasm file in it"),
        "{}",
        none.stderr
    );
}

/// Compiled components are cached: the second load finds the artifact the
/// first one wrote and does not write it again.
#[test]
fn second_load_uses_the_compiled_cache() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let inspect = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
            .arg("inspect")
            .arg(plugin("partition_minority"))
            .env("CHAOS_CACHE_DIR", &cache)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let artifacts = || -> Vec<(std::path::PathBuf, u64, i64, i64)> {
        let mut v: Vec<_> = walk(&cache.join("modules"))
            .into_iter()
            .filter(|p| p.extension().is_none())
            .map(|p| {
                let m = std::fs::metadata(&p).unwrap();
                (p, m.ino(), m.mtime(), m.mtime_nsec())
            })
            .collect();
        v.sort();
        v
    };
    inspect();
    let first = artifacts();
    assert_eq!(first.len(), 1, "one compiled component cached: {first:?}");
    inspect();
    assert_eq!(
        artifacts(),
        first,
        "the cached artifact was reused, not rewritten"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
