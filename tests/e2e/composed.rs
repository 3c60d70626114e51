//! Composed fault classes: `[[class]]` runs several fault plugins in one
//! cycle, concurrently, each with its own grants and parameters, their
//! effects on one timeline and each attributed to the plugin that asked.

use crate::util::*;
use std::path::Path;

/// The correct reference campaign with `[[class]] name = NAME` of `faults`
/// (plugin files built from source) and `extra` TOML appended.
fn composed(dir: &Path, name: &str, faults: &[&str], extra: &str) -> std::path::PathBuf {
    let list: Vec<String> = faults
        .iter()
        .map(|f| {
            let p = if matches!(*f, "misbehave" | "link_fault") {
                guest(f)
            } else {
                plugin(f)
            };
            format!("{:?}", p.to_str().unwrap())
        })
        .collect();
    campaign(dir, false, |t| {
        format!(
            "{t}\n{extra}\n[[class]]\nname = {name:?}\nfaults = [{}]\n",
            list.join(", ")
        )
        .replace(
            "[grants]\n",
            "[grants]\nmisbehave = [\"pause\", \"partition\", \"signal\", \"restart\"]\nlink_fault = [\"link\"]\nslow_link = [\"link\"]\n",
        )
        // drop_random_acks pauses its peer at once and holds it 5 s (see
        // the conflict test).
        .replace(
            "[params.drop_random_acks]\nms = 500\n",
            "[params.drop_random_acks]\nat = 0.0\nms = 5000\n",
        )
    })
}

fn effects_by_plugin(cycle: &serde_json::Value) -> Vec<(String, String, bool)> {
    cycle["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["plugin"].as_str().unwrap_or("").to_string(),
                e["verified"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_kill_and_a_partition_share_one_cycle_each_effect_attributed() {
    let dir = tempfile::tempdir().unwrap();
    let c = composed(
        dir.path(),
        "kill+partition",
        &["kill_primary_mid_write", "partition_minority"],
        "",
    );
    let run = run_campaign(dir.path(), &c, &["--cycles", "2", "--writes", "60"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let classes = run.summary()["classes"].as_array().unwrap().clone();
    // The plugins named only inside [[class]] make no class of their own.
    assert_eq!(classes.len(), 1, "{classes:?}");
    assert_eq!(classes[0]["fault"], "kill+partition");
    let label = classes[0]["plugin"].as_str().unwrap();
    assert!(
        label.contains("kill_primary_mid_write@") && label.contains(" + partition_minority@"),
        "{label}"
    );
    for cycle in run.cycles() {
        assert_eq!(cycle["status"], "pass", "{cycle}");
        let effects = effects_by_plugin(&cycle);
        assert!(
            effects
                .iter()
                .any(|(k, p, v)| k == "signal" && p.starts_with("kill_primary_mid_write@") && *v),
            "{effects:?}"
        );
        assert!(
            effects
                .iter()
                .any(|(k, p, v)| k == "partition" && p.starts_with("partition_minority@") && *v),
            "{effects:?}"
        );
        // `+` would turn into a space in the read URL's query string.
        let ns = cycle["namespace"].as_str().unwrap();
        assert!(ns.contains("-kill-partition-c"), "{ns}");
    }
    // A composed class's cycle replays like any other.
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["replay", run.out.to_str().unwrap()])
        .args(["--class", "kill+partition", "--cycle", "2"])
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(replay.status.success(), "{replay:?}");
    // The report says whose each effect was.
    let html = std::fs::read_to_string(run.out.join("report.html")).unwrap();
    let cycles = run.cycles();
    let (_, kill, _) = effects_by_plugin(&cycles[0])
        .into_iter()
        .find(|(k, _, _)| k == "signal")
        .unwrap();
    assert!(html.contains(&format!("{kill}: signal")), "{kill}");
    assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
}

/// A composed class tests what its name says only when every plugin's
/// effect happened: the partition alone holding must not make it green.
#[test]
fn a_plugin_of_a_composed_class_that_asks_for_nothing_makes_it_ineffective() {
    let dir = tempfile::tempdir().unwrap();
    let c = composed(
        dir.path(),
        "partition+nothing",
        &["partition_minority", "misbehave"],
        "[params.misbehave]\nmode = \"nothing\"\n",
    );
    let run = run_campaign(dir.path(), &c, &["--cycles", "1", "--writes", "60"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cycle = &run.cycles()[0];
    assert_eq!(cycle["status"], "ineffective", "{cycle}");
    let reasons = cycle["reasons"].to_string();
    assert!(
        reasons.contains("misbehave@") && reasons.contains("requested no effect"),
        "{reasons}"
    );
    // The partition itself held: only the other plugin is missing.
    assert!(
        effects_by_plugin(cycle)
            .iter()
            .any(|(k, _, v)| k == "partition" && *v)
    );
    assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
}

/// One pause per node still holds across plugins: the second plugin's pause
/// is refused, naming the plugin that holds the node, and the cycle fails.
#[test]
fn two_plugins_pausing_one_node_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let c = composed(
        dir.path(),
        "pause+pause",
        &["misbehave", "drop_random_acks"],
        // drop_random_acks pauses one peer for 5 s from the burst's start,
        // misbehave both peers at a quarter of the burst (one quorum is
        // still up meanwhile, so writes go on): misbehave is refused, naming
        // drop_random_acks; either order is accepted all the same.
        "[params.misbehave]\nmode = \"pause_peers\"\n",
    );
    let run = run_campaign(dir.path(), &c, &["--cycles", "1", "--writes", "80"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    let cycle = &run.cycles()[0];
    assert_ne!(cycle["status"], "pass", "{cycle}");
    let reasons = cycle["reasons"].to_string();
    assert!(
        (reasons.contains("drop_random_acks@")
            && reasons.contains("is already paused (by misbehave@"))
            || (reasons.contains("misbehave@")
                && reasons.contains("is already paused (by drop_random_acks@")),
        "{reasons}"
    );
    assert!(stopped_processes_mentioning(dir.path()).is_empty());
    assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
}

/// A link fault never replaces another plugin's: link_fault degrades the
/// primary's links from the burst's start for 5 s, slow_link asks for the
/// same links at 30 % of the burst and is refused, naming link_fault; the
/// only link lease is link_fault's, and the cycle is not green (a plugin
/// failed: every lease of the cycle then ends at once).
#[test]
fn a_link_fault_of_another_plugin_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let c = composed(
        dir.path(),
        "held+slow",
        &["link_fault", "slow_link"],
        "[params.link_fault]\nat = 0.0\nms = 5000\nlatency_ms = 20\n",
    );
    let run = run_campaign(
        dir.path(),
        &c,
        &["--cycles", "1", "--writes", "80", "--net", "proxy"],
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    let cycle = &run.cycles()[0];
    assert_ne!(cycle["status"], "pass", "{cycle}");
    let reasons = cycle["reasons"].to_string();
    assert!(
        reasons.contains("slow_link@") && reasons.contains("a link of link_fault@"),
        "{reasons}"
    );
    let links: Vec<_> = cycle["effects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "link")
        .collect();
    assert_eq!(links.len(), 1, "only link_fault's lease: {links:?}");
    assert!(
        links[0]["plugin"]
            .as_str()
            .unwrap()
            .starts_with("link_fault@"),
        "{links:?}"
    );
    assert_nothing_left(dir.path(), run_id(&run.stderr).as_deref());
}

#[test]
fn bad_composed_classes_are_refused_before_the_run() {
    let convergence = format!("{:?}", plugin("convergence").to_str().unwrap());
    let assertion_as_fault =
        format!("[[class]]\nname = \"x\"\nfaults = [\"partition_minority\", {convergence}]\n");
    let cases: &[(&str, &str)] = &[
        (
            "[[class]]\nname = \"solo\"\nfaults = [\"partition_minority\"]\n",
            "class[0].faults: a composed class needs at least two fault plugins",
        ),
        (
            "[[class]]\nname = \"a b\"\nfaults = [\"partition_minority\", \"drop_random_acks\"]\n",
            "class[0].name: \"a b\" has ' '",
        ),
        (
            "[[class]]\nname = \"..\"\nfaults = [\"partition_minority\", \"drop_random_acks\"]\n",
            "class[0].name: \"..\" is empty or starts with '.'",
        ),
        (
            "[[class]]\nname = \"a+b\"\nfaults = [\"partition_minority\", \"drop_random_acks\"]\n[[class]]\nname = \"a-b\"\nfaults = [\"partition_minority\", \"drop_random_acks\"]\n",
            "class[1].name: \"a-b\" names two [[class]] entries (or one that differs only in + . -",
        ),
        (
            "[[class]]\nname = \"x\"\nfaults = [\"partition_minority\", \"no_such_plugin\"]\n",
            "class[0].faults[1]",
        ),
        (
            &assertion_as_fault,
            "convergence.wasm is an assertion plugin, not a fault",
        ),
        (
            "[[class]]\nname = \"x\"\nfaults = [\"partition_minority\", \"drop_random_acks\"]\n[[class]]\nname = \"x\"\nfaults = [\"partition_minority\", \"drop_random_acks\"]\n",
            "class[1].name: \"x\" names two [[class]] entries",
        ),
    ];
    for (extra, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let c = campaign(dir.path(), false, |t| format!("{t}\n{extra}"));
        let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
        assert_eq!(run.code, 2, "{extra}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{extra}: {}", run.stderr);
        assert!(!run.out.join("cycles.jsonl").exists(), "{extra}");
    }
}
