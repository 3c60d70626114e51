//! Issue 5 (sandbox): hostile plugins, built as real components, are each
//! contained with a clear per-cycle reason; their effects are undone and the
//! campaign goes on to its next cycle. "Sound verdicts": the memory cap
//! holds for the whole instance, the wall-clock deadline stops running
//! wasm, WASI randomness and clocks replay with `--seed`, and a plugin's
//! name can neither escape `--out` nor be claimed twice.

use crate::util::*;
use std::net::TcpListener;
use std::path::Path;

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
    ("undeclared_disk", &["capability `disk` was not declared"]),
    ("restart_bad_node", &["node 99 does not exist"]),
    ("huge_error", &["more bytes dropped"]),
    ("panic", &["trapped"]),
    ("log_flood", &["flooded"]),
];

/// Run misbehave in `mode`; `open_socket` dials `port`.
fn run_hostile(mode: &str, port: u16) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let run = run_misbehave(
        dir.path(),
        mode,
        |t| {
            t.replace("[campaign]\n", "[campaign]\nplugin_timeout_ms = 4000\n")
                .replace(
                    "[params.misbehave]\n",
                    &format!("[params.misbehave]\nport = {port}\n"),
                )
        },
        &["--cycles", "2", "--writes", "40", "--settle-ms", "200"],
    );
    (dir, run)
}

/// A loopback port that is really listening, so a plugin that could open
/// sockets would connect (a closed port refuses with or without a sandbox).
fn listener() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

/// Nobody connected to `l`.
fn assert_no_connection(l: &TcpListener, what: &str) {
    match l.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("{what}: the listener was reached: {other:?}"),
    }
}

#[test]
fn hostile_plugins_are_contained_and_the_campaign_goes_on() {
    let mut contained = 0;
    for (mode, expect) in HOSTILE {
        let l = listener();
        let (dir, run) = run_hostile(mode, l.local_addr().unwrap().port());
        assert_no_connection(&l, mode);
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

/// The cycles' reasons of `run`, one string per cycle.
fn reasons(run: &Run) -> Vec<String> {
    run.cycles()
        .iter()
        .map(|c| c["reasons"].to_string())
        .collect()
}

/// The one `chaos-host: error:` line of a refused run, which must be all
/// it did: exit 2 and no cycle.
fn refusal(run: &Run) -> String {
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("chaos-host: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        !run.out.join("cycles.jsonl").exists(),
        "a cycle ran: {}",
        run.stderr
    );
    errors[0].to_string()
}

#[test]
fn multi_memory_bomb_is_stopped_at_the_instance_cap() {
    // Four memories of one component, each under 64 MiB, 112 MiB together.
    let dir = tempfile::tempdir().unwrap();
    let bomb = wat_guest(
        dir.path(),
        "multi_memory_bomb.wat",
        "multi_memory_bomb",
        |t| t,
    );
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            bomb.to_str().unwrap(),
            "--cycles",
            "2",
            "--writes",
            "40",
            "--settle-ms",
            "200",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "the campaign went on: {}", run.stderr);
    for c in &cycles {
        assert_eq!(c["status"], "error", "{c}");
        let reasons = c["reasons"].to_string();
        assert!(
            reasons.contains("memory limit") && reasons.contains("64 MiB cap"),
            "{reasons}"
        );
    }
}

/// `inject` that writes to random addresses of 32 MiB forever: every write
/// misses the cache, so the fuel budget lasts many seconds, and the
/// executor's timeout is polled only when fuel yields (every 5e6).
const CACHE_MISSES: &str = "
    (local $a i32)
    (drop (memory.grow (i32.const 512)))
    (loop $again
      (local.set $a
        (i32.add (i32.mul (local.get $a) (i32.const 1103515245)) (i32.const 12345)))
      (i32.store (i32.and (local.get $a) (i32.const 0x01fffffc)) (local.get $a))
      (br $again))
    (unreachable)";

#[test]
fn running_wasm_is_stopped_at_its_wall_clock_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let slow = wat_fault(dir.path(), "cache_misses", "cache_misses", CACHE_MISSES);
    let c = campaign(dir.path(), false, |t| {
        t.replace("[campaign]\n", "[campaign]\nplugin_timeout_ms = 500\n")
    });
    let started = std::time::Instant::now();
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            slow.to_str().unwrap(),
            "--cycles",
            "1",
            "--writes",
            "40",
            "--settle-ms",
            "200",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let reasons = reasons(&run);
    assert!(
        reasons[0].contains("wall-clock deadline of 500 ms passed"),
        "{reasons:?} after {:?}",
        started.elapsed()
    );
}

#[test]
fn wasi_random_and_clock_replay_with_the_seed() {
    let replay = |seed: &str| {
        let dir = tempfile::tempdir().unwrap();
        let run = run_misbehave(
            dir.path(),
            "replay",
            |t| t,
            &[
                "--cycles",
                "2",
                "--writes",
                "20",
                "--settle-ms",
                "100",
                "--seed",
                seed,
            ],
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        let r = reasons(&run);
        assert!(r.iter().all(|r| r.contains("replay: getrandom")), "{r:?}");
        r
    };
    let a = replay("7");
    let b = replay("7");
    let c = replay("8");
    assert_eq!(a, b, "same seed, same draws and clock");
    assert_ne!(a[0], c[0], "another seed, other draws");
    assert_ne!(a[0], a[1], "each cycle has its own seed");
    // The wall clock is a second of 2024 or early 2025, not the host's.
    let wall: u64 = a[0]
        .split("wall ")
        .nth(1)
        .and_then(|w| w.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{a:?}"));
    assert!(
        (1_704_067_200..1_704_067_200 + 366 * 86_400).contains(&wall),
        "{wall}"
    );
}

/// Directories named `escape` beside the temp dir and above it.
fn escapes(dir: &Path) -> Vec<std::path::PathBuf> {
    dir.ancestors()
        .map(|a| a.join("escape"))
        .filter(|e| e.exists())
        .collect()
}

#[test]
fn plugin_names_that_could_escape_or_collide_are_refused_at_load() {
    for (name, file) in [
        ("../../../../escape", "dotdot"),
        ("Upper Case", "upper"),
        (&"a".repeat(65) as &str, "long"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let before = escapes(dir.path());
        let wasm = wat_fault(dir.path(), file, name, INJECT_OK);
        let c = campaign(dir.path(), false, |t| t);
        let run = run_campaign(dir.path(), &c, &["--plugin", wasm.to_str().unwrap()]);
        let e = refusal(&run);
        assert!(
            e.contains(&format!("plugin {}: name ", wasm.display())),
            "{e}"
        );
        assert!(e.contains(&format!("{name:?}")), "{e}");
        assert!(e.contains("a-z, 0-9, _ and -"), "{e}");
        assert_eq!(escapes(dir.path()), before, "{name}: a directory escaped");
    }
}

#[test]
fn two_plugins_with_one_name_are_refused_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    // The same component at two paths.
    let one = dir.path().join("one.wasm");
    let two = dir.path().join("two.wasm");
    std::fs::copy(guest("misbehave"), &one).unwrap();
    std::fs::copy(guest("misbehave"), &two).unwrap();
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            one.to_str().unwrap(),
            "--plugin",
            two.to_str().unwrap(),
            "--allow",
            "misbehave=pause,partition,signal,restart",
        ],
    );
    let e = refusal(&run);
    assert!(
        e.contains(one.to_str().unwrap()) && e.contains(two.to_str().unwrap()),
        "{e}"
    );
    assert!(e.contains("\"misbehave\""), "{e}");
    // A fault named like the campaign's assertion.
    let clash = wat_fault(dir.path(), "clash", "convergence", INJECT_OK);
    let run = run_campaign(dir.path(), &c, &["--plugin", clash.to_str().unwrap()]);
    let e = refusal(&run);
    assert!(
        e.contains(plugin("convergence").to_str().unwrap()) && e.contains(clash.to_str().unwrap()),
        "{e}"
    );
    // Native plugins obey the same rule.
    let lib = bin_dir().join("libnative_pause.so");
    assert!(lib.exists(), "{} missing: run cargo build", lib.display());
    let copy = dir.path().join("libnative_copy.so");
    std::fs::copy(&lib, &copy).unwrap();
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--native-plugin",
            lib.to_str().unwrap(),
            "--native-plugin",
            copy.to_str().unwrap(),
            "--allow",
            "native_pause=pause",
        ],
    );
    let e = refusal(&run);
    assert!(
        e.contains(lib.to_str().unwrap()) && e.contains(copy.to_str().unwrap()),
        "{e}"
    );
}

#[test]
fn numbers_out_of_range_are_refused_naming_call_value_and_range() {
    // Issue 24: a pause or partition of 0 ms was recorded verified (a
    // fault that did nothing, PASS); u32::MAX ms outlived the cycle.
    let (_dir, run) = run_hostile("extreme_numbers", 22);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "ineffective", "{c}");
        assert!(c["effects"].as_array().unwrap().is_empty(), "{c}");
        let reasons = c["reasons"].to_string();
        for says in [
            "pause: lease ms 0 is out of range (allowed 1 to 600000; a lease of 0 ms is a fault that does nothing)",
            "partition: lease ms 0 is out of range",
            "pause: lease ms 4294967295 is out of range",
            "restart: down_ms 4294967295 is out of range (allowed 0 to 600000)",
        ] {
            assert!(reasons.contains(says), "{says}: {reasons}");
        }
    }
}

#[test]
fn a_plugins_control_characters_are_shown_never_interpreted() {
    // Issue 24: ESC, NUL and newlines in a plugin's error and log made
    // junit.xml ill-formed, cleared the terminal and forged progress lines.
    let (dir, run) = run_hostile("control_chars", 22);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\0'),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("[misbehave] cycle 1/1 pass: forged")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("\\u{1b}[2J"),
        "shown escaped: {}",
        run.stderr
    );
    for file in ["junit.xml", "cycles.jsonl", "report.html"] {
        let text = std::fs::read_to_string(run.out.join(file)).unwrap();
        let bad: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
            .collect();
        assert!(bad.is_empty(), "{file} holds {bad:?}");
    }
    let junit = std::fs::read_to_string(run.out.join("junit.xml")).unwrap();
    assert!(junit.contains("&lt;tag&gt;"), "escaped in XML: {junit}");
    drop(dir);
}
