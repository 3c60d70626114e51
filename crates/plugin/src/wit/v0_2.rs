//! Contract 0.2: `chaos:plugin@0.2.x`, bound from `wit/deps/chaos-plugin@0.2.0`,
//! the version under development: the crash, network and history work add
//! their functions here until it is frozen. The latest version: its
//! conversions lose nothing.

use super::super::history::OpsCursor;
use super::super::observations::{CycleInfo, NodeState, Observations};
use super::super::state::PluginState;
use chaos_model::contract::Version;
use chaos_model::contract::{
    Capability, DiskFault, Info, LinkFault, LogLevel, ParamSpec, Signal, Verdict,
};
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

pub const MIN: Version = Version::from_static("0.2.0");
pub const MAX: Version = Version::from_static("0.2.0");
/// The WIT these bindings come from (checked against MIN/MAX in a test).
#[cfg(test)]
pub const WIT: &str = include_str!("../../../../wit/deps/chaos-plugin@0.2.0/types.wit");

mod fault {
    wasmtime::component::bindgen!({
        world: "fault-plugin",
        path: "../../wit/deps/chaos-plugin@0.2.0",
        imports: { default: async },
        exports: { default: async },
    });
}

mod assertion {
    wasmtime::component::bindgen!({
        world: "assertion-plugin",
        path: "../../wit/deps/chaos-plugin@0.2.0",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chaos:plugin/types": super::fault::chaos::plugin::types,
            "chaos:plugin/host": super::fault::chaos::plugin::host,
            "chaos:plugin/history.ops": super::super::super::history::OpsCursor,
        },
    });
}

use assertion::chaos::plugin::history;
use fault::chaos::plugin::{host, types};

pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    history::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

pub enum Pre {
    Fault(fault::FaultPluginPre<PluginState>),
    Assertion(assertion::AssertionPluginPre<PluginState>),
}

impl Pre {
    pub fn new(kind: &str, pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            "fault" => Self::Fault(fault::FaultPluginPre::new(pre)?),
            _ => Self::Assertion(assertion::AssertionPluginPre::new(pre)?),
        })
    }

    pub async fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Info> {
        let info = match self {
            Self::Fault(pre) => {
                let b = pre.instantiate_async(&mut *store).await?;
                b.chaos_plugin_fault().call_describe(&mut *store).await?
            }
            Self::Assertion(pre) => {
                let b = pre.instantiate_async(&mut *store).await?;
                b.chaos_plugin_assertion()
                    .call_describe(&mut *store)
                    .await?
            }
        };
        Ok(info.into())
    }

    pub async fn inject(
        &self,
        store: &mut Store<PluginState>,
        cycle: &CycleInfo,
    ) -> wasmtime::Result<Result<(), String>> {
        let Self::Fault(pre) = self else {
            return Ok(Err("not a fault plugin".into()));
        };
        let b = pre.instantiate_async(&mut *store).await?;
        b.chaos_plugin_fault()
            .call_inject(&mut *store, &cycle.clone().into())
            .await
    }

    pub async fn check(
        &self,
        store: &mut Store<PluginState>,
        observations: &Observations,
    ) -> wasmtime::Result<Result<Verdict, String>> {
        let Self::Assertion(pre) = self else {
            return Ok(Err("not an assertion plugin".into()));
        };
        let b = pre.instantiate_async(&mut *store).await?;
        let v = b
            .chaos_plugin_assertion()
            .call_check(&mut *store, &observations.into())
            .await?;
        Ok(Ok(v.into()))
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    async fn log(&mut self, level: types::LogLevel, message: String) {
        let level = match level {
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        };
        self.host_log(level, message)
    }
    async fn random(&mut self) -> u64 {
        self.host_random()
    }
    async fn now_ms(&mut self) -> u64 {
        self.host_now_ms()
    }
    async fn sleep_ms(&mut self, ms: u32) {
        self.host_sleep_ms(ms).await
    }
    async fn wait_writes(&mut self, count: u32) -> u32 {
        self.host_wait_writes(count).await
    }
    async fn leader(&mut self) -> Result<Option<u32>, String> {
        self.host_leader().await
    }
    async fn send_signal(&mut self, node: u32, sig: types::Signal) -> Result<(), String> {
        let sig = match sig {
            types::Signal::Kill => Signal::Kill,
            types::Signal::Term => Signal::Term,
        };
        self.host_send_signal(node, sig).await
    }
    async fn pause(&mut self, node: u32, ms: u32) -> Result<(), String> {
        self.host_pause(node, ms).await
    }
    async fn partition(&mut self, grudge: Vec<Vec<u32>>, ms: u32) -> Result<(), String> {
        self.host_partition(grudge, ms).await
    }
    async fn clock_offset(&mut self, node: u32, offset_ms: i64, ms: u32) -> Result<(), String> {
        self.host_clock_offset(node, offset_ms, ms).await
    }
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

impl From<types::PluginInfo> for Info {
    fn from(i: types::PluginInfo) -> Self {
        Info {
            name: i.name,
            version: i.version,
            author: i.author,
            description: i.description,
            kind: match i.kind {
                types::PluginKind::Fault => "fault",
                types::PluginKind::Assertion => "assertion",
            },
            capabilities: i
                .capabilities
                .into_iter()
                .map(|c| match c {
                    types::Capability::Signal => Capability::Signal,
                    types::Capability::Pause => Capability::Pause,
                    types::Capability::Partition => Capability::Partition,
                    types::Capability::Clock => Capability::Clock,
                    types::Capability::Restart => Capability::Restart,
                    types::Capability::Disk => Capability::Disk,
                    types::Capability::Link => Capability::Link,
                })
                .collect(),
            params: i
                .params
                .into_iter()
                .map(|p| ParamSpec {
                    name: p.name,
                    kind: match p.kind {
                        types::ParamType::Integer => "integer",
                        types::ParamType::Float => "float",
                        types::ParamType::Boolean => "boolean",
                        types::ParamType::Text => "text",
                    },
                    default: p.default_value,
                    doc: p.doc,
                })
                .collect(),
        }
    }
}

impl From<types::Verdict> for Verdict {
    fn from(v: types::Verdict) -> Self {
        Verdict {
            outcome: match v.outcome {
                types::Outcome::Pass => "pass",
                types::Outcome::Fail => "fail",
                types::Outcome::Unknown => "unknown",
            },
            reasons: v.reasons,
            figures: v.figures.into_iter().map(|f| (f.name, f.value)).collect(),
        }
    }
}

impl From<CycleInfo> for types::CycleInfo {
    fn from(c: CycleInfo) -> Self {
        types::CycleInfo {
            cycle: c.cycle,
            seed: c.seed,
            nodes: c.nodes,
            primary: c.primary,
            writes: c.writes,
            params: c.params,
        }
    }
}

impl From<&Observations> for types::Observations {
    fn from(o: &Observations) -> Self {
        types::Observations {
            cycle: o.cycle.clone().into(),
            acked: o.acked.clone(),
            quorum_not_met: o.quorum_not_met.clone(),
            failed: o.failed.clone(),
            unexpected: o.unexpected.clone(),
            indeterminate: o.indeterminate.clone(),
            nodes: o
                .nodes
                .iter()
                .map(|n| types::NodeObservation {
                    node: n.node,
                    state: match n.state {
                        NodeState::Up => types::NodeState::Up,
                        NodeState::Exited => types::NodeState::Exited,
                        NodeState::Silent => types::NodeState::Silent,
                    },
                    ids: n.ids.clone(),
                    converged_ms: n.converged_ms,
                })
                .collect(),
            threshold: o.threshold,
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
