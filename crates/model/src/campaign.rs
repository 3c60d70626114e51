//! The campaign file: a system under test described without code.
//!
//! Parsed strictly (unknown fields are errors) and validated once into a
//! [`Campaign`], so a bad file fails before any process starts, with the file
//! and field named.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::template::{
    Encoding, PLACEHOLDERS, Vars, check_pointers, check_template, collect_strings, http_method,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub system: System,
    pub ready: Ready,
    /// The built-in HTTP client's write; absent with `[client]`.
    pub write: Option<Write>,
    #[serde(default)]
    pub read: Read,
    /// A driver process per client process instead of the HTTP templates.
    pub client: Option<crate::client::ClientSection>,
    #[serde(default)]
    pub burst: Burst,
    #[serde(default)]
    pub recovery: Recovery,
    #[serde(default)]
    pub campaign: Settings,
    /// Capabilities granted per plugin name.
    #[serde(default)]
    pub grants: BTreeMap<String, Vec<String>>,
    /// Parameters per plugin name, checked against the plugin's `describe()`.
    #[serde(default)]
    pub params: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// sha256 per plugin name: a plugin whose file differs is refused.
    #[serde(default)]
    pub pins: BTreeMap<String, String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub clock: Clock,
    /// How to ask a node whether it leads (systems with a leader).
    pub leader: Option<LeaderProbe>,
    #[serde(default)]
    pub probes: Probes,
    /// Composed fault classes: `[[class]] name = "...", faults = [...]`.
    #[serde(default)]
    pub class: Vec<ClassSpec>,
    /// `[workload] kind = "register"`: register clients beside the burst.
    pub workload: Option<crate::register::Workload>,
    /// Remote hosts to place the nodes on (see [`crate::hosts`]).
    pub hosts: Option<crate::hosts::HostsSection>,
}

/// A composed fault class as written: several fault plugins that run
/// concurrently in one cycle, each with its own grants and parameters
/// (keyed by plugin name, as for a class of one), their effects on one
/// timeline.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    /// Fault plugins, named as anywhere else: a built-in, a path relative
    /// to the campaign file, or an `oci://` reference.
    pub faults: Vec<String>,
}

/// A composed class, validated: its plugins resolved.
#[derive(Debug)]
pub struct ComposedClass {
    pub name: String,
    pub faults: Vec<crate::plugin_ref::PluginRef>,
}

/// A per-node role probe: node i leads when the value at `leader_pointer`
/// in its answer equals the value at `self_pointer` (etcd:
/// `/v3/maintenance/status`, `/leader` and `/header/member_id`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderProbe {
    pub url: String,
    #[serde(default = "default_get")]
    pub method: String,
    /// JSON body, sent when given.
    pub body: Option<toml::Value>,
    pub leader_pointer: String,
    pub self_pointer: String,
    #[serde(default = "default_probe_timeout")]
    pub timeout_ms: u64,
}

/// Extra steps after a cycle's observation: the quorum probes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probes {
    /// With one peer of the primary killed a write must be acknowledged;
    /// with every peer killed it must be refused with quorum_not_met_status.
    #[serde(default)]
    pub quorum: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// How nodes reach each other, and so how partitions are made:
    /// "loopback" (no partitions), "proxy" (no privileges) or "netns" (root).
    #[serde(default)]
    pub mode: crate::network::Mode,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    /// A URL where a node reports its wall clock, to verify clock skews.
    pub probe_url: Option<String>,
    /// JSON pointer to the node's Unix time in ms in the probe's answer.
    #[serde(default = "default_clock_pointer")]
    pub probe_pointer: String,
    /// Read the node's clock from this HTTP-date response header instead
    /// (e.g. "Date"; whole seconds), for systems without a time endpoint.
    pub probe_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    #[serde(default = "default_name")]
    pub name: String,
    pub nodes: u32,
    /// The node writes go through.
    #[serde(default)]
    pub primary: u32,
    /// Program and arguments. A program containing `/` is relative to the
    /// campaign file's directory; a bare name is looked up on PATH.
    pub command: Vec<String>,
    /// Per-node commands, by node index, for nodes that differ from
    /// `command` (ai-memory's star layout: only node 0 has peers).
    #[serde(default)]
    pub commands: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_peer_url")]
    pub peer_url: String,
    #[serde(default = "default_separator")]
    pub peer_separator: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// The HTTP probe; absent with `[client]`, whose `ready` is asked.
    pub url: Option<String>,
    #[serde(default = "default_ready_deadline")]
    pub deadline_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    /// JSON body; every string in it is a template.
    pub body: toml::Value,
    /// JSON pointers to strings of `body` sent base64-encoded (etcd keys).
    #[serde(default)]
    pub base64: Vec<String>,
    pub ok_status: Vec<u16>,
    #[serde(default)]
    pub quorum_not_met_status: Vec<u16>,
    /// Statuses that leave the write's fate unknown (etcd's 503 "request
    /// timed out": the entry may still commit).
    #[serde(default)]
    pub indeterminate_status: Vec<u16>,
    #[serde(default = "default_write_timeout")]
    pub timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    #[serde(default = "default_get")]
    pub method: String,
    /// The built-in HTTP client's read-back; absent with `[client]`.
    pub url: Option<String>,
    /// JSON body, sent when given (etcd's range request).
    pub body: Option<toml::Value>,
    /// JSON pointers to strings of `body` sent base64-encoded.
    #[serde(default)]
    pub base64: Vec<String>,
    /// JSON pointer (RFC 6901) to the array of ids in the response, "" for
    /// the whole document (required with `url`).
    pub ids_pointer: Option<String>,
    /// When the array holds objects, the pointer inside each to its id.
    #[serde(default)]
    pub id_field: Option<String>,
    /// How each id is encoded in the answer (etcd returns base64 keys).
    pub id_encoding: Option<Encoding>,
    /// An answer without `ids_pointer` means no ids (etcd omits `kvs` when
    /// the range is empty); otherwise it is a harness error.
    #[serde(default)]
    pub absent_is_empty: bool,
    #[serde(default = "default_read_timeout")]
    pub timeout_ms: u64,
    /// Reads during the cycle: each client also reads from the nodes in
    /// turn every `during_ms` while the burst, the fault and the recovery
    /// run, each read recorded in the history. Unset: no such reads.
    pub during_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    #[serde(default = "default_writes")]
    pub writes: u32,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    #[serde(default = "default_settle")]
    pub settle_ms: u64,
}

/// After the heal, the system must acknowledge writes again: a system that
/// stays unavailable once the fault is gone fails the cycle (liveness).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Writes that must be acknowledged after the heal; 0 turns the check
    /// off (and the record says it was not made).
    #[serde(default = "default_recovery_writes")]
    pub writes: u32,
    /// How long after the heal they may take.
    #[serde(default = "default_recovery_deadline")]
    pub deadline_ms: u64,
    /// The nodes that may take them.
    #[serde(default)]
    pub through: Through,
}

impl Default for Recovery {
    fn default() -> Self {
        Self {
            writes: default_recovery_writes(),
            deadline_ms: default_recovery_deadline(),
            through: Through::default(),
        }
    }
}

/// Which nodes the recovery writes go through (`[recovery] through`). A
/// node that takes writes only because the campaign sends them there (a
/// star's leaf) acknowledges alone and replicates nowhere: its writes would
/// be demanded on nodes it was never meant to reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Through {
    /// `"primary"`: the burst's write target, `system.primary`, only; with
    /// it down, the check is skipped.
    #[default]
    Primary,
    /// `"any"`: the primary while it lives, else every live node in turn.
    Any,
    /// A list of node indices: those alive, in turn.
    Nodes(Vec<u32>),
}

impl<'de> Deserialize<'de> for Through {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A word or a list: untagged would hide which one was wrong.
        struct V;
        const WANT: &str = r#"use "primary", "any" or a list of node indices"#;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Through;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "recovery.through: {WANT}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Through, E> {
                match v {
                    "primary" => Ok(Through::Primary),
                    "any" => Ok(Through::Any),
                    other => Err(E::custom(format!("recovery.through {other:?}: {WANT}"))),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Through, A::Error> {
                let mut nodes = Vec::new();
                while let Some(n) = a.next_element::<u32>()? {
                    nodes.push(n);
                }
                Ok(Through::Nodes(nodes))
            }
        }
        d.deserialize_any(V)
    }
}

fn default_recovery_writes() -> u32 {
    5
}
fn default_recovery_deadline() -> u64 {
    5_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_cycles")]
    pub cycles: u32,
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    pub seed: Option<u64>,
    /// Assertion plugins run on every cycle: built-in names, paths
    /// (relative to the campaign file) or `oci://` references.
    #[serde(default)]
    pub assertions: Vec<String>,
    /// Wall-clock budget for one plugin call.
    #[serde(default = "default_plugin_timeout")]
    pub plugin_timeout_ms: u64,
    /// Opt into the seed protocol's tolerance: a cycle whose lost
    /// acknowledged writes are at most this ratio of its acknowledged
    /// writes is not failed, and the report says "tolerated". Unset (the
    /// default), any lost acknowledged write fails its cycle.
    pub tolerate_lost_ratio: Option<f64>,
    /// Fuel (about one wasm instruction each) one assertion call may burn;
    /// a checker that runs out says `unknown` with the history's size and
    /// this budget. Unset: 2,000,000,000.
    pub assertion_fuel: Option<u64>,
}

impl Default for Burst {
    fn default() -> Self {
        Self {
            writes: default_writes(),
            concurrency: default_concurrency(),
            settle_ms: default_settle(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cycles: default_cycles(),
            threshold: default_threshold(),
            seed: None,
            assertions: Vec::new(),
            plugin_timeout_ms: default_plugin_timeout(),
            tolerate_lost_ratio: None,
            assertion_fuel: None,
        }
    }
}

fn default_clock_pointer() -> String {
    "/unix_ms".into()
}
fn default_name() -> String {
    "system under test".into()
}
fn default_peer_url() -> String {
    "http://127.0.0.1:{port}".into()
}
fn default_separator() -> String {
    ",".into()
}
fn default_ready_deadline() -> u64 {
    10_000
}
fn default_method() -> String {
    "POST".into()
}
fn default_get() -> String {
    "GET".into()
}

impl Default for Read {
    fn default() -> Self {
        Self {
            method: default_get(),
            url: None,
            body: None,
            base64: Vec::new(),
            ids_pointer: None,
            id_field: None,
            id_encoding: None,
            absent_is_empty: false,
            timeout_ms: default_read_timeout(),
            during_ms: None,
        }
    }
}
fn default_probe_timeout() -> u64 {
    2_000
}
fn default_write_timeout() -> u64 {
    5_000
}
/// Bounds of `read.during_ms`: below 5 ms the readers would compete with
/// the burst for the host's CPU; above a minute no cycle sees a read.
const MIN_DURING_MS: u64 = 5;
const MAX_DURING_MS: u64 = 60_000;

fn default_read_timeout() -> u64 {
    5_000
}
fn default_writes() -> u32 {
    100
}
fn default_concurrency() -> u32 {
    8
}
fn default_settle() -> u64 {
    1_000
}
fn default_cycles() -> u32 {
    20
}
/// The pass threshold of a campaign that sets none (`campaign.threshold`).
pub const DEFAULT_THRESHOLD: f64 = 0.995;

fn default_threshold() -> f64 {
    DEFAULT_THRESHOLD
}
fn default_plugin_timeout() -> u64 {
    30_000
}

impl System {
    /// `command` and each per-node command, with the field that names it.
    fn each_command(&self) -> impl Iterator<Item = (String, &Vec<String>)> {
        std::iter::once(("system.command".to_string(), &self.command)).chain(
            self.commands
                .iter()
                .map(|(k, c)| (format!("system.commands.{k}"), c)),
        )
    }

    /// Every template a node is started with: all commands' arguments and
    /// the environment.
    fn templates(&self) -> impl Iterator<Item = &String> {
        self.command
            .iter()
            .chain(self.commands.values().flatten())
            .chain(self.env.values())
    }
}

/// The reference campaign, compiled in: the default of `chaos-host run`.
pub const REFERENCE_TOML: &str = include_str!("../../../examples/reference/campaign.toml");
/// How the embedded campaign is named in messages and run.json.
pub const REFERENCE_NAME: &str = "(embedded reference campaign)";

/// A validated campaign, with paths resolved against the campaign file.
#[derive(Debug)]
pub struct Campaign {
    pub path: PathBuf,
    pub file: CampaignFile,
    /// Each node's program (resolved) and arguments, by index.
    pub commands: Vec<(PathBuf, Vec<String>)>,
    pub method: http::Method,
    pub read_method: http::Method,
    /// Which client carries the operations.
    pub client: ClientSpec,
    pub assertions: Vec<crate::plugin_ref::PluginRef>,
    /// `[[class]]` entries, in file order.
    pub classes: Vec<ComposedClass>,
}

impl Campaign {
    /// Check that the templates work under network `mode` (which the
    /// command line may override).
    pub fn check_mode(&self, mode: crate::network::Mode) -> anyhow::Result<()> {
        let s = &self.file.system;
        if mode == crate::network::Mode::Proxy && s.peer_url.contains("{peer_port}") {
            bail!(
                "system.peer_url: peers talk on {{peer_port}}, which network.mode = \"proxy\" does not carry (members that identify each other by URL, like etcd's, reject proxied addresses); use \"netns\" (root) to partition this system, or \"loopback\""
            );
        }
        if mode == crate::network::Mode::Ssh {
            // chaos-host reaches remote nodes at their hosts' addresses.
            let f = &self.file;
            for (field, url) in [
                ("ready.url", f.ready.url.as_ref()),
                ("write.url", f.write.as_ref().map(|w| &w.url)),
                ("read.url", f.read.url.as_ref()),
            ]
            .into_iter()
            .filter_map(|(field, url)| Some((field, url?)))
            {
                if !url.contains("{host}") {
                    bail!(
                        "{field}: the nodes run on remote hosts ([hosts]), but the URL has no {{host}} placeholder for the host's address (e.g. \"http://{{host}}:{{port}}/health\")"
                    );
                }
            }
        }
        if !matches!(
            mode,
            crate::network::Mode::Netns | crate::network::Mode::Ssh
        ) {
            return Ok(());
        }
        for (field, command) in s.each_command() {
            if !command
                .iter()
                .chain(s.env.values())
                .any(|t| t.contains("{host}"))
            {
                bail!(
                    "{field}: network.mode = \"netns\" gives each node its own address, but the command has no {{host}} placeholder to listen on it (e.g. \"--listen\", \"{{host}}:{{port}}\")"
                );
            }
        }
        if s.nodes > 1 && !s.peer_url.contains("{host}") {
            bail!(
                "system.peer_url: network.mode = \"netns\" needs {{host}} in the peer URL (e.g. \"http://{{host}}:{{port}}\"), or peers cannot reach each other"
            );
        }
        Ok(())
    }

    /// The embedded default: the reference campaign
    /// (`examples/reference/campaign.toml`), its nodes served by this very
    /// binary (`chaos-host reference-node`), so an installed chaos-host runs
    /// it with no checkout; its assertion is a built-in, embedded too.
    pub fn reference() -> anyhow::Result<Self> {
        let mut c = Self::from_text(Path::new(REFERENCE_NAME), REFERENCE_TOML)?;
        let exe = std::env::current_exe()
            .context("finding this chaos-host binary to serve the reference nodes")?;
        for (program, args) in &mut c.commands {
            *program = exe.clone();
            args.insert(0, "reference-node".into());
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading campaign {}", path.display()))?;
        Self::from_text(path, &text)
    }

    /// Parse and validate `text` as the campaign file at `path`.
    pub fn from_text(path: &Path, text: &str) -> anyhow::Result<Self> {
        let file: CampaignFile = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!("campaign {}: {}", path.display(), e.to_string().trim())
        })?;
        Self::validate(path, file).with_context(|| format!("campaign {}", path.display()))
    }

    /// Nodes need a second port (`{peer_port}` is used).
    pub fn uses_peer_port(&self) -> bool {
        let s = &self.file.system;
        s.templates()
            .chain([&s.peer_url])
            .any(|t| t.contains("{peer_port}"))
    }

    fn validate(path: &Path, file: CampaignFile) -> anyhow::Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let s = &file.system;
        if s.nodes == 0 {
            bail!("system.nodes is 0: a campaign needs at least one node");
        }
        if s.primary >= s.nodes {
            bail!(
                "system.primary is {} but nodes are 0..{}: pick an existing node",
                s.primary,
                s.nodes - 1
            );
        }
        let resolve = |field: &str, command: &[String]| -> anyhow::Result<(PathBuf, Vec<String>)> {
            let Some(program) = command.first() else {
                bail!("{field} is empty: give the program and its arguments");
            };
            let program = if program.contains('/') {
                dir.join(program)
            } else {
                PathBuf::from(program)
            };
            Ok((program, command[1..].to_vec()))
        };
        let mut commands = vec![resolve("system.command", &s.command)?; s.nodes as usize];
        let mut overridden = std::collections::BTreeSet::new();
        for (key, command) in &s.commands {
            let field = format!("system.commands.{key}");
            let i = key
                .parse::<u32>()
                .ok()
                .filter(|i| *i < s.nodes)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{field}: {key:?} is not a node index (nodes are 0..{})",
                        s.nodes - 1
                    )
                })?;
            if !overridden.insert(i) {
                bail!("{field}: node {i} is given a command twice in system.commands");
            }
            commands[i as usize] = resolve(&field, command)?;
        }
        let threshold = file.campaign.threshold;
        if !(0.0..=1.0).contains(&threshold) {
            bail!("campaign.threshold is {threshold}: it is a ratio and must lie in [0, 1]");
        }
        if let Some(t) = file.campaign.tolerate_lost_ratio
            && !(0.0..=1.0).contains(&t)
        {
            bail!("campaign.tolerate_lost_ratio is {t}: it is a ratio and must lie in [0, 1]");
        }
        if let Some(w) = &file.workload {
            w.validate_for(file.client.is_some())?;
        }
        if file.campaign.assertion_fuel == Some(0) {
            bail!(
                "campaign.assertion_fuel is 0: an assertion could not run at all; give a budget (e.g. 2000000000) or leave it out for the default"
            );
        }
        if let Some(ms) = file.read.during_ms
            && !(MIN_DURING_MS..=MAX_DURING_MS).contains(&ms)
        {
            bail!(
                "read.during_ms is {ms}: give the pause between a client's reads during the cycle, {MIN_DURING_MS} to {MAX_DURING_MS} ms (or leave it out for no reads during the cycle)"
            );
        }
        if file.burst.writes == 0 {
            bail!("burst.writes is 0: a cycle that writes nothing tests nothing; give at least 1");
        }
        if file.burst.concurrency == 0 {
            bail!("burst.concurrency is 0: at least one writer is needed");
        }
        use crate::bounds::{CONCURRENCY, CYCLES, NODES, WAIT_MS, WRITES, setting};
        for (field, value, range) in [
            ("burst.writes", u64::from(file.burst.writes), &WRITES),
            (
                "burst.concurrency",
                u64::from(file.burst.concurrency),
                &CONCURRENCY,
            ),
            ("system.nodes", u64::from(s.nodes), &NODES),
            ("campaign.cycles", u64::from(file.campaign.cycles), &CYCLES),
        ] {
            setting(field, value, range).map_err(anyhow::Error::msg)?;
        }
        // 0 is refused below with its own reason where it makes no sense.
        for (field, value) in [
            ("ready.deadline_ms", file.ready.deadline_ms),
            (
                "write.timeout_ms",
                file.write.as_ref().map_or(0, |w| w.timeout_ms),
            ),
            ("read.timeout_ms", file.read.timeout_ms),
            ("burst.settle_ms", file.burst.settle_ms),
            ("recovery.deadline_ms", file.recovery.deadline_ms),
        ] {
            setting(field, value, &(0..=*WAIT_MS.end())).map_err(anyhow::Error::msg)?;
        }
        if file.recovery.writes > 0 && file.recovery.deadline_ms == 0 {
            bail!(
                "recovery.deadline_ms is 0: give the system time to acknowledge writes after the heal, or set recovery.writes = 0 to skip the check"
            );
        }
        if file.recovery.writes > 10_000 {
            bail!(
                "recovery.writes is {}: the recovery window proves the system takes writes again; a few (default 5) do, at most 10000",
                file.recovery.writes
            );
        }
        if let Through::Nodes(nodes) = &file.recovery.through {
            if nodes.is_empty() {
                bail!(
                    "recovery.through is an empty list: name the nodes that may take the recovery writes, or use \"primary\" or \"any\""
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for &n in nodes {
                if n >= s.nodes {
                    bail!(
                        "recovery.through names node {n} but nodes are 0..{}: pick existing nodes",
                        s.nodes - 1
                    );
                }
                if !seen.insert(n) {
                    bail!("recovery.through names node {n} twice");
                }
            }
        }
        let client = Self::client(dir, &file)?;
        let (method, read_method) = match &file.write {
            Some(w) => (
                http_method("write.method", &w.method)?,
                http_method("read.method", &file.read.method)?,
            ),
            None => (http::Method::POST, http::Method::GET),
        };
        if let Some(l) = &file.leader {
            http_method("leader.method", &l.method)?;
            check_template("leader.url", &l.url, &["port", "index", "host"])?;
            for (field, p) in [
                ("leader.leader_pointer", &l.leader_pointer),
                ("leader.self_pointer", &l.self_pointer),
            ] {
                if !p.starts_with('/') {
                    bail!("{field} {p:?}: a JSON pointer starts with '/'");
                }
            }
        }
        if file.probes.quorum {
            if s.nodes < 3 {
                bail!(
                    "probes.quorum needs at least 3 nodes (the primary and two peers), not {}",
                    s.nodes
                );
            }
            if file.client.is_some() {
                bail!(
                    "probes.quorum: the probes tell a refusal for want of quorum by an HTTP status (write.quorum_not_met_status), which a [client] does not give; remove probes.quorum or drive the system with the HTTP templates"
                );
            }
            if file
                .write
                .as_ref()
                .is_some_and(|w| w.quorum_not_met_status.is_empty())
            {
                bail!(
                    "probes.quorum: write.quorum_not_met_status is empty, so a refused write cannot be told apart; list the status the system answers without quorum"
                );
            }
        }

        // Every template may only use known placeholders.
        let node_keys = &[
            "index",
            "port",
            "peer_port",
            "host",
            "peers",
            "cluster",
            "data_dir",
            "namespace",
            "cycle",
        ];
        for (field, command) in s.each_command() {
            for (i, arg) in command.iter().enumerate() {
                check_template(&format!("{field}[{i}]"), arg, node_keys)?;
            }
        }
        for (k, v) in &s.env {
            check_template(&format!("system.env.{k}"), v, node_keys)?;
        }
        check_template(
            "system.peer_url",
            &s.peer_url,
            &["port", "peer_port", "index", "host"],
        )?;
        if let Some(u) = &file.clock.probe_url {
            // A node's clock, not a cycle's data: rendered per node only.
            check_template("clock.probe_url", u, &["port", "index", "host"])?;
        }
        // Isolation by construction (data and namespace shared across cycles
        // once made read-back counts cumulative): each cycle must get its own
        // port, data and namespace, and each write its own id.
        for (field, command) in s.each_command() {
            if !mentions("port", command.iter().chain(s.env.values())) {
                bail!(
                    "{field}: no {{port}} placeholder (nor in system.env): the host chooses each node's port per cycle and must pass it"
                );
            }
            if !mentions("data_dir", command.iter().chain(s.env.values())) {
                bail!(
                    "{field}: no {{data_dir}} placeholder (nor in system.env): without a fresh data dir per cycle, state leaks between cycles (seed 000)"
                );
            }
        }
        if s.nodes > 1 && !mentions("peers", s.templates()) && !mentions("cluster", s.templates()) {
            bail!(
                "system.command: no {{peers}} or {{cluster}} placeholder with {} nodes: how would a node find its peers?",
                s.nodes
            );
        }
        let assertions = file
            .campaign
            .assertions
            .iter()
            .map(|a| crate::plugin_ref::PluginRef::parse(a, dir, "campaign.assertions"))
            .collect::<anyhow::Result<_>>()?;
        let classes = composed_classes(&file.class, dir)?;
        Ok(Self {
            path: path.to_path_buf(),
            commands,
            method,
            read_method,
            client,
            assertions,
            classes,
            file,
        })
    }

    /// Which client carries the operations: the HTTP templates or a driver
    /// process, each checked.
    fn client(dir: &Path, file: &CampaignFile) -> anyhow::Result<ClientSpec> {
        match (&file.client, &file.write) {
            (Some(_), Some(_)) => bail!(
                "[client] and [write] are both given: a campaign's operations go through one client, the driver process ([client] command) or the HTTP templates ([write], [read], [ready] url); remove one"
            ),
            (None, None) => bail!(
                "no client: give [write] and [read] (the HTTP templates; see examples/reference/campaign.toml) or [client] command = [...] (a driver process; see examples/nats/campaign.toml)"
            ),
            (Some(c), None) => Self::driver(dir, file, c),
            (None, Some(w)) => {
                Self::http(file, w)?;
                Ok(ClientSpec::Http)
            }
        }
    }

    /// `[client]`: a driver process, asked for readiness, writes and reads.
    fn driver(
        dir: &Path,
        file: &CampaignFile,
        c: &crate::client::ClientSection,
    ) -> anyhow::Result<ClientSpec> {
        let r = &file.read;
        for (field, given) in [
            ("read.url", r.url.is_some()),
            ("read.ids_pointer", r.ids_pointer.is_some()),
            ("read.body", r.body.is_some()),
            ("read.base64", !r.base64.is_empty()),
            ("read.id_field", r.id_field.is_some()),
            ("read.id_encoding", r.id_encoding.is_some()),
        ] {
            if given {
                bail!(
                    "{field}: reads go through the campaign's [client] (a driver process or a component), which answers them with ids; remove {field}"
                );
            }
        }
        if !crate::client::TIMEOUT_MS.contains(&c.timeout_ms) {
            bail!(
                "client.timeout_ms is {}: give how long one operation may take, {} to {} ms",
                c.timeout_ms,
                crate::client::TIMEOUT_MS.start(),
                crate::client::TIMEOUT_MS.end()
            );
        }
        if let Some(plugin) = &c.plugin {
            if !c.command.is_empty() || !c.env.is_empty() {
                bail!(
                    "client: both a plugin ({plugin}) and a command{} are given: a client is a component (plugin) or a driver process (command, env); keep one",
                    if c.command.is_empty() {
                        " environment"
                    } else {
                        ""
                    }
                );
            }
            return Ok(ClientSpec::Component {
                plugin: crate::plugin_ref::PluginRef::parse(plugin, dir, "client.plugin")?,
            });
        }
        let Some(program) = c.command.first() else {
            bail!(
                "client.command is empty: give the driver program and its arguments (or client.plugin, a client component)"
            );
        };
        for (i, arg) in c.command.iter().enumerate() {
            check_template(
                &format!("client.command[{i}]"),
                arg,
                crate::client::DRIVER_KEYS,
            )?;
        }
        for (k, v) in &c.env {
            check_template(&format!("client.env.{k}"), v, crate::client::DRIVER_KEYS)?;
        }
        let program = if program.contains('/') {
            dir.join(program)
        } else {
            PathBuf::from(program)
        };
        Ok(ClientSpec::Driver {
            program,
            args: c.command[1..].to_vec(),
            dir: dir.to_path_buf(),
        })
    }

    /// The built-in HTTP client: `[write]`, `[read]` and `[ready] url`.
    fn http(file: &CampaignFile, w: &Write) -> anyhow::Result<()> {
        let Some(ready_url) = &file.ready.url else {
            bail!(
                "ready.url is missing: give the URL that answers 2xx once a node serves (e.g. \"http://{{host}}:{{port}}/health\"), or drive the system with [client] command, whose driver answers ready"
            );
        };
        let Some(read_url) = &file.read.url else {
            bail!("read.url is missing: give the URL that lists the ids a node holds");
        };
        let Some(ids_pointer) = &file.read.ids_pointer else {
            bail!(
                "read.ids_pointer is missing: give the JSON pointer to the array of ids in the read answer (\"\" for the whole answer)"
            );
        };
        if w.ok_status.is_empty() {
            bail!("write.ok_status is empty: list the statuses that mean a write was acknowledged");
        }
        let statuses = [
            ("ok_status", &w.ok_status),
            ("quorum_not_met_status", &w.quorum_not_met_status),
            ("indeterminate_status", &w.indeterminate_status),
        ];
        for (a, (na, la)) in statuses.iter().enumerate() {
            for (nb, lb) in &statuses[a + 1..] {
                if let Some(st) = la.iter().find(|s| lb.contains(s)) {
                    bail!("write: status {st} is in both {na} and {nb}");
                }
            }
        }
        check_pointers("write", &w.body, &w.base64)?;
        match &file.read.body {
            Some(body) => check_pointers("read", body, &file.read.base64)?,
            None if !file.read.base64.is_empty() => {
                bail!("read.base64: there is no read.body to encode fields of")
            }
            None => {}
        }
        for (field, ms) in [
            ("write.timeout_ms", w.timeout_ms),
            ("read.timeout_ms", file.read.timeout_ms),
        ] {
            if ms == 0 {
                bail!(
                    "{field} is 0: no answer could ever arrive in time; give how long one request may take (e.g. 5000)"
                );
            }
        }
        if !ids_pointer.is_empty() && !ids_pointer.starts_with('/') {
            bail!(
                "read.ids_pointer {ids_pointer:?}: a JSON pointer starts with '/' (or is \"\" for the whole answer)"
            );
        }
        let client_keys = &["port", "index", "host", "namespace", "cycle"];
        check_template("ready.url", ready_url, client_keys)?;
        check_template("read.url", read_url, client_keys)?;
        check_template(
            "write.url",
            &w.url,
            &["port", "index", "host", "namespace", "cycle", "id"],
        )?;
        let mut body_strings = Vec::new();
        collect_strings(&w.body, &mut body_strings);
        for v in &body_strings {
            check_template("write.body", v, &["namespace", "cycle", "id", "index"])?;
        }
        let mut read_strings = Vec::new();
        if let Some(b) = &file.read.body {
            collect_strings(b, &mut read_strings);
        }
        for v in &read_strings {
            check_template("read.body", v, &["namespace", "cycle", "index"])?;
        }

        if !mentions("port", std::iter::once(ready_url)) {
            bail!("ready.url: no {{port}} placeholder: the probe must reach the node it checks");
        }
        if !mentions("id", body_strings.iter().chain(std::iter::once(&w.url))) {
            bail!(
                "write.body: no {{id}} placeholder: every write needs its unique id so read-back can tell which landed"
            );
        }
        if !mentions(
            "namespace",
            body_strings
                .iter()
                .chain([&w.url, read_url])
                .chain(&read_strings),
        ) {
            bail!(
                "write.body: no {{namespace}} placeholder in write.body, write.url or read.url: without a namespace per cycle, read-back counts earlier cycles (seed 000)"
            );
        }
        Ok(())
    }
}

/// Some text of `texts` has the placeholder `{key}`.
fn mentions<'a>(key: &str, mut texts: impl Iterator<Item = &'a String>) -> bool {
    let needle = format!("{{{key}}}");
    texts.any(|t| t.contains(&needle))
}

/// Which client carries a campaign's operations.
#[derive(Clone, Debug)]
pub enum ClientSpec {
    /// The built-in client: `[write]`, `[read]`, `[ready] url`.
    Http,
    /// `[client] command`: a driver process per client process (program
    /// resolved, arguments as templates), run in the campaign file's
    /// directory.
    Driver {
        program: PathBuf,
        args: Vec<String>,
        dir: PathBuf,
    },
    /// `[client] plugin`: a client component per client process.
    Component {
        plugin: crate::plugin_ref::PluginRef,
    },
}

/// Why `name` cannot name a class, if it cannot: it is a directory under
/// the out dir and part of every write id.
pub fn class_name_problem(name: &str) -> Option<String> {
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-_.".contains(*c)))
    {
        return Some(format!(
            "{name:?} has {c:?}; a class name is a directory and part of every write id: use letters, digits and + - _ ."
        ));
    }
    if name.is_empty() || name.starts_with('.') {
        return Some(format!(
            "{name:?} is empty or starts with '.'; a class name is a directory under the out dir: start it with a letter or digit"
        ));
    }
    None
}

/// `class` as it appears in namespaces and write ids: letters, digits, -
/// and _ (a query string or a key would change `+` or `.`).
pub fn namespace_part(class: &str) -> String {
    class
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Check `[[class]]` entries: a usable, unique name and at least two
/// distinct fault plugins (one is a plain class: name it with `--plugin`).
fn composed_classes(specs: &[ClassSpec], dir: &Path) -> anyhow::Result<Vec<ComposedClass>> {
    let mut names = std::collections::HashSet::new();
    let mut classes = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let field = format!("class[{i}]");
        let name = spec.name.trim();
        if name.is_empty() {
            bail!("{field}.name: empty; name the composed class, e.g. \"kill+partition\"");
        }
        if name == "none" {
            bail!("{field}.name: \"none\" is the class without a fault; choose another name");
        }
        if let Some(why) = class_name_problem(name) {
            bail!("{field}.name: {why}");
        }
        if !names.insert(namespace_part(name)) {
            bail!(
                "{field}.name: {name:?} names two [[class]] entries (or one that differs only in + . -, which namespaces and ids cannot tell apart); give each its own name"
            );
        }
        if spec.faults.len() < 2 {
            bail!(
                "{field}.faults: a composed class needs at least two fault plugins, it has {}; a single plugin is a class of its own (--plugin NAME)",
                spec.faults.len()
            );
        }
        let mut seen = std::collections::HashSet::new();
        let mut faults = Vec::new();
        for (j, text) in spec.faults.iter().enumerate() {
            if !seen.insert(text.as_str()) {
                bail!(
                    "{field}.faults[{j}]: {text:?} is listed twice; a plugin runs once per cycle (its parameters are per plugin, not per mention)"
                );
            }
            faults.push(crate::plugin_ref::PluginRef::parse(
                text,
                dir,
                &format!("{field}.faults[{j}]"),
            )?);
        }
        classes.push(ComposedClass {
            name: name.to_string(),
            faults,
        });
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[system]
nodes = 3
command = ["./kv", "--port", "{port}", "--dir", "{data_dir}", "--peers", "{peers}"]
[ready]
url = "http://127.0.0.1:{port}/health"
[write]
url = "http://127.0.0.1:{port}/write"
body = { id = "{id}", ns = "{namespace}" }
ok_status = [201]
quorum_not_met_status = [503]
[read]
url = "http://127.0.0.1:{port}/ids?ns={namespace}"
ids_pointer = "/ids"
"#;

    fn load(text: &str) -> anyhow::Result<Campaign> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Campaign::load(&path)
    }

    fn err(text: &str) -> String {
        format!("{:#}", load(text).unwrap_err())
    }

    #[test]
    fn good_campaign_loads_with_defaults() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.file.system.nodes, 3);
        assert_eq!(c.file.campaign.threshold, 0.995);
        assert_eq!(c.file.burst.writes, 100);
        assert!(c.commands[2].0.ends_with("kv"));
    }

    #[test]
    fn unknown_field_is_named() {
        let e = err(&GOOD.replace("[read]", "[read]\nidz = 1"));
        assert!(e.contains("unknown field `idz`"), "{e}");
        assert!(e.contains("c.toml"), "{e}");
    }

    #[test]
    fn recovery_through_defaults_to_the_primary() {
        assert_eq!(load(GOOD).unwrap().file.recovery.through, Through::Primary);
        let with = |t: &str| load(&format!("{GOOD}\n[recovery]\nthrough = {t}\n"));
        assert_eq!(
            with("\"primary\"").unwrap().file.recovery.through,
            Through::Primary
        );
        assert_eq!(with("\"any\"").unwrap().file.recovery.through, Through::Any);
        assert_eq!(
            with("[2, 1]").unwrap().file.recovery.through,
            Through::Nodes(vec![2, 1])
        );
    }

    #[test]
    fn bad_recovery_through_refused_naming_the_field() {
        let e = |t: &str| err(&format!("{GOOD}\n[recovery]\nthrough = {t}\n"));
        for (bad, says) in [
            (
                "\"leaves\"",
                r#"recovery.through "leaves": use "primary", "any" or a list of node indices"#,
            ),
            ("3", "recovery.through: use"),
            ("[\"a\"]", "invalid type: string"),
            ("[]", "recovery.through is an empty list"),
            ("[1, 3]", "recovery.through names node 3 but nodes are 0..2"),
            ("[1, 1]", "recovery.through names node 1 twice"),
        ] {
            let e = e(bad);
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("c.toml"), "{bad}: {e}");
        }
    }

    #[test]
    fn zero_nodes_refused() {
        assert!(err(&GOOD.replace("nodes = 3", "nodes = 0")).contains("system.nodes is 0"));
    }

    #[test]
    fn threshold_out_of_range_refused() {
        let e = err(&format!("{GOOD}\n[campaign]\nthreshold = 1.5\n"));
        assert!(e.contains("campaign.threshold is 1.5"), "{e}");
    }

    #[test]
    fn missing_data_dir_placeholder_refused() {
        let e = err(&GOOD.replace("\"--dir\", \"{data_dir}\", ", ""));
        assert!(e.contains("no {data_dir} placeholder"), "{e}");
    }

    #[test]
    fn missing_namespace_refused() {
        let e = err(&GOOD
            .replace("ns = \"{namespace}\"", "ns = \"chaos\"")
            .replace("?ns={namespace}", "?ns=chaos"));
        assert!(e.contains("no {namespace} placeholder"), "{e}");
    }

    #[test]
    fn unknown_placeholder_named_with_field() {
        let e = err(&GOOD.replace("{data_dir}", "{datadir}"));
        assert!(
            e.contains("system.command[4]: unknown placeholder {datadir}"),
            "{e}"
        );
    }

    #[test]
    fn clock_probe_takes_only_per_node_placeholders() {
        let probe = |url: &str| format!("{GOOD}\n[clock]\nprobe_url = \"{url}\"\n");
        assert!(load(&probe("http://{host}:{port}/time?n={index}")).is_ok());
        let e = err(&probe("http://{host}:{port}/time?ns={namespace}"));
        assert!(
            e.contains("clock.probe_url: {namespace} is not available here"),
            "{e}"
        );
    }

    #[test]
    fn per_node_commands_override_and_are_checked() {
        let star = format!(
            "{GOOD}\n[system.commands]\n1 = [\"./leaf\", \"{{port}}\", \"{{data_dir}}\"]\n"
        );
        let c = load(&star).unwrap();
        assert!(c.commands[0].0.ends_with("kv"));
        assert!(c.commands[1].0.ends_with("leaf"));
        assert_eq!(c.commands[1].1, ["{port}", "{data_dir}"]);
        let e = err(&star.replace("1 = [", "3 = ["));
        assert!(
            e.contains("system.commands.3: \"3\" is not a node index"),
            "{e}"
        );
        let e = err(&star.replace(", \"{data_dir}\"]", "]"));
        assert!(
            e.contains("system.commands.1: no {data_dir} placeholder"),
            "{e}"
        );
    }

    #[test]
    fn base64_pointers_must_name_body_strings() {
        let with = |b: &str| {
            GOOD.replace(
                "ok_status = [201]",
                &format!("base64 = {b}\nok_status = [201]"),
            )
        };
        assert!(load(&with("[\"/id\"]")).is_ok());
        let e = err(&with("[\"/key\"]"));
        assert!(
            e.contains("write.base64: \"/key\" matches nothing in write.body"),
            "{e}"
        );
        let body = Vars::default().with("id", "ns1-w0").render_body(
            &toml::Value::Table(toml::toml! { key = "{id}" }),
            &["/key".to_string()],
        );
        assert_eq!(body["key"], "bnMxLXcw");
    }

    #[test]
    fn peer_port_is_refused_in_proxy_mode() {
        let c = load(&GOOD.replace(
            "[ready]",
            "peer_url = \"n{index}=http://{host}:{peer_port}\"\n[ready]",
        ))
        .unwrap();
        assert!(c.uses_peer_port());
        let e = format!(
            "{:#}",
            c.check_mode(crate::network::Mode::Proxy).unwrap_err()
        );
        assert!(
            e.contains("system.peer_url: peers talk on {peer_port}"),
            "{e}"
        );
        assert!(c.check_mode(crate::network::Mode::Loopback).is_ok());
    }

    #[test]
    fn a_status_in_two_classes_is_refused() {
        let e = err(&GOOD.replace(
            "quorum_not_met_status = [503]",
            "quorum_not_met_status = [503]\nindeterminate_status = [503]",
        ));
        assert!(
            e.contains("status 503 is in both quorum_not_met_status and indeterminate_status"),
            "{e}"
        );
    }

    /// Fuzzing: every corpus campaign (the bad-input corpus and the shipped
    /// examples), mutated line by line, either loads into a campaign whose
    /// invariants hold or fails with an error naming the file; never a
    /// panic. Failures proptest finds are kept in proptest-regressions/.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn corpus() -> Vec<String> {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let mut texts = vec![GOOD.to_string()];
            for dir in [
                "tests/corpus/campaigns",
                "examples/reference",
                "examples/etcd",
                "examples/ai-memory",
            ] {
                for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
                    if e.path().extension().is_some_and(|x| x == "toml") {
                        texts.push(std::fs::read_to_string(e.path()).unwrap());
                    }
                }
            }
            texts
        }

        #[derive(Debug, Clone)]
        enum Mutation {
            Delete(usize),
            Duplicate(usize),
            Value(usize, String),
            Insert(usize, String),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            let scalar = prop_oneof![
                Just("0".to_string()),
                Just("-1".to_string()),
                Just("1e309".to_string()),
                Just("\"\"".to_string()),
                Just("\"{port}{id}{nope}\"".to_string()),
                Just("[]".to_string()),
                Just("{}".to_string()),
                Just("true".to_string()),
                "[a-z{}/:\\[\\]\"=0-9 ]{0,12}",
            ];
            prop_oneof![
                any::<usize>().prop_map(Mutation::Delete),
                any::<usize>().prop_map(Mutation::Duplicate),
                (any::<usize>(), scalar.clone()).prop_map(|(i, v)| Mutation::Value(i, v)),
                (
                    any::<usize>(),
                    "[a-z_.]{1,10} = ".prop_flat_map(move |k| scalar
                        .clone()
                        .prop_map(move |v| format!("{k}{v}")))
                )
                    .prop_map(|(i, l)| Mutation::Insert(i, l)),
            ]
        }

        fn apply(text: &str, muts: &[Mutation]) -> String {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            for m in muts {
                if lines.is_empty() {
                    break;
                }
                let n = lines.len();
                match m {
                    Mutation::Delete(i) => {
                        lines.remove(i % n);
                    }
                    Mutation::Duplicate(i) => {
                        let l = lines[i % n].clone();
                        lines.insert(i % n, l);
                    }
                    Mutation::Value(i, v) => {
                        let l = &mut lines[i % n];
                        if let Some((k, _)) = l.split_once(" = ") {
                            *l = format!("{k} = {v}");
                        }
                    }
                    Mutation::Insert(i, l) => lines.insert(i % n, l.clone()),
                }
            }
            lines.join("\n")
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
            #[test]
            fn mutated_campaigns_load_or_fail_naming_the_file(
                pick in any::<usize>(),
                muts in proptest::collection::vec(mutation(), 1..4),
            ) {
                let texts = corpus();
                let text = apply(&texts[pick % texts.len()], &muts);
                let path = Path::new("/fuzz/c.toml");
                match Campaign::from_text(path, &text) {
                    Ok(c) => {
                        let s = &c.file.system;
                        prop_assert!(s.nodes >= 1 && s.primary < s.nodes);
                        prop_assert_eq!(c.commands.len(), s.nodes as usize);
                        prop_assert!((0.0..=1.0).contains(&c.file.campaign.threshold));
                        prop_assert!(c.file.burst.concurrency >= 1);
                    }
                    Err(e) => {
                        let msg = format!("{e:#}");
                        prop_assert!(msg.contains("/fuzz/c.toml"), "{}", msg);
                    }
                }
            }
        }
    }

    #[test]
    fn client_vars_point_at_loopback() {
        let v = Vars::client(([127, 0, 0, 1], 8080).into(), 2);
        assert_eq!(
            v.render("http://{host}:{port}/n/{index}"),
            "http://127.0.0.1:8080/n/2"
        );
    }

    #[test]
    fn render_substitutes_all() {
        let v = Vars::default().with("port", "80").with("id", "x");
        assert_eq!(v.render("h:{port}/{id}/{port}"), "h:80/x/80");
    }
}
