//! The register workload (`[workload] kind = "register"`): besides the
//! burst's unique-id writes (which convergence and the other checks keep
//! judging), `clients` clients issue put / get / cas operations on `keys`
//! registers from the burst's start until `ops` are issued (the cycle
//! waits for them before it reads back), each recorded in the history as `put`, `get` or
//! `cas` with its key, value (unique per write), expected value, the value
//! a get read, and its result. Checkers such as `linearizable` judge them.
//!
//! Each operation is described by an HTTP template (`[workload.put]`,
//! `[workload.get]`, `[workload.cas]`) with `{key}`, `{value}` and
//! `{expected}`; `base64` lists body pointers sent base64-encoded (etcd's
//! JSON gateway). A get's value is found at `value_pointer`; a cas that did
//! not apply is told by its status (`fail_status`) or by a JSON pointer
//! that must be `true` when it applied (`applied_pointer`, etcd's
//! `/succeeded`).

use crate::template::Encoding;
use anyhow::bail;
use serde::Deserialize;

/// `[workload]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// `"set"` (the default: the burst's ids only) or `"register"`.
    pub kind: String,
    #[serde(default = "default_keys")]
    pub keys: u32,
    #[serde(default = "default_clients")]
    pub clients: u32,
    /// Operations per cycle over all clients (at most).
    #[serde(default = "default_ops")]
    pub ops: u32,
    /// Where operations go: `"primary"` (default) or `"any"` (every live
    /// node in turn).
    #[serde(default = "default_through")]
    pub through: String,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    pub put: Option<Template>,
    pub get: Option<Template>,
    pub cas: Option<Template>,
}

fn default_keys() -> u32 {
    3
}
fn default_clients() -> u32 {
    4
}
fn default_ops() -> u32 {
    200
}
fn default_through() -> String {
    "primary".into()
}
fn default_timeout() -> u64 {
    2_000
}

/// One operation's HTTP request and how to read its answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    pub body: Option<toml::Value>,
    #[serde(default)]
    pub base64: Vec<String>,
    /// Statuses of an answer that took effect (get: that read a value).
    #[serde(default = "default_ok")]
    pub ok_status: Vec<u16>,
    /// Statuses of an answer that did not take effect (a cas whose
    /// expected value did not match, a refused put).
    #[serde(default)]
    pub fail_status: Vec<u16>,
    /// get: statuses meaning the key holds nothing.
    #[serde(default)]
    pub absent_status: Vec<u16>,
    /// get: JSON pointer to the value in an ok answer.
    pub value_pointer: Option<String>,
    /// get: an ok answer without `value_pointer` means the key is absent
    /// (etcd omits `kvs`); otherwise it is an answer that does not parse.
    #[serde(default)]
    pub absent_when_missing: bool,
    /// get: how the value is encoded (`base64` for etcd).
    pub value_encoding: Option<Encoding>,
    /// cas: JSON pointer to a boolean, true when the cas applied (etcd's
    /// `/succeeded`, absent when false).
    pub applied_pointer: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}
fn default_ok() -> Vec<u16> {
    vec![200]
}

/// The placeholders each template may use.
const KEYS: &[&str] = &[
    "port",
    "index",
    "host",
    "namespace",
    "cycle",
    "key",
    "value",
    "expected",
];

impl Workload {
    /// Check the section; errors name the field and the fix.
    /// Check the workload; `through_client`: the campaign's `[client]`
    /// carries put, get and cas, so there are no templates.
    pub fn validate_for(&self, through_client: bool) -> anyhow::Result<()> {
        if self.kind == "register" && through_client {
            for (name, t) in [("put", &self.put), ("get", &self.get), ("cas", &self.cas)] {
                if t.is_some() {
                    bail!(
                        "workload.{name}: the campaign's [client] carries the register operations; remove the template"
                    );
                }
            }
            if self.keys == 0 || self.clients == 0 || self.ops == 0 {
                bail!("workload.keys, workload.clients and workload.ops must each be at least 1");
            }
            if self.through != "primary" && self.through != "any" {
                bail!(
                    "workload.through {:?}: use \"primary\" or \"any\"",
                    self.through
                );
            }
            return Ok(());
        }
        self.validate()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.kind == "set" {
            if self.put.is_some() || self.get.is_some() || self.cas.is_some() {
                bail!(
                    "workload.kind is \"set\": put/get/cas templates are for kind = \"register\""
                );
            }
            return Ok(());
        }
        if self.kind != "register" {
            bail!(
                "workload.kind {:?}: use \"set\" (the burst's unique ids) or \"register\"",
                self.kind
            );
        }
        if self.keys == 0 || self.clients == 0 || self.ops == 0 {
            bail!("workload.keys, workload.clients and workload.ops must each be at least 1");
        }
        if self.through != "primary" && self.through != "any" {
            bail!(
                "workload.through {:?}: use \"primary\" or \"any\"",
                self.through
            );
        }
        let need: [(&str, &Option<Template>, &[&str]); 3] = [
            ("put", &self.put, &["key", "value"]),
            ("get", &self.get, &["key"]),
            ("cas", &self.cas, &["key", "value", "expected"]),
        ];
        for (name, t, wanted) in need {
            let Some(t) = t else {
                bail!(
                    "workload.{name} is missing: a register workload needs put, get and cas templates"
                );
            };
            crate::template::http_method(&format!("workload.{name}.method"), &t.method)?;
            let mut texts = vec![t.url.clone()];
            if let Some(b) = &t.body {
                crate::template::collect_strings(b, &mut texts);
                crate::template::check_pointers(&format!("workload.{name}"), b, &t.base64)?;
            }
            for text in &texts {
                crate::template::check_template(&format!("workload.{name}"), text, KEYS)?;
            }
            for key in wanted {
                let needle = format!("{{{key}}}");
                if !texts.iter().any(|s| s.contains(&needle)) {
                    bail!(
                        "workload.{name}: neither url nor body uses {needle}: each {name} must send {}",
                        match *key {
                            "key" => "the key it acts on",
                            "value" => "its unique value",
                            _ => "the value it expects",
                        }
                    );
                }
            }
            for p in t.value_pointer.iter().chain(&t.applied_pointer) {
                if !p.is_empty() && !p.starts_with('/') {
                    bail!("workload.{name}: {p:?}: a JSON pointer starts with '/'");
                }
            }
        }
        if self.get.as_ref().is_some_and(|g| g.value_pointer.is_none()) {
            bail!(
                "workload.get.value_pointer is missing: give the JSON pointer to the value in a get answer (e.g. \"/value\")"
            );
        }
        Ok(())
    }

    pub fn is_register(&self) -> bool {
        self.kind == "register"
    }
}
