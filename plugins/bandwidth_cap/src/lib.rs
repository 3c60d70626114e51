//! `bandwidth_cap`: cap what the primary sends to each peer at
//! `bytes_per_s` for `ms` once `at` of the burst is issued.

use chaos_sdk::{
    Capability, CycleInfo, Fault, LinkFault, ParamType, Params, PluginInfo, grudge, host,
};

struct BandwidthCap;

impl Fault for BandwidthCap {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("bandwidth_cap", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("cap what the primary sends to each peer at bytes_per_s for `ms` mid-burst")
            .needs(Capability::Link)
            .param(
                "bytes_per_s",
                ParamType::Integer,
                "20000",
                "bytes per second each link carries",
            )
            .param("ms", ParamType::Integer, "1500", "how long the fault lasts")
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the fault",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let fault = LinkFault {
            bandwidth: Some(cycle.param_u64("bytes_per_s", 20_000)),
            ..host::no_link_fault()
        };
        let ms = cycle.param_u64("ms", 1500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "capping node {}'s links for {ms} ms",
            cycle.primary
        ));
        host::link(&grudge::outbound(cycle.primary, cycle.nodes), fault, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(BandwidthCap);
