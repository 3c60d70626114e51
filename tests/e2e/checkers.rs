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
