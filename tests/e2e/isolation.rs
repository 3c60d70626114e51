use crate::util::*;
use std::collections::HashSet;

/// Issue 2 (seed 000): across 50 cycles no id of one cycle is visible in the
/// next, and every cycle's figures have the same shape.
#[test]
fn fifty_cycles_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        t.replace("settle_ms = 1000", "settle_ms = 100")
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "50", "--writes", "20"]);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 50);
    let mut previous: HashSet<String> = HashSet::new();
    let mut namespaces = HashSet::new();
    let mut ports = Vec::new();
    for c in &cycles {
        assert_eq!(c["class"], "none");
        assert_eq!(c["status"], "pass", "{c}");
        assert_eq!(c["writes"], 20);
        assert_eq!(c["ok"], 20, "{c}");
        assert_eq!(c["lost_acked"], 0);
        assert_eq!(c["convergence_bound"], 1.0);
        assert!(namespaces.insert(c["namespace"].as_str().unwrap().to_string()));
        let ids: HashSet<String> = c["writes_detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 20);
        assert!(
            ids.is_disjoint(&previous),
            "cycle {} reuses ids",
            c["cycle"]
        );
        // Each node holds exactly this cycle's writes, not a running total:
        // the burst's 20 and the recovery window's 5.
        assert_eq!(c["recovery"]["acked"], 5, "{c}");
        for n in c["nodes"].as_array().unwrap() {
            assert_eq!(n["alive"], true);
            assert_eq!(n["held"], 25, "cycle {} node {}", c["cycle"], n["node"]);
            ports.push(n["port"].as_u64().unwrap());
        }
        previous = ids;
    }
    let s = run.summary();
    assert_eq!(s["classes"][0]["fault"], "none");
    assert_eq!(s["classes"][0]["writes"], 1000);
    assert_eq!(s["classes"][0]["ok"], 1000);
}

/// A campaign that would reuse one data dir across cycles (seed 000's
/// `node-N.db`) is refused before any process starts.
#[test]
fn campaign_reusing_data_dirs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared-data");
    let c = campaign(dir.path(), false, |t| {
        t.replace(
            "\"{data_dir}\"",
            &format!("\"{}/{{index}}\"", shared.display()),
        )
        .replace("settle_ms = 1000", "settle_ms = 50")
    });
    // The campaign lacks {data_dir}: refused before anything runs.
    let run = run_campaign(dir.path(), &c, &["--cycles", "2", "--writes", "5"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no {data_dir} placeholder"),
        "{}",
        run.stderr
    );
    assert!(
        !shared.exists(),
        "nothing may start when the campaign is refused"
    );
}
