//! The workload: a burst of concurrent writes through the primary, each with
//! a unique id and a classified outcome, then a per-node read-back of which
//! ids each node holds.

use chaos_model::campaign::{Campaign, Encoding, Vars};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use chaos_model::history::Outcome;

#[derive(Clone, Debug, Serialize)]
pub struct WriteResult {
    pub id: String,
    pub outcome: Outcome,
    /// The HTTP status, when the system answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Offsets from the burst start, microseconds.
    pub start_us: u64,
    pub latency_us: u64,
}

pub use chaos_model::burst::Progress;

pub struct Burst {
    pub results: Vec<WriteResult>,
    pub elapsed: Duration,
    /// The first body of each unexpected status, clipped, for the reasons.
    pub unexpected_bodies: Vec<(u16, String)>,
}

/// Longest body excerpt kept of an unexpected answer.
const BODY_EXCERPT: usize = 200;

/// Where and what a burst writes.
pub struct Target<'a> {
    /// The node writes go through, and its port.
    pub index: u32,
    pub port: std::net::SocketAddr,
    /// One unique id per write, in issue order.
    pub ids: Arc<Vec<String>>,
    pub namespace: &'a str,
    pub cycle: u32,
    /// Where each write is recorded as an operation (process = worker).
    pub history: Option<Arc<chaos_model::history::Recorder>>,
}

/// Run the burst: one write per id through `target.port`, `concurrency` at
/// a time. `progress` is updated as each write is issued, so faults can time
/// themselves against it.
pub async fn burst(
    campaign: &Campaign,
    http: &reqwest::Client,
    target: Target<'_>,
    progress: watch::Sender<Progress>,
    started: Instant,
) -> Burst {
    let Target {
        index,
        port,
        ids,
        namespace,
        cycle,
        history,
    } = target;
    let next = Arc::new(AtomicU32::new(0));
    let progress = Arc::new(progress);
    let concurrency = campaign.file.burst.concurrency.min(ids.len().max(1) as u32);
    let writer = Writer::new(campaign, namespace, cycle);
    let bodies: Arc<std::sync::Mutex<Vec<(u16, String)>>> = Arc::default();
    let mut workers = tokio::task::JoinSet::new();
    for process in 0..concurrency {
        let (http, next, ids, progress) =
            (http.clone(), next.clone(), ids.clone(), progress.clone());
        let history = history.clone();
        let writer = writer.clone();
        let bodies = bodies.clone();
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(id) = ids.get(i) else { break };
                let t0 = Instant::now();
                progress.send_modify(|p| p.issued += 1);
                let answer = writer.write(&http, index, port, id).await;
                if let Some(body) = answer.body {
                    let mut b = bodies.lock().unwrap_or_else(|e| e.into_inner());
                    let status = answer.status.unwrap_or(0);
                    if !b.iter().any(|(s, _)| *s == status) {
                        b.push((status, body));
                    }
                }
                let result = WriteResult {
                    id: id.clone(),
                    outcome: answer.outcome,
                    status: answer.status,
                    start_us: t0.duration_since(started).as_micros() as u64,
                    latency_us: t0.elapsed().as_micros() as u64,
                };
                if let Some(h) = &history {
                    h.push(chaos_model::history::write_op(
                        process,
                        index,
                        id,
                        result.outcome,
                        result.status,
                        result.start_us,
                        result.latency_us,
                    ));
                }
                out.push(result);
            }
            out
        });
    }
    let mut results = Vec::with_capacity(ids.len());
    while let Some(r) = workers.join_next().await {
        results.extend(r.expect("burst worker panicked"));
    }
    progress.send_modify(|p| p.done = true);
    results.sort_by_key(|r| r.start_us);
    let mut unexpected_bodies =
        std::mem::take(&mut *bodies.lock().unwrap_or_else(|e| e.into_inner()));
    unexpected_bodies.sort();
    Burst {
        results,
        elapsed: started.elapsed(),
        unexpected_bodies,
    }
}

/// What one write came to.
pub struct Answer {
    pub outcome: Outcome,
    pub status: Option<u16>,
    /// The body excerpt of an [`Outcome::Unexpected`] answer.
    pub body: Option<String>,
}

/// Renders and sends single writes, and classifies what came of them.
#[derive(Clone)]
pub struct Writer {
    method: reqwest::Method,
    url: String,
    body: toml::Value,
    base64: Vec<String>,
    ok: Vec<u16>,
    quorum_not_met: Vec<u16>,
    indeterminate: Vec<u16>,
    timeout: Duration,
    namespace: String,
    cycle: String,
}

impl Writer {
    pub fn new(campaign: &Campaign, namespace: &str, cycle: u32) -> Self {
        let w = &campaign.file.write;
        Self {
            method: campaign.method.clone(),
            url: w.url.clone(),
            body: w.body.clone(),
            base64: w.base64.clone(),
            ok: w.ok_status.clone(),
            quorum_not_met: w.quorum_not_met_status.clone(),
            indeterminate: w.indeterminate_status.clone(),
            timeout: Duration::from_millis(w.timeout_ms),
            namespace: namespace.to_string(),
            cycle: cycle.to_string(),
        }
    }

    /// Write `id` through node `index` at `port`.
    pub async fn write(
        &self,
        http: &reqwest::Client,
        index: u32,
        at: std::net::SocketAddr,
        id: &str,
    ) -> Answer {
        let vars = Vars::client(at, index)
            .with("id", id)
            .with("namespace", self.namespace.as_str())
            .with("cycle", self.cycle.as_str());
        let req = http
            .request(self.method.clone(), vars.render(&self.url))
            .json(&vars.render_body(&self.body, &self.base64))
            .timeout(self.timeout);
        match req.send().await {
            Ok(resp) => {
                let st = resp.status().as_u16();
                // Drain the body so the connection is reused.
                let body = resp.bytes().await;
                let outcome = if self.ok.contains(&st) {
                    Outcome::Ok
                } else if self.quorum_not_met.contains(&st) {
                    Outcome::QuorumNotMet
                } else if self.indeterminate.contains(&st) {
                    Outcome::Indeterminate
                } else {
                    Outcome::Unexpected
                };
                let body = (outcome == Outcome::Unexpected).then(|| {
                    let text = body.map(|b| String::from_utf8_lossy(&b).into_owned());
                    excerpt(&text.unwrap_or_default())
                });
                Answer {
                    outcome,
                    status: Some(st),
                    body,
                }
            }
            Err(e) => Answer {
                outcome: classify_error(&e),
                status: None,
                body: None,
            },
        }
    }
}

/// The first [`BODY_EXCERPT`] bytes of `text`, on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut cut = one_line.len().min(BODY_EXCERPT);
    while !one_line.is_char_boundary(cut) {
        cut -= 1;
    }
    if cut < one_line.len() {
        format!("{}…", &one_line[..cut])
    } else {
        one_line
    }
}

/// A refused connection never reached the system: the write failed. Anything
/// that may have reached it (timeout, reset, truncated answer) is unknown.
fn classify_error(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Indeterminate;
    }
    if e.is_connect() {
        let refused = std::error::Error::source(e)
            .map(|s| format!("{s:?}"))
            .is_some_and(|s| s.contains("ConnectionRefused"));
        return if refused {
            Outcome::Fail
        } else {
            Outcome::Indeterminate
        };
    }
    Outcome::Indeterminate
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

/// [`read_ids`], recorded in `history` as a `read` by `process`: `ok` with
/// the ids seen, or `fail` with why (a read changes nothing, so an
/// unanswered one is a failure, not an unknown).
pub async fn read_recorded(
    campaign: &Campaign,
    http: &reqwest::Client,
    index: u32,
    at: std::net::SocketAddr,
    namespace: &str,
    cycle: u32,
    (history, process): (&chaos_model::history::Recorder, u32),
) -> Result<Vec<String>, ReadError> {
    use chaos_model::history::{Kind, Op, Status};
    let invoked = Instant::now();
    let read = read_ids(campaign, http, index, at, namespace, cycle).await;
    let mut op = Op::new(process, index, Kind::Read, history.us(invoked));
    op.complete_us = Some(history.us(Instant::now()));
    match &read {
        Ok(ids) => {
            op.status = Status::Ok;
            op.seen = ids.clone();
        }
        Err(e) => {
            op.status = Status::Fail;
            op.error = Some(e.to_string());
        }
    }
    history.push(op);
    read
}

/// Read back the ids node `port` holds in this cycle's namespace.
pub async fn read_ids(
    campaign: &Campaign,
    http: &reqwest::Client,
    index: u32,
    at: std::net::SocketAddr,
    namespace: &str,
    cycle: u32,
) -> Result<Vec<String>, ReadError> {
    let r = &campaign.file.read;
    let vars = Vars::client(at, index)
        .with("namespace", namespace)
        .with("cycle", cycle.to_string());
    let url = vars.render(&r.url);
    let mut req = http
        .request(campaign.read_method.clone(), &url)
        .timeout(Duration::from_millis(r.timeout_ms));
    if let Some(body) = &r.body {
        req = req.json(&vars.render_body(body, &r.base64));
    }
    let unanswered = |what: &str, e: reqwest::Error| {
        let timeout = if e.is_timeout() {
            format!(" (no answer within read.timeout_ms = {})", r.timeout_ms)
        } else {
            String::new()
        };
        // The whole chain: reqwest's own text hides "connection refused"
        // in its sources.
        let text = format!("{:#}", anyhow::Error::from(e));
        ReadError::Unanswered(format!(
            "{what} from node {index} at {url}: {text}{timeout}"
        ))
    };
    let resp = req.send().await.map_err(|e| unanswered("read-back", e))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| unanswered("read-back body", e))?;
    if !status.is_success() {
        return Err(ReadError::Unanswered(format!(
            "read-back from node {index} at {url}: status {status}"
        )));
    }
    let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ReadError::Garbage(format!(
            "read-back from node {index} at {url}: not JSON ({e})"
        ))
    })?;
    let spec = IdSpec {
        pointer: &r.ids_pointer,
        id_field: r.id_field.as_deref(),
        encoding: r.id_encoding,
        absent_is_empty: r.absent_is_empty,
    };
    spec.extract(&doc)
        .map_err(|e| ReadError::Garbage(format!("read-back from node {index} at {url}: {e}")))
}

/// Where the ids are in a read-back answer, and how they are encoded.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdSpec<'a> {
    pub pointer: &'a str,
    pub id_field: Option<&'a str>,
    pub encoding: Option<Encoding>,
    pub absent_is_empty: bool,
}

impl IdSpec<'_> {
    pub fn extract(&self, doc: &serde_json::Value) -> Result<Vec<String>, String> {
        if self.absent_is_empty && doc.pointer(self.pointer).is_none() {
            return Ok(Vec::new());
        }
        let ids = extract_ids(doc, self.pointer, self.id_field)?;
        match self.encoding {
            None => Ok(ids),
            Some(Encoding::Base64) => ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(id.as_bytes())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| {
                            format!(
                                "element {i}: id {id:?} is not base64 of UTF-8 (read.id_encoding)"
                            )
                        })
                })
                .collect(),
        }
    }
}

/// The ids at `pointer` in `doc`; array elements are strings or numbers, or
/// objects holding the id at `id_field` (a JSON pointer or a plain key).
pub fn extract_ids(
    doc: &serde_json::Value,
    pointer: &str,
    id_field: Option<&str>,
) -> Result<Vec<String>, String> {
    let arr = doc
        .pointer(pointer)
        .ok_or_else(|| format!("read.ids_pointer {pointer:?} matches nothing in the response"))?
        .as_array()
        .ok_or_else(|| format!("read.ids_pointer {pointer:?} is not an array"))?;
    arr.iter()
        .enumerate()
        .map(|(i, v)| {
            let v = match id_field {
                Some(f) if f.starts_with('/') => v.pointer(f),
                Some(f) => v.get(f),
                None => Some(v),
            }
            .ok_or_else(|| {
                format!(
                    "element {i} has no read.id_field {:?}",
                    id_field.unwrap_or("")
                )
            })?;
            match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => Err(format!(
                    "element {i}: id is {other}, expected a string or number"
                )),
            }
        })
        .collect()
}

/// Ids a node returned that this cycle never wrote: any is an isolation
/// failure (a namespace reused across cycles once made counts cumulative).
pub fn foreign<'a>(held: &'a [String], issued: &HashSet<&str>) -> Vec<&'a str> {
    held.iter()
        .map(String::as_str)
        .filter(|id| !issued.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_from_strings_numbers_and_objects() {
        let doc = json!({"ids": ["a", 2]});
        assert_eq!(extract_ids(&doc, "/ids", None).unwrap(), ["a", "2"]);
        let doc = json!({"memories": [{"title": "x"}, {"title": "y"}]});
        assert_eq!(
            extract_ids(&doc, "/memories", Some("title")).unwrap(),
            ["x", "y"]
        );
        let doc = json!({"kvs": [{"k": {"id": "z"}}]});
        assert_eq!(extract_ids(&doc, "/kvs", Some("/k/id")).unwrap(), ["z"]);
    }

    #[test]
    fn garbage_read_back_is_named() {
        assert!(
            extract_ids(&json!({"x": 1}), "/ids", None)
                .unwrap_err()
                .contains("matches nothing")
        );
        assert!(
            extract_ids(&json!({"ids": 1}), "/ids", None)
                .unwrap_err()
                .contains("not an array")
        );
        assert!(
            extract_ids(&json!({"ids": [{}]}), "/ids", Some("id"))
                .unwrap_err()
                .contains("element 0")
        );
        assert!(
            extract_ids(&json!({"ids": [null]}), "/ids", None)
                .unwrap_err()
                .contains("expected a string")
        );
    }

    #[test]
    fn base64_ids_and_absent_arrays() {
        let spec = IdSpec {
            pointer: "/kvs",
            id_field: Some("key"),
            encoding: Some(Encoding::Base64),
            absent_is_empty: true,
        };
        // etcd: `kvs` is omitted for an empty range; keys are base64.
        assert!(spec.extract(&json!({"count": "0"})).unwrap().is_empty());
        let doc = json!({"kvs": [{"key": "bnMxLXcw"}]});
        assert_eq!(spec.extract(&doc).unwrap(), ["ns1-w0"]);
        let bad = json!({"kvs": [{"key": "***"}]});
        assert!(spec.extract(&bad).unwrap_err().contains("not base64"));
        let strict = IdSpec {
            absent_is_empty: false,
            ..spec
        };
        assert!(
            strict
                .extract(&json!({}))
                .unwrap_err()
                .contains("matches nothing")
        );
    }

    /// Fuzzing the read-back parser: any JSON answer, under any id spec,
    /// yields ids or an error, never a panic; and ids encoded the way a
    /// system stores them come back exactly.
    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn json() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                "[a-zA-Z0-9+/=_-]{0,12}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..6)
                        .prop_map(serde_json::Value::from),
                    proptest::collection::btree_map(
                        "(ids|kvs|key|title|k|id|memories)",
                        inner,
                        0..4
                    )
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]
            #[test]
            fn any_answer_parses_or_errs(
                doc in json(),
                pointer in prop_oneof![Just(""), Just("/ids"), Just("/kvs"), Just("/memories"), Just("/kvs/0")],
                field in prop_oneof![Just(None), Just(Some("key")), Just(Some("title")), Just(Some("/k/id"))],
                base64 in any::<bool>(),
                absent in any::<bool>(),
            ) {
                let spec = IdSpec {
                    pointer,
                    id_field: field,
                    encoding: base64.then_some(Encoding::Base64),
                    absent_is_empty: absent,
                };
                let _ = spec.extract(&doc);
            }

            #[test]
            fn encoded_ids_come_back_exactly(ids in proptest::collection::vec("[ -~]{1,40}", 0..20)) {
                use base64::Engine;
                let kvs: Vec<serde_json::Value> = ids
                    .iter()
                    .map(|id| json!({"key": base64::engine::general_purpose::STANDARD.encode(id)}))
                    .collect();
                let spec = IdSpec {
                    pointer: "/kvs",
                    id_field: Some("key"),
                    encoding: Some(Encoding::Base64),
                    absent_is_empty: true,
                };
                prop_assert_eq!(spec.extract(&json!({"kvs": kvs})).unwrap(), ids);
            }
        }
    }

    #[test]
    fn foreign_ids_are_found() {
        let held = vec!["a".to_string(), "old".to_string()];
        let issued: HashSet<&str> = ["a", "b"].into();
        assert_eq!(foreign(&held, &issued), ["old"]);
    }
}
