//! A small counterexample from a key whose operations are not
//! linearizable: a subset of them that is still not linearizable, found by
//! narrowing to the shortest failing prefix, then the shortest failing
//! window of it, then dropping operations one at a time while it still
//! fails.
//!
//! A subset always keeps the writers of every value its operations read or
//! expect (its closure): with unique values per write, any linearization of
//! the whole history restricted to such a subset is a linearization of the
//! subset, so a subset that is not linearizable proves the whole history is
//! not, and a read is never shown without the write it read.

use crate::history::{ABSENT, Kind, Op, Status, Value};
use crate::wgl::{self, Budget, Outcome};
use std::collections::{BTreeSet, HashMap};

/// Removal attempts in the last phase, at most: each is one search.
const MAX_REMOVALS: usize = 400;

/// Positions in `ops` of a small non-linearizable subset (the whole of
/// `ops`, minus the operations that cannot matter, when the budget does not
/// allow narrowing further). `ops` must not be linearizable.
pub fn counterexample(ops: &[&Op], budget: &Budget) -> Vec<usize> {
    // fail operations and info gets took no effect and observed nothing.
    let relevant: Vec<usize> = (0..ops.len())
        .filter(|&i| {
            !(ops[i].status == Status::Fail
                || (ops[i].kind == Kind::Get && ops[i].status == Status::Info))
        })
        .collect();
    let mut writers: HashMap<Value, Vec<usize>> = HashMap::new();
    for &i in &relevant {
        if ops[i].kind != Kind::Get {
            writers.entry(ops[i].value).or_default().push(i);
        }
    }
    let closure = |set: &mut BTreeSet<usize>| {
        let mut todo: Vec<usize> = set.iter().copied().collect();
        while let Some(i) = todo.pop() {
            let needs = match ops[i].kind {
                Kind::Get => ops[i].read,
                Kind::Cas => ops[i].expected,
                Kind::Put => ABSENT,
            };
            for &w in writers.get(&needs).into_iter().flatten() {
                if needs != ABSENT && set.insert(w) {
                    todo.push(w);
                }
            }
        }
    };
    let mut steps = 0;
    let mut fails = |set: &BTreeSet<usize>| {
        let sub: Vec<&Op> = set.iter().map(|&i| ops[i]).collect();
        steps = 0;
        wgl::check(&sub, budget, &mut steps) == Outcome::NotLinearizable
    };
    let window = |from: usize, to: usize| {
        let mut set: BTreeSet<usize> = relevant[from..to].iter().copied().collect();
        closure(&mut set);
        set
    };

    let n = relevant.len();
    // Shortest failing prefix of `relevant`.
    let (mut lo, mut hi) = (1, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails(&window(0, mid)) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let end = hi;
    // Latest start that still fails.
    let (mut lo, mut hi) = (0, end - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fails(&window(mid, end)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut set = window(lo, end);
    if !fails(&set) {
        // Failure is not monotone in the window on every history: fall back
        // to everything that can matter.
        set = window(0, n);
    }
    // Drop one operation at a time; the closure puts back a writer still
    // needed, so those candidates cost nothing.
    let candidates: Vec<usize> = set.iter().copied().collect();
    for i in candidates.into_iter().take(MAX_REMOVALS) {
        if !set.contains(&i) {
            continue;
        }
        let mut smaller = set.clone();
        smaller.remove(&i);
        closure(&mut smaller);
        if !smaller.contains(&i) && fails(&smaller) {
            set = smaller;
        }
    }
    set.into_iter().collect()
}
