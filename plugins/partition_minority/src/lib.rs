//! `partition_minority`: cut node 0 (the primary) off from every peer for
//! `ms` once `at` of the burst is issued; the host heals it after. Node 0
//! keeps taking client writes it can no longer replicate: quorum writes must
//! be refused, never acknowledged and lost.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, grudge, host};

struct PartitionMinority;

impl Fault for PartitionMinority {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("partition_minority", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("cut the primary from all its peers for `ms` mid-burst (both directions)")
            .needs(Capability::Partition)
            .param(
                "ms",
                ParamType::Integer,
                "500",
                "how long the partition lasts",
            )
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the cut",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let ms = cycle.param_u64("ms", 500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!("isolating node {} for {ms} ms", cycle.primary));
        host::partition(&grudge::isolate(cycle.primary, cycle.nodes), ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(PartitionMinority);
