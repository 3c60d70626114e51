//! `lossy_link`: lose each chunk the primary sends to a peer with
//! probability `loss` for `ms` once `at` of the burst is issued (over TCP a
//! lost chunk stalls its connection for a retransmit timeout).

use chaos_sdk::{
    Capability, CycleInfo, Fault, LinkFault, ParamType, Params, PluginInfo, grudge, host,
};

struct LossyLink;

impl Fault for LossyLink {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("lossy_link", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("lose chunks the primary sends to each peer with probability `loss` for `ms` mid-burst")
            .needs(Capability::Link)
            .param("loss", ParamType::Float, "0.3", "probability a chunk is lost, in [0, 1]")
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
            loss: cycle.param_f64("loss", 0.3),
            ..host::no_link_fault()
        };
        let ms = cycle.param_u64("ms", 1500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "making lossy node {}'s links for {ms} ms",
            cycle.primary
        ));
        host::link(&grudge::outbound(cycle.primary, cycle.nodes), fault, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(LossyLink);
