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

/// Wait until the run has saved `out/run.json` (it is running and can be
/// resumed from then on).
fn wait_for_plan(child: &mut Child, out: &Path) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while !out.join("run.json").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "chaos-host ended before saving run.json"
        );
        assert!(std::time::Instant::now() < until, "no run.json after 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
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
    let plugins = plugin_paths(&[
        "drop_random_acks",
        "partition_minority",
        "kill_primary_mid_write",
    ]);
    let mut first = vec![
        "run",
        "--campaign",
        c.to_str().unwrap(),
        "--cycles",
        "4",
        "--writes",
        "30",
        // A deadline, not a wait: a converged cycle ends at its first
        // read. After a netns cut, TCP retransmits (a dropped SYN is sent
        // again 1 s later) can hold a correct node's catch-up for a while.
        "--settle-ms",
        "3000",
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
        if attempt == 0 {
            // A kill before run.json exists leaves nothing to resume (the
            // next run would rightly refuse): kill points start once the
            // run has saved its plan.
            wait_for_plan(&mut child, &out);
        }
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
    // The campaign ran to its end (0: every class passed; 1: a class did
    // not, e.g. a fault that landed after a short burst on a loaded
    // machine, which is the verdict's business, not the resume's).
    assert!(matches!(last.status.code(), Some(0 | 1)), "{context}");
    // Every cycle once, every line whole.
    let text = std::fs::read_to_string(out.join("cycles.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "{context}");
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("partial line {line:?}: {e}\n{context}"));
        assert_ne!(v["status"], "error", "{v}\n{context}");
        assert_eq!(v["lost_acked"], 0, "{v}\n{context}");
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

/// `--resume` takes everything from run.json: other run arguments are
/// refused, and so is a campaign file that changed since the run started.
#[test]
fn resume_refuses_other_arguments_and_a_changed_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let run = run_campaign(d, &c, &["--cycles", "1", "--writes", "10"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = run.out.to_str().unwrap().to_string();
    let again = chaos(d, &["run", "--resume", &out, "--cycles", "5"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("--cycles"), "{}", again.stderr);
    // Nothing left to run: the same run resumes to the same end.
    let same = chaos(d, &["run", "--resume", &out]);
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(same.cycles().len(), 1);
    std::fs::write(
        &c,
        std::fs::read_to_string(&c)
            .unwrap()
            .replace("cycles = 20", "cycles = 21"),
    )
    .unwrap();
    let changed = chaos(d, &["run", "--resume", &out]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    assert!(
        changed
            .stderr
            .contains("changed since the run being resumed started"),
        "{}",
        changed.stderr
    );
}

/// Two runs never share an --out dir: the second is refused while the first
/// holds it.
#[test]
fn a_second_run_on_a_busy_out_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let out = d.join("out");
    let args = [
        "run",
        "--campaign",
        c.to_str().unwrap(),
        "--cycles",
        "8",
        "--writes",
        "10",
        "--settle-ms",
        "100",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut first = spawn_chaos(d, &args, "first.log");
    wait_for_plan(&mut first, &out);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(args)
        .env("CHAOS_STATE_DIR", d.join("state"))
        .output()
        .unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another chaos-host run is using it"),
        "{stderr}"
    );
    // The killed first run is finished by a resume, as any killed run.
    let done = chaos(d, &["run", "--resume", out.to_str().unwrap()]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(done.cycles().len(), 8);
}
