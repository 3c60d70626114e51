//! The false-green suite: every case that once came out green and must
//! not. Each runs the real reference system with a fault or a defect the
//! verdict once missed, and asserts the run is not green, naming why:
//! a vacuous run, a node that dies unasked, a hung node, one lost write
//! under the threshold, a skew no probe saw, a partition bypassed by
//! long-lived and by short-lived direct connections, a partition the
//! system never crosses, a cut that lapses mid-lease, a link fault the
//! system's traffic never meets, a disk fault the node never hits. (Each
//! was shown failing against the commit before its fix when it landed.)

use crate::disk::{assert_unmounted, bypassing_the_layer, disk_effects, run_disk};
use crate::proofs::{partition_run as gossip_partition_run, without_clock_probe};
use crate::util::*;
use crate::verdicts::{node_2_with_bug, reasons};
use std::path::Path;

/// The reference campaign in proxy mode under `partition_minority`, with
/// `node_args` added to every node's arguments (after `--quorum 2`).
fn partition_run(dir: &std::path::Path, node_args: &str, cycles: u32, settle_ms: u32) -> Run {
    let c = campaign(dir, false, |t| {
        let quorum = "\"--quorum\", \"2\",";
        assert!(t.contains(quorum), "the reference campaign changed:\n{t}");
        t.replace(quorum, &format!("{quorum}\n    {node_args}"))
    });
    let p = plugin("partition_minority");
    run_campaign(
        dir,
        &c,
        &[
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            &cycles.to_string(),
            "--writes",
            "60",
            "--settle-ms",
            &settle_ms.to_string(),
            "--net",
            "proxy",
        ],
    )
}

/// Issue 23's first case: a system that dials its peers directly with a
/// new connection per request (`--bug gossip-short-lived`) holds no direct
/// connection at the cut or at the heal; only a scan during the lease sees
/// one. Before the lease was watched, such cycles passed. Over 20 cycles,
/// none is green, and each says why.
#[test]
fn a_partition_bypassed_by_short_lived_direct_connections_is_never_green() {
    let dir = tempfile::tempdir().unwrap();
    let run = partition_run(dir.path(), "\"--bug\", \"gossip-short-lived\",", 20, 300);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 20, "{}", run.stderr);
    let mut seen_during = 0;
    for c in &cycles {
        assert_ne!(c["status"], "pass", "{c}");
        let e = &c["effects"][0];
        assert_eq!(e["kind"], "partition", "{e}");
        assert_eq!(e["verified"], false, "{e}");
        let ev = e["evidence"].as_str().unwrap();
        assert!(
            ev.contains("directly, not through the proxy")
                || ev.contains("the system sent nothing across the cut"),
            "{e}"
        );
        seen_during += usize::from(ev.contains("during the lease, at +"));
        assert!(ev.contains("bypass watched all lease: "), "{e}");
    }
    // The scans during the lease are what see these connections.
    assert!(seen_during > 0, "no cycle saw a bypass during its lease");
}

/// Issue 23's second case: a system that sends nothing to its peers while
/// writes keep coming (`--replicate-when-idle-ms 1000`: it ships its
/// writes once no write came for a second). The cut holds the host's probe
/// on every link and nothing of the system's: `ineffective`, not `pass`.
#[test]
fn a_partition_the_system_never_crosses_is_ineffective() {
    let dir = tempfile::tempdir().unwrap();
    // Converged once it ships, a second after the burst.
    let run = partition_run(
        dir.path(),
        "\"--replicate-when-idle-ms\", \"1000\",",
        2,
        3000,
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "{}", run.stderr);
    for c in &cycles {
        assert_eq!(c["status"], "ineffective", "{c}");
        let e = &c["effects"][0];
        assert_eq!(e["verified"], false, "{e}");
        let ev = e["evidence"].as_str().unwrap();
        // Every link held the probe...
        for link in ["0->1", "0->2", "1->0", "2->0"] {
            assert!(ev.contains(&format!("{link} held")), "probe of {link}: {e}");
        }
        // ...and nothing else.
        assert!(
            ev.contains("the system sent nothing across the cut in "),
            "{e}"
        );
        assert!(ev.contains("only the host's probe met it"), "{e}");
    }
}

/// A cut that stops holding mid-lease (here its drop rules flushed by
/// someone else, as a firewall reload would) is seen while the lease runs,
/// and when: the table is read back every 100 ms (and a witness chain
/// behind the drop rules counts whatever gets through). The heal's read
/// alone already left such a cut unproven ("no rule listed"); what the
/// watch adds, and this test asserts, is the lapse named with its time.
#[test]
fn a_cut_that_stops_holding_mid_lease_is_not_verified_netns() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        t.replace(
            "[params.partition_minority]\nms = 500",
            "[params.partition_minority]\nms = 3000",
        )
    });
    let p = plugin("partition_minority");
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
            "--writes",
            "300",
            "--net",
            "netns",
            "--out",
            out.to_str().unwrap(),
        ],
        "chaos.log",
    );
    // The cut's table, once journaled, is in this run's hub namespace.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let hub = loop {
        let text: String = journal_text(dir.path());
        if let Some(hub) = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["op"] == "nft").then(|| v["netns"].as_str().map(str::to_string))?
        }) {
            break hub;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "chaos-host ended before the cut"
        );
        assert!(std::time::Instant::now() < until, "no cut within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // Flush the drop rules once the host has read them back and probed
    // each link (every drop rule counted a packet); the witness stays.
    loop {
        let listed = nft_in(&hub, "list");
        let text = String::from_utf8_lossy(&listed.stdout);
        let counted = text
            .lines()
            .filter(|l| l.contains(" drop") && !l.contains("packets 0 "))
            .count();
        if counted == 4 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "chaos-host ended before the probe"
        );
        assert!(std::time::Instant::now() < until, "no probed cut: {text}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    loop {
        let flushed = nft_in(&hub, "flush");
        if flushed.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "could not flush: {flushed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("chaos.log")).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    let cycles: Vec<serde_json::Value> = std::fs::read_to_string(out.join("cycles.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cycles.len(), 1, "{log}");
    let c = &cycles[0];
    assert_ne!(c["status"], "pass", "{c}");
    let e = &c["effects"][0];
    assert_eq!(e["verified"], false, "{c}\n{log}");
    let ev = e["evidence"].as_str().unwrap();
    assert!(ev.contains("the cut did not hold: "), "{e}");
    assert!(ev.contains(" of 4 drop rule(s) were in force"), "{e}");
    assert!(ev.contains("the cut did not hold: at +"), "{e}");
    assert_nothing_left(dir.path(), None);
}

/// A campaign whose `ok_status` misses the status the system answers
/// acknowledged nothing; it used to PASS with exit 0.
#[test]
fn nothing_acknowledged_is_vacuous_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        t.replace("ok_status = [201]", "ok_status = [200]")
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "2", "--writes", "30"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.summary()["classes"][0]["pass"], false);
    for cy in run.cycles() {
        assert_eq!(cy["status"], "vacuous", "{cy}");
        assert_eq!(cy["unexpected"], 30, "{cy}");
        let r = reasons(&cy);
        assert!(
            r.contains("0 of 30 writes acknowledged: 30 answered 201, which write.ok_status [200] does not list"),
            "{r}"
        );
        assert!(r.contains("first body"), "the body excerpt is shown: {r}");
    }
    // And a run that would write nothing is refused outright.
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(dir.path(), &c, &["--writes", "0"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--writes 0"), "{}", run.stderr);
    assert!(!run.out.join("cycles.jsonl").exists());
}

/// Node 2 aborts mid-burst and no plugin asked for it: every cycle used to
/// pass, the dead node silently left out of read-back.
#[test]
fn a_node_that_dies_unasked_fails_its_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let c = node_2_with_bug(dir.path(), "crash-mid-burst", |t| t);
    let run = run_campaign(dir.path(), &c, &["--cycles", "2", "--writes", "60"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for cy in run.cycles() {
        assert_eq!(cy["status"], "fail", "{cy}");
        let r = reasons(&cy);
        assert!(
            r.contains("node 2 killed by SIGABRT") && r.contains("no effect asked for it"),
            "{r}"
        );
        assert!(r.contains("ms after the burst started"), "{r}");
        assert!(r.contains("crash-mid-burst: aborting"), "log tail: {r}");
        let n2 = &cy["nodes"][2];
        assert_eq!(n2["alive"], false);
        assert!(n2["died_at_ms"].as_i64().unwrap() >= 0, "{n2}");
        let evidence = cy["evidence"].as_str().expect("evidence kept");
        assert!(Path::new(evidence).join("node-2.log").exists());
    }
}

/// Node 2 answers its health check and writes but never its read-back: a
/// liveness finding that fails the cycle. It used to abort the whole run
/// with exit 2.
#[test]
fn a_live_node_that_does_not_answer_fails_its_cycle_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let c = node_2_with_bug(dir.path(), "hang-reads", |t| {
        t.replace(
            "ids_pointer = \"/ids\"",
            "ids_pointer = \"/ids\"\ntimeout_ms = 300",
        )
    });
    let run = run_campaign(
        dir.path(),
        &c,
        &["--cycles", "2", "--writes", "30", "--settle-ms", "500"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "the campaign went on");
    for cy in cycles {
        assert_eq!(cy["status"], "fail", "{cy}");
        let r = reasons(&cy);
        assert!(
            r.contains("node 2 is alive but did not answer its read-back (liveness)")
                && r.contains("read.timeout_ms = 300"),
            "{r}"
        );
        assert_eq!(cy["nodes"][2]["alive"], true);
        assert!(cy["nodes"][0]["converged_ms"].as_u64().is_some(), "{cy}");
    }
}

/// One acknowledged write of 200 lost (convergence 0.995 >= threshold
/// 0.995) used to PASS; durability is binary unless the campaign opts into
/// a tolerance, and then the cycle says "tolerated" and keeps its evidence.
#[test]
fn one_lost_acknowledged_write_fails_unless_tolerated() {
    let lose_one = |t: String| {
        t.replace(
            "\"--quorum\", \"2\",",
            "\"--quorum\", \"2\", \"--bug\", \"lose-one\",",
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, lose_one);
    let run = run_campaign(dir.path(), &c, &["--cycles", "1", "--writes", "200"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cy = &run.cycles()[0];
    assert_eq!(cy["status"], "fail", "{cy}");
    assert_eq!(cy["lost_acked"], 1);
    assert_eq!(cy["convergence_bound"], 0.995);
    let r = reasons(cy);
    assert!(
        r.contains("1 of 200 acknowledged write(s) missing on a live node") && r.contains("-w42"),
        "{r}"
    );

    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        lose_one(t).replace("[campaign]\n", "[campaign]\ntolerate_lost_ratio = 0.01\n")
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "1", "--writes", "200"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cy = &run.cycles()[0];
    assert_eq!(cy["status"], "pass", "{cy}");
    assert_eq!(cy["tolerated_lost"], 1);
    assert!(reasons(cy).contains("tolerated: 1 of 200"), "{cy}");
    assert!(
        cy["evidence"].as_str().is_some(),
        "a tolerated loss keeps its evidence"
    );
    let class = &run.summary()["classes"][0];
    assert_eq!(class["tolerated_lost"], 1);
    assert!(
        class["reasons"].to_string().contains("tolerated"),
        "{class}"
    );
}

#[test]
fn clock_skew_without_a_probe_is_simulated_never_passed() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, without_clock_probe);
    let p = plugin("clock_skew_peer");
    let run = run_campaign(
        dir.path(),
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
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let class = &run.summary()["classes"][0];
    assert_eq!(class["pass"], false, "{class}");
    assert_eq!(class["simulated_cycles"], 3, "{class}");
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 3);
    for c in &cycles {
        assert_eq!(c["status"], "simulated", "{c}");
        let fx = c["effects"].as_array().unwrap();
        assert!(!fx.is_empty(), "{c}");
        for e in fx {
            assert_eq!(e["kind"], "clock", "{e}");
            assert_eq!(e["simulated"], true, "{e}");
            assert_eq!(e["verified"], false, "{e}");
            assert!(
                e["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("no [clock] probe in the campaign"),
                "{e}"
            );
        }
        assert!(c["reasons"].to_string().contains("probe_header"), "{c}");
    }
}

#[test]
fn partition_bypassed_by_gossiped_peer_addresses_is_not_verified() {
    let dir = tempfile::tempdir().unwrap();
    let run = gossip_partition_run(dir.path(), true);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.summary()["classes"][0]["pass"], false);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 3, "{}", run.stderr);
    for c in &cycles {
        assert_ne!(c["status"], "pass", "{c}");
        let fx = c["effects"].as_array().unwrap();
        assert_eq!(fx.len(), 1, "{c}");
        let e = &fx[0];
        assert_eq!(e["kind"], "partition", "{e}");
        assert_eq!(e["verified"], false, "{e}");
        // "bypass: node 0 pid 123 127.0.0.1:41000 -> node 2's port 27001
        // directly, not through the proxy"
        let ev = e["evidence"].as_str().unwrap();
        assert!(ev.contains("bypass: node 0 pid "), "{e}");
        assert!(ev.contains("directly, not through the proxy"), "{e}");
    }
}

#[test]
fn a_link_fault_the_system_traffic_never_meets_is_ineffective_proxy() {
    a_link_fault_the_system_traffic_never_meets_is_ineffective("proxy");
}

#[test]
fn a_link_fault_the_system_traffic_never_meets_is_ineffective_netns() {
    a_link_fault_the_system_traffic_never_meets_is_ineffective("netns");
}

fn a_link_fault_the_system_traffic_never_meets_is_ineffective(net: &str) {
    let dir = tempfile::tempdir().unwrap();
    // Without catch-up, followers never talk to each other: the link from
    // one follower to the other carries nothing of the system's.
    let c = campaign(dir.path(), false, |t| {
        let quorum = "\"--quorum\", \"2\",";
        assert!(t.contains(quorum), "the reference campaign changed:\n{t}");
        t.replace(quorum, &format!("{quorum}\n    \"--catchup-ms\", \"0\","))
    });
    let g = guest("link_fault");
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            g.to_str().unwrap(),
            "--allow",
            "link_fault=link",
            "--param",
            "link_fault.links=followers",
            "--param",
            "link_fault.latency_ms=100",
            "--cycles",
            "1",
            "--writes",
            "40",
            "--settle-ms",
            "300",
            "--net",
            net,
        ],
    );
    assert_ne!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 1, "{}", run.stderr);
    assert_eq!(cycles[0]["status"], "ineffective", "{}", cycles[0]);
    let e = &cycles[0]["effects"][0];
    assert_eq!(e["verified"], false, "{e}");
    let ev = e["evidence"].as_str().unwrap();
    // The link itself was slowed (its probe shows it)...
    assert!(ev.contains("1->2 probe rtt median"), "{e}");
    assert!(!ev.contains("not shown degraded"), "{e}");
    // ...but nothing of the system's crossed it.
    assert!(ev.contains("never crossed the degraded links"), "{e}");
}

#[test]
fn a_disk_fault_the_node_never_meets_is_ineffective() {
    for (fault, caps, params) in [
        ("disk_full_peer", "\"disk\"", "ms = 300\nat = 0.2"),
        ("power_failure", "\"disk\", \"restart\"", "at = 0.5"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let run = run_disk(dir.path(), fault, caps, params, bypassing_the_layer);
        assert_eq!(run.code, 1, "{fault}: {}", run.stderr);
        for c in run.cycles() {
            assert_eq!(c["status"], "ineffective", "{fault}: {c}");
            assert!(
                c["reasons"].to_string().contains("did not take hold: disk"),
                "{c}"
            );
        }
        for e in disk_effects(&run) {
            assert_eq!(e["verified"], false, "{e}");
        }
        assert_unmounted(dir.path());
    }
}

/// `nft VERB chain bridge chaos_host forward` in namespace `hub`: the cut's
/// drop rules.
fn nft_in(hub: &str, verb: &str) -> std::process::Output {
    std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            hub,
            "nft",
            verb,
            "chain",
            "bridge",
            "chaos_host",
            "forward",
        ])
        .output()
        .unwrap()
}
