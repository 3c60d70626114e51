//! Clients as components: the client contract carried by a WebAssembly
//! component (`[client] plugin`), sandboxed like a fault plugin, with TCP
//! to the cycle's nodes only. One instance per client process, opened at
//! its first operation; an operation that traps or passes its timeout
//! retires the instance (the next operation opens a fresh one), and a
//! connection the sandbox refused makes the cycle an error naming the
//! plugin and the address.

use super::NoReply;
use super::slots::{Problems, Slots};
use chaos_model::client::{Op, Reply, ReplyType};
use chaos_plugin::Loaded;
use chaos_plugin::client::{Answer, ClientProcess, Failed, Open, Outcome};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct Components {
    plugin: Arc<Loaded>,
    nodes: Vec<SocketAddr>,
    namespace: String,
    cycle: u32,
    seed: u64,
    timeout: Duration,
    procs: Slots<ClientProcess>,
    problems: Problems,
}

pub struct Spec<'a> {
    pub plugin: Arc<Loaded>,
    pub nodes: &'a [SocketAddr],
    pub namespace: &'a str,
    pub cycle: u32,
    pub seed: u64,
    pub timeout: Duration,
}

impl Components {
    pub fn new(s: Spec<'_>) -> Self {
        Self {
            plugin: s.plugin,
            nodes: s.nodes.to_vec(),
            namespace: s.namespace.to_string(),
            cycle: s.cycle,
            seed: s.seed,
            timeout: s.timeout,
            procs: Slots::default(),
            problems: Problems::default(),
        }
    }

    /// Ask `process`'s instance `op`, opening it first if it has none.
    pub async fn call(&self, process: u32, op: Op) -> Result<Reply, NoReply> {
        let mut slot = self.procs.lock(process).await;
        // Out of the slot while the call runs: a caller that gives up
        // mid-call drops the instance rather than re-entering it later.
        let mut taken = slot.take();
        if taken.is_none() {
            let opened = self
                .plugin
                .open_client(Open {
                    // Each process draws its own seeded randomness.
                    seed: self.seed ^ u64::from(process).rotate_left(32),
                    nodes: self.nodes.clone(),
                    namespace: self.namespace.clone(),
                    cycle: self.cycle,
                    process,
                    timeout: self.timeout,
                })
                .await;
            match opened {
                Ok(p) => taken = Some(p),
                Err(e) => {
                    let e = format!("client process {process}: {e}");
                    self.problem(e.clone());
                    return Err(NoReply::Start(e));
                }
            }
        }
        let proc = taken.as_mut().expect("opened above");
        let plugin_op = match &op {
            Op::Ready { node } => chaos_plugin::client::Op::Ready(*node),
            Op::Setup => chaos_plugin::client::Op::Setup,
            Op::Add { node, id } => chaos_plugin::client::Op::Add(*node, id),
            Op::Read { node } => chaos_plugin::client::Op::Read(*node),
            Op::Put { node, key, value } => chaos_plugin::client::Op::Put(*node, key, value),
            Op::Get { node, key } => chaos_plugin::client::Op::Get(*node, key),
            Op::Cas {
                node,
                key,
                expected,
                value,
            } => chaos_plugin::client::Op::Cas(*node, key, expected.as_deref(), value),
        };
        let answer = proc.call(plugin_op, self.timeout).await;
        for refused in proc.refused() {
            self.problem(refused);
        }
        let answer = match answer {
            Ok(a) => {
                *slot = taken;
                a
            }
            Err(failed) => {
                // Its state is unknown now: a fresh instance next time.
                return Err(match failed {
                    Failed::Timeout(e) => {
                        NoReply::Timeout(format!("client process {process}: {e}"))
                    }
                    Failed::Trap(e) => {
                        let e = format!("client process {process} ({}): {e}; retired", op.name());
                        self.problem(e.clone());
                        NoReply::Broken(e)
                    }
                });
            }
        };
        let reply = |kind, error, ids| Reply {
            seq: 0,
            kind,
            error,
            ids,
            value: None,
        };
        let of = |o: Outcome| match o {
            Outcome::Ok => (ReplyType::Ok, None),
            Outcome::Fail(e) => (ReplyType::Fail, Some(e)),
            Outcome::Info(e) => (ReplyType::Info, Some(e)),
        };
        Ok(match answer {
            Answer::Done(o) => {
                let (kind, error) = of(o);
                reply(kind, error, None)
            }
            Answer::Read(Ok(ids)) => reply(ReplyType::Ok, None, Some(ids)),
            Answer::Got(Ok(v)) => Reply {
                value: Some(v.map_or(serde_json::Value::Null, serde_json::Value::String)),
                ..reply(ReplyType::Ok, None, None)
            },
            Answer::Read(Err(o)) | Answer::Got(Err(o)) => {
                let (kind, error) = of(o);
                // An `ok` error outcome is no answer to a read.
                let kind = if kind == ReplyType::Ok {
                    ReplyType::Fail
                } else {
                    kind
                };
                reply(kind, error, None)
            }
        })
    }

    fn problem(&self, e: String) {
        self.problems.add(e);
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.list()
    }

    /// Drop every instance.
    pub async fn close(&self) {
        self.procs.drain().await;
    }
}
