//! Issue 4: ai-memory 0.6.4 (crates.io), the system seeds 000/001 tested,
//! in its two layouts: the full mesh with catch-up under every built-in
//! fault, and the seeds' star under a long pause of a peer, where the engine
//! must name exactly which acknowledged writes the peer never got.

use crate::util::*;
use serde_json::Value;
use std::collections::BTreeSet;

const INSTALL: &str =
    "cargo install ai-memory --version 0.6.4 --locked (scripts/install-deps.sh --systems)";

fn run_ai_memory(dir: &std::path::Path, layout: &str, faults: &[&str], extra: &[&str]) -> Run {
    require("ai-memory", INSTALL);
    let c = example_campaign(dir, &format!("ai-memory/{layout}.toml"), |t| t);
    let plugins = plugin_paths(faults);
    let mut args = extra.to_vec();
    for p in &plugins {
        args.extend(["--plugin", p.as_str()]);
    }
    run_campaign(dir, &c, &args)
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ai_memory_mesh_under_every_fault_and_the_quorum_probes() {
    let dir = tempfile::tempdir().unwrap();
    let faults = [
        "kill_primary_mid_write",
        "partition_minority",
        "drop_random_acks",
        "clock_skew_peer",
    ];
    let run = run_ai_memory(
        dir.path(),
        "mesh",
        &faults,
        &["--cycles", "2", "--writes", "60"],
    );
    let s = run.summary();
    let mut kill_lost = 0;
    for class in s["classes"].as_array().unwrap() {
        if class["fault"] == "kill_primary_mid_write" {
            // Measured on 0.6.4: a primary killed mid-fan-out now and then
            // leaves an acknowledged write on one survivor only, which
            // catch-up does not repair (README, findings). Whatever it does,
            // the verdict must agree with the ids.
            kill_lost = class["lost_acked"].as_u64().unwrap();
            assert_eq!(class["pass"], kill_lost == 0, "{class}");
            continue;
        }
        assert_eq!(class["passed_cycles"], 2, "{class}");
        assert_eq!(class["lost_acked"], 0, "{class}");
    }
    assert_eq!(
        run.code,
        if kill_lost > 0 { 1 } else { 0 },
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    for c in run.cycles() {
        let e = &c["effects"][0];
        assert_eq!(e["verified"], true, "{e}");
        if e["kind"] == "clock" {
            // Seen on the node's own clock (its HTTP Date header).
            assert!(
                e["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("node clock probe: +"),
                "{e}"
            );
        }
        let p = &c["probes"];
        if c["class"] == "kill_primary_mid_write" {
            // The primary is dead: the probes say why they did not run.
            assert!(p["skipped"].as_str().unwrap().contains("primary"), "{p}");
            let missing: u64 = c["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["missing_acked"].as_array().unwrap().len() as u64)
                .sum();
            assert!(c["lost_acked"].as_u64().unwrap() <= missing, "{c}");
            assert_eq!(c["status"] == "pass", missing == 0, "{c}");
            continue;
        }
        assert_eq!(p["one_peer_down"]["outcome"], "ok", "{p}");
        assert_eq!(p["all_peers_down"]["outcome"], "quorum_not_met", "{p}");
        assert_eq!(
            p["all_peers_down"]["peers_down"].as_array().unwrap().len(),
            2
        );
        // A refused probe write that the primary holds anyway is named; it
        // can only be a probe id that was not acknowledged.
        let ns = c["namespace"].as_str().unwrap();
        for id in ids(&p["refused_but_present"]) {
            assert_eq!(id, format!("{ns}-p2"), "{p}");
        }
    }
    let html = std::fs::read_to_string(run.out.join("report.html")).unwrap();
    assert!(html.contains("Quorum probes"));
}

#[test]
fn ai_memory_star_long_pause_names_exactly_the_acknowledged_writes_lost() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_ai_memory(
        dir.path(),
        "star",
        &["drop_random_acks"],
        &["--cycles", "2", "--param", "drop_random_acks.ms=5000"],
    );
    // Whatever ai-memory does, the verdict must agree with the ids.
    let s = run.summary();
    let class = &s["classes"][0];
    let cycles = run.cycles();
    let mut lost_total = 0;
    for c in &cycles {
        let pause = &c["effects"][0];
        assert_eq!(pause["kind"], "pause", "{pause}");
        assert_eq!(pause["verified"], true, "{pause}");
        let held_us = pause["end_us"].as_u64().unwrap() - pause["start_us"].as_u64().unwrap();
        assert!((5_000_000..5_300_000).contains(&held_us), "{pause}");
        let acked: BTreeSet<String> = c["writes_detail"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["outcome"] == "ok")
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect();
        let mut missing = BTreeSet::new();
        for n in c["nodes"].as_array().unwrap() {
            let m = ids(&n["missing_acked"]);
            if !m.is_empty() {
                // Only the paused peer can lack writes in the star.
                assert_eq!(n["node"], pause["node"], "{c}");
            }
            assert!(
                m.is_subset(&acked),
                "a missing id that was never acknowledged: {n}"
            );
            missing.extend(m);
        }
        assert_eq!(c["lost_acked"], missing.len() as u64, "{c}");
        // Writes issued well before the pause reached every peer; the lost
        // ones were in flight at the pause or issued during it.
        let start_of = |id: &str| {
            c["writes_detail"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["id"] == id)
                .unwrap()["start_us"]
                .as_u64()
                .unwrap()
        };
        let pause_start = pause["start_us"].as_u64().unwrap();
        for id in &missing {
            assert!(
                start_of(id) + 50_000 >= pause_start,
                "{id} predates the pause"
            );
        }
        if !missing.is_empty() {
            assert_eq!(c["status"], "fail", "{c}");
            // The evidence pack names the same ids per node.
            let ev = c["evidence"].as_str().unwrap();
            let kept: Value = serde_json::from_str(
                &std::fs::read_to_string(format!("{ev}/missing.json")).unwrap(),
            )
            .unwrap();
            let node = format!("node-{}", pause["node"]);
            assert_eq!(ids(&kept[node.as_str()]), missing, "{kept}");
        }
        lost_total += missing.len() as u64;
    }
    assert_eq!(class["lost_acked"], lost_total, "{class}");
    assert_eq!(
        run.code,
        if lost_total > 0 { 1 } else { 0 },
        "{}",
        run.stderr
    );
    // Measured on 0.6.4: a 5 s pause outlasts the 2 s quorum timeout, and
    // with no catch-up in the star the peer never gets ~75 of 100 writes.
    assert!(
        lost_total > 0,
        "the star lost nothing under a 5 s pause: {class}"
    );
}
