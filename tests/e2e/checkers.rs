//! The built-in checkers on real cycles: `set_full` judges the history of
//! the reference system with reads during the cycle.

use crate::util::{campaign, run_campaign};
use serde_json::Value;

fn verdict<'a>(cy: &'a Value, plugin: &str) -> &'a Value {
    cy["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["plugin"].as_str().unwrap().starts_with(plugin))
        .unwrap_or_else(|| panic!("no verdict of {plugin}: {cy}"))
}

/// `--bug stale-reads` (node 1 serves reads 300 ms behind its log, nothing
/// lost): `set_full` fails the cycle on its stale reads, naming them, while
/// convergence passes it; the correct system, whose followers lag up to
/// ~160 ms on a loaded machine (`stale_grace_ms = 250` allows
/// that), passes both.
#[test]
fn set_full_catches_stale_reads_that_convergence_misses() {
    let cycle = |bug: bool| {
        let dir = tempfile::tempdir().unwrap();
        let c = campaign(dir.path(), false, |t| {
            let t = t
                .replace(
                    "ids_pointer = \"/ids\"",
                    "ids_pointer = \"/ids\"\nduring_ms = 10",
                )
                .replace("concurrency = 8", "concurrency = 4")
                .replace("assertions = [", "assertions = [\"set_full\", ");
            // Followers outside the write quorum lag by milliseconds.
            let t = format!("{t}\n[params.set_full]\nstale_grace_ms = 250\n");
            if bug {
                t.replace(
                    "\"--quorum\", \"2\",",
                    "\"--quorum\", \"2\", \"--bug\", \"stale-reads\",",
                )
            } else {
                t
            }
        });
        let run = run_campaign(dir.path(), &c, &["--cycles", "1", "--writes", "300"]);
        assert!(run.code != 2, "{}", run.stderr);
        (run.code, run.cycles()[0].clone(), run.stderr)
    };
    let (code, cy, stderr) = cycle(true);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(verdict(&cy, "convergence")["outcome"], "pass", "{cy}");
    let v = verdict(&cy, "set_full");
    assert_eq!(v["outcome"], "fail", "{v}");
    let reasons: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("op ") && r.contains("on node 1 began")),
        "{reasons:?}"
    );

    let (code, cy, stderr) = cycle(false);
    assert_eq!(code, 0, "{stderr}\n{cy}");
    assert_eq!(verdict(&cy, "set_full")["outcome"], "pass", "{cy}");
}

/// The reference register mode, one key, 6 clients, 600 ops a cycle,
/// `linearizable` judging, `bug` switched on every node when given.
fn register_cycles(bug: Option<&str>) -> (tempfile::TempDir, i32, Vec<Value>, String) {
    register_cycles_through(bug, "primary")
}

/// As [`register_cycles`], the register clients going `through` the
/// primary or `"any"` live node in turn.
fn register_cycles_through(
    bug: Option<&str>,
    through: &str,
) -> (tempfile::TempDir, i32, Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let kv = crate::util::bin_dir().join("quorum-kv");
    let c = crate::util::example_campaign(dir.path(), "reference/register.toml", |t| {
        let t = t
            .replace("../../target/debug/quorum-kv", kv.to_str().unwrap())
            .replace("keys = 3", "keys = 1")
            .replace("clients = 4", "clients = 6")
            .replace("ops = 200", "ops = 600")
            .replace("through = \"primary\"", &format!("through = {through:?}"))
            .replace("assertions = [", "assertions = [\"linearizable\", ");
        match bug {
            Some(bug) => t.replace(
                "\"--quorum\", \"2\",",
                &format!("\"--quorum\", \"2\", \"--bug\", \"{bug}\","),
            ),
            None => t,
        }
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "2", "--writes", "20"]);
    assert!(run.code != 2, "{}", run.stderr);
    // The dir goes with the result: the histories the records point at
    // live in it.
    (dir, run.code, run.cycles(), run.stderr)
}

/// Successful cas of one cycle that expected the same value: values are
/// unique per write, so a linearizable register lets only one of them win.
fn double_cas(cy: &Value) -> usize {
    let text = std::fs::read_to_string(cy["history"].as_str().unwrap()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["kind"] == "cas" && o["status"] == "ok")
        .filter(|o| !seen.insert((o["key"].to_string(), o["expected"].to_string())))
        .count()
}

/// `--bug lost-update` (a cas compares against a value read before it takes
/// the lock): every cycle whose history holds two winning cas on one value
/// is failed by `linearizable` with a counterexample naming the ops (a cas
/// among them), while convergence passes it; the correct register mode
/// passes.
#[test]
fn linearizable_catches_a_lost_update_with_its_counterexample() {
    let (_dir, code, cycles, stderr) = register_cycles(Some("lost-update"));
    let mut caught = 0;
    for cy in &cycles {
        assert_eq!(verdict(cy, "convergence")["outcome"], "pass", "{cy}");
        let v = verdict(cy, "linearizable");
        if double_cas(cy) > 0 {
            assert_eq!(v["outcome"], "fail", "{v}");
            let ops: Vec<&str> = v["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r.as_str())
                .filter(|r| r.starts_with("op "))
                .collect();
            // A cas that won on a value already replaced (by another cas or
            // a put) is the lost update: it is in the counterexample.
            assert!(
                ops.iter().any(|r| r.contains(" cas ")),
                "the counterexample shows the cas: {v}"
            );
            caught += 1;
        }
    }
    assert!(caught > 0, "no lost update in 2 cycles: {stderr}");
    assert_eq!(code, 1, "{stderr}");

    let (_dir, code, cycles, stderr) = register_cycles(None);
    assert_eq!(code, 0, "{stderr}");
    for cy in &cycles {
        assert_eq!(verdict(cy, "linearizable")["outcome"], "pass", "{cy}");
    }
}

/// `--bug stale-reads` in register mode: node 1 answers gets from a view
/// 300 ms behind its log. Nothing is lost and every node converges, so
/// convergence passes; gets that return a value already overwritten before
/// they began are not linearizable, and `linearizable` fails the cycle with
/// the get and the writes it contradicts.
#[test]
fn linearizable_catches_stale_register_reads_that_convergence_misses() {
    let (_dir, code, cycles, stderr) = register_cycles_through(Some("stale-reads"), "any");
    assert_eq!(code, 1, "{stderr}");
    let mut caught = 0;
    for cy in &cycles {
        assert_eq!(verdict(cy, "convergence")["outcome"], "pass", "{cy}");
        let v = verdict(cy, "linearizable");
        if v["outcome"] == "fail" {
            let text = v["reasons"].to_string();
            assert!(text.contains("op ") && text.contains(" get "), "{v}");
            caught += 1;
        }
    }
    assert!(caught > 0, "{stderr}");
}
