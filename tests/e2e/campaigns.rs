use crate::util::*;

/// 20 cycles of `kill_primary_mid_write` on the reference system.
fn kill_campaign(buggy: bool) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), buggy, |t| t);
    let kill = plugin("kill_primary_mid_write");
    let run = run_campaign(
        dir.path(),
        &c,
        &["--plugin", kill.to_str().unwrap(), "--cycles", "20"],
    );
    (dir, run)
}

/// Issue 2: the correct reference system passes 20 kill cycles.
#[test]
fn correct_system_passes_kill_primary() {
    let (_dir, run) = kill_campaign(false);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let s = run.summary();
    assert_eq!(s["pass"], true);
    let class = &s["classes"][0];
    assert_eq!(class["fault"], "kill_primary_mid_write");
    assert_eq!(class["cycles"], 20);
    assert_eq!(class["writes"], 2000);
    assert_eq!(class["lost_acked"], 0);
    assert_eq!(class["convergence_bound"], 1.0);
    // The kill happened mid-burst: some writes acked before, some failed after.
    assert!(
        class["ok"].as_u64().unwrap() > 0 && class["fail"].as_u64().unwrap() > 0,
        "{class}"
    );
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 20);
    for c in &cycles {
        let effects = c["effects"].as_array().unwrap();
        assert_eq!(effects.len(), 1, "{c}");
        assert_eq!(effects[0]["detail"], "SIGKILL");
        assert_eq!(effects[0]["verified"], true, "{}", effects[0]);
        assert_eq!(effects[0]["during_burst"], true);
        assert_eq!(c["nodes"][0]["alive"], false);
        assert_eq!(c["nodes"][1]["alive"], true);
    }
    // Passing cycles leave no evidence or data behind.
    assert!(!run.out.join("evidence").exists());
    assert!(!run.out.join("work").exists());
}

/// Issue 2: the seed-001 defect (`--bug abort-fanout`) is caught, with the
/// lost ids named.
#[test]
fn buggy_system_is_caught_with_lost_ids() {
    let (_dir, run) = kill_campaign(true);
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let s = run.summary();
    assert_eq!(s["pass"], false);
    let class = &s["classes"][0];
    let lost = class["lost_acked"].as_u64().unwrap();
    assert!(lost > 0, "{class}");
    let bound = class["convergence_bound"].as_f64().unwrap();
    assert!((0.0..0.995).contains(&bound), "{bound}");
    // Every lost id is named per node, and each was acknowledged.
    let mut named = 0;
    for c in run.cycles() {
        let acked: Vec<&str> = c["writes_detail"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["outcome"] == "ok")
            .map(|w| w["id"].as_str().unwrap())
            .collect();
        for n in c["nodes"].as_array().unwrap() {
            for id in n["missing_acked"].as_array().unwrap() {
                assert!(acked.contains(&id.as_str().unwrap()));
                named += 1;
            }
        }
        if c["status"] != "pass" {
            let ev = std::path::Path::new(c["evidence"].as_str().unwrap());
            assert!(ev.join("missing.json").exists() && ev.join("node-1.log").exists());
        }
    }
    assert!(named as u64 >= lost);
}

/// `inspect` prints the plugin's own description, contract and hash.
#[test]
fn inspect_describes_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let kill = plugin("kill_primary_mid_write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["inspect", kill.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["name"], "kill_primary_mid_write");
    assert_eq!(meta["kind"], "fault");
    assert_eq!(meta["contract"], "0.3.0");
    assert_eq!(meta["capabilities"], serde_json::json!(["signal"]));
    assert_eq!(meta["params"][0]["name"], "at");
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);
}

/// The project's usage line works as written: no `--campaign` runs the
/// embedded reference campaign, its nodes served by chaos-host itself
/// (`chaos-host reference-node`), so an installed binary needs no checkout.
#[test]
fn the_usage_line_runs_the_embedded_reference_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let part = plugin("partition_minority");
    let run = chaos(
        dir.path(),
        &[
            "run",
            "--plugin",
            part.to_str().unwrap(),
            "--cycles",
            "2",
            "--writes",
            "40",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("running the embedded reference campaign"),
        "{first}"
    );
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2);
    for c in &cycles {
        assert_eq!(c["status"], "pass", "{c}");
        // A real partition of real nodes: every cut link proved itself.
        assert_eq!(c["effects"][0]["verified"], true, "{c}");
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.out.join("run.json")).unwrap()).unwrap();
    assert!(saved["campaign"].is_null(), "{saved}");
    // A node of the embedded campaign is this binary; a bad argument to it
    // is one clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["reference-node", "--node", "0", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
