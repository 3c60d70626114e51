//! A fault built against the first released contract, chaos:plugin@0.1.0
//! (its frozen WIT is `wit/deps/chaos-plugin@0.1.0`), for the test that plugins built
//! before 0.1.1 added `leader` still load and run: the host links
//! semver-compatible interface versions.

wit_bindgen::generate!({
    path: "../../../wit/deps/chaos-plugin@0.1.0",
    world: "fault-plugin",
});

use chaos::plugin::host;
use chaos::plugin::types::{Capability, CycleInfo, PluginInfo, PluginKind, Signal};

struct Legacy;

impl exports::chaos::plugin::fault::Guest for Legacy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy_kill".into(),
            version: "0.1.0".into(),
            author: "chaos-host tests".into(),
            description: "SIGKILL the primary at half the burst (built against 0.1.0)".into(),
            kind: PluginKind::Fault,
            capabilities: vec![Capability::Signal],
            params: vec![],
        }
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        host::wait_writes(cycle.writes / 2);
        host::send_signal(cycle.primary, Signal::Kill)
    }
}

export!(Legacy);
