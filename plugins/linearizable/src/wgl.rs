//! The Wing & Gong search with Lowe's memoisation, for one key's operations
//! against a register/CAS model.
//!
//! Operations become call and return events on a doubly linked list sorted
//! by time (calls before returns at equal times, so touching operations
//! count as concurrent: the lenient reading, never a false alarm). The search
//! walks the list: at a call it tries to linearize that operation next (the
//! model must accept it); at a return it backtracks, because that operation
//! had to be linearized before anything that follows. A (set of linearized
//! operations, register state) pair already explored is never explored again:
//! that memo is what keeps the search near-linear for histories of bounded
//! concurrency.
//!
//! An `info` operation (timed out, may have taken effect at any time after
//! its invocation) has a call and no return: the search may linearize it or
//! leave it out, and succeeds once every `ok` operation is linearized.
//! `fail` operations and `info` gets are dropped: they took no effect and
//! observed nothing; so are `info` writes whose value nobody observed (see
//! `check`).
//!
//! The memo stores 128 bits per pair: a Zobrist hash of the set (the XOR of
//! a fixed random word per operation, updated in O(1) per step) mixed with
//! the state, instead of a bitset of the key's operations (1.2 KiB per pair
//! at 10,000 operations, which would not fit the plugin's 64 MiB for the
//! largest histories). Two distinct pairs sharing a hash would wrongly prune
//! a branch; among a million pairs that happens with probability below
//! 2^-88, and the counterexample reported on a failure is re-checked by the
//! same search on its few operations.

use crate::history::{ABSENT, Kind, Op, Status, Value};
use rustc_hash::FxHashSet;

/// How much search a check may spend before answering `unknown`.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Search steps (tries to linearize an operation, and backtracks), over
    /// the whole history.
    pub max_steps: u64,
    /// Memoised (set, state) pairs for one key: 16 bytes each, the checker's
    /// memory bound.
    pub max_states: usize,
}

/// What one key's search concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Linearizable,
    NotLinearizable,
    /// The budget ran out before the search concluded.
    OverBudget(Limit),
}

/// The budget that ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Steps,
    States,
}

/// The register model's view of an operation that can take effect.
#[derive(Clone, Copy, Debug)]
enum Effect {
    Put(Value),
    Get(Value),
    Cas(Value, Value),
}

impl Effect {
    fn of(op: &Op) -> Option<Effect> {
        match (op.kind, op.status) {
            (_, Status::Fail) | (Kind::Get, Status::Info) => None,
            (Kind::Put, _) => Some(Effect::Put(op.value)),
            (Kind::Get, _) => Some(Effect::Get(op.read)),
            (Kind::Cas, _) => Some(Effect::Cas(op.expected, op.value)),
        }
    }

    /// The register's state after this operation, if the model accepts it
    /// in `state`.
    fn step(self, state: Value) -> Option<Value> {
        match self {
            Effect::Put(v) => Some(v),
            Effect::Get(v) => (v == state).then_some(state),
            Effect::Cas(expected, new) => (expected == state).then_some(new),
        }
    }
}

/// splitmix64's finaliser: the fixed random word of operation `i` (a mixing
/// function, not a random generator, so no crate is needed).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn zobrist(i: usize) -> u128 {
    let i = i as u64;
    ((mix(2 * i) as u128) << 64) | mix(2 * i + 1) as u128
}

fn state_word(state: Value) -> u128 {
    // Offset so that no state's word equals an operation's.
    zobrist(usize::MAX / 4 - state as usize)
}

const NIL: usize = usize::MAX;

/// Is this key's history linearizable? `ops` are one key's operations;
/// `steps` counts search steps across calls against `budget.max_steps`.
pub fn check(ops: &[&Op], budget: &Budget, steps: &mut u64) -> Outcome {
    // Values some effective operation reads or expects.
    let observed: FxHashSet<Value> = ops
        .iter()
        .filter_map(|op| match Effect::of(op)? {
            Effect::Get(v) | Effect::Cas(v, _) => Some(v),
            Effect::Put(_) => None,
        })
        .collect();
    let mut effects = Vec::new();
    let mut required = Vec::new();
    // (time, is_return, entry): sorted, calls first at equal times.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for op in ops {
        let Some(effect) = Effect::of(op) else {
            continue;
        };
        // An `info` write whose value nobody observes can be left out: had
        // it taken effect, no read or cas could follow it until the next
        // write, so leaving it out changes no answer. Kept, each such write
        // doubles the (set, state) pairs to explore.
        if op.status == Status::Info && op.kind != Kind::Get && !observed.contains(&op.value) {
            continue;
        }
        let entry = effects.len();
        effects.push(effect);
        let done = match (op.status, op.complete_us) {
            (Status::Ok, Some(c)) => Some(c.max(op.invoke_us)),
            _ => None,
        };
        required.push(done.is_some());
        events.push((op.invoke_us, false, entry));
        if let Some(c) = done {
            events.push((c, true, entry));
        }
    }
    events.sort_unstable();
    let mut remaining = required.iter().filter(|&&r| r).count();
    if remaining == 0 {
        return Outcome::Linearizable;
    }

    // The list: node 0 is the head; event e is node e + 1.
    let n = events.len() + 1;
    let mut next: Vec<usize> = (1..=n).map(|i| if i == n { NIL } else { i }).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut return_of = vec![NIL; effects.len()];
    let mut call_node = vec![NIL; effects.len()];
    for (e, &(_, is_return, entry)) in events.iter().enumerate() {
        if is_return {
            return_of[entry] = e + 1;
        } else {
            call_node[entry] = e + 1;
        }
    }
    let entry_of: Vec<usize> = std::iter::once(NIL)
        .chain(events.iter().map(|&(_, _, entry)| entry))
        .collect();
    let is_return: Vec<bool> = std::iter::once(false)
        .chain(events.iter().map(|&(_, r, _)| r))
        .collect();

    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = next[node];
        if next[node] != NIL {
            prev[next[node]] = prev[node];
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, node: usize| {
        next[prev[node]] = node;
        if next[node] != NIL {
            prev[next[node]] = node;
        }
    };

    let mut memo: FxHashSet<u128> = FxHashSet::default();
    let mut set_hash: u128 = 0;
    let mut state: Value = ABSENT;
    // (entry linearized, state before it)
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut node = next[0];
    loop {
        *steps += 1;
        if *steps > budget.max_steps {
            return Outcome::OverBudget(Limit::Steps);
        }
        if node == NIL || is_return[node] {
            // Nothing left to try before this point: undo the last choice.
            let Some((entry, before)) = stack.pop() else {
                return Outcome::NotLinearizable;
            };
            state = before;
            set_hash ^= zobrist(entry);
            if required[entry] {
                remaining += 1;
            }
            if return_of[entry] != NIL {
                relink(&mut next, &mut prev, return_of[entry]);
            }
            relink(&mut next, &mut prev, call_node[entry]);
            node = next[call_node[entry]];
            continue;
        }
        let entry = entry_of[node];
        if let Some(after) = effects[entry].step(state) {
            let key = set_hash ^ zobrist(entry) ^ state_word(after);
            if memo.insert(key) {
                if memo.len() > budget.max_states {
                    return Outcome::OverBudget(Limit::States);
                }
                stack.push((entry, state));
                state = after;
                set_hash ^= zobrist(entry);
                if required[entry] {
                    remaining -= 1;
                    if remaining == 0 {
                        return Outcome::Linearizable;
                    }
                }
                unlink(&mut next, &mut prev, node);
                if return_of[entry] != NIL {
                    unlink(&mut next, &mut prev, return_of[entry]);
                }
                node = next[0];
                continue;
            }
        }
        node = next[node];
    }
}
