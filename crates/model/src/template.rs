//! Templates: the placeholders a campaign's commands, URLs and bodies may
//! use, their checks, and their rendering.

use anyhow::bail;
use serde::Deserialize;

/// How ids and body fields are encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Base64,
}

/// Placeholders a template may use, and what they become.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    ("index", "the node's index, 0-based"),
    ("port", "the node's port, chosen free per cycle"),
    (
        "peer_port",
        "a second port per node, chosen free per cycle, for a separate peer protocol (etcd's Raft port)",
    ),
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
    (
        "cluster",
        "every node including this one, each rendered with system.peer_url, joined by system.peer_separator",
    ),
    ("cycle", "the cycle number"),
    (
        "id",
        "the write's unique id, `{namespace}-w<n>` (write templates only)",
    ),
    (
        "key",
        "the register's key, `{namespace}-k<n>` (workload templates only)",
    ),
    (
        "value",
        "the value a put or cas writes, unique per write (workload templates only)",
    ),
    ("expected", "the value a cas expects (workload.cas only)"),
];

/// Fail when `text` uses a placeholder outside `allowed`, or an unclosed one.
pub fn check_template(field: &str, text: &str, allowed: &[&str]) -> anyhow::Result<()> {
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

pub fn http_method(field: &str, m: &str) -> anyhow::Result<http::Method> {
    http::Method::from_bytes(m.as_bytes())
        .map_err(|_| anyhow::anyhow!("{field} {m:?} is not an HTTP method"))
}

/// Every pointer of `<section>.base64` must name a string of `<section>.body`.
pub fn check_pointers(
    section: &str,
    body: &toml::Value,
    pointers: &[String],
) -> anyhow::Result<()> {
    let json = Vars::default().render_json(body);
    for p in pointers {
        match json.pointer(p) {
            Some(serde_json::Value::String(_)) => {}
            Some(other) => {
                bail!("{section}.base64: {p:?} points at {other}, not a string of {section}.body")
            }
            None => bail!(
                "{section}.base64: {p:?} matches nothing in {section}.body (a JSON pointer such as \"/key\")"
            ),
        }
    }
    Ok(())
}

pub fn collect_strings(v: &toml::Value, out: &mut Vec<String>) {
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
    /// with: chaos-host reaches node `index` at `at` (127.0.0.1:`port`, or
    /// a remote host's address).
    pub fn client(at: std::net::SocketAddr, index: u32) -> Self {
        Vars::default()
            .with("port", at.port().to_string())
            .with("host", at.ip().to_string())
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

    /// Render a body template into JSON, then base64-encode the strings at
    /// `base64` (pointers validated at load).
    pub fn render_body(&self, v: &toml::Value, base64: &[String]) -> serde_json::Value {
        use base64::Engine;
        let mut json = self.render_json(v);
        for p in base64 {
            if let Some(serde_json::Value::String(s)) = json.pointer_mut(p) {
                *s = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            }
        }
        json
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
