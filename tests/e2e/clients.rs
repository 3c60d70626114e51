//! Issue 22: clients. The reference system driven through a driver process
//! (`[client] command`, JSON lines) instead of the HTTP templates: the same
//! verdicts, the same bugs caught, and a driver that is missing, exits,
//! hangs or answers garbage named in the cycle, never passed.

use crate::util::*;
use std::path::Path;

/// The driver campaign (examples/driver) with the reference binary, the
/// driver at `driver` (absolute) and `edit` applied.
fn driver_campaign(
    dir: &Path,
    driver: &Path,
    edit: impl Fn(String) -> String,
) -> std::path::PathBuf {
    let kv = bin_dir().join("quorum-kv");
    example_campaign(dir, "driver/campaign.toml", |t| {
        edit(
            t.replace("../../target/debug/quorum-kv", kv.to_str().unwrap())
                .replace(
                    r#"command = ["python3", "driver.py"]"#,
                    &format!(r#"command = ["python3", {:?}]"#, driver.to_str().unwrap()),
                ),
        )
    })
}

fn reference_driver() -> std::path::PathBuf {
    root().join("examples/driver/driver.py")
}

/// The misbehaving driver's `mode`; its environment names `dir`, so
/// [`assert_nothing_left`] finds any driver process left running.
fn misbehave(mode: &str, dir: &Path) -> impl Fn(String) -> String {
    let (mode, dir) = (mode.to_string(), dir.to_path_buf());
    move |t| {
        t.replace(
            "timeout_ms = 5000\n",
            &format!(
                "timeout_ms = 2000\nenv = {{ MODE = \"{mode}\", TEST_DIR = {:?} }}\n",
                dir.to_str().unwrap()
            ),
        )
    }
}

fn misbehaving_driver() -> std::path::PathBuf {
    root().join("tests/drivers/misbehave.py")
}

fn reasons(c: &serde_json::Value) -> String {
    c["reasons"].to_string()
}

/// The campaign with node `node` running the reference binary's `--bug`.
fn with_bug(node: u32, bug: &str) -> impl Fn(String) -> String {
    let kv = bin_dir().join("quorum-kv");
    let bug = bug.to_string();
    move |t| {
        format!(
            "{t}\n[system.commands]\n{node} = [{:?}, \"--node\", \"{{index}}\", \"--listen\", \"{{host}}:{{port}}\", \"--data-dir\", \"{{data_dir}}\", \"--peers\", \"{{peers}}\", \"--quorum\", \"2\", \"--bug\", {bug:?}]\n",
            kv.to_str().unwrap()
        )
    }
}

/// Every cycle passed with acknowledged writes and a verified effect, and
/// every live node, read back through the client, holds every one.
fn assert_reference_passes(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        assert_eq!(c["status"], "pass", "{c}");
        assert!(c["ok"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["effects"][0]["verified"], true, "{c}");
        for n in c["nodes"].as_array().unwrap() {
            if n["alive"] == true {
                assert!(n["missing_acked"].as_array().unwrap().is_empty(), "{n}");
                assert!(
                    n["held"].as_u64().unwrap() >= c["ok"].as_u64().unwrap(),
                    "{n}"
                );
            }
        }
    }
}

#[test]
fn a_driver_process_carries_the_reference_campaign() {
    require("python3", "apt-get install python3");
    let dir = tempfile::tempdir().unwrap();
    let c = driver_campaign(dir.path(), &reference_driver(), |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "kill_primary_mid_write",
            "--cycles",
            "2",
            "--writes",
            "60",
        ],
    );
    assert_reference_passes(&run);
    assert_nothing_left(dir.path(), None);
}

#[test]
fn a_lost_write_is_caught_through_the_driver() {
    // Node 2 acknowledges the replication of -w42 without storing it: the
    // HTTP client catches it (verdicts.rs); so must the driver.
    require("python3", "apt-get install python3");
    let dir = tempfile::tempdir().unwrap();
    let c = driver_campaign(dir.path(), &reference_driver(), with_bug(2, "lose-one"));
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "drop_random_acks",
            "--cycles",
            "1",
            "--writes",
            "60",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let c = &run.cycles()[0];
    assert_eq!(c["status"], "fail", "{c}");
    assert_eq!(c["lost_acked"], 1, "{c}");
    assert!(reasons(c).contains("-w42"), "{c}");
}

#[test]
fn a_node_silent_to_the_driver_is_a_liveness_finding() {
    // hang-reads: node 1 answers writes but never its reads; the driver's
    // read times out (client.timeout_ms), which is the node's silence, not
    // a harness error.
    require("python3", "apt-get install python3");
    let dir = tempfile::tempdir().unwrap();
    let bug = with_bug(1, "hang-reads");
    let c = driver_campaign(dir.path(), &reference_driver(), |t| {
        bug(t
            .replace("timeout_ms = 5000", "timeout_ms = 1000")
            .replace("settle_ms = 1000", "settle_ms = 1500"))
    });
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "drop_random_acks",
            "--cycles",
            "1",
            "--writes",
            "30",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let c = &run.cycles()[0];
    assert_eq!(c["status"], "fail", "{c}");
    assert!(
        reasons(c).contains("node 1 is alive but did not answer"),
        "{c}"
    );
    assert!(
        reasons(c).contains("no answer within client.timeout_ms = 1000"),
        "{c}"
    );
}

#[test]
fn a_driver_that_hangs_makes_its_writes_info_and_is_retired() {
    require("python3", "apt-get install python3");
    let dir = tempfile::tempdir().unwrap();
    let c = driver_campaign(
        dir.path(),
        &misbehaving_driver(),
        misbehave("hang_adds", dir.path()),
    );
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "drop_random_acks",
            "--cycles",
            "1",
            "--writes",
            "4",
        ],
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    let c = &run.cycles()[0];
    assert_ne!(c["status"], "pass", "{c}");
    assert_eq!(c["ok"], 0, "{c}");
    assert_eq!(c["indeterminate"], 4, "{c}");
    // Hung processes were killed: no driver outlives the run.
    assert_nothing_left(dir.path(), None);
}

#[test]
fn a_driver_that_answers_garbage_fails_its_cycle_as_an_error() {
    require("python3", "apt-get install python3");
    for (mode, says) in [
        ("garbage_adds", "answered a line that is not a reply"),
        ("wrong_seq", "answered seq"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = driver_campaign(
            dir.path(),
            &misbehaving_driver(),
            misbehave(mode, dir.path()),
        );
        let run = run_campaign(
            dir.path(),
            &c,
            &[
                "--plugin",
                "drop_random_acks",
                "--cycles",
                "2",
                "--writes",
                "10",
            ],
        );
        assert_ne!(run.code, 0, "{mode}: {}", run.stderr);
        // Both cycles ran (the campaign goes on) and neither passed.
        let cycles = run.cycles();
        assert_eq!(cycles.len(), 2, "{mode}");
        for c in cycles {
            assert_eq!(c["status"], "error", "{mode}: {c}");
            assert!(
                reasons(&c).contains("client: client process"),
                "{mode}: {c}"
            );
            assert!(reasons(&c).contains(says), "{mode}: {c}");
        }
    }
}

#[test]
fn a_driver_that_reads_ids_never_written_is_a_harness_error() {
    require("python3", "apt-get install python3");
    let dir = tempfile::tempdir().unwrap();
    let c = driver_campaign(
        dir.path(),
        &misbehaving_driver(),
        misbehave("foreign_read", dir.path()),
    );
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "drop_random_acks",
            "--cycles",
            "1",
            "--writes",
            "10",
        ],
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("never-written-w1"), "{}", run.stderr);
}

#[test]
fn a_driver_that_exits_at_once_or_fails_setup_is_named() {
    require("python3", "apt-get install python3");
    for (mode, says) in [
        ("exit_at_once", "misbehave: exiting at once"),
        (
            "fail_setup",
            "client setup: the client answered fail: cannot create the stream",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = driver_campaign(
            dir.path(),
            &misbehaving_driver(),
            misbehave(mode, dir.path()),
        );
        let run = run_campaign(
            dir.path(),
            &c,
            &[
                "--plugin",
                "drop_random_acks",
                "--cycles",
                "1",
                "--writes",
                "10",
            ],
        );
        assert_ne!(run.code, 0, "{mode}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{mode}: {}", run.stderr);
        assert_nothing_left(dir.path(), None);
    }
}

#[test]
fn bad_client_sections_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-driver");
    for (edit, says) in [
        (
            Box::new(|t: String| {
                format!(
                    "{t}\n[write]\nurl = \"http://127.0.0.1:{{port}}/write\"\nbody = {{ id = \"{{id}}\" }}\nok_status = [201]\n"
                )
            }) as Box<dyn Fn(String) -> String>,
            "[client] and [write] are both given",
        ),
        (
            Box::new(|t: String| {
                let start = t.find(r#"command = ["python3""#).unwrap();
                let end = start + t[start..].find('\n').unwrap();
                format!("{}command = []{}", &t[..start], &t[end..])
            }),
            "client.command is empty",
        ),
        (
            Box::new(|t: String| t.replace("timeout_ms = 5000", "timeout_ms = 0")),
            "client.timeout_ms is 0",
        ),
        (
            Box::new(|t: String| {
                t.replace(
                    "timeout_ms = 5000",
                    "timeout_ms = 5000\nplugin = \"client.wasm\"",
                )
            }),
            "client: both a plugin (client.wasm) and a command are given",
        ),
        (
            Box::new(|t: String| {
                t.replace(
                    "[ready]\n",
                    "[read]\nurl = \"http://x/{port}\"\n\n[ready]\n",
                )
            }),
            "read.url: reads go through the campaign's [client]",
        ),
    ] {
        let c = driver_campaign(dir.path(), &reference_driver(), edit);
        let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
        assert_eq!(run.code, 2, "{says}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    // A driver program that does not exist is refused before any node runs.
    let c = driver_campaign(dir.path(), &missing, |t| {
        t.replace(r#"command = ["python3", "#, "command = [")
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("client.command"), "{}", run.stderr);
    assert!(run.stderr.contains("no-such-driver"), "{}", run.stderr);
}

/// The component campaign (examples/plugins/quorum_kv_client) with the
/// reference binary, the component by absolute path and `edit` applied.
fn component_campaign(dir: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let kv = bin_dir().join("quorum-kv");
    let client = example_plugin("quorum_kv_client");
    example_campaign(dir, "plugins/quorum_kv_client/campaign.toml", |t| {
        edit(
            t.replace("../../../target/debug/quorum-kv", kv.to_str().unwrap())
                .replace(
                    r#"plugin = "../quorum_kv_client.wasm""#,
                    &format!("plugin = {:?}", client.to_str().unwrap()),
                ),
        )
    })
}

#[test]
fn a_client_component_carries_the_reference_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let c = component_campaign(dir.path(), |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "kill_primary_mid_write",
            "--cycles",
            "2",
            "--writes",
            "60",
        ],
    );
    assert_reference_passes(&run);
}

#[test]
fn a_lost_write_is_caught_through_a_client_component() {
    let dir = tempfile::tempdir().unwrap();
    let c = component_campaign(dir.path(), with_bug(2, "lose-one"));
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            "drop_random_acks",
            "--cycles",
            "1",
            "--writes",
            "60",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let c = &run.cycles()[0];
    assert_eq!(c["status"], "fail", "{c}");
    assert_eq!(c["lost_acked"], 1, "{c}");
    assert!(reasons(c).contains("-w42"), "{c}");
}

#[test]
fn a_client_component_reaches_the_cycles_nodes_and_nothing_else() {
    // A listener standing for anything else on this machine (another
    // cycle's node, a node's port it does not serve), and sshd's port.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_addr = other.local_addr().unwrap().to_string();
    for peek in ["127.0.0.1:22", other_addr.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        let c = component_campaign(dir.path(), |t| {
            format!("{t}\n[params.quorum_kv_client]\npeek = {peek:?}\n")
        });
        let run = run_campaign(
            dir.path(),
            &c,
            &[
                "--plugin",
                "drop_random_acks",
                "--cycles",
                "2",
                "--writes",
                "10",
            ],
        );
        assert_eq!(run.code, 1, "{peek}: {}", run.stderr);
        // Every cycle ran (the campaign goes on), and each is an error
        // naming the plugin and the address.
        let cycles = run.cycles();
        assert_eq!(cycles.len(), 2);
        for c in cycles {
            assert_eq!(c["status"], "error", "{c}");
            let r = reasons(&c);
            assert!(
                r.contains(&format!(
                    "client quorum_kv_client@0.1.0: TcpConnect {peek} refused"
                )),
                "{peek}: {r}"
            );
        }
    }
    match other.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        got => panic!("the client reached {other_addr}: {got:?}"),
    }
}

#[test]
fn a_fault_plugin_named_as_the_client_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fault = plugin("partition_minority");
    let c = component_campaign(dir.path(), |t| {
        let start = t.find("plugin = ").unwrap();
        let end = start + t[start..].find('\n').unwrap();
        format!(
            "{}plugin = {:?}{}",
            &t[..start],
            fault.to_str().unwrap(),
            &t[end..]
        )
    });
    let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("client.plugin: partition_minority@")
            && run.stderr.contains("is a fault plugin, not a client"),
        "{}",
        run.stderr
    );
    // And a client passed as a fault.
    let c = campaign(dir.path(), false, |t| t);
    let client = example_plugin("quorum_kv_client");
    let run = run_campaign(dir.path(), &c, &["--plugin", client.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is a client component, not a fault"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_client_component_that_spins_hoards_hangs_or_panics_is_contained() {
    // Each write's instance is stopped (fuel, memory cap, wall clock, trap)
    // and retired: the write is `info`, the next opens a fresh instance,
    // and the campaign goes on to its next cycle.
    let client = guest("client_misbehave");
    for (mode, says) in [
        ("spin", Some("out of fuel")),
        ("hoard", Some("trapped")),
        ("hang", None),
        ("panic", Some("trapped")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = component_campaign(dir.path(), |t| {
            let start = t.find("plugin = ").unwrap();
            let end = start + t[start..].find('\n').unwrap();
            format!(
                "{}plugin = {:?}{}\n[params.client_misbehave]\nmode = {mode:?}\n\n[recovery]\nwrites = 0\n",
                &t[..start],
                client.to_str().unwrap(),
                &t[end..].replace("timeout_ms = 5000", "timeout_ms = 1000")
            )
        });
        let run = run_campaign(
            dir.path(),
            &c,
            &[
                "--plugin",
                "drop_random_acks",
                "--cycles",
                "2",
                "--writes",
                "4",
            ],
        );
        assert_ne!(run.code, 0, "{mode}: {}", run.stderr);
        let cycles = run.cycles();
        assert_eq!(cycles.len(), 2, "{mode}: {}", run.stderr);
        for c in cycles {
            assert_ne!(c["status"], "pass", "{mode}: {c}");
            assert_eq!(
                (&c["ok"], &c["indeterminate"]),
                (&0.into(), &4.into()),
                "{mode}: {c}"
            );
            let r = reasons(&c);
            match says {
                Some(s) => assert!(
                    r.contains("client: client process")
                        && (r.contains(s) || r.contains("deadline")),
                    "{mode}: {r}"
                ),
                // A hang is the system's silence as far as the host can
                // tell: the writes are info, and nothing was acknowledged.
                None => assert!(
                    r.contains("nothing acknowledged") || r.contains("0 of 4"),
                    "{mode}: {r}"
                ),
            }
        }
        assert_nothing_left(dir.path(), None);
    }
}

#[test]
fn a_shared_plugin_dir_may_hold_client_components() {
    // --plugin-dir loads the faults and assertions of a shared folder; a
    // client component there is said and skipped, not refused.
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::copy(
        plugin("drop_random_acks"),
        shared.join("drop_random_acks.wasm"),
    )
    .unwrap();
    std::fs::copy(
        example_plugin("quorum_kv_client"),
        shared.join("quorum_kv_client.wasm"),
    )
    .unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(
        dir.path(),
        &c,
        &["--plugin-dir", shared.to_str().unwrap(), "--cycles", "1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "quorum_kv_client.wasm is a client component, not loaded as a fault or assertion"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.summary()["classes"][0]["fault"], "drop_random_acks");
}

/// The component campaign in register mode (one key, 6 clients, 600 ops),
/// judged by `linearizable`, with `bug` on every node when given.
fn register_through_component(bug: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap().keep();
    let c = component_campaign(&dir, |t| {
        let t = t.replace("assertions = [", "assertions = [\"linearizable\", ");
        let t = match bug {
            Some(bug) => t.replace(
                "\"--quorum\", \"2\",",
                &format!("\"--quorum\", \"2\", \"--bug\", \"{bug}\","),
            ),
            None => t,
        };
        format!(
            "{t}\n[workload]\nkind = \"register\"\nkeys = 1\nclients = 6\nops = 600\nthrough = \"primary\"\ntimeout_ms = 3000\n"
        )
    });
    run_campaign(&dir, &c, &["--cycles", "2", "--writes", "20"])
}

#[test]
fn a_lost_update_is_caught_through_a_client_component() {
    // The register workload's put / get / cas through the component: the
    // reference's `--bug lost-update` (two cas win on one value) is failed
    // by `linearizable`, the correct register passes.
    let run = register_through_component(Some("lost-update"));
    assert_eq!(run.code, 1, "{}", run.stderr);
    let failed: Vec<_> = run
        .cycles()
        .into_iter()
        .filter(|c| {
            c["verdicts"].as_array().unwrap().iter().any(|v| {
                v["plugin"].as_str().unwrap().starts_with("linearizable@") && v["outcome"] == "fail"
            })
        })
        .collect();
    assert!(!failed.is_empty(), "{}", run.stderr);
    // The component carried the register operations: cas among them.
    let history = std::fs::read_to_string(failed[0]["history"].as_str().unwrap()).unwrap();
    assert!(
        history.contains("\"kind\":\"cas\""),
        "no cas in the history"
    );

    let run = register_through_component(None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for c in run.cycles() {
        let v = c["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["plugin"].as_str().unwrap().starts_with("linearizable@"))
            .cloned()
            .unwrap();
        assert_eq!(v["outcome"], "pass", "{v}");
    }
}
