//! A fault plugin that misbehaves on purpose, for the sandbox and rollback
//! tests. `mode` picks the misbehaviour:
//! - `pause_then_trap`: pause node 1 for 10 s, then panic (a trap).
//! - `partition_then_trap`: isolate node 0 for 10 s, then panic.
//! - `pause_and_hang`: pause node 1 for 10 s, then sleep far past the
//!   plugin deadline.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, grudge, host};

struct Misbehave;

impl Fault for Misbehave {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("misbehave", env!("CARGO_PKG_VERSION"))
            .author("chaos-host tests")
            .describe("misbehaves on purpose (tests only)")
            .needs(Capability::Pause)
            .needs(Capability::Partition)
            .param(
                "mode",
                ParamType::Text,
                "pause_then_trap",
                "which misbehaviour",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let mode = cycle.param("mode").unwrap_or("pause_then_trap").to_string();
        host::wait_writes(cycle.writes / 4);
        match mode.as_str() {
            "pause_then_trap" => {
                host::pause(1, 10_000)?;
                panic!("misbehave: trapping with node 1 paused");
            }
            "partition_then_trap" => {
                host::partition(&grudge::isolate(0, cycle.nodes), 10_000)?;
                panic!("misbehave: trapping with node 0 cut off");
            }
            "pause_and_hang" => {
                host::pause(1, 10_000)?;
                host::sleep_ms(u32::MAX);
                Ok(())
            }
            other => Err(format!("unknown mode {other}")),
        }
    }
}

chaos_sdk::export_fault!(Misbehave);
