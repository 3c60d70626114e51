//! `kill_primary_mid_write`: SIGKILL the node writes go through (or, with
//! `target = "leader"`, the node leading at that moment), once a chosen
//! fraction of the burst has been issued (seed 000's first fault class). The
//! host reaps the node and verifies it died by SIGKILL.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct KillPrimary;

impl Fault for KillPrimary {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("kill_primary_mid_write", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("SIGKILL the primary (or the current leader) once `at` of the burst's writes are issued")
            .needs(Capability::Signal)
            .param(
                "at",
                ParamType::Float,
                "0.5",
                "fraction of the burst issued before the kill, in [0, 1]",
            )
            .param(
                "target",
                ParamType::Text,
                "primary",
                "\"primary\" (the node writes go through) or \"leader\" (the node leading when the kill fires, from the campaign's [leader] probe)",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let at = cycle.param_f64("at", 0.5).clamp(0.0, 1.0);
        let target = (f64::from(cycle.writes) * at).round() as u32;
        let issued = host::wait_writes(target);
        let node = match cycle.param("target").unwrap_or("primary") {
            "primary" => cycle.primary,
            "leader" => {
                host::leader()?.ok_or("no leader is elected right now, so there is none to kill")?
            }
            other => {
                return Err(format!(
                    "param target: {other:?} is neither \"primary\" nor \"leader\""
                ));
            }
        };
        host::info(&format!("killing node {node} after {issued} writes issued"));
        host::kill(node)
    }
}

chaos_sdk::export_fault!(KillPrimary);
