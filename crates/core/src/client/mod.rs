//! The client: how a cycle's operations reach the system.
//!
//! One contract (`chaos_model::client`): `ready`, `setup`, `add`, `read`,
//! each answered ok / fail / info, with the node it went to. Three clients
//! carry it: the built-in one renders the campaign's HTTP templates
//! ([`http`]); `[client] command` hands each operation to a driver
//! process ([`driver`]), and `[client] plugin` to a sandboxed component
//! ([`component`]), one per client process.

mod component;
mod driver;
mod http;
mod slots;

pub use http::{IdSpec, Writer, extract_ids};

use chaos_model::campaign::{Campaign, ClientSpec};
use chaos_model::client::{Op, ReplyType};
use chaos_model::history::Outcome;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// What one write came to.
pub struct Answer {
    pub outcome: Outcome,
    pub status: Option<u16>,
    /// The body excerpt of an [`Outcome::Unexpected`] answer.
    pub body: Option<String>,
}

/// Why a read-back gave no ids.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The node did not answer in time, refused the connection or answered
    /// a non-2xx status: a finding about the node (liveness), not about the
    /// harness.
    #[error("{0}")]
    Unanswered(String),
    /// The node answered, but not in the shape the campaign describes: the
    /// campaign (or the system) is wrong, and no figure can be trusted.
    #[error("{0}")]
    Garbage(String),
}

/// Why an operation got no reply.
#[derive(Debug)]
pub enum NoReply {
    /// The driver could not be started at all: the operation never left.
    Start(String),
    /// No answer within `client.timeout_ms` (the system may be slow or
    /// stopped); the process was retired.
    Timeout(String),
    /// The driver exited or answered garbage; it was retired.
    Broken(String),
}

impl std::fmt::Display for NoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoReply::Start(e) | NoReply::Timeout(e) | NoReply::Broken(e) => f.write_str(e),
        }
    }
}

/// What a register operation came to through a process client.
pub struct RegisterAnswer {
    pub status: chaos_model::history::Status,
    /// A get's value (`None`: never written).
    pub read: Option<String>,
    pub error: Option<String>,
}

/// The client of one cycle; cheap to clone (its workers share it).
#[derive(Clone)]
pub struct Client(Arc<Kind>);

enum Kind {
    Http {
        writer: Box<Writer>,
        reader: Box<http::Reader>,
        http: reqwest::Client,
    },
    Process(Arc<ReadyVia>),
}

/// A client with processes of its own: driver processes or component
/// instances, each answering the contract's operations.
enum Backend {
    Driver(driver::Drivers),
    Component(component::Components),
}

impl Backend {
    async fn call(&self, process: u32, op: Op) -> Result<chaos_model::client::Reply, NoReply> {
        match self {
            Backend::Driver(d) => d.call(process, op).await,
            Backend::Component(c) => c.call(process, op).await,
        }
    }

    fn problems(&self) -> Vec<String> {
        match self {
            Backend::Driver(d) => d.problems(),
            Backend::Component(c) => c.problems(),
        }
    }

    async fn close(&self) {
        match self {
            Backend::Driver(d) => d.close().await,
            Backend::Component(c) => c.close().await,
        }
    }
}

/// The backend, and which process asks each node whether it is ready.
struct ReadyVia {
    drivers: Backend,
    processes: chaos_model::history::Processes,
}

impl chaos_lifecycle::ClientReady for ReadyVia {
    fn ready(&self, node: u32) -> futures::future::BoxFuture<'_, Result<(), (String, bool)>> {
        Box::pin(async move {
            let process = self.processes.read_back(node);
            match self.drivers.call(process, Op::Ready { node }).await {
                Ok(r) if r.kind == ReplyType::Ok => Ok(()),
                Ok(r) => Err((
                    format!(
                        "the client answered {}: {}",
                        kind_name(r.kind),
                        r.error.unwrap_or_default()
                    ),
                    false,
                )),
                Err(NoReply::Timeout(e)) => Err((e, false)),
                Err(e) => Err((e.to_string(), true)),
            }
        })
    }
}

fn kind_name(k: ReplyType) -> &'static str {
    match k {
        ReplyType::Ok => "ok",
        ReplyType::Fail => "fail",
        ReplyType::Info => "info",
    }
}

/// What a cycle's client is made of.
pub struct Made<'a> {
    pub campaign: &'a Campaign,
    pub http: &'a reqwest::Client,
    pub namespace: &'a str,
    pub cycle: u32,
    /// Each node's client address, by index.
    pub nodes: Vec<SocketAddr>,
    /// The cycle's directory (driver stderr logs).
    pub dir: &'a Path,
    pub journal: Arc<chaos_journal::journal::Journal>,
    /// Readiness asks through each node's read-back process.
    pub processes: chaos_model::history::Processes,
    /// The campaign's client component (`[client] plugin`), loaded.
    pub plugin: Option<Arc<chaos_plugin::Loaded>>,
    /// The cycle's seed (a component's randomness).
    pub seed: u64,
}

impl Client {
    pub fn new(m: Made<'_>) -> Self {
        let c = m.campaign;
        let kind = match (&c.client, &c.file.write, &c.file.client) {
            (ClientSpec::Driver { program, args, dir }, _, Some(section)) => {
                Kind::Process(Arc::new(ReadyVia {
                    drivers: Backend::Driver(driver::Drivers::new(driver::Spec {
                        program,
                        args,
                        cwd: dir,
                        section,
                        namespace: m.namespace,
                        cycle: m.cycle,
                        nodes: &m.nodes,
                        dir: m.dir,
                        journal: m.journal,
                    })),
                    processes: m.processes,
                }))
            }
            (ClientSpec::Component { .. }, _, Some(section)) => {
                let plugin = m
                    .plugin
                    .expect("the host loads the campaign's client plugin for every cycle");
                Kind::Process(Arc::new(ReadyVia {
                    drivers: Backend::Component(component::Components::new(component::Spec {
                        plugin,
                        nodes: &m.nodes,
                        namespace: m.namespace,
                        cycle: m.cycle,
                        seed: m.seed,
                        timeout: std::time::Duration::from_millis(section.timeout_ms),
                    })),
                    processes: m.processes,
                }))
            }
            _ => {
                return Self::http(c, m.http, m.namespace, m.cycle)
                    // Validation gives every campaign one client or the other.
                    .expect("a campaign without [client] has [write]");
            }
        };
        Self(Arc::new(kind))
    }

    /// The built-in HTTP client alone, for a campaign with `[write]`.
    pub fn http(
        campaign: &Campaign,
        http: &reqwest::Client,
        namespace: &str,
        cycle: u32,
    ) -> Option<Self> {
        let w = campaign.file.write.as_ref()?;
        Some(Self(Arc::new(Kind::Http {
            writer: Box::new(Writer::new(w, &campaign.method, namespace, cycle)),
            reader: Box::new(http::Reader::new(campaign, namespace, cycle)),
            http: http.clone(),
        })))
    }

    /// Readiness through this client, for the nodes' lifecycle; `None`
    /// for the HTTP client, whose `[ready] url` the lifecycle asks itself.
    pub fn readiness(&self) -> Option<Arc<dyn chaos_lifecycle::ClientReady>> {
        match &*self.0 {
            Kind::Process(d) => Some(d.clone()),
            Kind::Http { .. } => None,
        }
    }

    /// Once per cycle, before the first write: the driver's `setup`.
    pub async fn setup(&self, process: u32) -> Result<(), String> {
        let Kind::Process(d) = &*self.0 else {
            return Ok(());
        };
        match d.drivers.call(process, Op::Setup).await {
            Ok(r) if r.kind == ReplyType::Ok => Ok(()),
            Ok(r) => Err(format!(
                "client setup: the client answered {}: {}",
                kind_name(r.kind),
                r.error.unwrap_or_default()
            )),
            Err(e) => Err(format!("client setup: {e}")),
        }
    }

    /// Write `id` through node `index` at `at`, as client `process`.
    pub async fn add(&self, process: u32, index: u32, at: SocketAddr, id: &str) -> Answer {
        match &*self.0 {
            Kind::Http { writer, http, .. } => writer.write(http, index, at, id).await,
            Kind::Process(d) => {
                let op = Op::Add {
                    node: index,
                    id: id.to_string(),
                };
                match d.drivers.call(process, op).await {
                    Ok(r) => Answer {
                        outcome: match r.kind {
                            ReplyType::Ok => Outcome::Ok,
                            ReplyType::Fail => Outcome::Fail,
                            ReplyType::Info => Outcome::Indeterminate,
                        },
                        status: None,
                        body: None,
                    },
                    // Never started: the write never left. Retired
                    // mid-operation: it may have been sent.
                    Err(NoReply::Start(_)) => Answer {
                        outcome: Outcome::Fail,
                        status: None,
                        body: None,
                    },
                    Err(NoReply::Timeout(_) | NoReply::Broken(_)) => Answer {
                        outcome: Outcome::Indeterminate,
                        status: None,
                        body: None,
                    },
                }
            }
        }
    }

    /// The ids node `index` at `at` holds, read as client `process`.
    pub async fn read(
        &self,
        process: u32,
        index: u32,
        at: SocketAddr,
    ) -> Result<Vec<String>, ReadError> {
        match &*self.0 {
            Kind::Http { reader, http, .. } => reader.read(http, index, at).await,
            Kind::Process(d) => match d.drivers.call(process, Op::Read { node: index }).await {
                Ok(r) if r.kind == ReplyType::Ok => Ok(r.ids.unwrap_or_default()),
                Ok(r) => Err(ReadError::Unanswered(format!(
                    "read-back from node {index}: the client answered {}: {}",
                    kind_name(r.kind),
                    r.error.unwrap_or_default()
                ))),
                Err(NoReply::Timeout(e)) => Err(ReadError::Unanswered(e)),
                Err(e) => Err(ReadError::Garbage(e.to_string())),
            },
        }
    }

    /// A register operation (`put`, `get`, `cas`) through a driver or a
    /// component: its status in the history's terms, a get's value, and
    /// why when it did not happen. `None` for the HTTP client, whose
    /// register operations are the `[workload]` templates.
    pub async fn register(&self, process: u32, op: Op) -> Option<RegisterAnswer> {
        use chaos_model::history::Status;
        let Kind::Process(d) = &*self.0 else {
            return None;
        };
        let is_get = matches!(op, Op::Get { .. });
        Some(match d.drivers.call(process, op).await {
            Ok(r) => match r.kind {
                ReplyType::Ok => RegisterAnswer {
                    status: Status::Ok,
                    read: r.value.and_then(|v| v.as_str().map(String::from)),
                    error: None,
                },
                ReplyType::Fail => RegisterAnswer {
                    status: Status::Fail,
                    read: None,
                    error: r.error,
                },
                // A get changes nothing: unanswered, it simply failed.
                ReplyType::Info => RegisterAnswer {
                    status: if is_get { Status::Fail } else { Status::Info },
                    read: None,
                    error: r.error,
                },
            },
            Err(NoReply::Start(e)) => RegisterAnswer {
                status: Status::Fail,
                read: None,
                error: Some(e),
            },
            Err(NoReply::Timeout(e) | NoReply::Broken(e)) => RegisterAnswer {
                status: if is_get { Status::Fail } else { Status::Info },
                read: None,
                error: Some(e),
            },
        })
    }

    /// What went wrong with the client itself this cycle (driver processes
    /// that could not start, exited, hung or answered garbage).
    pub fn problems(&self) -> Vec<String> {
        match &*self.0 {
            Kind::Process(d) => d.drivers.problems(),
            Kind::Http { .. } => Vec::new(),
        }
    }

    /// End the client's processes.
    pub async fn close(&self) {
        if let Kind::Process(d) = &*self.0 {
            d.drivers.close().await;
        }
    }
}
