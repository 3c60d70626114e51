//! Test guest: any link fault, on the primary's outbound links or on the
//! links between two followers (which the reference system never uses).

use chaos_sdk::{
    Capability, CycleInfo, Fault, LinkFault, ParamType, Params, PluginInfo, grudge, host,
};

struct LinkFaultGuest;

impl Fault for LinkFaultGuest {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("link_fault", env!("CARGO_PKG_VERSION"))
            .describe("test guest: a link fault from its parameters")
            .needs(Capability::Link)
            .param("latency_ms", ParamType::Integer, "0", "")
            .param("jitter_ms", ParamType::Integer, "0", "")
            .param("loss", ParamType::Float, "0", "")
            .param("bandwidth", ParamType::Integer, "0", "0: unlimited")
            .param("reset", ParamType::Boolean, "false", "")
            .param("ms", ParamType::Integer, "1000", "")
            .param("at", ParamType::Float, "0.2", "")
            .param("links", ParamType::Text, "outbound", "outbound | followers")
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let bandwidth = cycle.param_u64("bandwidth", 0);
        let fault = LinkFault {
            latency_ms: cycle.param_u64("latency_ms", 0) as u32,
            jitter_ms: cycle.param_u64("jitter_ms", 0) as u32,
            loss: cycle.param_f64("loss", 0.0),
            bandwidth: (bandwidth > 0).then_some(bandwidth),
            reset: cycle.param("reset") == Some("true"),
        };
        let ms = cycle.param_u64("ms", 1000) as u32;
        let at = cycle.param_f64("at", 0.2);
        let g = match cycle.param("links").unwrap_or("outbound") {
            "followers" => {
                let f: Vec<u32> = (0..cycle.nodes).filter(|&n| n != cycle.primary).collect();
                grudge::one_way(f[0], f[1], cycle.nodes)
            }
            _ => grudge::outbound(cycle.primary, cycle.nodes),
        };
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::link(&g, fault, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(LinkFaultGuest);
