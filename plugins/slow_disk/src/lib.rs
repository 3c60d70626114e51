//! `slow_disk`: every read, write and fsync of a node's data dir takes
//! `latency_ms` longer for `ms` mid-burst (a failing or saturated disk).
//! Acknowledged writes must survive; the write latencies show what it cost.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct SlowDisk;

impl Fault for SlowDisk {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("slow_disk", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("add `latency_ms` to every disk operation of a node (a random peer, the primary, or all) for `ms`")
            .needs(Capability::Disk)
            .param(
                "target",
                ParamType::Text,
                "peer",
                "\"peer\" (a seeded random non-primary node), \"primary\" or \"all\"",
            )
            .param("latency_ms", ParamType::Integer, "50", "added to each read, write and fsync")
            .param("ms", ParamType::Integer, "500", "how long the disk stays slow")
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the disk slows",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let ms = cycle.param_u64("ms", 500).min(u64::from(u32::MAX)) as u32;
        let latency = cycle.param_u64("latency_ms", 50).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        let targets = match cycle.param("target").unwrap_or("peer") {
            "peer" => match chaos_sdk::random_peer(&cycle) {
                Some(peer) => vec![peer],
                None => return Err("target \"peer\" needs a node besides the primary".into()),
            },
            "primary" => vec![cycle.primary],
            "all" => (0..cycle.nodes).collect(),
            other => {
                return Err(format!(
                    "param target: {other:?} is none of \"peer\", \"primary\", \"all\""
                ));
            }
        };
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "slowing node(s) {targets:?} by {latency} ms per operation for {ms} ms"
        ));
        for node in targets {
            host::slow_io(node, latency, ms)?;
        }
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(SlowDisk);
