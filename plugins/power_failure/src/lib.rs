//! `power_failure`: every node loses power at once. From the start of the
//! burst the host's disk layer holds each node's written-but-not-fsynced
//! data; once `at` of the burst is issued every node is killed (that data
//! is dropped, as a power cut drops the page cache) and, `down_ms` later,
//! started again on what reached the disk. A system that acknowledges a
//! write before it is durable on a quorum loses it here.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

/// The unsynced-data leases outlast the cut; the heal ends them.
const HOLD_MS: u32 = 120_000;

struct PowerFailure;

impl Fault for PowerFailure {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("power_failure", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("kill every node at once mid-burst with its unsynced writes lost, then restart them all")
            .needs(Capability::Disk)
            .needs(Capability::Restart)
            .param(
                "at",
                ParamType::Float,
                "0.5",
                "fraction of the burst issued before the power cut, in [0, 1]",
            )
            .param(
                "down_ms",
                ParamType::Integer,
                "200",
                "how long the nodes stay down before the host starts them again",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let at = cycle.param_f64("at", 0.5).clamp(0.0, 1.0);
        let down = cycle.param_u64("down_ms", 200).min(u64::from(u32::MAX)) as u32;
        for node in 0..cycle.nodes {
            host::lose_unsynced(node, HOLD_MS)?;
        }
        let issued = host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "power cut after {issued} writes issued, down {down} ms"
        ));
        // The primary last: once it is down the burst ends at once.
        for node in (0..cycle.nodes)
            .filter(|&n| n != cycle.primary)
            .chain([cycle.primary])
        {
            host::restart(node, down)?;
        }
        host::sleep_ms(down);
        Ok(())
    }
}

chaos_sdk::export_fault!(PowerFailure);
