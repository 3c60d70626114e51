//! `set_full`: Jepsen's set-full checker for the set workload's history
//! (writes of unique ids, reads of every id a node holds, during the cycle
//! and after it). For every id: when reads first and last returned it; fail
//! on ids lost (acknowledged or seen, then missing from every later read)
//! and on stale reads (a read that began after a write was acknowledged and
//! missed it, on a node that promises read-your-writes: parameters
//! `stale_nodes` and `stale_grace_ms`); figures for never-read ids and the latency to
//! visibility. Unknown when the history holds no read to judge by.
//!
//! The analysis (`analysis`) is plain Rust, tested natively
//! (`cargo test -p set_full`).

pub mod analysis;
mod verdict;

#[cfg(test)]
mod tests;

pub use verdict::judge;

use analysis::{At, SetFull, StaleNodes, Status};
use chaos_sdk::history::{OpKind, OpResult};
use chaos_sdk::{Assertion, Observations, ParamType, Params, PluginInfo, Verdict};

#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "exported only in the wasm build")
)]
struct Checker;

impl Assertion for Checker {
    fn describe() -> PluginInfo {
        chaos_sdk::assertion_info("set_full", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("no acknowledged id lost, no stale read, latency to visibility (set workload history)")
            .param(
                "stale_nodes",
                ParamType::Text,
                "all",
                "nodes whose reads must return every write acknowledged before they began: \"all\" or \"primary\"",
            )
            .param(
                "stale_grace_ms",
                ParamType::Integer,
                "0",
                "replication lag allowed: a read is stale only when it began more than this after the write's acknowledgement",
            )
            .build()
    }

    fn check(obs: Observations) -> Verdict {
        let value = obs.cycle.param("stale_nodes").unwrap_or("all");
        let stale_nodes = match parse_stale_nodes(value, obs.cycle.primary) {
            Ok(nodes) => nodes,
            Err(verdict) => return verdict,
        };
        let grace_us = obs
            .cycle
            .param_u64("stale_grace_ms", 0)
            .saturating_mul(1000);
        let mut set = SetFull::new(stale_nodes, grace_us);
        for op in chaos_sdk::history::ops() {
            let status = match op.status {
                OpResult::Ok => Status::Ok,
                OpResult::Fail => Status::Fail,
                OpResult::Info => Status::Info,
            };
            match op.kind {
                OpKind::Write => {
                    if let Some(id) = &op.value {
                        set.write(op.index, id, status, op.complete_us);
                    }
                }
                OpKind::Read => {
                    if let (Status::Ok, Some(complete_us)) = (status, op.complete_us) {
                        let at = At {
                            index: op.index,
                            node: op.node,
                            invoke_us: op.invoke_us,
                            complete_us,
                        };
                        set.read(at, &op.seen);
                    }
                }
                OpKind::Put | OpKind::Get | OpKind::Cas => {}
            }
        }
        judge(set.finish())
    }
}

/// The `stale_nodes` parameter; an unknown value is an `unknown` verdict
/// naming the fix (the host checks the parameter's type, not its values).
pub fn parse_stale_nodes(value: &str, primary: u32) -> Result<StaleNodes, Verdict> {
    match value {
        "all" => Ok(StaleNodes::All),
        "primary" => Ok(StaleNodes::Only(primary)),
        other => Err(verdict::bad_param(other)),
    }
}

// Only in the wasm build: native builds (tests) link this crate as a shared
// library too, and a native linker refuses the component export names.
#[cfg(target_arch = "wasm32")]
chaos_sdk::export_assertion!(Checker);
