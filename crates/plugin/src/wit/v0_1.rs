//! Contract 0.1: `chaos:plugin@0.1.0` and `@0.1.1`, bound from the frozen
//! `wit/deps/chaos-plugin@0.1.1`. 0.1.1 only added `host.leader`, so a 0.1.0
//! component imports a subset of it and wasmtime links the semver-compatible
//! interfaces: one module serves both.
//!
//! The adapter: 0.1 plugins see a node as `alive: bool` (true only for a
//! node that answered) and no `unexpected` list (those writes are in
//! `failed`, as they always were).

use super::super::observations::{CycleInfo, NodeState, Observations};
use super::super::state::PluginState;
use chaos_model::contract::Version;
use chaos_model::contract::{Capability, Info, LogLevel, ParamSpec, Signal, Verdict};
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

pub const MIN: Version = Version::from_static("0.1.0");
pub const MAX: Version = Version::from_static("0.1.1");
/// The WIT these bindings come from (checked against MIN/MAX in a test).
#[cfg(test)]
pub const WIT: &str = include_str!("../../../../wit/deps/chaos-plugin@0.1.1/types.wit");

mod fault {
    wasmtime::component::bindgen!({
        world: "fault-plugin",
        path: "../../wit/deps/chaos-plugin@0.1.1",
        imports: { default: async },
        exports: { default: async },
    });
}

mod assertion {
    wasmtime::component::bindgen!({
        world: "assertion-plugin",
        path: "../../wit/deps/chaos-plugin@0.1.1",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chaos:plugin/types": super::fault::chaos::plugin::types,
            "chaos:plugin/host": super::fault::chaos::plugin::host,
        },
    });
}

use fault::chaos::plugin::{host, types};

pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
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
            indeterminate: o.indeterminate.clone(),
            nodes: o
                .nodes
                .iter()
                .map(|n| types::NodeObservation {
                    node: n.node,
                    alive: n.state == NodeState::Up,
                    ids: n.ids.clone(),
                })
                .collect(),
            threshold: o.threshold,
        }
    }
}
