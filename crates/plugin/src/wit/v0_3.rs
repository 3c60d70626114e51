//! Contract 0.3: `chaos:plugin@0.3.x`, bound from `wit/deps/chaos-plugin@0.3.0`:
//! 0.2.0's worlds unchanged, and the `client-plugin` world (clients as
//! components, [`ClientPre`]). The latest version: its conversions lose
//! nothing.

use super::super::history::OpsCursor;
use super::super::observations::{NodeObservation, NodeState};
use super::super::state::PluginState;
use chaos_model::contract::{DiskFault, LinkFault, Version};
use wasmtime::component::{HasSelf, Linker};

pub const MIN: Version = Version::from_static("0.3.0");
pub const MAX: Version = Version::from_static("0.3.0");

super::glue::bindings!(
    "../../wit/deps/chaos-plugin@0.3.0",
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

mod client_world {
    ::wasmtime::component::bindgen!({
        world: "client-plugin",
        path: "../../wit/deps/chaos-plugin@0.3.0",
        imports: { default: async },
        exports: { default: async },
        with: { "chaos:plugin/types": super::fault::chaos::plugin::types },
    });
}

use client_world::exports::chaos::plugin::client as wit_client;

/// A pre-instantiated client component (the `client-plugin` world).
pub struct ClientPre(client_world::ClientPluginPre<PluginState>);

/// A live client instance: one per client process.
pub struct ClientInstance(client_world::ClientPlugin);

impl ClientPre {
    pub fn new(pre: wasmtime::component::InstancePre<PluginState>) -> wasmtime::Result<Self> {
        Ok(Self(client_world::ClientPluginPre::new(pre)?))
    }

    pub async fn instantiate(
        &self,
        store: &mut wasmtime::Store<PluginState>,
    ) -> wasmtime::Result<ClientInstance> {
        Ok(ClientInstance(self.0.instantiate_async(store).await?))
    }

    pub async fn describe(
        &self,
        store: &mut wasmtime::Store<PluginState>,
    ) -> wasmtime::Result<chaos_model::contract::Info> {
        let i = self.instantiate(&mut *store).await?;
        let info = i.0.chaos_plugin_client().call_describe(&mut *store).await?;
        Ok(chaos_model::contract::Info {
            name: info.name,
            version: info.version,
            author: info.author,
            description: info.description,
            kind: "client",
            capabilities: vec![],
            params: info
                .params
                .into_iter()
                .map(|p| chaos_model::contract::ParamSpec {
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
        })
    }
}

/// What a client operation came to, in host terms.
pub enum ClientOutcome {
    Ok,
    Fail(String),
    Info(String),
}

impl From<wit_client::Outcome> for ClientOutcome {
    fn from(o: wit_client::Outcome) -> Self {
        match o {
            wit_client::Outcome::Ok => Self::Ok,
            wit_client::Outcome::Fail(e) => Self::Fail(e),
            wit_client::Outcome::Info(e) => Self::Info(e),
        }
    }
}

/// The instance's `open` arguments.
pub struct ClientConfig {
    pub nodes: Vec<String>,
    pub namespace: String,
    pub cycle: u32,
    pub process: u32,
    pub timeout_ms: u32,
    pub params: Vec<(String, String)>,
}

impl ClientInstance {
    fn calls(&self) -> &wit_client::Guest {
        self.0.chaos_plugin_client()
    }

    pub async fn open(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        c: ClientConfig,
    ) -> wasmtime::Result<Result<(), String>> {
        let config = wit_client::ClientConfig {
            nodes: c.nodes,
            namespace: c.namespace,
            cycle: c.cycle,
            process: c.process,
            timeout_ms: c.timeout_ms,
            params: c.params,
        };
        self.calls().call_open(store, &config).await
    }

    pub async fn ready(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        node: u32,
    ) -> wasmtime::Result<ClientOutcome> {
        Ok(self.calls().call_ready(store, node).await?.into())
    }

    pub async fn setup(
        &self,
        store: &mut wasmtime::Store<PluginState>,
    ) -> wasmtime::Result<ClientOutcome> {
        Ok(self.calls().call_setup(store).await?.into())
    }

    pub async fn add(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        node: u32,
        id: &str,
    ) -> wasmtime::Result<ClientOutcome> {
        Ok(self.calls().call_add(store, node, id).await?.into())
    }

    pub async fn read(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        node: u32,
    ) -> wasmtime::Result<Result<Vec<String>, ClientOutcome>> {
        Ok(self
            .calls()
            .call_read(store, node)
            .await?
            .map_err(Into::into))
    }
}
