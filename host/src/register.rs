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

use crate::campaign::{Encoding, Vars};
use crate::history::{Kind, Op, Recorder, Status};
use crate::lifecycle::Node;
use anyhow::bail;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
            crate::campaign::http_method(&format!("workload.{name}.method"), &t.method)?;
            let mut texts = vec![t.url.clone()];
            if let Some(b) = &t.body {
                crate::campaign::collect_strings(b, &mut texts);
                crate::campaign::check_pointers(&format!("workload.{name}"), b, &t.base64)?;
            }
            for text in &texts {
                crate::campaign::check_template(&format!("workload.{name}"), text, KEYS)?;
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

/// What the clients need of the cycle.
pub struct Run<'a> {
    pub workload: &'a Workload,
    pub http: &'a reqwest::Client,
    pub nodes: &'a [Arc<Node>],
    pub primary: u32,
    pub namespace: &'a str,
    pub cycle: u32,
    pub seed: u64,
    pub history: &'a Recorder,
    /// Process number of client 0.
    pub first_process: u32,
}

/// Run the clients until `ops` are issued. Returns the errors of answers
/// that did not parse (per op, also in the history).
pub async fn run(r: Run<'_>) -> Vec<String> {
    let w = r.workload;
    let issued = std::sync::atomic::AtomicU32::new(0);
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let clients = (0..w.clients).map(|c| {
        let (r, issued, errors) = (&r, &issued, &errors);
        async move {
            // Seeded per cycle and client: a replayed cycle draws the same
            // operations.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(crate::run::splitmix(
                r.seed ^ (c as u64 + 1),
            ));
            let mut known: Vec<Option<String>> = vec![None; w.keys as usize];
            let mut n = 0u32;
            let mut turn = c as usize;
            loop {
                if issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= w.ops {
                    break;
                }
                let k = rng.random_range(0..w.keys) as usize;
                let key = format!("{}-k{k}", r.namespace);
                let roll: u32 = rng.random_range(0..10);
                let kind = match (roll, &known[k]) {
                    (0..4, _) | (7.., None) => Kind::Get,
                    (4..7, _) => Kind::Put,
                    _ => Kind::Cas,
                };
                let value = format!("{}-c{c}-v{n}", r.namespace);
                n += 1;
                let node = if w.through == "any" {
                    let live: Vec<&Arc<Node>> = r.nodes.iter().filter(|n| n.alive()).collect();
                    if live.is_empty() {
                        break;
                    }
                    turn += 1;
                    live[turn % live.len()]
                } else {
                    &r.nodes[r.primary as usize]
                };
                let op = one(r, c, node, kind, key, value, known[k].clone()).await;
                match (op.kind, op.status) {
                    (Kind::Get, Status::Ok) => known[k] = op.read.clone(),
                    (Kind::Put | Kind::Cas, Status::Ok) => known[k] = op.value.clone(),
                    _ => {}
                }
                if let (Kind::Get, Some(e)) = (op.kind, &op.error)
                    && e.starts_with("answer does not parse")
                {
                    errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!(
                            "get of {} on node {} at {} µs: {e}",
                            op.key, op.node, op.invoke_us
                        ));
                }
                r.history.push(op);
            }
        }
    });
    futures::future::join_all(clients).await;
    errors.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Issue one operation and classify its answer.
async fn one(
    r: &Run<'_>,
    c: u32,
    node: &Node,
    kind: Kind,
    key: String,
    value: String,
    expected: Option<String>,
) -> Op {
    let w = r.workload;
    let t = match kind {
        Kind::Put => w.put.as_ref(),
        Kind::Get => w.get.as_ref(),
        _ => w.cas.as_ref(),
    }
    .expect("validated: register templates are present");
    let invoked = Instant::now();
    let mut op = Op::new(r.first_process + c, node.index, kind, r.history.us(invoked));
    op.key = key.clone();
    if kind != Kind::Get {
        op.value = Some(value.clone());
    }
    if kind == Kind::Cas {
        op.expected = expected.clone();
    }
    let cycle = r.cycle.to_string();
    let vars = Vars::client(node.client, node.index)
        .with("namespace", r.namespace)
        .with("cycle", cycle.as_str())
        .with("key", key.as_str())
        .with("value", value.as_str())
        .with("expected", expected.as_deref().unwrap_or(""));
    let method = reqwest::Method::from_bytes(t.method.as_bytes()).expect("validated method");
    let mut req = r
        .http
        .request(method, vars.render(&t.url))
        .timeout(Duration::from_millis(w.timeout_ms));
    if let Some(b) = &t.body {
        req = req.json(&vars.render_body(b, &t.base64));
    }
    let answer = async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, resp.bytes().await?))
    }
    .await;
    let done = Some(r.history.us(Instant::now()));
    let (status, body) = match answer {
        Ok(a) => a,
        Err(e) => {
            // A get changes nothing: unanswered, it simply failed. A put
            // or cas may have landed: unknown.
            op.status = if kind == Kind::Get {
                op.complete_us = done;
                Status::Fail
            } else {
                Status::Info
            };
            op.error = Some(format!("{:#}", anyhow::Error::from(e)));
            return op;
        }
    };
    op.complete_us = done;
    if t.fail_status.contains(&status) {
        op.status = Status::Fail;
        op.error = Some(format!("status {status}"));
        return op;
    }
    if kind == Kind::Get && t.absent_status.contains(&status) {
        op.status = Status::Ok;
        return op;
    }
    if !t.ok_status.contains(&status) {
        // Not an answer the campaign classifies: it may have applied.
        op.status = if kind == Kind::Get {
            Status::Fail
        } else {
            op.complete_us = None;
            Status::Info
        };
        op.error = Some(format!(
            "status {status} (in neither ok_status nor fail_status)"
        ));
        return op;
    }
    let parsed = || -> Result<serde_json::Value, String> {
        serde_json::from_slice(&body).map_err(|e| format!("not JSON ({e})"))
    };
    match kind {
        Kind::Get => {
            let pointer = t.value_pointer.as_deref().unwrap_or("");
            match parsed().and_then(|doc| read_value(&doc, pointer, t)) {
                Ok(v) => {
                    op.status = Status::Ok;
                    op.read = v;
                }
                Err(e) => {
                    op.status = Status::Fail;
                    op.error = Some(format!(
                        "answer does not parse: {e} (workload.get.value_pointer {pointer:?})"
                    ));
                }
            }
        }
        Kind::Cas if t.applied_pointer.is_some() => {
            let p = t.applied_pointer.as_deref().unwrap_or("");
            match parsed() {
                Ok(doc) if doc.pointer(p) == Some(&serde_json::Value::Bool(true)) => {
                    op.status = Status::Ok;
                }
                Ok(_) => {
                    op.status = Status::Fail;
                    op.error = Some(format!("not applied ({p} is not true)"));
                }
                Err(e) => {
                    // Acknowledged with a status that says it took effect
                    // but an answer that says nothing: unknown.
                    op.status = Status::Info;
                    op.complete_us = None;
                    op.error = Some(format!("answer does not parse: {e}"));
                }
            }
        }
        _ => op.status = Status::Ok,
    }
    op
}

/// The value at `pointer`: a string (decoded per `value_encoding`) or a
/// number; none when absent and `absent_when_missing`.
fn read_value(
    doc: &serde_json::Value,
    pointer: &str,
    t: &Template,
) -> Result<Option<String>, String> {
    let Some(v) = doc.pointer(pointer) else {
        return if t.absent_when_missing {
            Ok(None)
        } else {
            Err(format!("{pointer:?} matches nothing in the answer"))
        };
    };
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Null => return Ok(None),
        other => return Err(format!("{pointer:?} is {other}, not a string")),
    };
    match t.value_encoding {
        None => Ok(Some(text)),
        Some(Encoding::Base64) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(Some)
                .ok_or_else(|| format!("{text:?} is not base64 of UTF-8 (value_encoding)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(put: &str) -> Workload {
        toml::from_str(&format!(
            r#"
kind = "register"
[put]
url = "http://127.0.0.1:{{port}}/kv/{{key}}"
body = {put}
[get]
url = "http://127.0.0.1:{{port}}/kv/{{key}}"
value_pointer = "/value"
[cas]
url = "http://127.0.0.1:{{port}}/kv/{{key}}/cas"
body = {{ expected = "{{expected}}", new = "{{value}}" }}
"#
        ))
        .unwrap()
    }

    #[test]
    fn templates_must_carry_key_and_value() {
        workload(r#"{ value = "{value}" }"#).validate().unwrap();
        let e = workload(r#"{ value = "fixed" }"#).validate().unwrap_err();
        assert!(
            e.to_string()
                .contains("workload.put: neither url nor body uses {value}"),
            "{e}"
        );
        let e = workload(r#"{ value = "{valu}" }"#).validate().unwrap_err();
        assert!(e.to_string().contains("workload.put"), "{e}");
    }

    #[test]
    fn get_values_parse_or_say_why() {
        let t: Template = toml::from_str(
            "url = \"x\"\nvalue_pointer = \"/kvs/0/value\"\nvalue_encoding = \"base64\"",
        )
        .unwrap();
        let doc = serde_json::json!({"kvs": [{"value": "YWI="}]});
        assert_eq!(
            read_value(&doc, "/kvs/0/value", &t).unwrap().as_deref(),
            Some("ab")
        );
        let e = read_value(&serde_json::json!({}), "/kvs/0/value", &t).unwrap_err();
        assert!(e.contains("matches nothing"), "{e}");
        let t = Template {
            absent_when_missing: true,
            ..t
        };
        assert_eq!(
            read_value(&serde_json::json!({}), "/kvs/0/value", &t).unwrap(),
            None
        );
    }
}
