//! Issue 13: restart as a host capability. A node killed and started again
//! on the same data dir and ports is read back with the rest; a node that
//! does not come back fails its cycle with its log tail.

use crate::util::*;

/// The reference campaign with `crash_restart` granted and `params`.
fn crash_restart(dir: &std::path::Path, params: &str, edit: impl Fn(String) -> String) -> Run {
    let c = campaign(dir, false, |t| {
        edit(
            format!("{t}\n[params.crash_restart]\n{params}\n")
                .replace("[grants]\n", "[grants]\ncrash_restart = [\"restart\"]\n"),
        )
    });
    let p = plugin("crash_restart");
    run_campaign(
        dir,
        &c,
        &[
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "3",
            "--writes",
            "60",
            "--settle-ms",
            "2000",
        ],
    )
}

#[test]
fn restarted_nodes_come_back_and_keep_every_acknowledged_write() {
    for target in ["primary", "peer", "all"] {
        let dir = tempfile::tempdir().unwrap();
        let run = crash_restart(
            dir.path(),
            &format!("target = \"{target}\"\nat = 0.5\ndown_ms = 100"),
            |t| t,
        );
        assert_eq!(run.code, 0, "{target}: {}", run.stderr);
        for c in run.cycles() {
            assert_eq!(c["status"], "pass", "{target}: {c}");
            let fx = c["effects"].as_array().unwrap();
            assert_eq!(fx.len(), if target == "all" { 3 } else { 1 }, "{c}");
            for e in fx {
                assert_eq!(e["kind"], "restart");
                assert_eq!(e["verified"], true, "{e}");
                assert_eq!(e["during_burst"], true, "{e}");
                let ev = e["evidence"].as_str().unwrap();
                assert!(ev.contains("killed by SIGKILL"), "{e}");
                assert!(ev.contains("started, ready"), "{e}");
                // Down for the lease, then started again.
                let down = e["end_us"].as_u64().unwrap() - e["start_us"].as_u64().unwrap();
                assert!((100_000..300_000).contains(&down), "{e}");
                let n = &c["nodes"][e["node"].as_u64().unwrap() as usize];
                assert_eq!(n["restarts"], 1, "{n}");
                assert_eq!(n["alive"], true, "{n}");
                // Read back after the restart like every other node.
                assert!(n["held"].as_u64().unwrap() > 0, "{n}");
                assert_eq!(n["missing_acked"].as_array().unwrap().len(), 0, "{n}");
            }
            assert!(c["ok"].as_u64().unwrap() > 0, "{c}");
        }
        assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
    }
}

#[test]
fn a_node_that_does_not_come_back_fails_its_cycle_with_its_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    // The node starts once; started again on the same data dir it refuses,
    // as a system whose recovery crashes would.
    let run = crash_restart(dir.path(), "target = \"peer\"\ndown_ms = 50", |t| {
        t.replace(
            "command = [\n",
            "command = [\n    \"sh\", \"-c\", \"if [ -e {data_dir}/started ]; then echo recovery refused: corrupt log; exit 3; fi; mkdir -p {data_dir}; touch {data_dir}/started; exec \\\"$0\\\" \\\"$@\\\"\",\n",
        )
    });
    assert_eq!(run.code, 1, "{}", run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "fail", "{c}");
        let reasons = c["reasons"].to_string();
        assert!(
            reasons.contains("did not come back after its restart"),
            "{reasons}"
        );
        assert!(
            reasons.contains("recovery refused: corrupt log"),
            "{reasons}"
        );
        let e = &c["effects"][0];
        assert_eq!(e["verified"], false, "{e}");
        assert!(e["finding"].is_string(), "{e}");
    }
    assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
}

#[test]
fn a_restart_the_plugin_was_not_granted_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let p = plugin("crash_restart");
    let run = run_campaign(dir.path(), &c, &["--plugin", p.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("needs capabilities not granted: restart"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--allow crash_restart=restart"),
        "{}",
        run.stderr
    );
}
