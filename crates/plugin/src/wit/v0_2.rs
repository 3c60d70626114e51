//! Contract 0.2: `chaos:plugin@0.2.x`, bound from `wit/deps/chaos-plugin@0.2.0`,
//! frozen: the crash, network and history work landed here. Its worlds are
//! 0.3.0's, so its conversions lose nothing.

use super::super::history::OpsCursor;
use super::super::observations::{NodeObservation, NodeState};
use super::super::state::PluginState;
use chaos_model::contract::{DiskFault, LinkFault, Version};
use wasmtime::component::{HasSelf, Linker};

pub const MIN: Version = Version::from_static("0.2.0");
pub const MAX: Version = Version::from_static("0.2.0");

super::glue::bindings!(
    "../../wit/deps/chaos-plugin@0.2.0",
    with: { "chaos:plugin/history.ops": crate::history::OpsCursor },
);

use assertion::chaos::plugin::history;
use fault::chaos::plugin::{host, types};

pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    history::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

super::glue::glue!(
    capabilities: [Signal, Pause, Partition, Clock, Restart, Disk, Link],
    added_observations: [unexpected],
);

impl host::Host for PluginState {
    super::glue::host_since_0_1!();

    async fn restart(&mut self, node: u32, down_ms: u32) -> Result<(), String> {
        self.host_restart(node, down_ms).await
    }
    async fn disk(&mut self, node: u32, fault: types::DiskFault, ms: u32) -> Result<(), String> {
        let fault = match fault {
            types::DiskFault::LoseUnsynced => DiskFault::LoseUnsynced,
            types::DiskFault::FsyncError => DiskFault::FsyncError,
            types::DiskFault::DiskFull => DiskFault::DiskFull,
            types::DiskFault::SlowIo(ms) => DiskFault::SlowIo(ms),
        };
        self.host_disk(node, fault, ms).await
    }
    async fn link(
        &mut self,
        grudge: Vec<Vec<u32>>,
        fault: types::LinkFault,
        ms: u32,
    ) -> Result<(), String> {
        let fault = LinkFault {
            latency_ms: fault.latency_ms,
            jitter_ms: fault.jitter_ms,
            loss: fault.loss,
            bandwidth: fault.bandwidth,
            reset: fault.reset,
        };
        self.host_link(grudge, fault, ms).await
    }

    async fn clock_drift(&mut self, node: u32, ppm: i32, ms: u32) -> Result<(), String> {
        self.host_clock_drift(node, ppm, ms).await
    }
}

impl From<&NodeObservation> for types::NodeObservation {
    fn from(n: &NodeObservation) -> Self {
        Self {
            node: n.node,
            state: match n.state {
                NodeState::Up => types::NodeState::Up,
                NodeState::Exited => types::NodeState::Exited,
                NodeState::Silent => types::NodeState::Silent,
            },
            ids: n.ids.clone(),
            converged_ms: n.converged_ms,
        }
    }
}

// The history interface (since 0.2.0): one table entry per `cycle-ops`
// call, pointing at the cycle's shared history.
impl history::Host for PluginState {
    async fn cycle_ops(&mut self) -> wasmtime::component::Resource<OpsCursor> {
        let cursor = OpsCursor {
            history: self.history.clone().unwrap_or_default(),
        };
        self.table()
            .push(cursor)
            .expect("a plugin's resource table holds far fewer than 2^32 handles")
    }
    async fn effect_windows(&mut self) -> Vec<history::EffectWindow> {
        let Some(h) = &self.history else {
            return vec![];
        };
        h.effects
            .iter()
            .map(|e| history::EffectWindow {
                kind: e.kind.clone(),
                node: e.node,
                start_us: e.start_us,
                end_us: e.end_us,
            })
            .collect()
    }
}

impl history::HostOps for PluginState {
    async fn len(&mut self, ops: wasmtime::component::Resource<OpsCursor>) -> u64 {
        self.table()
            .get(&ops)
            .map_or(0, |c| c.history.ops.len() as u64)
    }
    async fn chunk(
        &mut self,
        ops: wasmtime::component::Resource<OpsCursor>,
        start: u64,
        max: u32,
    ) -> Vec<history::Op> {
        let Ok(cursor) = self.table().get(&ops) else {
            return vec![];
        };
        cursor.chunk(start, max).iter().map(op).collect()
    }
    async fn drop(
        &mut self,
        ops: wasmtime::component::Resource<OpsCursor>,
    ) -> wasmtime::Result<()> {
        self.table().delete(ops)?;
        Ok(())
    }
}

fn op(o: &chaos_model::history::Op) -> history::Op {
    use chaos_model::history::{Kind, Status};
    history::Op {
        index: o.index,
        process: o.process,
        node: o.node,
        kind: match o.kind {
            Kind::Write => history::OpKind::Write,
            Kind::Read => history::OpKind::Read,
            Kind::Put => history::OpKind::Put,
            Kind::Get => history::OpKind::Get,
            Kind::Cas => history::OpKind::Cas,
        },
        key: o.key.clone(),
        value: o.value.clone(),
        expected: o.expected.clone(),
        read: o.read.clone(),
        seen: o.seen.clone(),
        status: match o.status {
            Status::Ok => history::OpResult::Ok,
            Status::Fail => history::OpResult::Fail,
            Status::Info => history::OpResult::Info,
        },
        invoke_us: o.invoke_us,
        complete_us: o.complete_us,
    }
}
