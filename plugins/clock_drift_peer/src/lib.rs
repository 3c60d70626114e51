//! `clock_drift_peer`: let a peer's wall clock (chosen with the host's
//! seeded randomness) run `ppm` millionths fast (slow when negative) for
//! `ms` mid-burst. The host redirects the node's vDSO clock and measures
//! the drift through the node's own clock probe at the lease end. Real
//! oscillators drift by tens of ppm; the default is large so that a drift
//! over a short lease shows beyond the probe's tolerance (~250 ms).

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct ClockDriftPeer;

impl Fault for ClockDriftPeer {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("clock_drift_peer", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("let a random peer's wall clock drift by `ppm` for `ms` mid-burst")
            .needs(Capability::Clock)
            .param(
                "ppm",
                ParamType::Integer,
                "500000",
                "drift rate in millionths (may be negative)",
            )
            .param("ms", ParamType::Integer, "2000", "how long the drift lasts")
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the drift",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let ppm = match cycle.param("ppm") {
            None => 500_000,
            Some(v) => v.parse::<i32>().map_err(|e| {
                format!(
                    "clock_drift_peer: ppm {v:?}: {e} (a whole number of millionths, e.g. 500000)"
                )
            })?,
        };
        let ms = cycle.param_u64("ms", 2000).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        let Some(peer) = chaos_sdk::random_peer(&cycle) else {
            return Err("clock_drift_peer needs at least one peer besides the primary".into());
        };
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "letting node {peer}'s clock drift by {ppm:+} ppm for {ms} ms"
        ));
        host::clock_drift(peer, ppm, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(ClockDriftPeer);
