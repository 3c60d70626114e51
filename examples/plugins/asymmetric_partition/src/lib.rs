//! `asymmetric_partition`: node `deaf` stops hearing its peers while they
//! still hear it, for `ms`. Replies to its fan-out never arrive, so it cannot
//! count acks; requests it sends still land. A one-way cut is where quorum
//! code that assumes symmetric links tends to acknowledge too much or too
//! little.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct AsymmetricPartition;

impl Fault for AsymmetricPartition {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("asymmetric_partition", env!("CARGO_PKG_VERSION"))
            .author("example third party")
            .describe("node `deaf` drops all traffic from its peers (one way) for `ms` mid-burst")
            .needs(Capability::Partition)
            .param(
                "deaf",
                ParamType::Integer,
                "0",
                "the node that stops hearing its peers",
            )
            .param(
                "ms",
                ParamType::Integer,
                "800",
                "how long the one-way cut lasts",
            )
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued first",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let deaf = cycle.param_u64("deaf", 0) as u32;
        if deaf >= cycle.nodes {
            return Err(format!(
                "deaf = {deaf}, but nodes are 0..{}",
                cycle.nodes - 1
            ));
        }
        let ms = cycle.param_u64("ms", 800).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        // Only row `deaf` is non-empty: everyone else still hears it.
        let grudge: Vec<Vec<u32>> = (0..cycle.nodes)
            .map(|i| {
                if i == deaf {
                    (0..cycle.nodes).filter(|&j| j != deaf).collect()
                } else {
                    vec![]
                }
            })
            .collect();
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!("node {deaf} stops hearing its peers for {ms} ms"));
        host::partition(&grudge, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(AsymmetricPartition);
