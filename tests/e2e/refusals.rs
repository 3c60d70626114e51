use crate::util::*;

/// Issue 2: a plugin needing a capability the campaign did not grant is
/// refused before the run, naming what is missing and how to grant it.
#[test]
fn ungranted_capability_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        t.replace("kill_primary_mid_write = [\"signal\"]", "")
    });
    let kill = plugin("kill_primary_mid_write");
    let run = run_campaign(
        dir.path(),
        &c,
        &["--plugin", kill.to_str().unwrap(), "--cycles", "1"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("plugin kill_primary_mid_write@0.1.0 needs capabilities not granted: signal"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--allow kill_primary_mid_write=signal"),
        "{}",
        run.stderr
    );
    assert!(!run.out.join("cycles.jsonl").exists(), "no cycle may run");

    // The same grant on the command line lets it run.
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            kill.to_str().unwrap(),
            "--cycles",
            "1",
            "--allow",
            "kill_primary_mid_write=signal",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Bad campaign values get one error naming the file and field, exit 2.
#[test]
fn bad_campaign_names_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (edit, expect) in [
        (("nodes = 3", "nodes = 0"), "system.nodes is 0"),
        (
            ("threshold = 0.995", "threshold = 6.286"),
            "campaign.threshold is 6.286",
        ),
        (("ids_pointer = \"/ids\"", "ids_pointer = 3"), "ids_pointer"),
        (("[burst]", "[burst]\nwritez = 1"), "unknown field `writez`"),
    ] {
        let c = campaign(dir.path(), false, |t| t.replace(edit.0, edit.1));
        let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
        assert_eq!(run.code, 2, "{expect}: {}", run.stderr);
        assert!(
            run.stderr.contains(expect),
            "expected {expect:?} in:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("campaign.toml"), "{}", run.stderr);
    }
}

/// A node that exits at once is a harness error carrying its log tail.
#[test]
fn node_that_never_becomes_ready_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        let start = t.find("command = [").unwrap();
        let end = start + t[start..].find(']').unwrap() + 1;
        format!(
            "{}command = [\"/bin/sh\", \"-c\", \"echo 'cannot open {{data_dir}}: boom' >&2; exit 3\", \"{{port}}\", \"{{peers}}\"]{}",
            &t[..start],
            &t[end..]
        )
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("exited with status 3 before becoming ready"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("boom"),
        "log tail missing: {}",
        run.stderr
    );
}

/// A file that is not a component is refused with the fix.
#[test]
fn non_component_plugin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not wasm").unwrap();
    let run = run_campaign(dir.path(), &c, &["--plugin", bogus.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("bogus.wasm: not a WebAssembly component"),
        "{}",
        run.stderr
    );
}

/// Issue 5: a plugin built against another contract version is refused,
/// naming both versions, by `inspect` and by `run`.
#[test]
fn other_contract_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest("future_contract");
    let expected = format!(
        "chaos-host: error: plugin {}: built against contract chaos:plugin@9.0.0, but this chaos-host supports contract versions 0.1.0 to 0.1.1, 0.2.0, 0.3.0 (upgrade chaos-host, or rebuild the plugin against an older chaos-sdk)",
        wasm.display()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("inspect")
        .arg(&wasm)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), expected);
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(dir.path(), &c, &["--plugin", wasm.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.lines().any(|l| l == expected), "{}", run.stderr);
}

/// Issue 4: 0.1.1 only added `host.leader`, so a plugin built against the
/// first contract (0.1.0, built from its frozen WIT in
/// wit/deps/chaos-plugin@0.1.0) still loads and runs.
#[test]
fn a_plugin_built_against_contract_0_1_0_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = guest("contract_0_1_0");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("inspect")
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["contract"], "0.1.0");
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            wasm.to_str().unwrap(),
            "--allow",
            "legacy_kill=signal",
            "--cycles",
            "2",
            "--writes",
            "40",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        let e = &c["effects"][0];
        assert_eq!(e["kind"], "signal", "{c}");
        assert_eq!(e["verified"], true, "{c}");
    }
}

/// Issue 4: `target = "leader"` on a system without a [leader] probe fails
/// the cycle with the reason (the host cannot tell who leads), and the
/// campaign goes on.
#[test]
fn leader_target_without_a_leader_probe_fails_the_cycle_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let kill = plugin("kill_primary_mid_write");
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            kill.to_str().unwrap(),
            "--param",
            "kill_primary_mid_write.target=leader",
            "--cycles",
            "2",
            "--writes",
            "20",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2);
    for c in cycles {
        assert_eq!(c["status"], "error", "{c}");
        assert!(
            c["reasons"][0]
                .as_str()
                .unwrap()
                .contains("no [leader] probe"),
            "{c}"
        );
    }
}

#[test]
fn a_grant_for_a_plugin_not_loaded_is_refused() {
    // Issue 24: `--allow nosuch=pause` was silently ignored (a typo in a
    // grant then looked like a plugin that needs no capability).
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "drop_random_acks",
            "--allow",
            "drop_random_ack=pause",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "--allow drop_random_ack=pause: no plugin named drop_random_ack is loaded in this run (loaded: convergence, drop_random_acks)"
        ),
        "{}",
        run.stderr
    );
}
