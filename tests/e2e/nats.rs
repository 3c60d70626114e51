//! Issue 22: NATS JetStream 2.12.1, a system that does not speak HTTP,
//! driven by the official Python client (nats-py) through a driver process.
//! Jepsen's finding (jepsen.io/analyses/nats-2.12.1): JetStream acknowledges
//! a publish before it is on disk, so a power cut of every node loses
//! acknowledged messages; with `sync_interval: always` it keeps them.

use crate::util::*;

const INSTALL: &str = "scripts/install-deps.sh --systems (nats-server 2.12.1 and nats-py, pinned)";

fn require_nats() {
    require("nats-server", INSTALL);
    let v = std::process::Command::new("nats-server")
        .arg("--version")
        .output()
        .expect("nats-server --version");
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.contains("v2.12.1"),
        "nats-server is {v}, not 2.12.1: {INSTALL}"
    );
    let py = std::process::Command::new("python3")
        .args(["-c", "import nats"])
        .status()
        .unwrap();
    assert!(py.success(), "nats-py is not installed: {INSTALL}");
}

/// `examples/nats/REL`, its driver and client component by absolute path.
fn nats_campaign(dir: &std::path::Path, rel: &str) -> std::path::PathBuf {
    let driver = root().join("examples/nats/driver.py");
    let component = example_plugin("nats_client");
    example_campaign(dir, &format!("nats/{rel}"), |t| {
        t.replace(
            r#"command = ["python3", "driver.py"]"#,
            &format!(r#"command = ["python3", {:?}]"#, driver.to_str().unwrap()),
        )
        .replace(
            r#"plugin = "../plugins/nats_client.wasm""#,
            &format!("plugin = {:?}", component.to_str().unwrap()),
        )
    })
}

/// One cycle of `power_failure` on `examples/nats/REL`.
fn power_cut(dir: &std::path::Path, rel: &str) -> Run {
    let c = nats_campaign(dir, rel);
    run_campaign(
        dir,
        &c,
        &[
            "--plugin",
            "power_failure",
            "--cycles",
            "1",
            "--writes",
            "60",
        ],
    )
}

/// (lost, acknowledged) per cycle, and every disk lease's evidence.
fn losses(run: &Run) -> (Vec<(u64, u64)>, Vec<String>) {
    let mut per_cycle = Vec::new();
    let mut disks = Vec::new();
    for c in run.cycles() {
        per_cycle.push((c["lost_acked"].as_u64().unwrap(), c["ok"].as_u64().unwrap()));
        for e in c["effects"].as_array().unwrap() {
            assert_eq!(e["verified"], true, "{e}");
            if e["kind"] == "disk" {
                disks.push(e["evidence"].as_str().unwrap().to_string());
            }
        }
    }
    (per_cycle, disks)
}

#[test]
fn nats_loses_acknowledged_messages_on_a_power_failure() {
    power_failure_loses_acknowledged_messages("campaign.toml");
}

#[test]
fn nats_loses_them_through_the_client_component_too() {
    // The second client, the NATS protocol by hand in a sandboxed
    // component, finds what nats-py finds.
    power_failure_loses_acknowledged_messages("campaign-component.toml");
}

fn power_failure_loses_acknowledged_messages(rel: &str) {
    require_nats();
    let dir = tempfile::tempdir().unwrap();
    let run = power_cut(dir.path(), rel);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let (cycles, disks) = losses(&run);
    let (lost, ok) = cycles[0];
    assert!(ok > 0 && lost > 0, "lost {lost} of {ok}: {}", run.stderr);
    assert_eq!(run.cycles()[0]["status"], "fail");
    // What NATS acknowledged was in the page cache only: the cut dropped
    // far more than was fsynced (a few dozen bytes of Raft state, written
    // O_SYNC).
    for d in &disks {
        let figure = |after: &str| -> u64 {
            let head = d.split(after).next().unwrap();
            head.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let (synced, dropped) = (figure(" fsynced through"), figure(" dropped at"));
        assert!(dropped > 10 * synced.max(100), "{d}");
    }
    assert_nothing_left(dir.path(), None);
}

#[test]
fn nats_with_sync_always_keeps_them() {
    require_nats();
    let dir = tempfile::tempdir().unwrap();
    let run = power_cut(dir.path(), "campaign-sync-always.toml");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (cycles, disks) = losses(&run);
    assert_eq!(cycles[0].0, 0, "{}", run.stderr);
    assert!(cycles[0].1 > 0, "{}", run.stderr);
    // The same cut, with what NATS acknowledged fsynced first (a few
    // dozen bytes of index.db, which NATS never syncs and rebuilds from
    // its blocks, may still be dropped).
    for d in &disks {
        assert!(!d.contains(" 0 fsynced through"), "{d}");
    }
}
