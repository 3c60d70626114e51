//! The register workload's clients: put / get / cas operations on the
//! registers of `[workload]`, recorded in the history.

use chaos_lifecycle::Node;
use chaos_model::campaign::{Encoding, Vars};
use chaos_model::history::{Kind, Op, Recorder, Status};
use chaos_model::register::{Template, Workload};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the clients need of the cycle.
pub struct Run<'a> {
    pub workload: &'a Workload,
    pub http: &'a reqwest::Client,
    /// The campaign's client: a driver or component carries the
    /// operations; the HTTP client leaves them to the templates.
    pub client: &'a crate::client::Client,
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
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(chaos_model::seed::splitmix(
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
    let invoked = Instant::now();
    let mut op = Op::new(r.first_process + c, node.index, kind, r.history.us(invoked));
    op.key = key.clone();
    if kind != Kind::Get {
        op.value = Some(value.clone());
    }
    if kind == Kind::Cas {
        op.expected = expected.clone();
    }
    let asked = match kind {
        Kind::Put => chaos_model::client::Op::Put {
            node: node.index,
            key: key.clone(),
            value: value.clone(),
        },
        Kind::Get => chaos_model::client::Op::Get {
            node: node.index,
            key: key.clone(),
        },
        _ => chaos_model::client::Op::Cas {
            node: node.index,
            key: key.clone(),
            expected: expected.clone(),
            value: value.clone(),
        },
    };
    if let Some(a) = r.client.register(r.first_process + c, asked).await {
        op.status = a.status;
        op.read = a.read;
        op.error = a.error;
        // An operation of unknown fate has no completion (Jepsen's info).
        op.complete_us = (a.status != Status::Info).then(|| r.history.us(Instant::now()));
        return op;
    }
    let t = match kind {
        Kind::Put => w.put.as_ref(),
        Kind::Get => w.get.as_ref(),
        _ => w.cas.as_ref(),
    }
    .expect("validated: register templates are present");
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
