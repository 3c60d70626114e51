//! Contract 0.1: `chaos:plugin@0.1.0` and `@0.1.1`, bound from the frozen
//! `wit/deps/chaos-plugin@0.1.1`. 0.1.1 only added `host.leader`, so a 0.1.0
//! component imports a subset of it and wasmtime links the semver-compatible
//! interfaces: one module serves both.
//!
//! The adapter: 0.1 plugins see a node as `alive: bool` (true only for a
//! node that answered) and no `unexpected` list (those writes are in
//! `failed`, as they always were).

use super::super::observations::{NodeObservation, NodeState};
use super::super::state::PluginState;
use chaos_model::contract::Version;
use wasmtime::component::{HasSelf, Linker};

pub const MIN: Version = Version::from_static("0.1.0");
pub const MAX: Version = Version::from_static("0.1.1");

super::glue::bindings!("../../wit/deps/chaos-plugin@0.1.1");

use fault::chaos::plugin::{host, types};

pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

super::glue::glue!(
    capabilities: [Signal, Pause, Partition, Clock],
    added_observations: [],
);

impl host::Host for PluginState {
    super::glue::host_since_0_1!();
}

impl From<&NodeObservation> for types::NodeObservation {
    fn from(n: &NodeObservation) -> Self {
        Self {
            node: n.node,
            alive: n.state == NodeState::Up,
            ids: n.ids.clone(),
        }
    }
}
