//! Issue 6: chaos-host itself crashing. SIGKILL at random points of a
//! campaign (network setup, spawn, burst, an effect in force, teardown,
//! between cycles), each time followed by `--resume`, until the campaign
//! ends: every cycle is recorded exactly once, no line is partial, and
//! nothing is left behind.

use crate::util::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

fn spawn(dir: &Path, args: &[&str], attempt: usize) -> Child {
    spawn_chaos(dir, args, &format!("attempt-{attempt}.log"))
}

/// A small seeded generator for the kill points (printed on failure, so a
/// failing schedule can be read back).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn killed_and_resumed(net: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let out = d.join("out");
    let plugins: Vec<String> = [
        "drop_random_acks",
        "partition_minority",
        "kill_primary_mid_write",
    ]
    .iter()
    .map(|n| plugin(n).to_string_lossy().into_owned())
    .collect();
    let mut first = vec![
        "run",
        "--campaign",
        c.to_str().unwrap(),
        "--cycles",
        "4",
        "--writes",
        "30",
        "--settle-ms",
        "100",
        "--net",
        net,
        "--out",
        out.to_str().unwrap(),
    ];
    for p in &plugins {
        first.extend(["--plugin", p.as_str()]);
    }
    let resume = ["run", "--resume", out.to_str().unwrap()];
    let mut seed = crate::util::seed_from_clock();
    let schedule_seed = seed;
    let mut kills = Vec::new();
    let mut attempt = 0;
    // Kill until a run finishes on its own before its kill point (at most
    // 12 kills), then one last resume must finish the campaign.
    loop {
        let args: &[&str] = if attempt == 0 { &first } else { &resume };
        let mut child = spawn(d, args, attempt);
        let after = Duration::from_millis(150 + next(&mut seed) % 1400);
        std::thread::sleep(after);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
            kills.push(after.as_millis());
        }
        child.wait().unwrap();
        attempt += 1;
        if finished || kills.len() == 12 {
            break;
        }
    }
    let last = spawn(d, &resume, attempt).wait_with_output().unwrap();
    let logs: Vec<String> = (0..=attempt)
        .map(|a| std::fs::read_to_string(d.join(format!("attempt-{a}.log"))).unwrap_or_default())
        .collect();
    let context = format!(
        "schedule seed {schedule_seed}, kills after {kills:?} ms\nlast run:\n{}",
        logs.last().unwrap()
    );
    assert_eq!(last.status.code(), Some(0), "{context}");
    // Every cycle once, every line whole.
    let text = std::fs::read_to_string(out.join("cycles.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "{context}");
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("partial line {line:?}: {e}\n{context}"));
        let key = (
            v["class"].as_str().unwrap().to_string(),
            v["cycle"].as_u64().unwrap(),
        );
        assert!(
            seen.insert(key.clone()),
            "{key:?} recorded twice\n{context}"
        );
    }
    assert_eq!(seen.len(), 12, "{seen:?}\n{context}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for class in summary["classes"].as_array().unwrap() {
        assert_eq!(class["cycles"], 4, "{class}\n{context}");
        assert_eq!(class["lost_acked"], 0, "{class}\n{context}");
    }
    // Nothing left: node processes, stopped ones, journals, the cycle work
    // dir, and the namespaces of every attempt.
    for log in &logs {
        if let Some(id) = run_id(log) {
            assert_no_network_state(&id);
        }
    }
    assert_nothing_left(d, None);
    assert!(!out.join("work").exists(), "{context}");
    eprintln!(
        "resume ({net}): {} kill point(s) {kills:?} ms, seed {schedule_seed}",
        kills.len()
    );
}

#[test]
fn sigkill_at_random_points_then_resume_records_every_cycle_once_proxy() {
    killed_and_resumed("proxy");
}

#[test]
fn sigkill_at_random_points_then_resume_records_every_cycle_once_netns() {
    killed_and_resumed("netns");
}
