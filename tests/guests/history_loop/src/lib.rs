//! An assertion that reads the cycle's history through the `history`
//! interface and walks it `ROUNDS` times (a checker whose cost grows with
//! the history), for the tests that a plugin sees the history the host
//! recorded, and that one over its fuel budget is `unknown`, not a crash.

use chaos_sdk::history::{self, OpKind, OpResult};
use chaos_sdk::{Assertion, Figure, Observations, Outcome, PluginInfo, Verdict};

struct HistoryLoop;

/// Walks over the history: enough to run out of a small budget, well
/// within the default one for a test-sized cycle.
const ROUNDS: u32 = 200;

impl Assertion for HistoryLoop {
    fn describe() -> PluginInfo {
        chaos_sdk::assertion_info("history_loop", env!("CARGO_PKG_VERSION"))
            .author("chaos-host tests")
            .describe("counts the history's operations, walking it 200 times (tests only)")
            .build()
    }

    fn check(_obs: Observations) -> Verdict {
        let mut ops = 0u64;
        let mut ok_writes = 0u64;
        let mut reads = 0u64;
        let mut ordered = true;
        for _ in 0..ROUNDS {
            ops = 0;
            ok_writes = 0;
            reads = 0;
            let mut last = 0u64;
            for op in history::ops() {
                ops += 1;
                ordered &= op.invoke_us >= last && op.index == ops - 1;
                last = op.invoke_us;
                if op.kind == OpKind::Write && op.status == OpResult::Ok {
                    ok_writes += 1;
                }
                if op.kind == OpKind::Read {
                    reads += 1;
                }
            }
        }
        let figure = |name: &str, value: u64| Figure {
            name: name.into(),
            value: value as f64,
        };
        Verdict {
            outcome: if ordered { Outcome::Pass } else { Outcome::Fail },
            reasons: if ordered {
                vec![]
            } else {
                vec!["history not in index/invoke order".into()]
            },
            figures: vec![
                figure("ops", ops),
                figure("len", history::len()),
                figure("ok_writes", ok_writes),
                figure("reads", reads),
                figure("effect_windows", history::effect_windows().len() as u64),
            ],
        }
    }
}

chaos_sdk::export_assertion!(HistoryLoop);
