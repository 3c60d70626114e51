//! Clients as components (contract 0.3.0's `client-plugin` world): one
//! instance per client process, kept for that process's operations, each
//! operation under the plugin's fuel, memory and wall-clock caps. TCP
//! reaches the cycle's nodes and nothing else (`wasi::client_context`);
//! what the sandbox refused is kept for the cycle to name.
//!
//! An operation that traps, runs out of fuel or passes its deadline
//! leaves the instance in no known state: the caller drops it (a retired
//! process) and opens a fresh one for the next operation.

use crate::runtime::{BACKSTOP_GRACE, FUEL_YIELD, Loaded, Pre, WallClockDeadline, trap};
use crate::state::{PluginState, clip};
use crate::wit::v0_3::{ClientConfig, ClientInstance};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};

pub use crate::wit::v0_3::ClientOutcome as Outcome;

/// Resources (sockets, streams, pollables) one client instance may hold.
const MAX_RESOURCES: usize = 1024;

/// What a client instance is opened with.
pub struct Open {
    pub seed: u64,
    /// The cycle's nodes' client addresses, by index: all it may reach.
    pub nodes: Vec<SocketAddr>,
    pub namespace: String,
    pub cycle: u32,
    pub process: u32,
    pub timeout: Duration,
}

/// One live client instance (a client process).
pub struct ClientProcess {
    store: Store<PluginState>,
    instance: ClientInstance,
    fuel: u64,
    label: String,
    refused: Arc<Mutex<Vec<String>>>,
}

/// An operation of a client instance.
pub enum Op<'a> {
    Ready(u32),
    Setup,
    Add(u32, &'a str),
    Read(u32),
    Put(u32, &'a str, &'a str),
    Get(u32, &'a str),
    Cas(u32, &'a str, Option<&'a str>, &'a str),
}

/// What an operation came to.
pub enum Answer {
    Done(Outcome),
    Read(Result<Vec<String>, Outcome>),
    Got(Result<Option<String>, Outcome>),
}

impl Loaded {
    pub fn is_client(&self) -> bool {
        matches!(&self.pre, Pre::Wasm(p) if p.client().is_some())
    }

    /// Open a client instance: instantiate it and call its `open`.
    pub async fn open_client(&self, o: Open) -> Result<ClientProcess, String> {
        let Pre::Wasm(pre) = &self.pre else {
            return Err(format!("{} is not a client component", self.meta.label()));
        };
        let Some(pre) = pre.client() else {
            return Err(format!(
                "{} is a {} plugin, not a client",
                self.meta.label(),
                self.meta.kind
            ));
        };
        let label = self.meta.label();
        let refused = Arc::new(Mutex::new(Vec::new()));
        // Every socket is an OS descriptor before any address check: a
        // client that creates them in a loop stops here, not at the host's
        // descriptor limit.
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = PluginState {
            wasi: crate::wasi::client_context(
                o.seed,
                o.nodes.clone(),
                refused.clone(),
                label.clone(),
            ),
            table,
            limits: crate::limits::InstanceLimits::default(),
            label: label.clone(),
            grants: Default::default(),
            declared: vec![],
            effects: None,
            set_up: None,
            rng: ChaCha8Rng::seed_from_u64(o.seed),
            log_lines: 0,
            denials: vec![],
            history: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD))
            .map_err(|e| e.to_string())?;
        arm(&mut store, self.fuel, o.timeout).map_err(|e| e.to_string())?;
        let config = ClientConfig {
            nodes: o.nodes.iter().map(ToString::to_string).collect(),
            namespace: o.namespace,
            cycle: o.cycle,
            process: o.process,
            timeout_ms: o.timeout.as_millis().min(u128::from(u32::MAX)) as u32,
            params: self.params.clone(),
        };
        let opened = async {
            let instance = pre.instantiate(&mut store).await?;
            let r = instance.open(&mut store, config).await?;
            wasmtime::Result::<_>::Ok((instance, r))
        };
        match tokio::time::timeout(o.timeout + BACKSTOP_GRACE, opened).await {
            Ok(Ok((instance, Ok(())))) => Ok(ClientProcess {
                store,
                instance,
                fuel: self.fuel,
                label,
                refused,
            }),
            Ok(Ok((_, Err(e)))) => Err(format!(
                "client {label}: open returned an error: {}",
                clip(e)
            )),
            Ok(Err(e)) => Err(trap(label, "open", e).to_string()),
            Err(_) => Err(format!(
                "client {label}: open did not return within {} ms",
                o.timeout.as_millis()
            )),
        }
    }
}

fn tidy(o: Outcome) -> Outcome {
    match o {
        Outcome::Ok => Outcome::Ok,
        Outcome::Fail(e) => Outcome::Fail(clip(e)),
        Outcome::Info(e) => Outcome::Info(clip(e)),
    }
}

/// Give the store a fresh fuel budget and a deadline `timeout` from now,
/// before each call.
fn arm(store: &mut Store<PluginState>, fuel: u64, timeout: Duration) -> wasmtime::Result<()> {
    store.set_fuel(fuel)?;
    let due = Instant::now() + timeout;
    let ms = timeout.as_millis();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= due {
            return Err(WallClockDeadline { ms }.into());
        }
        Ok(UpdateDeadline::Continue(1))
    });
    Ok(())
}

/// Why an operation of an instance has no answer; either way the
/// instance must be dropped.
pub enum Failed {
    /// Past its deadline (the wall clock, or the backstop).
    Timeout(String),
    /// It trapped: out of fuel, over its memory, a panic.
    Trap(String),
}

impl ClientProcess {
    /// Run `op`.
    pub async fn call(&mut self, op: Op<'_>, timeout: Duration) -> Result<Answer, Failed> {
        arm(&mut self.store, self.fuel, timeout).map_err(|e| Failed::Trap(e.to_string()))?;
        let (store, i) = (&mut self.store, &self.instance);
        let call = async {
            wasmtime::Result::<Answer>::Ok(match op {
                Op::Ready(n) => Answer::Done(i.ready(store, n).await?),
                Op::Setup => Answer::Done(i.setup(store).await?),
                Op::Add(n, id) => Answer::Done(i.add(store, n, id).await?),
                Op::Read(n) => Answer::Read(i.read(store, n).await?),
                Op::Put(n, k, v) => Answer::Done(i.put(store, n, k, v).await?),
                Op::Get(n, k) => Answer::Got(i.get(store, n, k).await?),
                Op::Cas(n, k, e, v) => Answer::Done(i.cas(store, n, k, e, v).await?),
            })
        };
        let no_answer = || {
            format!(
                "client {}: no answer within client.timeout_ms = {}",
                self.label,
                timeout.as_millis()
            )
        };
        match tokio::time::timeout(timeout + BACKSTOP_GRACE, call).await {
            // A client's text is shown, never interpreted (see `clip`).
            Ok(Ok(a)) => Ok(match a {
                Answer::Done(o) => Answer::Done(tidy(o)),
                Answer::Read(r) => Answer::Read(r.map_err(tidy)),
                Answer::Got(r) => Answer::Got(r.map_err(tidy)),
            }),
            Ok(Err(e)) if e.downcast_ref::<WallClockDeadline>().is_some() => {
                Err(Failed::Timeout(no_answer()))
            }
            Ok(Err(e)) => Err(Failed::Trap(
                trap(self.label.clone(), "client operation", e).to_string(),
            )),
            Err(_) => Err(Failed::Timeout(no_answer())),
        }
    }

    /// Connections the sandbox refused so far (and forgets them).
    pub fn refused(&self) -> Vec<String> {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
