//! `drop_random_acks`: a pause, not a packet drop. SIGSTOP a peer chosen
//! with the host's seeded randomness once `at` of the burst is issued, for
//! `ms`, then SIGCONT. While stopped the peer acknowledges nothing, which is
//! how seed 000 emulated dropped acks. The host verifies the stopped state.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct DropRandomAcks;

impl Fault for DropRandomAcks {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("drop_random_acks", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe(
                "pause (SIGSTOP) a random peer for `ms` mid-burst, so its acks stop; SIGCONT after",
            )
            .needs(Capability::Pause)
            .param(
                "ms",
                ParamType::Integer,
                "500",
                "how long the peer stays stopped",
            )
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the pause",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let ms = cycle.param_u64("ms", 500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        let Some(peer) = chaos_sdk::random_peer(&cycle) else {
            return Err("drop_random_acks needs at least one peer besides the primary".into());
        };
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!("pausing node {peer} for {ms} ms"));
        host::pause(peer, ms)?;
        // Stay for the lease so the host ends it on time, not at cycle end.
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(DropRandomAcks);
