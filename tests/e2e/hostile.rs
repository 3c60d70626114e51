//! Issue 5 (sandbox): hostile plugins, built as real components, are each
//! contained with a clear per-cycle reason; their effects are undone and the
//! campaign goes on to its next cycle.

use crate::util::*;

/// (mode, what the cycle's reasons must say)
const HOSTILE: &[(&str, &[&str])] = &[
    ("pause_then_loop", &["out of fuel", "deadline"]),
    ("memory_bomb", &["trapped"]),
    ("deep_recursion", &["trapped"]),
    ("read_file", &["contained: file read refused"]),
    ("open_socket", &["contained: socket refused"]),
    ("read_env", &["contained: environment is empty"]),
    ("bad_node", &["node 99 does not exist"]),
    ("undeclared_capability", &["clock"]),
    ("huge_error", &["more bytes dropped"]),
    ("panic", &["trapped"]),
    ("log_flood", &["flooded"]),
];

fn run_hostile(mode: &str) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let run = run_misbehave(
        dir.path(),
        mode,
        |t| t.replace("[campaign]\n", "[campaign]\nplugin_timeout_ms = 4000\n"),
        &["--cycles", "2", "--writes", "40", "--settle-ms", "200"],
    );
    (dir, run)
}

#[test]
fn hostile_plugins_are_contained_and_the_campaign_goes_on() {
    let mut contained = 0;
    for (mode, expect) in HOSTILE {
        let (dir, run) = run_hostile(mode);
        assert_eq!(run.code, 1, "{mode}: {}", run.stderr);
        let cycles = run.cycles();
        assert_eq!(cycles.len(), 2, "{mode}: the campaign went on");
        for c in &cycles {
            assert_eq!(c["status"], "error", "{mode}: {c}");
            let reasons = c["reasons"].to_string();
            assert!(
                expect.iter().any(|e| reasons.contains(e)),
                "{mode}: reasons {reasons} lack {expect:?}"
            );
            assert!(reasons.len() < 16 * 1024, "{mode}: reasons not bounded");
            for e in c["effects"].as_array().unwrap() {
                // Every lease was ended by the host long before its 10 s.
                let held = e["end_us"].as_u64().unwrap() - e["start_us"].as_u64().unwrap();
                assert!(held < 8_000_000, "{mode}: {e}");
            }
        }
        assert!(
            stopped_processes_mentioning(dir.path()).is_empty(),
            "{mode}"
        );
        if *mode == "log_flood" {
            assert!(run.stderr.contains("log limit"), "{}", run.stderr);
            assert!(
                run.stderr.lines().count() < 3_000,
                "log flood reached stderr"
            );
        }
        contained += 1;
    }
    println!(
        "hostile behaviours contained: {contained} of {}",
        HOSTILE.len()
    );
}
