//! Contract 0.3: `chaos:plugin@0.3.x`, bound from `wit/deps/chaos-plugin@0.3.0`:
//! 0.2.0's worlds unchanged, and the `client-plugin` world (clients as
//! components, [`ClientPre`]). The latest version: its conversions lose
//! nothing.

use chaos_model::contract::Version;

pub const MIN: Version = Version::from_static("0.3.0");
pub const MAX: Version = Version::from_static("0.3.0");

super::glue::bindings!(
    "../../wit/deps/chaos-plugin@0.3.0",
    with: { "chaos:plugin/history.ops": crate::history::OpsCursor },
);

super::glue::since_0_2!();

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
            params: info.params.into_iter().map(Into::into).collect(),
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

    pub async fn put(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        node: u32,
        key: &str,
        value: &str,
    ) -> wasmtime::Result<ClientOutcome> {
        Ok(self.calls().call_put(store, node, key, value).await?.into())
    }

    pub async fn get(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        node: u32,
        key: &str,
    ) -> wasmtime::Result<Result<Option<String>, ClientOutcome>> {
        Ok(self
            .calls()
            .call_get(store, node, key)
            .await?
            .map_err(Into::into))
    }

    pub async fn cas(
        &self,
        store: &mut wasmtime::Store<PluginState>,
        node: u32,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> wasmtime::Result<ClientOutcome> {
        Ok(self
            .calls()
            .call_cas(store, node, key, expected, value)
            .await?
            .into())
    }
}
