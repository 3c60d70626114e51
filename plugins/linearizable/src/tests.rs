//! The checker against hand-written violations, generated histories and the
//! brute force.

use crate::brute;
use crate::check::{self, Verdict};
use crate::generate::{self, Spec};
use crate::history::{History, Kind, OpText, Status};
use crate::judge;
use crate::wgl::{Budget, Limit};
use chaos_sdk::Outcome;

const BUDGET: Budget = Budget {
    max_steps: 10_000_000,
    max_states: 1_000_000,
};

/// A history built line by line: (process, kind, key, value, expected,
/// read, status, invoke, complete).
type Line<'a> = (
    u32,
    Kind,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Status,
    u64,
    Option<u64>,
);

fn history(lines: &[Line<'_>]) -> History {
    let mut h = History::new();
    for (index, &(process, kind, key, value, expected, read, status, invoke_us, complete_us)) in
        lines.iter().enumerate()
    {
        h.push(OpText {
            index: index as u64,
            process,
            node: 0,
            kind,
            key,
            value,
            expected,
            read,
            status,
            invoke_us,
            complete_us,
        });
    }
    h
}

fn counterexample(h: &History) -> Vec<u64> {
    match check::check(h, &BUDGET).verdict {
        Verdict::NotLinearizable { counterexample, .. } => {
            let mut idx: Vec<u64> = counterexample.iter().map(|&p| h.ops[p].index).collect();
            idx.sort();
            idx
        }
        other => panic!("expected not linearizable, got {other:?}"),
    }
}

use Kind::{Cas, Get, Put};
use Status::{Fail, Info, Ok};

#[test]
fn stale_read_is_caught_with_the_writes_it_skipped() {
    let h = history(&[
        (0, Put, "x", Some("a"), None, None, Ok, 0, Some(10)),
        (1, Get, "y", None, None, None, Ok, 5, Some(8)),
        (0, Put, "x", Some("b"), None, None, Ok, 20, Some(30)),
        (1, Get, "x", None, None, Some("b"), Ok, 35, Some(40)),
        // Began after put b was acknowledged, and read a.
        (2, Get, "x", None, None, Some("a"), Ok, 50, Some(60)),
    ]);
    assert_eq!(counterexample(&h), vec![0, 2, 4]);
    let verdict = judge(&h, &BUDGET);
    assert_eq!(verdict.outcome, Outcome::Fail);
    assert!(
        verdict.reasons[0].contains("key \"x\""),
        "{:?}",
        verdict.reasons
    );
    assert!(
        verdict.reasons[1].starts_with("op 0: process 0"),
        "{:?}",
        verdict.reasons
    );
    assert!(verdict.reasons[3].contains("op 4: process 2 node 0 key \"x\" get -> \"a\" ok"));
}

#[test]
fn lost_update_two_cas_from_the_same_value_both_ok() {
    let h = history(&[
        (0, Put, "k", Some("0"), None, None, Ok, 0, Some(10)),
        (1, Get, "k", None, None, Some("0"), Ok, 12, Some(14)),
        (1, Cas, "k", Some("1"), Some("0"), None, Ok, 20, Some(40)),
        (2, Cas, "k", Some("2"), Some("0"), None, Ok, 25, Some(45)),
        (0, Get, "k", None, None, Some("2"), Ok, 50, Some(55)),
    ]);
    assert_eq!(counterexample(&h), vec![0, 2, 3]);
    let verdict = judge(&h, &BUDGET);
    assert_eq!(verdict.outcome, Outcome::Fail);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| r.contains("op 3: process 2 node 0 key \"k\" cas \"0\" -> \"2\" ok")),
        "{:?}",
        verdict.reasons
    );
}

#[test]
fn read_of_a_value_never_written() {
    let h = history(&[
        (0, Put, "k", Some("a"), None, None, Ok, 0, Some(10)),
        (1, Get, "k", None, None, Some("a"), Ok, 11, Some(12)),
        (1, Get, "k", None, None, Some("ghost"), Ok, 20, Some(30)),
    ]);
    assert_eq!(counterexample(&h), vec![2]);
}

#[test]
fn the_same_histories_made_valid_pass() {
    // Stale read made concurrent with the write: it may precede it.
    let stale = history(&[
        (0, Put, "x", Some("a"), None, None, Ok, 0, Some(10)),
        (0, Put, "x", Some("b"), None, None, Ok, 20, Some(30)),
        (2, Get, "x", None, None, Some("a"), Ok, 25, Some(60)),
    ]);
    // One of the two cas failed.
    let cas = history(&[
        (0, Put, "k", Some("0"), None, None, Ok, 0, Some(10)),
        (1, Cas, "k", Some("1"), Some("0"), None, Ok, 20, Some(40)),
        (2, Cas, "k", Some("2"), Some("0"), None, Fail, 25, Some(45)),
        (0, Get, "k", None, None, Some("1"), Ok, 50, Some(55)),
    ]);
    // A timed-out put took effect long after it was sent.
    let info = history(&[
        (0, Put, "k", Some("a"), None, None, Info, 0, None),
        (1, Get, "k", None, None, None, Ok, 100, Some(110)),
        (1, Get, "k", None, None, Some("a"), Ok, 500, Some(510)),
        (1, Get, "k", None, None, None, Ok, 0, Some(1)),
    ]);
    // A timed-out cas whose expected value never held took no effect (its
    // value is expected by another timed-out cas, so it is searched).
    let info_cas = history(&[
        (0, Put, "k", Some("a"), None, None, Ok, 0, Some(10)),
        (1, Cas, "k", Some("w"), Some("z"), None, Info, 20, None),
        (2, Cas, "k", Some("q"), Some("w"), None, Info, 21, None),
        (0, Get, "k", None, None, Some("a"), Ok, 30, Some(40)),
    ]);
    for h in [stale, cas, info, info_cas] {
        assert_eq!(check::check(&h, &BUDGET).verdict, Verdict::Linearizable);
        assert_eq!(judge(&h, &BUDGET).outcome, Outcome::Pass);
    }
}

#[test]
fn a_timed_out_put_cannot_take_effect_before_it_was_sent() {
    let h = history(&[
        (1, Get, "k", None, None, Some("a"), Ok, 0, Some(10)),
        (0, Put, "k", Some("a"), None, None, Info, 20, None),
    ]);
    assert_eq!(counterexample(&h), vec![0, 1]);
}

#[test]
fn generated_histories_pass_and_their_mutants_fail() {
    for seed in 0..20 {
        let spec = Spec {
            ops: 2_000,
            clients: 2 + seed as u32 % 10,
            keys: 1 + seed as u32 % 5,
            info_ratio: 0.02,
            seed,
        };
        let h = generate::valid(&spec);
        assert_eq!(
            check::check(&h, &BUDGET).verdict,
            Verdict::Linearizable,
            "seed {seed}"
        );
        let bad = generate::with_phantom_read(&h, seed).expect("a get");
        let Verdict::NotLinearizable { counterexample, .. } = check::check(&bad, &BUDGET).verdict
        else {
            panic!("seed {seed}: mutant judged linearizable");
        };
        // The phantom read alone is the smallest counterexample.
        assert_eq!(counterexample.len(), 1, "seed {seed}");
        let stale = generate::with_stale_read(&h, seed).expect("a get to make stale");
        let changed = (0..h.ops.len())
            .find(|&i| h.ops[i].read != stale.ops[i].read)
            .expect("one read changed");
        let Verdict::NotLinearizable { counterexample, .. } = check::check(&stale, &BUDGET).verdict
        else {
            panic!("seed {seed}: stale read judged linearizable");
        };
        // The stale get, the write it read and the newer one it missed
        // (and the writers a cas among them expected), no more.
        assert!(counterexample.contains(&changed), "seed {seed}");
        let sub: Vec<_> = counterexample.iter().map(|&p| &stale.ops[p]).collect();
        assert!(sub.len() <= 8, "seed {seed}: {} ops", sub.len());
        assert!(!brute::linearizable(&sub), "seed {seed}");
    }
}

#[test]
fn over_budget_is_unknown_with_size_and_budget() {
    let h = generate::valid(&Spec {
        ops: 5_000,
        clients: 8,
        keys: 2,
        info_ratio: 0.0,
        seed: 7,
    });
    let tight = Budget {
        max_steps: 1_000,
        max_states: 1_000_000,
    };
    assert!(matches!(
        check::check(&h, &tight).verdict,
        Verdict::OverBudget {
            limit: Limit::Steps,
            ..
        }
    ));
    let verdict = judge(&h, &tight);
    assert_eq!(verdict.outcome, Outcome::Unknown);
    assert!(
        verdict.reasons[0].contains("5000 operations over 2 key(s)")
            && verdict.reasons[0].contains("max_steps = 1000"),
        "{:?}",
        verdict.reasons
    );
    let few_states = Budget {
        max_steps: 10_000_000,
        max_states: 10,
    };
    assert_eq!(judge(&h, &few_states).outcome, Outcome::Unknown);
}

#[test]
fn empty_history_is_unknown() {
    assert_eq!(judge(&History::new(), &BUDGET).outcome, Outcome::Unknown);
}

/// A small random history: few values, so reads often match some write,
/// and crowded times, so operations overlap.
fn random_history(rng: &mut fastrand::Rng, keys: u32) -> History {
    let n = rng.usize(1..=7);
    let values = ["a", "b", "c"];
    let mut lines = Vec::new();
    for _ in 0..n {
        let kind = [Put, Get, Cas][rng.usize(0..3)];
        let status = [Ok, Ok, Ok, Fail, Info][rng.usize(0..5)];
        let pick = |rng: &mut fastrand::Rng| {
            let i = rng.usize(0..=values.len());
            (i < values.len()).then(|| values[i])
        };
        let value = Some(values[rng.usize(0..values.len())]);
        let expected = pick(rng);
        let read = pick(rng);
        let invoke = rng.u64(0..20);
        let complete = (status != Info).then(|| invoke + rng.u64(0..10));
        let key = ["k0", "k1"][rng.usize(0..keys as usize)];
        lines.push((
            rng.u32(0..3),
            kind,
            key,
            (kind != Get).then_some(value).flatten(),
            (kind == Cas).then_some(expected).flatten(),
            (kind == Get && status == Ok).then_some(read).flatten(),
            status,
            invoke,
            complete,
        ));
    }
    lines.sort_by_key(|l| l.7);
    history(&lines)
}

#[test]
fn wgl_agrees_with_brute_force_on_small_random_histories() {
    let mut rng = fastrand::Rng::with_seed(15);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..30_000 {
        let h = random_history(&mut rng, 1 + case % 2);
        let ops: Vec<_> = h.ops.iter().collect();
        let expected = brute::linearizable(&ops);
        let report = check::check(&h, &BUDGET);
        match report.verdict {
            Verdict::Linearizable => {
                assert!(
                    expected,
                    "case {case}: WGL valid, brute force invalid: {h:#?}"
                );
                valid += 1;
            }
            Verdict::NotLinearizable { counterexample, .. } => {
                assert!(
                    !expected,
                    "case {case}: WGL invalid, brute force valid: {h:#?}"
                );
                // The counterexample is itself not linearizable.
                let sub: Vec<_> = counterexample.iter().map(|&p| &h.ops[p]).collect();
                assert!(
                    !brute::linearizable(&sub),
                    "case {case}: counterexample is valid"
                );
                invalid += 1;
            }
            Verdict::OverBudget { .. } => panic!("case {case}: over budget"),
        }
    }
    // Both answers were exercised, many times.
    assert!(
        valid > 3_000 && invalid > 3_000,
        "valid {valid}, invalid {invalid}"
    );
}
