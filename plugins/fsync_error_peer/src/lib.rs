//! `fsync_error_peer`: a random peer's fsyncs fail with EIO for `ms` mid-
//! burst. Acknowledged writes must survive: the quorum is met without that
//! peer, and it catches up once its disk is healthy again. Where the peer
//! does no IO during the lease, the host reports the fault ineffective.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct FsyncErrorPeer;

impl Fault for FsyncErrorPeer {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("fsync_error_peer", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("a random peer's fsync and fdatasync fail with EIO for `ms` mid-burst")
            .needs(Capability::Disk)
            .param("ms", ParamType::Integer, "500", "how long the fault lasts")
            .param(
                "at",
                ParamType::Float,
                "0.3",
                "fraction of the burst issued before the fault",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let ms = cycle.param_u64("ms", 500).min(u64::from(u32::MAX)) as u32;
        let at = cycle.param_f64("at", 0.3).clamp(0.0, 1.0);
        let Some(peer) = chaos_sdk::random_peer(&cycle) else {
            return Err("fsync_error_peer needs a node besides the primary".into());
        };
        host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        host::info(&format!(
            "fsync failing with EIO on node {peer} for {ms} ms"
        ));
        host::fsync_error(peer, ms)?;
        host::sleep_ms(ms);
        Ok(())
    }
}

chaos_sdk::export_fault!(FsyncErrorPeer);
