//! `crash_restart`: SIGKILL a node (or every node) once a fraction of the
//! burst is issued, keep it down for `down_ms`, then have the host start it
//! again on the same data dir and ports. Acknowledged writes must survive:
//! the host reads every node back after it is ready again.

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct CrashRestart;

impl Fault for CrashRestart {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("crash_restart", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe("SIGKILL a node (primary, a random peer, the leader, or all) mid-burst and restart it on the same data dir")
            .needs(Capability::Restart)
            .param(
                "target",
                ParamType::Text,
                "primary",
                "\"primary\", \"peer\" (a seeded random non-primary node), \"leader\" (from the campaign's [leader] probe) or \"all\"",
            )
            .param(
                "at",
                ParamType::Float,
                "0.5",
                "fraction of the burst issued before the kill, in [0, 1]",
            )
            .param(
                "down_ms",
                ParamType::Integer,
                "200",
                "how long the node stays down before the host starts it again",
            )
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let at = cycle.param_f64("at", 0.5).clamp(0.0, 1.0);
        let down = cycle.param_u64("down_ms", 200).min(u64::from(u32::MAX)) as u32;
        let targets = targets(&cycle)?;
        let issued = host::wait_writes((f64::from(cycle.writes) * at).round() as u32);
        let targets = match targets {
            Some(t) => t,
            // The leader is asked when the kill fires, not before.
            None => vec![
                host::leader()?
                    .ok_or("no leader is elected right now, so there is none to kill")?,
            ],
        };
        host::info(&format!(
            "restarting node(s) {targets:?} after {issued} writes issued, down {down} ms"
        ));
        for node in targets {
            host::restart(node, down)?;
        }
        // Returning ends the fault, and the heal would start the nodes at
        // once: hold the lease its length.
        host::sleep_ms(down);
        Ok(())
    }
}

/// The nodes to restart, or `None` for "the leader when it fires".
fn targets(cycle: &CycleInfo) -> Result<Option<Vec<u32>>, String> {
    Ok(Some(match cycle.param("target").unwrap_or("primary") {
        "primary" => vec![cycle.primary],
        "peer" => match chaos_sdk::random_peer(cycle) {
            Some(peer) => vec![peer],
            None => return Err("target \"peer\" needs a node besides the primary".into()),
        },
        // The primary last: once it is down every write fails at once and
        // the burst ends, so the kills after it would come too late.
        "all" => (0..cycle.nodes)
            .filter(|&n| n != cycle.primary)
            .chain([cycle.primary])
            .collect(),
        "leader" => return Ok(None),
        other => {
            return Err(format!(
                "param target: {other:?} is none of \"primary\", \"peer\", \"leader\", \"all\""
            ));
        }
    }))
}

chaos_sdk::export_fault!(CrashRestart);
