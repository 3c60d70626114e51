//! set_full against hand-written histories: each violation caught and named,
//! and the same history without it passing.

use crate::analysis::{At, Findings, SetFull, StaleNodes, Status};
use crate::{judge, parse_stale_nodes};
use chaos_sdk::{Outcome, Verdict};

enum Op<'a> {
    /// (id, status, complete)
    W(&'a str, Status, Option<u64>),
    /// (node, invoke, complete, seen)
    R(u32, u64, u64, &'a [&'a str]),
}
use Op::{R, W};
use Status::{Info, Ok};

fn run(stale_nodes: StaleNodes, ops: &[Op<'_>]) -> Findings {
    run_with_grace(stale_nodes, 0, ops)
}

fn run_with_grace(stale_nodes: StaleNodes, grace_us: u64, ops: &[Op<'_>]) -> Findings {
    let mut set = SetFull::new(stale_nodes, grace_us);
    for (index, op) in ops.iter().enumerate() {
        let index = index as u64;
        match *op {
            W(id, status, complete) => set.write(index, id, status, complete),
            R(node, invoke_us, complete_us, seen) => {
                let seen: Vec<String> = seen.iter().map(|s| s.to_string()).collect();
                let at = At {
                    index,
                    node,
                    invoke_us,
                    complete_us,
                };
                set.read(at, &seen);
            }
        }
    }
    set.finish()
}

fn figure(v: &Verdict, name: &str) -> f64 {
    v.figures
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no figure {name}: {:?}", v.figures))
        .value
}

#[test]
fn stale_read_on_a_node_that_promises_read_your_writes() {
    // op 2 began at 30, after "a" was acknowledged at 10, and missed it.
    let ops = [
        W("a", Ok, Some(10)),
        R(0, 12, 20, &["a"]),
        R(1, 30, 40, &[]),
        R(1, 50, 60, &["a"]),
    ];
    let f = run(StaleNodes::All, &ops);
    assert_eq!(f.stale.len(), 1);
    assert_eq!(
        (
            f.stale[0].read.index,
            f.stale[0].id.as_str(),
            f.stale[0].write
        ),
        (2, "a", 0)
    );
    assert!(f.lost.is_empty());
    let v = judge(f);
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.starts_with("op 2 on node 1 began 0.030 ms and missed id \"a\"")),
        "{:?}",
        v.reasons
    );
    assert_eq!(figure(&v, "stale_read_ratio"), 1.0 / 3.0);
    // Node 1 is a follower, allowed to lag: only the primary's reads judge.
    let v = judge(run(StaleNodes::Only(0), &ops));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    // Or every node may lag 20 us: op 2 began exactly 20 us after the ack.
    let v = judge(run_with_grace(StaleNodes::All, 20, &ops));
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let v = judge(run_with_grace(StaleNodes::All, 19, &ops));
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
}

#[test]
fn lost_after_being_seen() {
    let ops = [
        W("a", Ok, Some(10)),
        W("b", Ok, Some(11)),
        R(0, 20, 30, &["a", "b"]),
        // "b" gone for good.
        R(0, 40, 50, &["a"]),
        R(1, 60, 70, &["a"]),
    ];
    let f = run(StaleNodes::All, &ops);
    assert_eq!(f.lost.len(), 1);
    let lost = &f.lost[0];
    assert_eq!(
        (
            lost.id.as_str(),
            lost.write,
            lost.last_seen.map(|r| r.index),
            lost.missed_by.index
        ),
        ("b", Some(1), Some(2), 3)
    );
    let v = judge(f);
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("id \"b\" (written by op 1) last returned by op 2")),
        "{:?}",
        v.reasons
    );
    assert_eq!(figure(&v, "lost_ratio"), 0.5);
}

#[test]
fn seen_again_later_is_not_lost_and_never_read_is_counted() {
    let ops = [
        W("a", Ok, Some(10)),
        R(0, 5, 8, &[]),
        R(0, 20, 30, &["a"]),
        // Written after the last read began: nothing judges it.
        W("c", Ok, Some(35)),
        // Timed out, yet visible: known, and judged like an acknowledged id.
        W("d", Info, None),
        R(0, 31, 33, &["a", "d"]),
    ];
    let f = run(StaleNodes::All, &ops);
    assert!(f.lost.is_empty() && f.stale.is_empty(), "{f:?}");
    assert_eq!(f.never_read, vec!["c".to_owned()]);
    assert_eq!(f.visibility_us, vec![20]);
    let v = judge(f);
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(figure(&v, "never_read"), 1.0);
    assert_eq!(figure(&v, "visibility_p50_ms"), 0.02);
    for fig in &v.figures {
        if fig.name.ends_with("_ratio") {
            assert!((0.0..=1.0).contains(&fig.value), "{fig:?}");
        }
    }
}

#[test]
fn no_reads_is_unknown() {
    let v = judge(run(StaleNodes::All, &[W("a", Ok, Some(1))]));
    assert_eq!(v.outcome, Outcome::Unknown);
    assert!(v.reasons[0].contains("no ok read"), "{:?}", v.reasons);
    let v = judge(run(
        StaleNodes::Only(0),
        &[W("a", Ok, Some(1)), R(2, 5, 6, &["a"])],
    ));
    assert_eq!(v.outcome, Outcome::Unknown);
}

#[test]
fn visibility_percentiles() {
    let mut ops = Vec::new();
    let names: Vec<String> = (0..100).map(|i| format!("id{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        ops.push(W(name, Ok, Some(1_000)));
        let _ = i;
    }
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    // Read i ends at 1000 + (i + 1) ms and returns ids 0..=i.
    let reads: Vec<Vec<&str>> = (0..100).map(|i| all[..=i].to_vec()).collect();
    for (i, seen) in reads.iter().enumerate() {
        let end = 1_000 + (i as u64 + 1) * 1_000;
        ops.push(R(0, end - 1, end, seen));
    }
    let f = run(StaleNodes::All, &ops);
    // Read i began after every ack and missed ids i+1..: 99 stale reads.
    assert_eq!(f.stale.len(), 99);
    let v = judge(f);
    assert_eq!(figure(&v, "visibility_p50_ms"), 50.0);
    assert_eq!(figure(&v, "visibility_p99_ms"), 99.0);
}

#[test]
fn stale_nodes_parameter() {
    assert!(matches!(
        parse_stale_nodes("all", 2),
        Result::Ok(StaleNodes::All)
    ));
    assert!(matches!(
        parse_stale_nodes("primary", 2),
        Result::Ok(StaleNodes::Only(2))
    ));
    let v = parse_stale_nodes("leader", 2).unwrap_err();
    assert_eq!(v.outcome, Outcome::Unknown);
    assert!(v.reasons[0].contains("stale_nodes = \"leader\" is not \"all\" or \"primary\""));
}
