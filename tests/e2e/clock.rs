//! Issue 3: a clock skew reaches the reference system (its own clock
//! endpoint shows it), and a skew that cannot be applied is `simulated`.

use crate::util::*;

fn skew_campaign(dir: &std::path::Path, offset: i64) -> std::path::PathBuf {
    campaign(dir, false, |t| {
        t.replace("offset_ms = 30000", &format!("offset_ms = {offset}"))
    })
}

#[test]
fn skew_is_seen_by_the_node_clock() {
    let dir = tempfile::tempdir().unwrap();
    let c = skew_campaign(dir.path(), -45_000);
    let p = plugin("clock_skew_peer");
    let run = run_campaign(
        dir.path(),
        &c,
        &["--plugin", p.to_str().unwrap(), "--cycles", "3"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        let e = &c["effects"][0];
        assert_eq!(e["verified"], true, "{e}");
        // "node clock probe: -45001 ms from the host's (rtt 1 ms); offset
        // reset; probe +0 ms"
        let ev = e["evidence"].as_str().unwrap();
        let seen: i64 = ev
            .split("node clock probe: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no probe figure in {ev}"));
        assert!((seen + 45_000).abs() < 300, "{ev}");
        let after: i64 = ev
            .rsplit("probe ")
            .next()
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no reset probe in {ev}"));
        assert!(after.abs() < 300, "clock put back after the lease: {ev}");
    }
}

#[test]
fn skew_that_cannot_be_applied_is_simulated_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    let c = skew_campaign(dir.path(), 30_000);
    let p = plugin("clock_skew_peer");
    // A library path that does not load: the node runs without it.
    let run = chaos_env(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "2",
        ],
        &[("CHAOS_LIBFAKETIME", "/nonexistent/libfaketime.so.1")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let class = &run.summary()["classes"][0];
    assert_eq!(class["simulated_cycles"], 2, "{class}");
    assert_eq!(class["pass"], false);
    for c in run.cycles() {
        assert_eq!(c["status"], "simulated");
        assert_eq!(c["effects"][0]["simulated"], true);
        assert_eq!(c["effects"][0]["verified"], false);
        assert!(
            c["reasons"]
                .to_string()
                .contains("libfaketime is not loaded"),
            "{c}"
        );
    }
    assert!(
        run.stdout.contains("SIMULATED") || run.stdout.contains("FAIL"),
        "{}",
        run.stdout
    );
}
