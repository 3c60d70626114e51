//! `clock_skew_peer`: shift a peer's wall clock (chosen with the host's
//! seeded randomness) by `offset_ms` for `ms` mid-burst. The host applies it
//! by redirecting the node's vDSO clock (libfaketime where ptrace is
//! refused, recorded simulated) and checks the node's own clock; where the
//! target cannot be skewed the cycle is reported simulated, never passed.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct ClockSkewPeer;

impl Fault for ClockSkewPeer {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("clock_skew_peer", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("shift a random peer's wall clock by `offset_ms` for `ms` mid-burst")
            .needs(Capability::Clock)
            .param(
                "offset_ms",
                ParamType::Integer,
                "30000",
                "clock shift in ms (may be negative)",
            )
            .param("ms", ParamType::Integer, "500", "how long the skew lasts")
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the skew",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let offset = cycle
            .param("offset_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(30_000);
        let ms = cycle.param_u64("ms", 500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        let Some(peer) = chaos_sdk::random_peer(&cycle) else {
            return Err("clock_skew_peer needs at least one peer besides the primary".into());
        };
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "shifting node {peer}'s clock by {offset:+} ms for {ms} ms"
        ));
        host::clock_offset(peer, offset, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(ClockSkewPeer);
