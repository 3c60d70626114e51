//! `linearizable`: is the cycle's register history linearizable? A Wing &
//! Gong search with Lowe's memoisation against a register/CAS model (put,
//! get, cas; a key never written reads as absent), key by key, `info`
//! operations possibly effective at any time after their invocation.
//!
//! Pass when every key is linearizable; fail with a small counterexample
//! (its operations named `op <index>` in the reasons, which the report
//! highlights); unknown when the search budget (`max_steps`, `max_states`)
//! or the host's fuel runs out first.
//!
//! The checker core (`history`, `wgl`, `shrink`, `check`) is plain Rust,
//! tested natively (`cargo test -p linearizable`); `generate` makes
//! histories for those tests and for the bench
//! (`cargo run --release -p linearizable --example bench`).

pub mod check;
pub mod generate;
pub mod history;
pub mod shrink;
pub mod wgl;

#[cfg(test)]
mod brute;
#[cfg(test)]
mod tests;

use chaos_sdk::history::{OpKind, OpResult};
use chaos_sdk::{Assertion, Figure, Observations, Outcome, ParamType, Params, PluginInfo, Verdict};
use check::Verdict as Found;
use history::{History, Kind, OpText, Status};
use wgl::{Budget, Limit};

/// The default budget. `max_steps`: a 100,000-op history of 8 clients
/// needs about 120,000; this leaves room for more concurrency and stays
/// within seconds. `max_states`: 16 bytes each, an 8 MiB hash table (13 MiB
/// while it grows); measured with a 100,000-op history on one key, the
/// plugin's linear memory peaks near 45 MiB of its 64 MiB cap
/// (`chaos-host bench --checkers`), so raise it with care.
pub const DEFAULT_BUDGET: Budget = Budget {
    max_steps: 20_000_000,
    max_states: 250_000,
};

#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "exported only in the wasm build")
)]
struct Linearizable;

impl Assertion for Linearizable {
    fn describe() -> PluginInfo {
        chaos_sdk::assertion_info("linearizable", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("the register history (put/get/cas) is linearizable, key by key")
            .param(
                "max_steps",
                ParamType::Integer,
                &DEFAULT_BUDGET.max_steps.to_string(),
                "search steps over the whole history before answering unknown",
            )
            .param(
                "max_states",
                ParamType::Integer,
                &DEFAULT_BUDGET.max_states.to_string(),
                "memoised search states per key (16 bytes each) before answering unknown",
            )
            .build()
    }

    fn check(obs: Observations) -> Verdict {
        let budget = Budget {
            max_steps: obs.cycle.param_u64("max_steps", DEFAULT_BUDGET.max_steps),
            max_states: obs
                .cycle
                .param_u64("max_states", DEFAULT_BUDGET.max_states as u64)
                as usize,
        };
        let history = read_history();
        let verdict = judge(&history, &budget);
        // Linear memory never shrinks: its size now is the check's peak,
        // the figure the bench compares with the plugin's 64 MiB cap.
        #[cfg(target_arch = "wasm32")]
        let verdict = {
            let mut verdict = verdict;
            verdict.figures.push(figure(
                "wasm_memory_mib",
                core::arch::wasm32::memory_size(0) as f64 / 16.0,
            ));
            verdict
        };
        verdict
    }
}

/// The cycle's register operations; the set workload's are left out.
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "called only in the wasm build")
)]
fn read_history() -> History {
    let mut history = History::new();
    for op in chaos_sdk::history::ops() {
        let kind = match op.kind {
            OpKind::Put => Kind::Put,
            OpKind::Get => Kind::Get,
            OpKind::Cas => Kind::Cas,
            OpKind::Write | OpKind::Read => continue,
        };
        history.push(OpText {
            index: op.index,
            process: op.process,
            node: op.node,
            kind,
            key: &op.key,
            value: op.value.as_deref(),
            expected: op.expected.as_deref(),
            read: op.read.as_deref(),
            status: match op.status {
                OpResult::Ok => Status::Ok,
                OpResult::Fail => Status::Fail,
                OpResult::Info => Status::Info,
            },
            invoke_us: op.invoke_us,
            complete_us: op.complete_us,
        });
    }
    history
}

/// The verdict on `history`: the plugin's answer, kept apart from the host
/// calls so the tests judge it natively.
pub fn judge(history: &History, budget: &Budget) -> Verdict {
    let size = history.ops.len();
    if size == 0 {
        return Verdict {
            outcome: Outcome::Unknown,
            reasons: vec![
                "no register operation (put, get, cas) in the history: linearizable judges the register workload ([workload] kind = \"register\")".into(),
            ],
            figures: vec![],
        };
    }
    let report = check::check(history, budget);
    let mut figures = vec![
        figure("ops", size as f64),
        figure("keys", history.key_count() as f64),
        figure("keys_checked", report.keys_checked as f64),
        figure("search_steps", report.steps as f64),
    ];
    let (outcome, reasons) = match report.verdict {
        Found::Linearizable => (Outcome::Pass, vec![]),
        Found::NotLinearizable {
            key,
            counterexample,
        } => {
            figures.push(figure("counterexample_ops", counterexample.len() as f64));
            let mut reasons = vec![format!(
                "key {:?} is not linearizable: no order of these {} operations agrees with a register and with their real-time order",
                history.key_name(key),
                counterexample.len()
            )];
            reasons.extend(
                counterexample
                    .iter()
                    .map(|&p| history.describe(&history.ops[p])),
            );
            (Outcome::Fail, reasons)
        }
        Found::OverBudget { key, limit } => {
            let spent = match limit {
                Limit::Steps => format!("max_steps = {}", budget.max_steps),
                Limit::States => format!("max_states = {} on that key", budget.max_states),
            };
            (
                Outcome::Unknown,
                vec![format!(
                    "search budget exceeded on key {:?}: a history of {size} operations over {} key(s) needs more than {spent} ({} key(s) judged linearizable before); raise max_steps / max_states (each 100,000 states take about 3 MiB of the plugin's 64 MiB)",
                    history.key_name(key),
                    history.key_count(),
                    report.keys_checked,
                )],
            )
        }
    };
    Verdict {
        outcome,
        reasons,
        figures,
    }
}

fn figure(name: &str, value: f64) -> Figure {
    Figure {
        name: name.into(),
        value,
    }
}

// Only in the wasm build: native builds (tests, bench) link this crate as a
// shared library too, and a native linker refuses the component export names.
#[cfg(target_arch = "wasm32")]
chaos_sdk::export_assertion!(Linearizable);
