//! Histories: every operation of a cycle in `history.jsonl`, reads during
//! the cycle on every node, the `history` interface, fuel-bounded checkers,
//! `export --format edn`, and the reference system's stale reads.

use crate::util::{campaign, guest, plugin, run_campaign};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The ops (not the effect lines) of `history.jsonl`.
fn ops(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("complete JSON lines"))
        .filter(|v| v.get("effect").is_none())
        .collect()
}

/// The campaign with reads during the cycle every `during_ms`.
fn with_reads(t: String, during_ms: u32) -> String {
    t.replace(
        "ids_pointer = \"/ids\"",
        &format!("ids_pointer = \"/ids\"\nduring_ms = {during_ms}"),
    )
}

fn figure(cy: &Value, plugin: &str, name: &str) -> f64 {
    let v = cy["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["plugin"].as_str().unwrap().starts_with(plugin))
        .unwrap_or_else(|| panic!("no verdict of {plugin}: {cy}"));
    v["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == name)
        .unwrap_or_else(|| panic!("no figure {name}: {v}"))[1]
        .as_f64()
        .unwrap()
}

/// One cycle under a pause: its history holds the burst's writes (each
/// with the outcome the cycle record gives it), the recovery writes, reads
/// during the cycle on all three nodes and the read-backs, in invoke order
/// with consistent times; an assertion reading it through the `history`
/// interface counts the same; the EDN export reads back.
#[test]
fn a_cycle_history_holds_every_operation_and_exports_as_edn() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| with_reads(t, 20));
    let walker = guest("history_loop");
    let run = run_campaign(
        dir.path(),
        &c,
        &[
            "--plugin",
            plugin("drop_random_acks").to_str().unwrap(),
            "--plugin",
            walker.to_str().unwrap(),
            "--cycles",
            "1",
            "--writes",
            "40",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cy = &run.cycles()[0];
    let path = cy["history"]
        .as_str()
        .expect("the record names its history");
    assert!(path.ends_with("history/drop_random_acks/cycle-1/history.jsonl"));
    let ops = ops(Path::new(path));

    // Invoke order, numbered from 0, no completion before its invocation.
    let mut last = 0;
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["index"], i as u64, "{op}");
        let invoke = op["invoke_us"].as_u64().unwrap();
        assert!(invoke >= last, "{op}");
        last = invoke;
        if let Some(done) = op["complete_us"].as_u64() {
            assert!(done >= invoke, "{op}");
        } else {
            assert_eq!(
                op["status"], "info",
                "only an unknown op has no completion: {op}"
            );
        }
    }

    // Every write of the record, with the status its outcome gives.
    let by_id: HashMap<&str, &Value> = ops
        .iter()
        .filter(|o| o["kind"] == "write")
        .map(|o| (o["value"].as_str().unwrap(), o))
        .collect();
    let recovery = cy["recovery"]["writes_detail"].as_array().unwrap();
    let burst = cy["writes_detail"].as_array().unwrap();
    assert_eq!(burst.len(), 40);
    assert_eq!(by_id.len(), burst.len() + recovery.len());
    for w in burst.iter().chain(recovery) {
        let op = by_id[w["id"].as_str().unwrap()];
        let want = match w["outcome"].as_str().unwrap() {
            "ok" => "ok",
            "quorum_not_met" | "fail" => "fail",
            _ => "info",
        };
        assert_eq!(op["status"], want, "{w} vs {op}");
        assert_eq!(op["invoke_us"], w["start_us"], "{w} vs {op}");
    }
    // Burst writers are processes 0..8 through the primary; the recovery
    // writer is process 8.
    for w in burst {
        let op = by_id[w["id"].as_str().unwrap()];
        assert!(op["process"].as_u64().unwrap() < 8, "{op}");
        assert_eq!(op["node"], 0, "{op}");
    }
    for w in recovery {
        assert_eq!(by_id[w["id"].as_str().unwrap()]["process"], 8);
    }

    // Reads during the cycle: readers 9..17, on every node, some before
    // the burst's last acknowledgement; read-backs: processes 17 + node.
    let during: Vec<&Value> = ops
        .iter()
        .filter(|o| o["kind"] == "read" && (9..17).contains(&o["process"].as_u64().unwrap()))
        .collect();
    let nodes: BTreeSet<u64> = during.iter().map(|o| o["node"].as_u64().unwrap()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from([0, 1, 2]),
        "reads during hit every node"
    );
    let last_ack = burst
        .iter()
        .map(|w| w["start_us"].as_u64().unwrap() + w["latency_us"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        during
            .iter()
            .any(|o| o["invoke_us"].as_u64().unwrap() < last_ack),
        "reads ran during the burst"
    );
    let acked: BTreeSet<&str> = burst
        .iter()
        .filter(|w| w["outcome"] == "ok")
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    for node in 0..3u64 {
        let back: Vec<&Value> = ops.iter().filter(|o| o["process"] == 17 + node).collect();
        assert!(!back.is_empty(), "node {node} was read back");
        assert!(
            back.iter()
                .all(|o| o["kind"] == "read" && o["node"] == node)
        );
        // Converged: its last read-back saw every acknowledged write.
        let seen: BTreeSet<&str> = back.last().unwrap()["seen"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert!(acked.is_subset(&seen), "node {node}");
    }

    // The assertion saw the same history through the interface.
    let ok_writes = ops
        .iter()
        .filter(|o| o["kind"] == "write" && o["status"] == "ok")
        .count();
    assert_eq!(figure(cy, "history_loop", "ops"), ops.len() as f64);
    assert_eq!(figure(cy, "history_loop", "len"), ops.len() as f64);
    assert_eq!(figure(cy, "history_loop", "ok_writes"), ok_writes as f64);
    assert_eq!(
        figure(cy, "history_loop", "effect_windows"),
        cy["effects"].as_array().unwrap().len() as f64
    );

    // report.html draws the cycle's ops, one bar each, and its windows.
    let html = std::fs::read_to_string(run.out.join("report.html")).unwrap();
    assert_eq!(html.matches("class=\"op-timeline\"").count(), 1);
    assert_eq!(
        html.matches("<rect class=\"op").count()
            - html.matches("<rect class=\"op-fault-window\"").count(),
        ops.len()
    );
    assert_eq!(
        html.matches("class=\"op-fault-window\"").count(),
        cy["effects"].as_array().unwrap().len()
    );

    // EDN: two events per op, indexed in time order, every invoke matched
    // by one completion of the same process.
    let export = export(&["export", run.out.to_str().unwrap(), "--format", "edn"]);
    assert_eq!(export.code, 0, "{}", export.stderr);
    let edn_path = Path::new(path).with_file_name("history.edn");
    assert_eq!(export.stdout.trim(), edn_path.to_str().unwrap());
    let events: Vec<BTreeMap<String, Edn>> = std::fs::read_to_string(&edn_path)
        .unwrap()
        .lines()
        .map(|l| match edn::parse(l) {
            Edn::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        })
        .collect();
    assert_eq!(events.len(), 2 * ops.len());
    let mut open: HashMap<i64, String> = HashMap::new();
    let mut last_time = 0;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e[":index"], Edn::Int(i as i64));
        let Edn::Int(time) = e[":time"] else { panic!() };
        assert!(time >= last_time);
        last_time = time;
        let Edn::Int(p) = e[":process"] else { panic!() };
        let Edn::Keyword(kind) = &e[":type"] else {
            panic!()
        };
        let Edn::Keyword(f) = &e[":f"] else { panic!() };
        if kind == ":invoke" {
            assert!(
                open.insert(p, f.clone()).is_none(),
                "process {p} has one op open"
            );
        } else {
            assert_eq!(open.remove(&p).as_ref(), Some(f), "event {i}");
            if f == ":read" && kind == ":ok" {
                assert!(matches!(e[":value"], Edn::Set(_)), "{:?}", e[":value"]);
            }
        }
    }
    assert!(open.is_empty());
    let adds_ok = events
        .iter()
        .filter(|e| {
            e[":type"] == Edn::Keyword(":ok".into()) && e[":f"] == Edn::Keyword(":add".into())
        })
        .count();
    assert_eq!(adds_ok, ok_writes);
}

/// `chaos-host ARGS` (no `--out`: export writes beside the histories).
fn export(args: &[&str]) -> crate::util::Run {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    crate::util::Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        out: Default::default(),
    }
}

/// `export` of a run recorded without histories, or of no run at all: one
/// clear error naming the dir, exit 2, nothing written.
#[test]
fn export_without_histories_names_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-run");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("cycles.jsonl"), "").unwrap();
    let run = export(&["export", old.to_str().unwrap(), "--format", "edn"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains(old.to_str().unwrap()), "{}", run.stderr);
    assert!(run.stderr.contains("without histories"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(&old).unwrap().count(),
        1,
        "nothing written"
    );
    let gone = dir.path().join("nowhere");
    let run = export(&["export", gone.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no such directory"), "{}", run.stderr);
}

/// `read.during_ms` out of range and `campaign.assertion_fuel = 0`: exit 2
/// naming the field, nothing run.
#[test]
fn bad_history_settings_are_refused() {
    for (edit, field) in [
        (
            Box::new(|t: String| with_reads(t, 0)) as Box<dyn Fn(String) -> String>,
            "read.during_ms is 0",
        ),
        (
            Box::new(|t: String| t.replace("[campaign]\n", "[campaign]\nassertion_fuel = 0\n")),
            "campaign.assertion_fuel is 0",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let c = campaign(dir.path(), false, edit);
        let run = run_campaign(dir.path(), &c, &["--cycles", "1"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(field), "{}", run.stderr);
        assert!(!run.out.join("cycles.jsonl").exists());
    }
}

/// A checker over its fuel budget is `unknown` with the history's size and
/// the budget, every cycle, and the campaign goes on; the same checker
/// with the default budget passes (the budget is what made it unknown).
#[test]
fn a_checker_out_of_fuel_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| {
        t.replace("[campaign]\n", "[campaign]\nassertion_fuel = 3000000\n")
    });
    let walker = guest("history_loop");
    let args = [
        "--plugin",
        walker.to_str().unwrap(),
        "--cycles",
        "2",
        "--writes",
        "20",
    ];
    let run = run_campaign(dir.path(), &c, &args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "the campaign went on");
    for cy in &cycles {
        let v = cy["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["plugin"].as_str().unwrap().starts_with("history_loop"))
            .unwrap();
        assert_eq!(v["outcome"], "unknown", "{v}");
        let ops = ops(Path::new(cy["history"].as_str().unwrap())).len();
        let reason = v["reasons"][0].as_str().unwrap();
        assert!(reason.contains("3000000 instructions"), "{reason}");
        assert!(
            reason.contains(&format!("history of {ops} operations")),
            "{reason}"
        );
        assert_ne!(cy["status"], "pass", "{cy}");
    }

    let dir = tempfile::tempdir().unwrap();
    let c = campaign(dir.path(), false, |t| t);
    let run = run_campaign(dir.path(), &c, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for cy in run.cycles() {
        assert!(figure(&cy, "history_loop", "ops") > 20.0, "{cy}");
    }
}

/// (read, write) pairs where the read, on `node`, began at least `gap_us`
/// after the write was acknowledged and did not see it.
fn stale_reads(ops: &[Value], node: u64, gap_us: u64) -> usize {
    let acked: Vec<(&str, u64)> = ops
        .iter()
        .filter(|o| o["kind"] == "write" && o["status"] == "ok")
        .map(|o| {
            (
                o["value"].as_str().unwrap(),
                o["complete_us"].as_u64().unwrap(),
            )
        })
        .collect();
    ops.iter()
        .filter(|o| o["kind"] == "read" && o["status"] == "ok" && o["node"] == node)
        .map(|r| {
            let seen: BTreeSet<&str> = r["seen"]
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap()).collect())
                .unwrap_or_default();
            let at = r["invoke_us"].as_u64().unwrap();
            acked
                .iter()
                .filter(|(id, done)| done + gap_us <= at && !seen.contains(id))
                .count()
        })
        .sum()
}

/// `--bug stale-reads`: node 1 serves reads 300 ms behind its log. The
/// cycle passes on convergence (nothing is lost), but its history shows
/// reads on node 1 that began 150 ms or more after a write was
/// acknowledged and missed it; the correct system's history has none (its
/// replicas lag by milliseconds; tens under a loaded CI machine, hence the
/// margin).
#[test]
fn stale_reads_show_in_the_history_not_in_convergence() {
    let stale = |bug: bool| {
        let dir = tempfile::tempdir().unwrap();
        let c = campaign(dir.path(), false, |t| {
            let t = with_reads(t, 10).replace("concurrency = 8", "concurrency = 4");
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
        assert_eq!(run.code, 0, "convergence alone passes it: {}", run.stderr);
        let cy = &run.cycles()[0];
        let ops = ops(Path::new(cy["history"].as_str().unwrap()));
        (stale_reads(&ops, 1, 150_000), ops.len())
    };
    let (buggy, n) = stale(true);
    assert!(buggy > 0, "no stale read in {n} ops");
    let (correct, n) = stale(false);
    assert_eq!(
        correct, 0,
        "{correct} stale reads in {n} ops of the correct system"
    );
}

/// Just enough EDN for Jepsen histories: maps, keywords, strings,
/// integers, nil, vectors and sets.
#[derive(Clone, Debug, PartialEq)]
enum Edn {
    Nil,
    Int(i64),
    Str(String),
    Keyword(String),
    Vector(Vec<Edn>),
    Set(Vec<Edn>),
    Map(BTreeMap<String, Edn>),
}

impl std::ops::Index<&str> for Edn {
    type Output = Edn;
    fn index(&self, k: &str) -> &Edn {
        match self {
            Edn::Map(m) => &m[k],
            _ => panic!("not a map"),
        }
    }
}

mod edn {
    use super::Edn;
    use std::collections::BTreeMap;

    pub fn parse(text: &str) -> Edn {
        let chars: Vec<char> = text.chars().collect();
        let mut at = 0;
        let v = value(&chars, &mut at);
        skip(&chars, &mut at);
        assert_eq!(at, chars.len(), "trailing text in {text:?}");
        v
    }

    fn skip(c: &[char], at: &mut usize) {
        while *at < c.len() && (c[*at].is_whitespace() || c[*at] == ',') {
            *at += 1;
        }
    }

    fn items(c: &[char], at: &mut usize, close: char) -> Vec<Edn> {
        let mut out = Vec::new();
        loop {
            skip(c, at);
            if c[*at] == close {
                *at += 1;
                return out;
            }
            out.push(value(c, at));
        }
    }

    fn value(c: &[char], at: &mut usize) -> Edn {
        skip(c, at);
        match c[*at] {
            '{' => {
                *at += 1;
                let flat = items(c, at, '}');
                assert!(flat.len().is_multiple_of(2), "odd map");
                let mut m = BTreeMap::new();
                for kv in flat.chunks(2) {
                    let Edn::Keyword(k) = &kv[0] else {
                        panic!("key {:?}", kv[0])
                    };
                    assert!(
                        m.insert(k.clone(), kv[1].clone()).is_none(),
                        "duplicate {k}"
                    );
                }
                Edn::Map(m)
            }
            '[' => {
                *at += 1;
                Edn::Vector(items(c, at, ']'))
            }
            '#' => {
                assert_eq!(c[*at + 1], '{');
                *at += 2;
                Edn::Set(items(c, at, '}'))
            }
            '"' => {
                *at += 1;
                let mut s = String::new();
                while c[*at] != '"' {
                    if c[*at] == '\\' {
                        *at += 1;
                        s.push(match c[*at] {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                    } else {
                        s.push(c[*at]);
                    }
                    *at += 1;
                }
                *at += 1;
                Edn::Str(s)
            }
            _ => {
                let start = *at;
                while *at < c.len() && !c[*at].is_whitespace() && !",}])".contains(c[*at]) {
                    *at += 1;
                }
                let tok: String = c[start..*at].iter().collect();
                if tok == "nil" {
                    Edn::Nil
                } else if tok.starts_with(':') {
                    Edn::Keyword(tok)
                } else {
                    Edn::Int(tok.parse().unwrap_or_else(|_| panic!("token {tok:?}")))
                }
            }
        }
    }

    #[test]
    fn parses_jepsen_events() {
        let e = parse(r#"{:type :ok, :f :read, :value #{"a" "b\"c"}, :process 3, :x [nil [1 2]]}"#);
        assert_eq!(e[":process"], Edn::Int(3));
        assert_eq!(
            e[":value"],
            Edn::Set(vec![Edn::Str("a".into()), Edn::Str("b\"c".into())])
        );
    }
}

/// The reference system in register mode (examples/reference/register.toml)
/// with one key, `edit` applied; one cycle.
fn register_run(dir: &Path, edit: impl Fn(String) -> String) -> crate::util::Run {
    let kv = crate::util::bin_dir().join("quorum-kv");
    let c = crate::util::example_campaign(dir, "reference/register.toml", |t| {
        edit(
            t.replace("../../target/debug/quorum-kv", kv.to_str().unwrap())
                .replace("keys = 3", "keys = 1")
                .replace("clients = 4", "clients = 6")
                .replace("ops = 200", "ops = 600"),
        )
    });
    run_campaign(dir, &c, &["--cycles", "2", "--writes", "20"])
}

/// Every op of every cycle of `run`.
fn all_ops(run: &crate::util::Run) -> Vec<Value> {
    run.cycles()
        .iter()
        .flat_map(|cy| ops(Path::new(cy["history"].as_str().unwrap())))
        .collect()
}

/// Successful cas operations that expected the same value of the same key:
/// values are unique per write, so in a linearizable register only one of
/// them can have found it there.
fn double_cas(ops: &[Value]) -> usize {
    let mut seen = BTreeSet::new();
    ops.iter()
        .filter(|o| o["kind"] == "cas" && o["status"] == "ok")
        .filter(|o| !seen.insert((o["key"].to_string(), o["expected"].to_string())))
        .count()
}

/// Register workload against the reference register mode: puts, gets and
/// cas recorded with keys, unique values, what each get read and each
/// result; the correct mode never lets two cas succeed on one expected
/// value, `--bug lost-update` does (a lost update, in the history itself).
/// Two cycles of 600 ops on one key, so that concurrent cas on one value
/// are common enough to be seen.
#[test]
fn register_workload_records_puts_gets_and_cas() {
    let dir = tempfile::tempdir().unwrap();
    let run = register_run(dir.path(), |t| t);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = all_ops(&run);
    let reg: Vec<&Value> = all
        .iter()
        .filter(|o| ["put", "get", "cas"].contains(&o["kind"].as_str().unwrap()))
        .collect();
    let count = |kind: &str, status: &str| {
        reg.iter()
            .filter(|o| o["kind"] == kind && o["status"] == status)
            .count()
    };
    assert!(count("put", "ok") > 0 && count("get", "ok") > 0, "{reg:?}");
    assert!(
        count("cas", "ok") > 0 && count("cas", "fail") > 0,
        "contention on one key"
    );
    let written: Vec<&str> = reg
        .iter()
        .filter(|o| o["kind"] != "get")
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&&str> = written.iter().collect();
    assert_eq!(unique.len(), written.len(), "values are unique per write");
    for o in &reg {
        // Register clients come after the read-back processes (8 writers,
        // 1 recovery, 0 readers, 3 nodes).
        assert!(o["process"].as_u64().unwrap() >= 12, "{o}");
        assert!(o["key"].as_str().unwrap().ends_with("-k0"), "{o}");
        if o["kind"] == "get"
            && o["status"] == "ok"
            && let Some(v) = o["read"].as_str()
        {
            assert!(unique.contains(&v), "a get read a value never written: {o}");
        }
    }
    assert_eq!(double_cas(&all), 0, "correct mode: {reg:?}");

    let dir = tempfile::tempdir().unwrap();
    let run = register_run(dir.path(), |t| {
        t.replace(
            "\"--quorum\", \"2\",",
            "\"--quorum\", \"2\", \"--bug\", \"lost-update\",",
        )
    });
    assert_eq!(run.code, 0, "convergence alone passes it: {}", run.stderr);
    let buggy = all_ops(&run);
    assert!(
        double_cas(&buggy) > 0,
        "no lost update in {} ops",
        buggy.len()
    );
}

/// A put template without `{value}`: exit 2 naming the field. A get whose
/// value pointer matches nothing: each such get is a failed op saying why,
/// and the cycle is an error naming the cause.
#[test]
fn bad_register_templates_and_answers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = register_run(dir.path(), |t| {
        t.replace(
            "body = { value = \"{value}\" }",
            "body = { value = \"same\" }",
        )
    });
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("workload.put: neither url nor body uses {value}"),
        "{}",
        run.stderr
    );
    assert!(!run.out.join("cycles.jsonl").exists());

    let dir = tempfile::tempdir().unwrap();
    let run = register_run(dir.path(), |t| {
        t.replace("value_pointer = \"/value\"", "value_pointer = \"/nope\"")
    });
    assert_ne!(run.code, 0, "{}", run.stderr);
    let cy = &run.cycles()[0];
    assert_eq!(cy["status"], "error", "{cy}");
    assert!(
        cy["reasons"]
            .to_string()
            .contains("get answer(s) did not parse"),
        "{cy}"
    );
    let ops = ops(Path::new(cy["history"].as_str().unwrap()));
    let bad: Vec<&Value> = ops
        .iter()
        .filter(|o| o["kind"] == "get" && o["status"] == "fail")
        .collect();
    assert!(!bad.is_empty());
    assert!(
        bad[0]["error"]
            .as_str()
            .unwrap()
            .contains("\"/nope\" matches nothing"),
        "{}",
        bad[0]
    );
}

/// etcd's register workload through the JSON gateway (put, linearizable
/// range, txn cas; base64 keys and values): every kind of op comes back
/// with decoded values, and no two cas succeed on one expected value.
#[test]
fn etcd_register_workload_through_the_json_gateway() {
    crate::util::require(
        "etcd",
        "apt-get install etcd-server (scripts/install-deps.sh --systems)",
    );
    let dir = tempfile::tempdir().unwrap();
    let c = crate::util::example_campaign(dir.path(), "etcd/register.toml", |t| t);
    let run = run_campaign(dir.path(), &c, &["--cycles", "1", "--writes", "20"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cy = &run.cycles()[0];
    let all = ops(Path::new(cy["history"].as_str().unwrap()));
    for kind in ["put", "get", "cas"] {
        assert!(
            all.iter().any(|o| o["kind"] == kind && o["status"] == "ok"),
            "no ok {kind}"
        );
    }
    assert!(
        all.iter()
            .any(|o| o["kind"] == "cas" && o["status"] == "fail")
    );
    let prefix = cy["namespace"].as_str().unwrap();
    assert!(
        all.iter()
            .filter_map(|o| o["read"].as_str())
            .all(|v| v.starts_with(prefix)),
        "gets decode values written this cycle"
    );
    assert_eq!(double_cas(&all), 0);
}
