//! Sound verdicts: an effect is verified only on evidence of its own.
//! A clock skew nobody observed on the node is simulated; a partition that
//! the nodes route around (peers learnt by gossip, dialled past the
//! proxies) is not verified, and its evidence names the connection.

use crate::util::*;

/// The reference campaign with its `[clock]` probe removed.
pub(crate) fn without_clock_probe(t: String) -> String {
    let probe =
        "[clock]\nprobe_url = \"http://127.0.0.1:{port}/time\"\nprobe_pointer = \"/unix_ms\"\n";
    assert!(t.contains(probe), "the reference campaign changed:\n{t}");
    t.replace(probe, "")
}

/// The reference campaign in proxy mode, optionally with quorum-kv's
/// `--bug gossip-peers`, under `partition_minority`.
pub(crate) fn partition_run(dir: &std::path::Path, gossip: bool) -> Run {
    let c = campaign(dir, false, |t| {
        if !gossip {
            return t;
        }
        let quorum = "\"--quorum\", \"2\",";
        assert!(t.contains(quorum), "the reference campaign changed:\n{t}");
        t.replace(
            quorum,
            &format!("{quorum}\n    \"--bug\", \"gossip-peers\","),
        )
    });
    let p = plugin("partition_minority");
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
            "300",
            "--net",
            "proxy",
        ],
    )
}

#[test]
fn partition_through_the_proxies_is_verified_link_by_link() {
    let dir = tempfile::tempdir().unwrap();
    let run = partition_run(dir.path(), false);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for c in &run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        let e = &c["effects"][0];
        assert_eq!(e["verified"], true, "{e}");
        let ev = e["evidence"].as_str().unwrap();
        assert!(!ev.contains("bypass:"), "{e}");
        // Every cut directed link of isolating node 0, probed and counted.
        for link in ["0->1", "0->2", "1->0", "2->0"] {
            assert!(ev.contains(&format!("{link} held")), "probe of {link}: {e}");
            assert!(
                ev.contains(&format!("{link} ")) && ev.contains("connection(s) ("),
                "counters of {link}: {e}"
            );
        }
    }
}

#[test]
fn clock_skew_reaches_every_process_of_the_node_group() {
    // Each node's group gets a second process, started without any
    // environment of the host's: its clock is skewed too (the vDSO of
    // every member is patched), as libfaketime never managed.
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        let kv = bin_dir().join("quorum-kv");
        let start = t.find("command = [").unwrap();
        let end = start + t[start..].find("]\n").unwrap() + 2;
        let command = format!(
            "command = [\"sh\", \"-c\", \"env -i sleep 600 & exec {} --node {{index}} --listen {{host}}:{{port}} --data-dir {{data_dir}} --peers {{peers}} --quorum 2\"]\n",
            kv.display()
        );
        format!("{}{command}{}", &t[..start], &t[end..])
    });
    let p = plugin("clock_skew_peer");
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "2",
            "--writes",
            "60",
            "--settle-ms",
            "300",
        ],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for c in &run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        let e = &c["effects"][0];
        assert_eq!(
            (&e["simulated"], &e["verified"]),
            (&false.into(), &true.into()),
            "{e}"
        );
        assert!(
            e["evidence"]
                .as_str()
                .unwrap()
                .contains("vDSO patched in 2 process(es)"),
            "{e}"
        );
    }
}
