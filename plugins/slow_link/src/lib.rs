//! `slow_link`: delay what the primary sends to each peer by
//! `latency_ms` (+ up to `jitter_ms`) for `ms` once `at` of the burst is
//! issued. Replication slows down; quorum writes must still be either
//! acknowledged and kept, or refused, never lost.

use chaos_sdk::{
    Capability, CycleInfo, Fault, LinkFault, ParamType, Params, PluginInfo, grudge, host,
};

struct SlowLink;

impl Fault for SlowLink {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("slow_link", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("delay what the primary sends to each peer by latency_ms (+ jitter) for `ms` mid-burst")
            .needs(Capability::Link)
            .param("latency_ms", ParamType::Integer, "200", "delay added to each chunk, ms")
            .param("jitter_ms", ParamType::Integer, "20", "extra uniform delay, at most latency_ms")
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
            latency_ms: cycle.param_u64("latency_ms", 200).min(u64::from(u32::MAX)) as u32,
            jitter_ms: cycle.param_u64("jitter_ms", 20).min(u64::from(u32::MAX)) as u32,
            ..host::no_link_fault()
        };
        let ms = cycle.param_u64("ms", 1500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "slowing node {}'s links for {ms} ms",
            cycle.primary
        ));
        host::link(&grudge::outbound(cycle.primary, cycle.nodes), fault, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(SlowLink);
