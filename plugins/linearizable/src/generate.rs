//! Register histories for the bench and the tests: valid ones recorded from
//! a simulated linearizable register (clients with one operation in flight
//! each, overlapping in time, some timing out as `info`), and invalid ones
//! made from them by mutation.

use crate::history::{History, Kind, OpText, Status};

/// The shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub ops: usize,
    pub clients: u32,
    pub keys: u32,
    /// Fraction of operations that time out (`info`); half of those take
    /// effect.
    pub info_ratio: f64,
    pub seed: u64,
}

/// What an operation did: (value, expected, read, status).
type Result = (Option<String>, Option<String>, Option<String>, Status);

struct Planned {
    process: u32,
    kind: Kind,
    key: u32,
    invoke: u64,
    linearize: u64,
    complete: u64,
    info: bool,
}

/// A linearizable history: each operation takes effect at a random instant
/// between its invocation and completion, in that order, on a real register.
pub fn valid(spec: &Spec) -> History {
    let mut rng = fastrand::Rng::with_seed(spec.seed);
    let clients = spec.clients.max(1);
    // Each client's next invocation time and current process id (a client
    // whose operation timed out continues as a new process, as in Jepsen).
    let mut next_at: Vec<u64> = (0..clients).map(|_| rng.u64(0..100)).collect();
    let mut process: Vec<u32> = (0..clients).collect();
    let mut planned = Vec::with_capacity(spec.ops);
    for _ in 0..spec.ops {
        let c = (0..clients as usize)
            .min_by_key(|&c| next_at[c])
            .unwrap_or(0);
        let invoke = next_at[c];
        let linearize = invoke + rng.u64(1..300);
        let complete = linearize + rng.u64(1..300);
        let kind = match rng.u32(0..10) {
            0..4 => Kind::Get,
            4..7 => Kind::Put,
            _ => Kind::Cas,
        };
        let info = rng.f64() < spec.info_ratio;
        planned.push(Planned {
            process: process[c],
            kind,
            key: rng.u32(0..spec.keys.max(1)),
            invoke,
            linearize,
            complete,
            info,
        });
        next_at[c] = complete + rng.u64(0..50);
        if info {
            process[c] += clients;
        }
    }
    // Apply in linearization order to learn each result.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| planned[i].linearize);
    let mut registers: Vec<Option<String>> = vec![None; spec.keys.max(1) as usize];
    let mut written: Vec<Vec<String>> = vec![Vec::new(); spec.keys.max(1) as usize];
    let mut results: Vec<Result> = vec![(None, None, None, Status::Ok); planned.len()];
    for i in order {
        let p = &planned[i];
        let key = p.key as usize;
        let takes_effect = !p.info || rng.bool();
        let status = if p.info { Status::Info } else { Status::Ok };
        results[i] = match p.kind {
            Kind::Put => {
                let v = format!("v{i}");
                if takes_effect {
                    registers[key] = Some(v.clone());
                }
                written[key].push(v.clone());
                (Some(v), None, None, status)
            }
            Kind::Get => {
                let read = if p.info { None } else { registers[key].clone() };
                (None, None, read, status)
            }
            Kind::Cas => {
                let v = format!("v{i}");
                // Mostly the current value, so most cas succeed.
                let expected = if rng.u32(0..10) < 7 || written[key].is_empty() {
                    registers[key].clone()
                } else {
                    Some(written[key][rng.usize(0..written[key].len())].clone())
                };
                let matches = expected == registers[key];
                if matches && takes_effect {
                    registers[key] = Some(v.clone());
                }
                written[key].push(v.clone());
                let status = match (p.info, matches) {
                    (true, _) => Status::Info,
                    (false, true) => Status::Ok,
                    (false, false) => Status::Fail,
                };
                (Some(v), expected, None, status)
            }
        };
    }
    let mut history = History::new();
    let mut by_invoke: Vec<usize> = (0..planned.len()).collect();
    by_invoke.sort_by_key(|&i| planned[i].invoke);
    for (index, &i) in by_invoke.iter().enumerate() {
        let p = &planned[i];
        let (value, expected, read, status) = &results[i];
        let key = format!("k{}", p.key);
        history.push(OpText {
            index: index as u64,
            process: p.process,
            node: p.process % 3,
            kind: p.kind,
            key: &key,
            value: value.as_deref(),
            expected: expected.as_deref(),
            read: read.as_deref(),
            status: *status,
            invoke_us: p.invoke,
            complete_us: (!p.info).then_some(p.complete),
        });
    }
    history
}

/// A copy of `history` made invalid: one `ok` get, chosen with `seed` among
/// the last tenth (so the search has most of the history behind it), reads
/// a value nobody wrote. None when the history has no `ok` get.
pub fn with_phantom_read(history: &History, seed: u64) -> Option<History> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let gets: Vec<usize> = (0..history.ops.len())
        .filter(|&i| history.ops[i].kind == Kind::Get && history.ops[i].status == Status::Ok)
        .collect();
    let late = &gets[gets.len() - gets.len().div_ceil(10).min(gets.len())..];
    let &pick = late.get(rng.usize(0..late.len().max(1)))?;
    let mut mutated = history.clone();
    mutated.ops[pick].read = mutated.intern(Some("never-written"));
    Some(mutated)
}

/// A copy of `history` made invalid by a stale read: one `ok` get near the
/// end, which read the value of a write `w` acknowledged before it began,
/// reads instead the value of an older write acknowledged before `w` began.
/// None when the history has no such get.
pub fn with_stale_read(history: &History, seed: u64) -> Option<History> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ops = &history.ops;
    // Acknowledged writes by value.
    let mut writer = std::collections::HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.kind != Kind::Get && op.status == Status::Ok {
            writer.insert(op.value, i);
        }
    }
    let done = |i: usize| ops[i].complete_us.unwrap_or(u64::MAX);
    let candidates: Vec<(usize, usize)> = (ops.len() - ops.len().div_ceil(10).min(ops.len())
        ..ops.len())
        .filter(|&g| ops[g].kind == Kind::Get && ops[g].status == Status::Ok)
        .filter_map(|g| {
            let &w = writer.get(&ops[g].read)?;
            if done(w) >= ops[g].invoke_us {
                return None;
            }
            // The latest acknowledged write of the key done before w began.
            let older = (0..w).rev().find(|&u| {
                ops[u].key == ops[g].key
                    && ops[u].kind != Kind::Get
                    && ops[u].status == Status::Ok
                    && done(u) < ops[w].invoke_us
            })?;
            Some((g, older))
        })
        .collect();
    let &(g, older) = candidates.get(rng.usize(0..candidates.len().max(1)))?;
    let mut mutated = history.clone();
    mutated.ops[g].read = history.ops[older].value;
    Some(mutated)
}
