//! `kill_primary_mid_write`: SIGKILL the node writes go through, once a
//! chosen fraction of the burst has been issued (seed 000's first fault
//! class). The host reaps the node and verifies it died by SIGKILL.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct KillPrimary;

impl Fault for KillPrimary {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("kill_primary_mid_write", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("SIGKILL the primary once `at` of the burst's writes are issued")
            .needs(Capability::Signal)
            .param(
                "at",
                ParamType::Float,
                "0.5",
                "fraction of the burst issued before the kill, in [0, 1]",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let at = cycle.param_f64("at", 0.5).clamp(0.0, 1.0);
        let target = (f64::from(cycle.writes) * at).round() as u32;
        let issued = host::wait_writes(target);
        host::info(&format!(
            "killing node {} after {issued} writes issued",
            cycle.primary
        ));
        host::kill(cycle.primary)
    }
}

chaos_sdk::export_fault!(KillPrimary);
