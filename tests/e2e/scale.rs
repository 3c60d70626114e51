//! Issue 16: beyond one cycle at a time. `--parallel K` records what K = 1
//! records, in cycle order, in every network mode; `--shard I/N` runs the
//! unsharded run's cycles with its seeds; `chaos-host merge` combines the
//! shards into the unsharded run, refuses shards of different runs, and
//! exits with the merged verdict.

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What must not depend on how cycles were scheduled: which cycle, its seed,
/// its status and figures, and the effects it applied (kind, verified).
fn essence(r: &Value) -> Value {
    let effects: Vec<Value> = r["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::json!([e["kind"], e["verified"]]))
        .collect();
    serde_json::json!({
        "class": r["class"], "cycle": r["cycle"], "seed": r["seed"],
        "status": r["status"], "writes": r["writes"], "ok": r["ok"],
        "lost_acked": r["lost_acked"], "effects": effects,
    })
}

fn essences(cycles: &[Value]) -> Vec<Value> {
    cycles.iter().map(essence).collect()
}

/// `run --campaign C ARGS... --out DIR/NAME`, with the leak check of
/// [`chaos`], run in `dir/NAME` so several runs share one temp dir.
fn run_in(dir: &Path, name: &str, campaign: &Path, args: &[&str]) -> Run {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    run_campaign(&sub, campaign, args)
}

/// `chaos-host ARGS...` as is (no `--out` added; merge and report start
/// no process, so there is nothing to leak).
fn chaos_plain(dir: &Path, args: &[&str]) -> Run {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_LOG", "warn")
        .env("CHAOS_STATE_DIR", dir.join("state"))
        .output()
        .expect("running chaos-host");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        out: dir.join("out"),
    }
}

/// `chaos-host merge SHARDS... --out OUT`; the run's `out` is OUT.
fn merge(dir: &Path, shards: &[&Path], out: &Path) -> Run {
    let mut args: Vec<&str> = vec!["merge"];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    Run {
        out: out.to_path_buf(),
        ..chaos_plain(dir, &args)
    }
}

fn parallel_matches_serial(net: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let plugins = plugin_paths(&["partition_minority", "drop_random_acks"]);
    let mut args = vec![
        // Enough writes that the burst outlasts a mid-burst cut's setup
        // while other cycles compete for the cores (40 was too short once).
        "--cycles", "4", "--writes", "120", "--seed", "16", "--net", net,
    ];
    for p in &plugins {
        args.extend(["--plugin", p.as_str()]);
    }
    let serial = run_in(d, "serial", &c, &args);
    args.extend(["--parallel", "3"]);
    let parallel = run_in(d, "parallel", &c, &args);
    for run in [&serial, &parallel] {
        assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    }
    let cycles = parallel.cycles();
    // In cycle order, class by class, whatever order they finished in.
    let order: Vec<(String, u64)> = cycles
        .iter()
        .map(|r| {
            (
                r["class"].as_str().unwrap().to_string(),
                r["cycle"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = ["partition_minority", "drop_random_acks"]
        .iter()
        .flat_map(|c| (1..=4).map(move |n| (c.to_string(), n)))
        .collect();
    assert_eq!(order, want);
    assert_eq!(essences(&cycles), essences(&serial.cycles()));
    // Every partition proved itself in its own cycle: a cut or heal of a
    // neighbouring cycle would have left some unverified.
    for r in &cycles {
        assert_eq!(r["status"], "pass", "{}", essence(r));
    }
    // The live lines say which cycle finished.
    for n in 1..=4 {
        assert!(
            parallel
                .stderr
                .contains(&format!("[partition_minority] cycle {n}/4 pass")),
            "{}",
            parallel.stderr
        );
    }
    let s = parallel.summary();
    assert_eq!(s["parallel"], 3);
    assert_eq!(s["classes"], serial.summary()["classes"]);
    let run: Value =
        serde_json::from_slice(&std::fs::read(parallel.out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["parallel"], 3, "--parallel is saved for --resume");
}

/// `--parallel 3` in proxy mode: each running cycle has its own proxies and
/// ports.
#[test]
fn parallel_cycles_record_what_serial_cycles_do_proxy() {
    parallel_matches_serial("proxy");
}

/// `--parallel 3` in netns mode (root): each running cycle has its own set
/// of namespaces and its own nftables table, so partitions never cross.
#[test]
fn parallel_cycles_record_what_serial_cycles_do_netns() {
    parallel_matches_serial("netns");
}

/// `--parallel 3` on plain loopback (no partitions there: pauses only).
#[test]
fn parallel_cycles_on_loopback_keep_their_ports_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let pause = plugin("drop_random_acks");
    let args = [
        "--plugin",
        pause.to_str().unwrap(),
        "--cycles",
        "6",
        "--writes",
        "40",
        "--net",
        "loopback",
        "--parallel",
        "3",
    ];
    let run = run_in(d, "loopback", &c, &args);
    assert_eq!(run.code, 0, "stderr:\n{}", run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 6);
    // Six clusters, three at a time: no port was handed to two of them.
    let mut ports: Vec<u64> = cycles
        .iter()
        .flat_map(|r| r["nodes"].as_array().unwrap().iter())
        .map(|n| n["port"].as_u64().unwrap())
        .collect();
    let all = ports.len();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), all, "a port was reused across running cycles");
}

/// Bad `--parallel` and `--shard` values: exit 2, one line naming the
/// argument and what to give, and nothing written.
#[test]
fn bad_parallel_and_shard_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    for (args, says) in [
        (vec!["--parallel", "0"], "--parallel 0: give from 1 to 64"),
        (vec!["--parallel", "65"], "--parallel 65: give from 1 to 64"),
        (vec!["--shard", "3/2"], "shard 3 of 2 does not exist"),
        (vec!["--shard", "0/2"], "shard 0 of 2 does not exist"),
        (vec!["--shard", "two"], "is not I/N"),
        (
            vec!["--shard", "2/4", "--cycles", "3"],
            "--shard 2/4: 4 shards of 3 cycle(s) per class would leave shard(s) with no cycle",
        ),
    ] {
        let run = run_campaign(d, &c, &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(!run.out.exists(), "{args:?} wrote {}", run.out.display());
    }
}

/// Shards 1/2 and 2/2 run the unsharded run's cycles (same seeds, same
/// statuses), and merged they are the unsharded run: every cycle in cycle
/// order, the summary and JUnit over all of them.
#[test]
fn merged_shards_equal_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let plugins = plugin_paths(&["partition_minority", "drop_random_acks"]);
    let mut args = vec!["--cycles", "3", "--writes", "40", "--seed", "1616"];
    for p in &plugins {
        args.extend(["--plugin", p.as_str()]);
    }
    let whole = run_in(d, "whole", &c, &args);
    assert_eq!(whole.code, 0, "stderr:\n{}", whole.stderr);
    let mut shards = Vec::new();
    for s in ["2/2", "1/2"] {
        let mut a = args.clone();
        a.extend(["--shard", s, "--parallel", "2"]);
        let run = run_in(d, &format!("shard-{}", &s[..1]), &c, &a);
        assert_eq!(run.code, 0, "shard {s} stderr:\n{}", run.stderr);
        assert_eq!(
            run.summary()["shard"],
            serde_json::json!({"index": s[..1].parse::<u32>().unwrap(), "count": 2})
        );
        shards.push(run);
    }
    // Shard 1/2 ran cycles 1 and 3 of each class, 2/2 cycle 2.
    let cycles_of = |r: &Run| -> Vec<u64> {
        r.cycles()
            .iter()
            .map(|x| x["cycle"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(cycles_of(&shards[1]), vec![1, 3, 1, 3]);
    assert_eq!(cycles_of(&shards[0]), vec![2, 2]);
    // A shard resumes as that shard: run.json keeps it, so a finished shard
    // has nothing left to run (not the other shard's cycles).
    let resumed = chaos_plain(d, &["run", "--resume", shards[1].out.to_str().unwrap()]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("4 of 4 cycle(s) already recorded"),
        "{}",
        resumed.stderr
    );
    assert_eq!(cycles_of(&shards[1]), vec![1, 3, 1, 3]);
    assert_eq!(shards[1].summary()["shard"]["index"], 1);

    let out = d.join("merged");
    let merged = merge(d, &[&shards[0].out, &shards[1].out], &out);
    assert_eq!(
        merged.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        merged.stdout, merged.stderr
    );
    assert_eq!(essences(&merged.cycles()), essences(&whole.cycles()));
    let s = merged.summary();
    assert_eq!(s["pass"], true);
    assert_eq!(s["seed"], 1616);
    assert_eq!(s["cycles_per_class"], 3);
    assert_eq!(s["merged"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["classes"], whole.summary()["classes"]);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 2, "{junit}");
    assert_eq!(junit.matches("cycles=3 passed=3").count(), 2, "{junit}");
    assert!(out.join("report.html").exists());
    // The merged dir is a run dir: `chaos-host report` rebuilds it.
    std::fs::remove_file(out.join("junit.xml")).unwrap();
    let report = chaos_plain(d, &["report", out.to_str().unwrap()]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert!(out.join("junit.xml").exists());
    // Histories moved with their records: each one is in the merged dir,
    // holds what its shard recorded, and exports from there.
    for r in merged.cycles() {
        let (k, own) = shard_of(&shards, &r);
        let h = PathBuf::from(r["history"].as_str().unwrap());
        assert!(h.starts_with(&out), "{h:?} is not in {out:?}");
        let original = PathBuf::from(own["history"].as_str().unwrap());
        assert_eq!(
            std::fs::read(&h).unwrap(),
            std::fs::read(&original).unwrap(),
            "{h:?} differs from shard {k}'s {original:?}"
        );
    }
    let export = chaos_plain(d, &["export", out.to_str().unwrap(), "--format", "edn"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    for r in merged.cycles() {
        let h = PathBuf::from(r["history"].as_str().unwrap());
        assert!(h.with_file_name("history.edn").is_file(), "{h:?}");
    }
}

/// Which shard of `shards` recorded merged record `r` (by class and
/// cycle), with the shard's own record.
fn shard_of(shards: &[Run], r: &Value) -> (usize, Value) {
    for (k, s) in shards.iter().enumerate() {
        if let Some(own) = s
            .cycles()
            .into_iter()
            .find(|x| x["class"] == r["class"] && x["cycle"] == r["cycle"])
        {
            return (k, own);
        }
    }
    panic!("no shard recorded {r}");
}

/// Shard `shard` of a `--cycles 3` baseline (no fault) run with `seed`,
/// `edit` applied to the campaign, in `dir/name`.
fn baseline_shard(
    dir: &Path,
    name: &str,
    shard: &str,
    seed: &str,
    edit: fn(String) -> String,
) -> PathBuf {
    baseline_shard_with(dir, name, shard, seed, edit, &["--cycles", "3"])
}

/// [`baseline_shard`] with `extra` run arguments instead of `--cycles 3`.
fn baseline_shard_with(
    dir: &Path,
    name: &str,
    shard: &str,
    seed: &str,
    edit: fn(String) -> String,
    extra: &[&str],
) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let c = campaign(&sub, false, edit);
    let mut args = vec!["--writes", "20", "--seed", seed, "--shard", shard];
    args.extend_from_slice(extra);
    let run = run_campaign(&sub, &c, &args);
    assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    run.out
}

/// Merges that would mix runs or miss cycles are refused with exit 2,
/// naming the dirs and what differs or is missing, and write nothing.
#[test]
fn merge_refuses_shards_of_different_runs_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let same = |t: String| t;
    let s1 = baseline_shard(d, "s1", "1/3", "5", same);
    let s2 = baseline_shard(d, "s2", "2/3", "5", same);
    let s3 = baseline_shard(d, "s3", "3/3", "5", same);
    let other_seed = baseline_shard(d, "seed", "2/3", "6", same);
    let other_campaign = baseline_shard(d, "campaign", "2/3", "5", |t| format!("{t}\n# edited\n"));
    let two_shards = baseline_shard(d, "two", "2/2", "5", same);
    let other_cycles = baseline_shard_with(d, "cycles", "2/3", "5", same, &["--cycles", "4"]);
    let pause = plugin("drop_random_acks");
    let other_plugins = baseline_shard_with(
        d,
        "plugins",
        "2/3",
        "5",
        same,
        &["--cycles", "3", "--plugin", pause.to_str().unwrap()],
    );
    let not_a_run = d.join("empty");
    std::fs::create_dir_all(&not_a_run).unwrap();
    let unfinished = d.join("unfinished");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::copy(s2.join("run.json"), unfinished.join("run.json")).unwrap();
    let name = |p: &Path| p.display().to_string();
    let cases: Vec<(Vec<&Path>, Vec<String>)> = vec![
        (
            vec![&s1, &s3],
            vec!["shard 2/3 is missing".into(), name(&s1), name(&s3)],
        ),
        (
            vec![&s1, &other_seed, &s3],
            vec!["seed differ".into(), "(5 vs 6".into(), name(&other_seed)],
        ),
        (
            vec![&s1, &other_campaign, &s3],
            vec!["campaign (sha256) differ".into(), name(&other_campaign)],
        ),
        (
            vec![&s1, &s2, &s2, &s3],
            vec!["are both shard 2/3 (overlapping shards)".into(), name(&s2)],
        ),
        (
            vec![&s1, &two_shards],
            vec!["shard counts differ".into(), name(&two_shards)],
        ),
        (
            vec![&s1, &other_cycles, &s3],
            vec!["cycles per class differ".into(), "(3 vs 4".into()],
        ),
        (
            vec![&s1, &other_plugins, &s3],
            vec![
                "plugins (sha256 by name) differ".into(),
                name(&other_plugins),
            ],
        ),
        (
            vec![&s1, &not_a_run],
            vec![format!("{} is not a chaos-host run dir", name(&not_a_run))],
        ),
        (
            vec![&s1, &unfinished, &s3],
            vec![
                format!("{} has no summary.json", name(&unfinished)),
                "--resume".into(),
            ],
        ),
    ];
    for (shards, says) in cases {
        let out = d.join("merged");
        let run = merge(d, &shards, &out);
        assert_eq!(run.code, 2, "{shards:?}: {}", run.stderr);
        for s in &says {
            assert!(
                run.stderr.contains(s.as_str()),
                "{shards:?}: wanted {s:?} in {}",
                run.stderr
            );
        }
        assert!(
            !out.exists(),
            "{shards:?}: a refused merge wrote {}",
            out.display()
        );
    }
    // The same three shards, all there once, merge.
    let out = d.join("merged");
    let run = merge(d, &[&s3, &s1, &s2], &out);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("cycles.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

/// The buggy reference system: whichever shard caught the lost writes, the
/// merged verdict fails (exit 1) and the merged JUnit says so.
#[test]
fn a_failing_shard_fails_the_merge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, true, |t| t);
    let kill = plugin("kill_primary_mid_write");
    let mut outs = Vec::new();
    let mut codes = Vec::new();
    for s in ["1/2", "2/2"] {
        let run = run_in(
            d,
            &format!("shard-{}", &s[..1]),
            &c,
            &[
                "--plugin",
                kill.to_str().unwrap(),
                "--cycles",
                "6",
                "--writes",
                "40",
                "--seed",
                "3",
                "--shard",
                s,
            ],
        );
        assert!(run.code == 0 || run.code == 1, "shard {s}: {}", run.stderr);
        codes.push(run.code);
        outs.push(run.out);
    }
    assert!(
        codes.contains(&1),
        "the defect was caught in neither shard: {codes:?}"
    );
    let out = d.join("merged");
    let merged = merge(d, &[&outs[0], &outs[1]], &out);
    assert_eq!(
        merged.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        merged.stdout, merged.stderr
    );
    assert!(merged.stdout.contains("overall: FAIL"), "{}", merged.stdout);
    let s: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["pass"], false);
    assert_eq!(s["classes"][0]["cycles"], 6);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure "), "{junit}");
    // The evidence of failing cycles moved into the merged dir with them.
    let merged_cycles: Vec<Value> = std::fs::read_to_string(out.join("cycles.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for r in merged_cycles.iter().filter(|r| r["status"] != "pass") {
        let e = r["evidence"].as_str().unwrap();
        assert!(e.starts_with(out.to_str().unwrap()), "{e}");
        assert!(Path::new(e).join("missing.json").exists(), "{e}");
    }
}

/// SIGKILL while three cycles are in flight (one recorded), then
/// `--resume`: what is "done" is what cycles.jsonl holds (a prefix of each
/// class in cycle order), so cycles finished but not yet written run again;
/// in the end every cycle is recorded once, in cycle order, with the seed
/// and status of an uninterrupted run, and nothing is left behind.
#[test]
fn a_parallel_run_killed_mid_run_resumes_to_the_uninterrupted_records() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let pause = plugin("drop_random_acks");
    let common = [
        "--plugin",
        pause.to_str().unwrap(),
        "--cycles",
        "6",
        "--writes",
        "40",
        "--seed",
        "99",
    ];
    let serial = run_in(d, "serial", &c, &common);
    assert_eq!(serial.code, 0, "{}", serial.stderr);

    let out = d.join("killed");
    let mut args = vec!["run", "--campaign", c.to_str().unwrap()];
    args.extend(common);
    args.extend(["--parallel", "3", "--out", out.to_str().unwrap()]);
    let mut child = spawn_chaos(d, &args, "killed.log");
    // Kill once the first record is written: the next cycles are running.
    let jsonl = out.join("cycles.jsonl");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&jsonl).map_or(0, |t| t.lines().count()) < 1 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before a cycle was recorded"
        );
        assert!(
            std::time::Instant::now() < until,
            "no cycle recorded after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let log = std::fs::read_to_string(d.join("killed.log")).unwrap();
    let killed_at = std::fs::read_to_string(&jsonl).unwrap().lines().count();
    assert!(killed_at < 6, "the run ended before the kill:\n{log}");

    let resumed = chaos_plain(d, &["run", "--resume", out.to_str().unwrap()]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains(&format!("{killed_at} of 6 cycle(s) already recorded")),
        "{}",
        resumed.stderr
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let cycles: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(essences(&cycles), essences(&serial.cycles()));
    let s: Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["parallel"], 3, "the resumed run keeps --parallel");
    for log in [&log, &resumed.stderr] {
        if let Some(id) = run_id(log) {
            assert_no_network_state(&id);
        }
    }
    assert_nothing_left(d, None);
}

/// Ctrl-C with three cycles in flight: every one of them is torn down
/// (nodes killed and reaped, pauses undone), the message names them, and
/// nothing is left.
#[test]
fn ctrl_c_with_cycles_in_flight_tears_them_all_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = campaign(d, false, |t| t);
    let pause = plugin("drop_random_acks");
    let out = d.join("out");
    let args = [
        "run",
        "--campaign",
        c.to_str().unwrap(),
        "--plugin",
        pause.to_str().unwrap(),
        "--cycles",
        "9",
        "--writes",
        "40",
        "--parallel",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut child = spawn_chaos(d, &args, "run.log");
    let jsonl = out.join("cycles.jsonl");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&jsonl).map_or(0, |t| t.lines().count()) < 1 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before a cycle was recorded"
        );
        assert!(
            std::time::Instant::now() < until,
            "no cycle recorded after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(d.join("run.log")).unwrap();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains("interrupted by SIGINT during cycle(s) "),
        "{log}"
    );
    if let Some(id) = run_id(&log) {
        assert_no_network_state(&id);
    }
    assert_nothing_left(d, None);
    assert!(!out.join("work").exists());
}
