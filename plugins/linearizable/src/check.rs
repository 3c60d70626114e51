//! The whole-history check: each key on its own (a register history is
//! linearizable exactly when each key's is: P-compositionality), smallest
//! keys first, and a counterexample for the first key that fails.

use crate::history::History;
use crate::shrink;
use crate::wgl::{self, Budget, Limit, Outcome};

/// The checker's answer for a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Key `key` is not linearizable; `counterexample` holds positions in
    /// `History::ops` of a small subset of its operations that is not.
    NotLinearizable {
        key: u32,
        counterexample: Vec<usize>,
    },
    /// The budget ran out on key `key`, no key having failed before it.
    OverBudget {
        key: u32,
        limit: Limit,
    },
}

/// What a check found and spent.
#[derive(Clone, Debug)]
pub struct Report {
    pub verdict: Verdict,
    /// Keys whose search concluded.
    pub keys_checked: usize,
    /// Search steps spent, over every key (the counterexample's search not
    /// included).
    pub steps: u64,
}

/// Check `history` against a register/CAS model per key.
pub fn check(history: &History, budget: &Budget) -> Report {
    let mut keys: Vec<Vec<usize>> = history.per_key();
    // Small keys first: a failure there is found, and shrunk, cheaply.
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_by_key(|&k| keys[k as usize].len());
    let mut steps = 0;
    let mut keys_checked = 0;
    let mut over: Option<(u32, Limit)> = None;
    for key in order {
        let positions = std::mem::take(&mut keys[key as usize]);
        let ops: Vec<_> = positions.iter().map(|&p| &history.ops[p]).collect();
        match wgl::check(&ops, budget, &mut steps) {
            Outcome::Linearizable => keys_checked += 1,
            Outcome::NotLinearizable => {
                let subset = shrink::counterexample(&ops, budget);
                return Report {
                    verdict: Verdict::NotLinearizable {
                        key,
                        counterexample: subset.into_iter().map(|i| positions[i]).collect(),
                    },
                    keys_checked: keys_checked + 1,
                    steps,
                };
            }
            Outcome::OverBudget(limit) => {
                over.get_or_insert((key, limit));
                // Steps are shared: nothing is left for other keys.
                if limit == Limit::Steps {
                    break;
                }
            }
        }
    }
    let verdict = match over {
        Some((key, limit)) => Verdict::OverBudget { key, limit },
        None => Verdict::Linearizable,
    };
    Report {
        verdict,
        keys_checked,
        steps,
    }
}
