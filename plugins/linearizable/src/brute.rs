//! Brute force for small histories: try every order of the operations (and
//! every choice of which `info` operations took effect) against the
//! real-time order and the register, without memo or pruning beyond that.
//! The reference the WGL search is checked against.

use crate::history::{ABSENT, Kind, Op, Status, Value};

/// Is `ops` (every key together) linearizable?
pub fn linearizable(ops: &[&Op]) -> bool {
    let ops: Vec<&Op> = ops
        .iter()
        .copied()
        .filter(|op| {
            !(op.status == Status::Fail || (op.kind == Kind::Get && op.status == Status::Info))
        })
        .collect();
    let keys = ops.iter().map(|op| op.key as usize + 1).max().unwrap_or(0);
    let mut used = vec![false; ops.len()];
    let mut state = vec![ABSENT; keys];
    search(&ops, &mut used, &mut state)
}

fn done(op: &Op) -> Option<u64> {
    match op.status {
        Status::Ok => op.complete_us,
        _ => None,
    }
}

fn search(ops: &[&Op], used: &mut [bool], state: &mut [Value]) -> bool {
    if (0..ops.len()).all(|i| used[i] || done(ops[i]).is_none()) {
        return true;
    }
    for i in 0..ops.len() {
        if used[i] {
            continue;
        }
        // Every operation that completed before this one was invoked comes
        // first.
        let blocked = (0..ops.len())
            .any(|j| j != i && !used[j] && done(ops[j]).is_some_and(|c| c < ops[i].invoke_us));
        if blocked {
            continue;
        }
        let op = ops[i];
        let key = op.key as usize;
        let before = state[key];
        let after = match op.kind {
            Kind::Put => Some(op.value),
            Kind::Get => (op.read == before).then_some(before),
            Kind::Cas => (op.expected == before).then_some(op.value),
        };
        let Some(after) = after else { continue };
        used[i] = true;
        state[key] = after;
        let found = search(ops, used, state);
        used[i] = false;
        state[key] = before;
        if found {
            return true;
        }
    }
    false
}
