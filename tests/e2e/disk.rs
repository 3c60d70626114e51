//! Issue 13: disk faults through the host's FUSE layer under each data
//! dir. Each fault takes effect on the reference system with its evidence;
//! a system whose IO bypasses the layer gets no green; quorum-kv's
//! `--bug ack-before-fsync` loses acknowledged writes under a power failure
//! and not under a plain crash-restart; a SIGKILLed engine's mounts are
//! undone by `chaos-host cleanup`.

use crate::util::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The reference campaign (with `bug`, if any) with `fault` granted
/// `caps` and `params`, run for `cycles`.
pub(crate) fn run_disk(
    dir: &Path,
    fault: &str,
    caps: &str,
    params: &str,
    edit: impl Fn(String) -> String,
) -> Run {
    let c = campaign(dir, false, |t| {
        edit(
            format!("{t}\n[params.{fault}]\n{params}\n")
                .replace("[grants]\n", &format!("[grants]\n{fault} = [{caps}]\n")),
        )
    });
    let p = plugin(fault);
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

/// quorum-kv with `--bug BUG`.
fn with_bug(bug: &'static str) -> impl Fn(String) -> String {
    move |t: String| {
        t.replace(
            "\"--quorum\", \"2\",",
            &format!("\"--quorum\", \"2\", \"--bug\", \"{bug}\","),
        )
    }
}

/// quorum-kv keeping its log outside the data dir the host mounted.
pub(crate) fn bypassing_the_layer(t: String) -> String {
    t.replace("\"{data_dir}\"", "\"{data_dir}.elsewhere\"")
}

/// The disk effects of every cycle of `run`.
pub(crate) fn disk_effects(run: &Run) -> Vec<serde_json::Value> {
    run.cycles()
        .iter()
        .flat_map(|c| c["effects"].as_array().unwrap().clone())
        .filter(|e| e["kind"] == "disk")
        .collect()
}

/// The first number in `evidence` before `what`.
fn figure(evidence: &str, what: &str) -> u64 {
    let before = evidence.split(what).next().unwrap();
    before
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no figure before {what:?} in {evidence:?}"))
}

/// No FUSE mount under `dir` is left.
pub(crate) fn assert_unmounted(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains("fuse") && l.contains(dir.to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
}

#[test]
fn each_disk_fault_takes_effect_on_the_reference_system_and_it_keeps_its_promise() {
    // (fault, what its evidence counts)
    let faults = [
        (
            "disk_full_peer",
            "ms = 300\nat = 0.2",
            "write(s) refused with ENOSPC",
        ),
        (
            "fsync_error_peer",
            "ms = 300\nat = 0.2",
            "fsync(s) failed with EIO",
        ),
        (
            "slow_disk",
            "ms = 300\nat = 0.2\nlatency_ms = 5",
            "operation(s) delayed",
        ),
    ];
    for (fault, params, counted) in faults {
        let dir = tempfile::tempdir().unwrap();
        let run = run_disk(dir.path(), fault, "\"disk\"", params, |t| t);
        assert_eq!(run.code, 0, "{fault}: {}", run.stderr);
        let fx = disk_effects(&run);
        assert_eq!(fx.len(), 3, "{fault}");
        for e in fx {
            assert_eq!(e["verified"], true, "{fault}: {e}");
            assert_eq!(e["during_burst"], true, "{fault}: {e}");
            assert!(figure(e["evidence"].as_str().unwrap(), counted) > 0, "{e}");
        }
        assert_unmounted(dir.path());
        assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
    }
}

#[test]
fn the_correct_reference_system_survives_a_power_failure() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_disk(
        dir.path(),
        "power_failure",
        "\"disk\", \"restart\"",
        "at = 0.5\ndown_ms = 100",
        |t| t,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        assert_eq!(c["lost_acked"], 0, "{c}");
        let fx = c["effects"].as_array().unwrap();
        let restarts = fx.iter().filter(|e| e["kind"] == "restart").count();
        assert_eq!(restarts, 3, "{c}");
        for e in fx.iter().filter(|e| e["kind"] == "disk") {
            let ev = e["evidence"].as_str().unwrap();
            assert!(ev.contains("at 1 kill(s)"), "{e}");
            // Every acknowledged write was fsynced through the layer.
            assert!(figure(ev, "fsynced through") > 0, "{e}");
        }
        for n in c["nodes"].as_array().unwrap() {
            assert_eq!(n["restarts"], 1, "{n}");
        }
    }
    assert_unmounted(dir.path());
}

#[test]
fn ack_before_fsync_loses_acknowledged_writes_under_a_power_failure_only() {
    // A plain crash: the kernel keeps what was written, nothing is lost.
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        with_bug("ack-before-fsync")(format!(
            "{t}\n[params.crash_restart]\ntarget = \"all\"\ndown_ms = 100\n"
        ))
        .replace("[grants]\n", "[grants]\ncrash_restart = [\"restart\"]\n")
    });
    let p = plugin("crash_restart");
    let run = run_campaign(
        dir.path(),
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
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        assert_eq!(c["lost_acked"], 0, "{c}");
    }

    // A power failure: what was acknowledged but never fsynced is gone.
    let dir = tempfile::tempdir().unwrap();
    let run = run_disk(
        dir.path(),
        "power_failure",
        "\"disk\", \"restart\"",
        "at = 0.5\ndown_ms = 100",
        with_bug("ack-before-fsync"),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cycles = run.cycles();
    let lost: u64 = cycles
        .iter()
        .map(|c| c["lost_acked"].as_u64().unwrap())
        .sum();
    assert!(lost > 0, "no acknowledged write lost: {cycles:?}");
    for c in cycles
        .iter()
        .filter(|c| c["lost_acked"].as_u64().unwrap() > 0)
    {
        assert_eq!(c["status"], "fail", "{c}");
        assert!(
            c["reasons"].to_string().contains("missing on a live node"),
            "{c}"
        );
        let dropped: u64 = c["effects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "disk")
            .map(|e| figure(e["evidence"].as_str().unwrap(), "dropped at"))
            .sum();
        assert!(dropped > 0, "{c}");
    }
    assert_unmounted(dir.path());
}

#[test]
fn disk_faults_need_a_grant_and_are_refused_before_the_run_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let p = plugin("disk_full_peer");
    let run = run_campaign(dir.path(), &c, &["--plugin", p.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--allow disk_full_peer=disk"),
        "{}",
        run.stderr
    );
    assert_unmounted(dir.path());
}

#[test]
fn sigkill_with_a_disk_fault_in_force_then_cleanup_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        format!("{t}\n[params.disk_full_peer]\nms = 30000\nat = 0.0\n")
            .replace("[grants]\n", "[grants]\ndisk_full_peer = [\"disk\"]\n")
    });
    let p = plugin("disk_full_peer");
    let out = dir.path().join("out");
    let mut child = spawn_chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "3",
            "--out",
            out.to_str().unwrap(),
        ],
        "stderr.log",
    );
    // In force once a peer's data dir refuses a new file with ENOSPC.
    let cycle = out.join("work/disk_full_peer/cycle-1");
    let until = Instant::now() + Duration::from_secs(60);
    'wait: loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "chaos-host exited ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
        }
        for i in 1..3 {
            let probe = cycle.join(format!("node-{i}/probe"));
            if let Err(e) = std::fs::write(&probe, b"x")
                && e.raw_os_error() == Some(libc::ENOSPC)
            {
                break 'wait;
            }
        }
        assert!(Instant::now() < until, "the disk never filled");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        mounts.contains(cycle.to_str().unwrap()),
        "the killed run should have left its mounts for cleanup to find"
    );
    let said = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("cleanup")
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(said.status.success(), "{said:?}");
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("unmounted disk layer"), "{said}");
    assert_unmounted(dir.path());
    assert_nothing_left(dir.path(), None);
}
