//! Issue 4 (reports): report.html and junit.xml are written with every run,
//! rebuilt by `chaos-host report DIR`, and the page renders in a real
//! headless browser with its fault windows.

use crate::util::*;
use std::path::Path;
use std::process::Command;

fn buggy_run(dir: &Path) -> Run {
    let c = campaign(dir, true, |t| t);
    let kill = plugin("kill_primary_mid_write");
    let part = plugin("partition_minority");
    run_campaign(
        dir,
        &c,
        &[
            "--plugin",
            kill.to_str().unwrap(),
            "--plugin",
            part.to_str().unwrap(),
            "--cycles",
            "3",
            "--settle-ms",
            "300",
        ],
    )
}

#[test]
fn junit_and_html_are_written_and_rebuilt_from_the_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let run = buggy_run(dir.path());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let junit = std::fs::read_to_string(run.out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuites name=\"chaos-host\" tests=\"2\""),
        "{junit}"
    );
    assert!(junit.contains("name=\"kill_primary_mid_write\""));
    assert!(junit.contains("name=\"partition_minority\""));
    let failed = run.summary()["classes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pass"] == false)
        .count();
    assert!(failed > 0);
    assert_eq!(junit.matches("<failure ").count(), failed, "{junit}");
    let html = std::fs::read_to_string(run.out.join("report.html")).unwrap();
    let effects: usize = run
        .cycles()
        .iter()
        .map(|c| c["effects"].as_array().unwrap().len())
        .sum();
    assert_eq!(html.matches("class=\"fault-window\"").count(), effects);
    assert!(!html.contains("<script"), "self-contained, no scripts");

    // Rebuilt from cycles.jsonl alone, identically.
    std::fs::remove_file(run.out.join("report.html")).unwrap();
    std::fs::remove_file(run.out.join("junit.xml")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("report")
        .arg(&run.out)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(run.out.join("report.html")).unwrap(),
        html
    );
    assert_eq!(
        std::fs::read_to_string(run.out.join("junit.xml")).unwrap(),
        junit
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["report", dir.path().join("nowhere").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is this a chaos-host --out dir?"));
}

/// The page in Debian's chromium, headless: no console message of level
/// warning or error (a failed fetch, a bad tag), and the fault windows are
/// in the rendered DOM.
#[test]
fn report_renders_in_headless_chromium_without_console_errors() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "chromium is needed for this test: bash scripts/install-deps.sh --test"
    );
    let dir = tempfile::tempdir().unwrap();
    let run = buggy_run(dir.path());
    let page = format!("file://{}", run.out.join("report.html").display());
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("chromium").display()
        ))
        .arg("--dump-dom")
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom.contains("chaos-host report"), "{dom}");
    let effects: usize = run
        .cycles()
        .iter()
        .map(|c| c["effects"].as_array().unwrap().len())
        .sum();
    assert!(effects > 0);
    assert_eq!(dom.matches("class=\"fault-window\"").count(), effects);
    assert!(
        dom.matches("<circle").count() >= 600,
        "every write is plotted"
    );
}
