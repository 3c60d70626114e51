//! Issues 3 and 14: a clock skew reaches the reference system (its own
//! clock endpoint shows it) through the vDSO, a Python node under skew keeps
//! sleeping (and does not under the libfaketime fallback), a drift is
//! measured at its rate, a skew that cannot be applied is `simulated`, one
//! the probe cannot see is `ineffective`, and a SIGKILLed engine leaves no
//! node process behind.

use crate::util::*;
use std::time::{Duration, Instant};

/// tests/systems/sleeper.toml in `dir`, its command made absolute and
/// `edit` applied.
fn sleeper_campaign(dir: &std::path::Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    require(
        "python3",
        "apt-get install python3 (scripts/install-deps.sh --test)",
    );
    let sys = root().join("tests/systems");
    let t = std::fs::read_to_string(sys.join("sleeper.toml")).unwrap();
    let t = t.replace(
        "\"./sleeper.py\"",
        &format!("\"{}\"", sys.join("sleeper.py").display()),
    );
    let path = dir.join("sleeper.toml");
    std::fs::write(&path, edit(t)).unwrap();
    path
}

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
        assert_eq!(e["simulated"], false, "{e}");
        assert!(
            e["evidence"].as_str().unwrap().contains("vDSO patched in"),
            "{e}"
        );
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
    // ptrace refused, and a fallback library path that does not load: the
    // node runs without it.
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
        &[
            ("CHAOS_LIBFAKETIME", "/nonexistent/libfaketime.so.1"),
            ("CHAOS_CLOCK_PTRACE", "off"),
        ],
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
        assert!(
            c["effects"][0]["evidence"]
                .as_str()
                .unwrap()
                .contains("fallback: libfaketime (ptrace refused by CHAOS_CLOCK_PTRACE=off)"),
            "{c}"
        );
    }
    assert!(
        run.stdout.contains("SIMULATED") || run.stdout.contains("FAIL"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_python_node_under_skew_keeps_sleeping() {
    let dir = tempfile::tempdir().unwrap();
    let c = sleeper_campaign(dir.path(), |t| t);
    let p = plugin("clock_skew_peer");
    let run = run_campaign(dir.path(), &c, &["--plugin", p.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        let e = &c["effects"][0];
        assert_eq!(
            (&e["verified"], &e["simulated"]),
            (&true.into(), &false.into()),
            "{e}"
        );
    }
}

#[test]
fn the_libfaketime_fallback_breaks_the_python_node_and_is_never_green() {
    // What the vDSO mechanism replaces: with ptrace refused the nodes run
    // under libfaketime, whose DONT_FAKE_MONOTONIC makes Python's sleeps
    // raise EINVAL: the ticker dies, writes are refused, the run fails,
    // and the skew is labelled a simulated fallback.
    assert!(
        std::path::Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1").is_file(),
        "libfaketime is not installed: apt-get install libfaketime (scripts/install-deps.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    // A node that refuses every write never recovers: a short recovery
    // deadline, and at = 0 (a refused write is no progress to wait for),
    // keep the test at seconds.
    let c = sleeper_campaign(dir.path(), |t| {
        format!("{t}\n[recovery]\nwrites = 1\ndeadline_ms = 1000\n")
            .replace("offset_ms = -60000", "offset_ms = -60000\nat = 0.0")
    });
    let p = plugin("clock_skew_peer");
    let run = chaos_env(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "1",
        ],
        &[("CHAOS_CLOCK_PTRACE", "off")],
    );
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for c in run.cycles() {
        assert_ne!(c["status"], "pass", "{c}");
        // The node's sleeps broke (EINVAL): its writes were refused.
        assert!(c["reasons"].to_string().contains("ticker stopped"), "{c}");
        let e = &c["effects"][0];
        assert_eq!(e["simulated"], true, "{e}");
        assert!(
            e["evidence"]
                .as_str()
                .unwrap()
                .starts_with("fallback: libfaketime (ptrace refused by CHAOS_CLOCK_PTRACE=off)"),
            "{e}"
        );
    }
}

/// The drift figures of a cycle's clock effect: (seen, expected) ms.
fn drift_figures(e: &serde_json::Value) -> (i64, i64) {
    // "drift: node clock probe +752 ms after 1501 ms, expected +750 ms ..."
    let ev = e["evidence"].as_str().unwrap();
    let num = |after: &str| -> i64 {
        ev.split(after)
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {after:?} in {ev}"))
    };
    (num("node clock probe "), num("expected "))
}

#[test]
fn a_drift_grows_at_its_rate_and_one_too_small_to_see_is_ineffective() {
    let dir = tempfile::tempdir().unwrap();
    let c = sleeper_campaign(dir.path(), |t| t);
    let p = plugin("clock_drift_peer");
    let run = run_campaign(dir.path(), &c, &["--plugin", p.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        let e = &c["effects"][0];
        assert_eq!(e["verified"], true, "{e}");
        // 500000 ppm over ~1.5 s: ~+750 ms.
        let (seen, expected) = drift_figures(e);
        assert!((600..900).contains(&expected), "{e}");
        assert!((seen - expected).abs() < 100, "{e}");
    }
    // 100 ppm over 1.5 s is 0.15 ms: applied, but no probe can tell it
    // from no drift, so the cycle is not green.
    let dir = tempfile::tempdir().unwrap();
    let c = sleeper_campaign(dir.path(), |t| t.replace("ppm = 500000", "ppm = 100"));
    let run = run_campaign(
        dir.path(),
        &c,
        &["--plugin", p.to_str().unwrap(), "--cycles", "1"],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "ineffective", "{c}");
        let e = &c["effects"][0];
        assert_eq!(e["verified"], false, "{e}");
        assert!(
            e["evidence"]
                .as_str()
                .unwrap()
                .contains("cannot tell it from none"),
            "{e}"
        );
    }
}

/// The bytes of `pid`'s vDSO (the whole mapping).
fn vdso_bytes(pid: u32) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let line = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let (a, b) = line.split_whitespace().next()?.split_once('-')?;
    let (a, b) = (
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    );
    let mut buf = vec![0u8; (b - a) as usize];
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    mem.read_exact_at(&mut buf, a).ok()?;
    Some(buf)
}

#[test]
fn sigkill_of_chaos_host_mid_skew_leaves_no_node_process() {
    let dir = tempfile::tempdir().unwrap();
    let c = sleeper_campaign(dir.path(), |t| {
        t.replace("ms = 800", "ms = 60000\nat = 0.0")
    });
    let p = plugin("clock_skew_peer");
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
            "1",
            // Inside the test's dir, never the default ./chaos-out.
            "--out",
            out.to_str().unwrap(),
        ],
        "stderr.log",
    );
    // In force once a node's vDSO differs from ours (same kernel, same
    // image, unless patched).
    let ours = vdso_bytes(std::process::id()).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "chaos-host exited ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            );
        }
        let nodes = processes_mentioning(dir.path());
        if nodes
            .iter()
            .any(|(pid, _)| vdso_bytes(*pid).is_some_and(|v| v != ours))
        {
            break;
        }
        assert!(Instant::now() < until, "no node was ever patched");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The nodes die with it (PR_SET_PDEATHSIG): none remains, patched or not.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = processes_mentioning(dir.path())
            .into_iter()
            .filter(|(pid, _)| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "node processes outlived chaos-host: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
