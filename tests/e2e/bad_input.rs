//! Issue 6: bad input. Every malformed or contradictory campaign in the
//! corpus (`tests/corpus/campaigns/`, each naming the error it must get),
//! plugins that are not components or not readable, a system under test
//! that exits at once or answers garbage, and a --resume of a directory that
//! is no run: one clear error naming the file, field or node, exit 2,
//! nothing half-written and nothing left running.

use crate::util::*;
use std::path::Path;

/// The error chaos-host printed, from its one `chaos-host: error:` line to
/// the end (a TOML parse error or a log tail continues on later lines).
fn the_error(stderr: &str) -> &str {
    let n = stderr
        .lines()
        .filter(|l| l.starts_with("chaos-host: error:"))
        .count();
    assert_eq!(n, 1, "one error expected:\n{stderr}");
    &stderr[stderr.find("chaos-host: error:").unwrap()..]
}

#[test]
fn every_corpus_campaign_is_refused_with_its_error_and_file() {
    let corpus = root().join("tests/corpus/campaigns");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus too small: {}", files.len());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let dir = tempfile::tempdir().unwrap();
        let run = run_campaign(dir.path(), file, &["--cycles", "1"]);
        assert_eq!(run.code, 2, "{}: {}", file.display(), run.stderr);
        let line = the_error(&run.stderr);
        assert!(
            line.contains(expect),
            "{}: expected {expect:?} in {line}",
            file.display()
        );
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            line.contains(name.as_ref()),
            "{}: the file is not named: {line}",
            file.display()
        );
        assert!(
            !run.out.join("cycles.jsonl").exists(),
            "{}: a cycle ran",
            file.display()
        );
    }
}

fn failing_system(dir: &Path, edit: impl Fn(String) -> String) -> Run {
    let c = campaign(dir, false, edit);
    run_campaign(dir, &c, &["--cycles", "2", "--writes", "10"])
}

#[test]
fn a_system_that_exits_at_once_is_named_with_its_status_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let run = failing_system(dir.path(), |t| {
        let start = t.find("command = [").unwrap();
        let end = start + t[start..].find("]\n").unwrap() + 2;
        format!(
            "{}command = [\"sh\", \"-c\", \"echo cannot start >&2; exit 3\", \"{{port}}\", \"{{data_dir}}\", \"{{peers}}\"]\n{}",
            &t[..start],
            &t[end..]
        )
    });
    let line = the_error(&run.stderr);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        line.contains("node 0") || line.contains("node 1") || line.contains("node 2"),
        "{line}"
    );
    assert!(line.contains("before becoming ready"), "{line}");
    assert!(
        run.stderr.contains("cannot start"),
        "the log tail is shown: {}",
        run.stderr
    );
    assert!(!run.out.join("cycles.jsonl").exists() || run.cycles().is_empty());
}

#[test]
fn a_system_that_answers_garbage_on_read_back_is_a_harness_error() {
    let dir = tempfile::tempdir().unwrap();
    // /health answers JSON without the ids array.
    let run = failing_system(dir.path(), |t| {
        t.replace("/ids?ns={namespace}", "/health?ns={namespace}")
    });
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = the_error(&run.stderr);
    assert!(line.contains("read-back from node 0"), "{line}");
    assert!(
        line.contains("read.ids_pointer \"/ids\" matches nothing"),
        "{line}"
    );
}

#[test]
fn plugins_that_cannot_be_read_or_are_not_components_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let as_dir = dir.path().join("folder.wasm");
    std::fs::create_dir(&as_dir).unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, b"").unwrap();
    let core = dir.path().join("core.wasm");
    // A core module (magic + version 1), not a component.
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for (file, expect) in [
        (&as_dir, "folder.wasm"),
        (&empty, "empty.wasm: not a WebAssembly component"),
        (&core, "core.wasm: not a WebAssembly component"),
    ] {
        let run = run_campaign(dir.path(), &c, &["--plugin", file.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        let line = the_error(&run.stderr);
        assert!(line.contains(expect), "expected {expect:?} in {line}");
    }
}

#[test]
fn resume_of_a_directory_that_is_no_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["run", "--resume"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = the_error(&stderr);
    assert!(line.contains("run.json"), "{line}");
    assert!(
        line.contains("only an --out dir of chaos-host run can be resumed"),
        "{line}"
    );
}
