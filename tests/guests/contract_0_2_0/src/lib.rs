//! A fault built against contract chaos:plugin@0.2.0 (the frozen WIT in
//! `wit/deps/chaos-plugin@0.2.0`), without chaos-sdk and so without the
//! version section: 0.2.0 plugins keep running now that the SDK builds
//! 0.3.0. It pauses node 1 for 400 ms once half the burst is issued.

wit_bindgen::generate!({
    path: "../../../wit/deps/chaos-plugin@0.2.0",
    world: "fault-plugin",
});

use chaos::plugin::host;
use chaos::plugin::types::{Capability, CycleInfo, PluginInfo, PluginKind};

struct LegacyPause;

impl exports::chaos::plugin::fault::Guest for LegacyPause {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy_pause".into(),
            version: "0.2.0".into(),
            author: "chaos-host tests".into(),
            description: "pauses node 1 as contract 0.2.0 asks".into(),
            kind: PluginKind::Fault,
            capabilities: vec![Capability::Pause],
            params: vec![],
        }
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        host::wait_writes(cycle.writes / 2);
        host::pause(1, 400)
    }
}

export!(LegacyPause);
