//! The campaign file: a system under test described without code.
//!
//! Parsed strictly (unknown fields are errors) and validated once into a
//! [`Campaign`], so a bad file fails before any process starts, with the file
//! and field named.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Placeholders a template may use, and what they become.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("index", "the node's index, 0-based"),
    ("port", "the node's port, chosen free per cycle"),
    (
        "host",
        "the address the node listens on: 127.0.0.1, or its own address in network.mode = \"netns\"",
    ),
    (
        "peers",
        "the other nodes, each rendered with system.peer_url, joined by system.peer_separator",
    ),
    (
        "data_dir",
        "a fresh, empty directory for this node and cycle",
    ),
    ("namespace", "a namespace unique to this cycle"),
    ("cycle", "the cycle number"),
    ("id", "the write's unique id (write templates only)"),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub system: System,
    pub ready: Ready,
    pub write: Write,
    pub read: Read,
    #[serde(default)]
    pub burst: Burst,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// How nodes reach each other, and so how partitions are made:
    /// "loopback" (no partitions), "proxy" (no privileges) or "netns" (root).
    #[serde(default)]
    pub mode: crate::net::Mode,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    /// A URL where a node reports its wall clock, to verify clock skews.
    pub probe_url: Option<String>,
    /// JSON pointer to the node's Unix time in ms in the probe's answer.
    #[serde(default = "default_clock_pointer")]
    pub probe_pointer: String,
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
    pub url: String,
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
    pub ok_status: Vec<u16>,
    #[serde(default)]
    pub quorum_not_met_status: Vec<u16>,
    #[serde(default = "default_write_timeout")]
    pub timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub url: String,
    /// JSON pointer (RFC 6901) to the array of ids in the response, "" for
    /// the whole document.
    pub ids_pointer: String,
    /// When the array holds objects, the pointer inside each to its id.
    #[serde(default)]
    pub id_field: Option<String>,
    #[serde(default = "default_read_timeout")]
    pub timeout_ms: u64,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_cycles")]
    pub cycles: u32,
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    pub seed: Option<u64>,
    /// Assertion plugins run on every cycle, relative to the campaign file.
    #[serde(default)]
    pub assertions: Vec<PathBuf>,
    /// Wall-clock budget for one plugin call.
    #[serde(default = "default_plugin_timeout")]
    pub plugin_timeout_ms: u64,
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
fn default_write_timeout() -> u64 {
    5_000
}
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
fn default_threshold() -> f64 {
    0.995
}
fn default_plugin_timeout() -> u64 {
    30_000
}

/// A validated campaign, with paths resolved against the campaign file.
#[derive(Debug)]
pub struct Campaign {
    pub path: PathBuf,
    pub file: CampaignFile,
    /// The program, resolved.
    pub program: PathBuf,
    pub method: reqwest::Method,
    pub assertions: Vec<PathBuf>,
}

impl Campaign {
    /// Check that the templates work under network `mode` (which the
    /// command line may override).
    pub fn check_mode(&self, mode: crate::net::Mode) -> anyhow::Result<()> {
        if mode != crate::net::Mode::Netns {
            return Ok(());
        }
        let s = &self.file.system;
        if !s
            .command
            .iter()
            .chain(s.env.values())
            .any(|t| t.contains("{host}"))
        {
            bail!(
                "system.command: network.mode = \"netns\" gives each node its own address, but the command has no {{host}} placeholder to listen on it (e.g. \"--listen\", \"{{host}}:{{port}}\")"
            );
        }
        if s.nodes > 1 && !s.peer_url.contains("{host}") {
            bail!(
                "system.peer_url: network.mode = \"netns\" needs {{host}} in the peer URL (e.g. \"http://{{host}}:{{port}}\"), or peers cannot reach each other"
            );
        }
        Ok(())
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading campaign {}", path.display()))?;
        let file: CampaignFile = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("campaign {}: {}", path.display(), e.to_string().trim())
        })?;
        Self::validate(path, file).with_context(|| format!("campaign {}", path.display()))
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
        let Some(program) = s.command.first() else {
            bail!("system.command is empty: give the program and its arguments");
        };
        let program = if program.contains('/') {
            dir.join(program)
        } else {
            PathBuf::from(program)
        };
        let threshold = file.campaign.threshold;
        if !(0.0..=1.0).contains(&threshold) {
            bail!("campaign.threshold is {threshold}: it is a ratio and must lie in [0, 1]");
        }
        if file.burst.concurrency == 0 {
            bail!("burst.concurrency is 0: at least one writer is needed");
        }
        if file.write.ok_status.is_empty() {
            bail!("write.ok_status is empty: list the statuses that mean a write was acknowledged");
        }
        if let Some(st) = file
            .write
            .ok_status
            .iter()
            .find(|s| file.write.quorum_not_met_status.contains(s))
        {
            bail!("write: status {st} is in both ok_status and quorum_not_met_status");
        }
        let method = reqwest::Method::from_bytes(file.write.method.as_bytes()).map_err(|_| {
            anyhow::anyhow!("write.method {:?} is not an HTTP method", file.write.method)
        })?;

        // Every template may only use known placeholders.
        let node_keys = &[
            "index",
            "port",
            "host",
            "peers",
            "data_dir",
            "namespace",
            "cycle",
        ];
        for (i, arg) in s.command.iter().enumerate() {
            check_template(&format!("system.command[{i}]"), arg, node_keys)?;
        }
        for (k, v) in &s.env {
            check_template(&format!("system.env.{k}"), v, node_keys)?;
        }
        check_template("system.peer_url", &s.peer_url, &["port", "index", "host"])?;
        let client_keys = &["port", "index", "host", "namespace", "cycle"];
        check_template("ready.url", &file.ready.url, client_keys)?;
        check_template("read.url", &file.read.url, client_keys)?;
        if let Some(u) = &file.clock.probe_url {
            // A node's clock, not a cycle's data: rendered per node only.
            check_template("clock.probe_url", u, &["port", "index", "host"])?;
        }
        check_template(
            "write.url",
            &file.write.url,
            &["port", "index", "host", "namespace", "cycle", "id"],
        )?;
        let mut body_strings = Vec::new();
        collect_strings(&file.write.body, &mut body_strings);
        for v in &body_strings {
            check_template("write.body", v, &["namespace", "cycle", "id", "index"])?;
        }

        // Isolation by construction (seed 000): each cycle must get its own
        // port, data and namespace, and each write its own id.
        fn mentions<'a>(key: &str, mut texts: impl Iterator<Item = &'a String>) -> bool {
            let needle = format!("{{{key}}}");
            texts.any(|t| t.contains(&needle))
        }
        if !mentions("port", s.command.iter().chain(s.env.values())) {
            bail!(
                "system.command: no {{port}} placeholder (nor in system.env): the host chooses each node's port per cycle and must pass it"
            );
        }
        if !mentions("data_dir", s.command.iter().chain(s.env.values())) {
            bail!(
                "system.command: no {{data_dir}} placeholder (nor in system.env): without a fresh data dir per cycle, state leaks between cycles (seed 000)"
            );
        }
        if !mentions("port", std::iter::once(&file.ready.url)) {
            bail!("ready.url: no {{port}} placeholder: the probe must reach the node it checks");
        }
        if !mentions(
            "id",
            body_strings.iter().chain(std::iter::once(&file.write.url)),
        ) {
            bail!(
                "write.body: no {{id}} placeholder: every write needs its unique id so read-back can tell which landed"
            );
        }
        if !mentions(
            "namespace",
            body_strings.iter().chain([&file.write.url, &file.read.url]),
        ) {
            bail!(
                "write.body: no {{namespace}} placeholder in write.body, write.url or read.url: without a namespace per cycle, read-back counts earlier cycles (seed 000)"
            );
        }
        if s.nodes > 1 && !mentions("peers", s.command.iter().chain(s.env.values())) {
            bail!(
                "system.command: no {{peers}} placeholder with {} nodes: how would a node find its peers?",
                s.nodes
            );
        }
        let assertions = file
            .campaign
            .assertions
            .iter()
            .map(|p| dir.join(p))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            program,
            method,
            assertions,
            file,
        })
    }
}

/// Fail when `text` uses a placeholder outside `allowed`, or an unclosed one.
fn check_template(field: &str, text: &str, allowed: &[&str]) -> anyhow::Result<()> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            bail!("{field}: unclosed '{{' in {text:?}");
        };
        let key = &after[..close];
        if !allowed.contains(&key) {
            let known = if PLACEHOLDERS.iter().any(|(k, _)| *k == key) {
                format!("{{{key}}} is not available here")
            } else {
                format!("unknown placeholder {{{key}}}")
            };
            let list: Vec<String> = allowed.iter().map(|k| format!("{{{k}}}")).collect();
            bail!("{field}: {known} (use one of {})", list.join(", "));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn collect_strings(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Values for the placeholders of one template rendering.
#[derive(Default, Clone)]
pub struct Vars<'a> {
    pub pairs: Vec<(&'static str, std::borrow::Cow<'a, str>)>,
}

impl<'a> Vars<'a> {
    /// What every client URL (ready, write, read, clock probe) is rendered
    /// with: chaos-host reaches node `index` at 127.0.0.1:`port`.
    pub fn client(port: u16, index: u32) -> Self {
        Vars::default()
            .with("port", port.to_string())
            .with("host", "127.0.0.1")
            .with("index", index.to_string())
    }

    pub fn with(mut self, key: &'static str, value: impl Into<std::borrow::Cow<'a, str>>) -> Self {
        self.pairs.push((key, value.into()));
        self
    }

    /// Substitute every `{key}` in `text`. Templates were validated, so an
    /// unknown key here is a bug in the host, left visible.
    pub fn render(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 16);
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) => {
                    let key = &after[..close];
                    match self.pairs.iter().find(|(k, _)| *k == key) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push('{');
                            out.push_str(key);
                            out.push('}');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Render every string of a TOML value into JSON.
    pub fn render_json(&self, v: &toml::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            toml::Value::String(s) => J::String(self.render(s)),
            toml::Value::Integer(i) => J::from(*i),
            toml::Value::Float(f) => J::from(*f),
            toml::Value::Boolean(b) => J::Bool(*b),
            toml::Value::Datetime(d) => J::String(d.to_string()),
            toml::Value::Array(a) => J::Array(a.iter().map(|v| self.render_json(v)).collect()),
            toml::Value::Table(t) => J::Object(
                t.iter()
                    .map(|(k, v)| (k.clone(), self.render_json(v)))
                    .collect(),
            ),
        }
    }
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
        assert!(c.program.ends_with("kv"));
    }

    #[test]
    fn unknown_field_is_named() {
        let e = err(&GOOD.replace("[read]", "[read]\nidz = 1"));
        assert!(e.contains("unknown field `idz`"), "{e}");
        assert!(e.contains("c.toml"), "{e}");
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
    fn client_vars_point_at_loopback() {
        let v = Vars::client(8080, 2);
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
